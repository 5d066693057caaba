"""Per-plate QC at screen scale: one summary row per plate and which plates to show first.

A 200-plate screen cannot embed every plate's QC figures (heatmaps, segmentation overlays,
illumination: about 0.5 MB of PNG a plate). The report shows every plate as a row of one table
(:func:`plate_summary`), embeds the figures of the worst ``report.max_plate_figures`` plates
(:func:`worst_plates`: the largest share of sites failing QC, then the fewest cells per site)
and writes every plate's figures beside the page (:data:`FIGURES`), linked from its row.
"""

from __future__ import annotations

import pandas as pd

from debatch.segment.qc import COUNT, FOCUS_DEVIATION, failure_counts
from debatch.settings import BATCH, PLATE, QC_PASS

# a plate's QC figures: file name beside the report (report/plates/{plate}/{name}.png) -> caption
FIGURES = {
    "heatmaps": "cell count and focus per well (x: a well with a site that failed QC)",
    "overlays": "segmentation overlays (nuclei and cell outlines)",
    "illum": "illumination functions",
}
CELLS_PER_WELL = "cells_per_well"  # report/plates/cells_per_well.png: every plate on one scale


def plate_summary(sites: pd.DataFrame) -> pd.DataFrame:
    """One row per plate of the QC tables (qc/{plate}.parquet, concatenated): sites, failed
    sites and their share, what they failed (sites per test), cells, cells per site and the
    median focus deviation; worst first (:func:`worst_plates`' order)."""
    rows = []
    for plate, table in sites.groupby(sites[PLATE].astype(str), sort=True):
        failed = int((~table[QC_PASS]).sum())
        counts = failure_counts(table)
        rows.append(
            {
                "plate": plate,
                "batch": str(table[BATCH].iloc[0]) if BATCH in table else "",
                "sites": len(table),
                "failed sites": failed,
                "failed share": failed / len(table),
                "failed by": "; ".join(f"{kind} {n}" for kind, n in counts.items()),
                "cells": int(table[COUNT].sum()),
                "cells per site": float(table[COUNT].mean()),
                "median focus deviation": float(table[FOCUS_DEVIATION].median())
                if FOCUS_DEVIATION in table
                else None,
            }
        )
    summary = pd.DataFrame(rows)
    if summary.empty:
        return summary
    return summary.sort_values(
        ["failed share", "cells per site", "plate"], ascending=[False, True, True], kind="stable"
    ).reset_index(drop=True)


def worst_plates(summary: pd.DataFrame, cap: int) -> list[str]:
    """The ``cap`` plates whose figures the page embeds: the largest share of failed sites,
    then the fewest cells per site (``summary``'s order)."""
    return summary["plate"].head(cap).tolist() if len(summary) else []
