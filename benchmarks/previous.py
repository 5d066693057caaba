"""Code as it was before a change, loaded from git, so a benchmark can time and score the old
and the new implementation side by side in the same run.

FLOODING is the last commit whose cells grew by a marker watershed on sobel + distance (the
"flooding" path issue 13 replaced with CellProfiler's propagation).
"""

from __future__ import annotations

import subprocess
import types
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FLOODING = "e656bfe"


def module_at(commit: str, path: str, name: str) -> types.ModuleType:
    """The module at ``path`` as it was in ``commit`` (imports resolve against today's code)."""
    source = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{commit}:{path}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    module = types.ModuleType(name)
    exec(compile(source, f"{commit}:{path}", "exec"), module.__dict__)
    return module


# the cell settings the flooding path was run (and tuned) with, where today's defaults differ
FLOODING_SETTINGS = {"cell_smoothing": 1.0, "cell_threshold_correction": 1.0}


def flooding_cells():
    """segment_cells(nuclei, cell_image, params, scale) of FLOODING with its own settings
    (``scale`` unused: the flooding path was scale-free)."""
    old = module_at(FLOODING, "src/debatch/segment/propagate.py", "flooding_propagate")

    def segment_cells(nuclei, cell_image, params=None, scale=1.0) -> np.ndarray:
        return old.segment_cells(nuclei, cell_image, {**(params or {}), **FLOODING_SETTINGS})

    return segment_cells
