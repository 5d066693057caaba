"""The plate's cell table gathered from its segmentation shards, with the plate's log lines.

Kept apart from the segmentation code so the gather job starts without importing it (numba,
centrosome): a plate's fixed cost is paid in job start-ups.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from debatch.core.shards import gather_tables
from debatch.settings import SITE_CELLS


def gather_cells(paths: list[str | os.PathLike], n_sites: int, plate: str) -> pd.DataFrame:
    """The plate's cell table from its shards; a plate without any cell is an error."""
    cells = gather_tables(paths)
    if not len(cells):
        raise ValueError(
            f"plate {plate}: no cells found on any of its {n_sites} sites; check nuclei_channel "
            f"and segment.propagate.nucleus_diameter (or the cellpose models)"
        )
    return cells


def plate_summary(sites: pd.DataFrame) -> str:
    """One log line: sites, cells and the spread of cells per site of a segmented plate."""
    counts = sites[SITE_CELLS]
    return (
        f"{len(sites)} sites, {int(counts.sum())} cells; cells per site min {counts.min()}, "
        f"median {np.median(counts):g}, max {counts.max()}"
    )


def small_cells_warning(cells: pd.DataFrame, plate: str) -> str | None:
    """A warning when cells are barely larger than their nuclei (median area ratio below 1.2):
    what a blank or wrong cell_channel gives, silently, otherwise."""
    ratio = float(np.median(cells["Cells_AreaShape_Area"] / cells["Nuclei_AreaShape_Area"]))
    if ratio >= 1.2:
        return None
    return (
        f"plate {plate}: cells are barely larger than their nuclei (median area ratio "
        f"{ratio:.2f}); is cell_channel the channel that outlines whole cells, and not blank?"
    )
