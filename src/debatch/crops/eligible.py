"""Which cells get a crop: cells of sites that failed image QC are left out, and so, when
``crops.drop_border_cells`` is set, are cells cut by the image border. With ``crops.unit: site``
the rows are whole sites instead: every site that passed QC (``select_sites``).

The crops table is the index of every later stage, so nothing upstream is rewritten; each
drop is counted (and logged by the job).
"""

from __future__ import annotations

import pandas as pd

from debatch.settings import (
    CROPS,
    METADATA,
    QC_PASS,
    SITE,
    SITE_CELLS,
    SITE_CELLS_META,
    SITE_KEY,
    WELL,
)


def select_cells(
    cells: pd.DataFrame, qc: pd.DataFrame | None, params: dict | None = None
) -> tuple[pd.DataFrame, dict[str, int]]:
    """The cells that get crops, in table order, and how many were left out and why.

    ``qc`` is the plate's QC table (one row per site with ``QC_Pass``); sites missing from it
    are an error rather than silently passed.
    """
    params = CROPS.merge(params)
    keep = pd.Series(True, index=cells.index)
    counts = {"cells": len(cells), "failed_qc": 0, "border": 0}
    if qc is not None:
        verdict = cells[SITE_KEY].merge(qc[[*SITE_KEY, QC_PASS]], on=SITE_KEY, how="left")[QC_PASS]
        if verdict.isna().any():
            first = cells.loc[verdict.isna().to_numpy(), SITE_KEY].iloc[0]
            raise ValueError(
                f"QC table has no row for well {first[WELL]} site {first[SITE]}, which has cells"
            )
        passed = verdict.astype(bool).to_numpy()
        counts["failed_qc"] = int((~passed).sum())
        keep &= passed
    if params["drop_border_cells"]:
        border = cells["Cells_Touching_Border"].astype(bool) & keep
        counts["border"] = int(border.sum())
        keep &= ~border
    return cells[keep.to_numpy()].reset_index(drop=True), counts


def select_sites(manifest: pd.DataFrame, qc: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """The sites that get a whole-site crop (``crops.unit: site``), in manifest order: their
    ``Metadata_`` columns (those of a cell's row, less the cell's own) and ``Metadata_Cells``,
    the site's segmented cells; and how many sites there were and failed QC.

    ``qc`` is the plate's QC table; a site of ``manifest`` missing from it is an error.
    """
    metadata = [c for c in manifest.columns if c.startswith(METADATA)]
    verdict = manifest[SITE_KEY].merge(
        qc[[*SITE_KEY, QC_PASS, SITE_CELLS]], on=SITE_KEY, how="left"
    )
    if verdict[QC_PASS].isna().any():
        first = manifest.loc[verdict[QC_PASS].isna().to_numpy(), SITE_KEY].iloc[0]
        raise ValueError(f"QC table has no row for well {first[WELL]} site {first[SITE]}")
    passed = verdict[QC_PASS].astype(bool).to_numpy()
    sites = manifest.loc[passed, metadata].reset_index(drop=True)
    sites[SITE_CELLS_META] = verdict.loc[passed, SITE_CELLS].astype("int64").to_numpy()
    return sites, {"sites": len(manifest), "failed_qc": int((~passed).sum())}


def left_out(counts: dict[str, int]) -> str:
    """What a plate's crops left out (``select_cells``' or ``select_sites``' counts), as the log
    and the error say it."""
    if "sites" in counts:
        return f"of {counts['sites']} sites, {counts['failed_qc']} failed QC"
    return (
        f"of {counts['cells']} cells, {counts['failed_qc']} on sites that failed QC and "
        f"{counts['border']} at the border left out"
    )


def check_some_left(rows: int, plate: str, counts: dict[str, int], qc_path: str) -> None:
    """A plate whose every cell (or site) was left out is an error that says why."""
    if not rows:
        raise ValueError(
            f"plate {plate}: nothing left for crops ({left_out(counts)}); see {qc_path}"
        )
