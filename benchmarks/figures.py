"""Key figures a benchmark measured, kept as JSON beside the scripts (benchmarks/figures/), so
a later calculation (cost_model.py: a screen's core-hours) reads what was measured instead of
numbers typed by hand. Written by the benchmark each time it runs; committed with README.md."""

from __future__ import annotations

import json
from pathlib import Path

FOLDER = Path(__file__).resolve().parent / "figures"


def save(script: str, figures: dict, folder=None) -> None:
    """``figures`` of the benchmark ``script`` (its file name), replacing the last ones
    (``folder``: elsewhere than benchmarks/figures, e.g. a test's tmp folder)."""
    folder = FOLDER if folder is None else Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{Path(script).stem}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def load(script: str) -> dict | None:
    """The figures ``script`` saved last, or None when it has not run here."""
    path = FOLDER / f"{Path(script).stem}.json"
    return json.loads(path.read_text()) if path.is_file() else None
