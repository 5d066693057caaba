"""A fresh clone of the committed repository, as a new user starts: the `make` targets of
README.md timed in it, its virtual environment built by make (pip, with this machine's pip
cache). Used by end_to_end.py (`make demo`) and rxrx1_demo.py (`make rxrx1-demo`)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def timed_make(clone: Path, target: str) -> float:
    """Wall seconds of ``make target`` in ``clone``; exits with its output's end on failure."""
    started = time.perf_counter()
    result = subprocess.run(["make", target], cwd=clone, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"make {target} failed:\n{(result.stdout + result.stderr)[-3000:]}")
    return time.perf_counter() - started


def fresh_clone(tmp: Path) -> tuple[Path, float]:
    """A clone of the committed repository in ``tmp`` with its virtual environment built:
    (the clone, seconds make took to build the environment)."""
    clone = tmp / "debatch"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    stamp = subprocess.run(
        ["make", "-s", "--eval=print-stamp: ; @echo $(STAMP)", "print-stamp"],
        cwd=clone,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return clone, timed_make(clone, stamp)
