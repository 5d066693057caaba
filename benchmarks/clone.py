"""A fresh clone of the committed repository, as a new user starts: the `make` targets of
README.md timed in it, its virtual environment built by `make venv` (pip, with this machine's
pip cache, so warm: a first install also downloads every wheel). Used by end_to_end.py
(`make demo`) and rxrx1_demo.py (`make rxrx1-demo`)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# settings of an outer `make bench VENV=... CORES=...` that must not reach a new user's make
_MAKE_SETTINGS = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "VENV", "PYTHON", "CORES", "SNAKEMAKE_ARGS")


def timed_make(clone: Path, target: str) -> float:
    """Wall seconds of ``make target`` in ``clone``; exits with its output's end on failure."""
    env = {key: value for key, value in os.environ.items() if key not in _MAKE_SETTINGS}
    started = time.perf_counter()
    result = subprocess.run(["make", target], cwd=clone, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise SystemExit(f"make {target} failed:\n{(result.stdout + result.stderr)[-3000:]}")
    return time.perf_counter() - started


def fresh_clone(tmp: Path) -> tuple[Path, str, float]:
    """A clone of the committed repository in ``tmp`` with its virtual environment built:
    (the clone, its commit, seconds `make venv` took)."""
    clone = tmp / "debatch"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=clone, capture_output=True, text=True
    ).stdout.strip()
    return clone, commit, timed_make(clone, "venv")
