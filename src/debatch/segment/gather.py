"""A segmented plate's checks and log lines, whether one job segmented it or its shards were
gathered.

Kept apart from the segmentation code so the gather job starts without importing it (numba,
centrosome): a plate's fixed cost is paid in job start-ups.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from debatch.settings import SITE_CELLS


def check_plate(cells: pd.DataFrame, sites: pd.DataFrame, plate: str, log: logging.Logger) -> None:
    """The plate's log lines once all of its sites are segmented (one job, or its shards
    gathered): a plate without any cell is an error, cells barely larger than their nuclei a
    warning."""
    if not len(cells):
        raise ValueError(
            f"plate {plate}: no cells found on any of its {len(sites)} sites; check nuclei_channel "
            f"and segment.propagate.nucleus_diameter (or the cellpose models)"
        )
    log.info("plate %s: %s", plate, plate_summary(sites))
    warning = small_cells_warning(cells, plate)
    if warning:
        log.warning(warning)
    unpaired = sites[["Count_UnpairedNuclei", "Count_UnpairedCells"]].sum()
    if unpaired.any():
        log.info(
            "cellpose objects left out for want of a partner: %d nuclei, %d cells",
            unpaired["Count_UnpairedNuclei"],
            unpaired["Count_UnpairedCells"],
        )


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
