"""Code as it was before a change, loaded from git, so a benchmark can time and score the old
and the new implementation side by side in the same run.

FLOODING is the last commit whose cells grew by a marker watershed on sobel + distance (the
"flooding" path issue 13 replaced with CellProfiler's propagation); BEFORE_ISSUE_24 the last
before issue 24 changed the focus test's size adjustment.
"""

from __future__ import annotations

import subprocess
import types
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FLOODING = "e656bfe"
# the last commit before issue 24: focus QC adjusted for the segmented nuclei's median area by a
# Huber fit (issue 24 moved to the area at half maximum and a Huber-then-bisquare fit)
BEFORE_ISSUE_24 = "11086ab"


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


def qc_before_issue_24() -> types.ModuleType:
    """debatch.segment.qc of BEFORE_ISSUE_24 (flag_sites(sites, focus_channel, params),
    focus_deviation(sites, measure, adjust))."""
    return module_at(BEFORE_ISSUE_24, "src/debatch/segment/qc.py", "qc_before_issue_24")


# the segmentation defaults before issue 24, where they differ from today's (the NF1 benchmark
# also set max_cell_distance 4 then)
BEFORE_ISSUE_24_SETTINGS = {"threshold_method": "otsu", "cell_threshold_correction": 1.2}


def segment_site_before_issue_24():
    """segment_site(images, channels, params, scale) of BEFORE_ISSUE_24 (no speck filter);
    pass BEFORE_ISSUE_24_SETTINGS in ``params`` for its defaults."""
    return module_at(
        BEFORE_ISSUE_24, "src/debatch/segment/propagate.py", "propagate_before_issue_24"
    ).segment_site
