"""How well focus QC separates defocused sites from phenotypes: sites of debatch.demo.focus_sites
(treatments that change nucleus size or density, some defocused) measured and segmented as the
segment stage does, then flagged by debatch.segment.qc. Used by the QC docs' numbers
(benchmarks/focus_qc.py) and the tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from debatch.demo.focus_sites import focus_sites
from debatch.segment.propagate import segment_nuclei
from debatch.segment.quality import image_quality
from debatch.segment.score import median_area
from debatch.settings import (
    PLATE,
    QC_FAILED,
    QC_PASS,
    SITE_CELLS,
    SITE_NUCLEUS_AREA,
    TREATMENT,
)


def focus_table(
    params: dict, batches: list[str], sites_per_treatment: int, blurred_share: float, segment: dict
) -> pd.DataFrame:
    """One row per site (a plate per batch): treatment, whether defocused, the DNA channel's QC
    measures, cell count and median nucleus area, as the segment stage records them (its
    nuclei; the cells, paired 1:1 with them, are not needed here)."""
    rows = []
    for batch in batches:
        for treatment, defocused, images in focus_sites(
            params, batch, sites_per_treatment, blurred_share
        ):
            nuclei = segment_nuclei(images["DNA"].astype(np.float32), segment)
            rows.append(
                {
                    PLATE: batch,
                    TREATMENT: treatment,
                    "Defocused": defocused,
                    **image_quality({"DNA": images["DNA"]}, "DNA"),
                    SITE_CELLS: int(nuclei.max()),  # cells are paired 1:1 with nuclei
                    SITE_NUCLEUS_AREA: median_area(nuclei) if nuclei.max() else 0.0,
                }
            )
    return pd.DataFrame(rows)


def focus_rates(flagged: pd.DataFrame) -> pd.DataFrame:
    """Per treatment: in-focus sites, how many failed focus (false fails), defocused sites and
    how many were caught (sensitivity)."""
    fails = ~flagged[QC_PASS] & flagged[QC_FAILED].str.contains("focus")
    table = flagged.assign(fails=fails).groupby(TREATMENT, sort=False)
    sharp = table.apply(
        lambda g: pd.Series(
            {
                "in focus": int((~g["Defocused"]).sum()),
                "false fails": int((g["fails"] & ~g["Defocused"]).sum()),
                "defocused": int(g["Defocused"].sum()),
                "caught": int((g["fails"] & g["Defocused"]).sum()),
            }
        )
    )
    sharp["false-fail rate"] = sharp["false fails"] / sharp["in focus"].clip(lower=1)
    sharp["sensitivity"] = sharp["caught"] / sharp["defocused"].clip(lower=1)
    return sharp.reset_index()
