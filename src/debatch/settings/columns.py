"""What every output column means, per output file: the one list docs/columns.md is generated
from (``tools/docs.py sync``) and that a workflow test holds every written column to.

In a pattern, ``{channel}`` stands for a logical channel of ``channels:`` (no ``_``), ``{k}`` for
digits, ``{compartment}`` for Nuclei, Cells or Cytoplasm, any other ``{name}`` for any text.
"""

from __future__ import annotations

import re

from .names import (
    BATCH,
    COUNT_CELLS,
    COUNT_WELLS,
    CROP_AT_EDGE,
    DOSE,
    FOCUS,
    HALF_MAXIMUM_AREA,
    MEAN_INTENSITY,
    OBJECT,
    PATH,
    PLATE,
    QC_FAILED,
    QC_PASS,
    ROLE,
    SATURATION,
    SHARPNESS,
    SITE,
    SITE_CELLS,
    SITE_CELLS_META,
    SITE_NUCLEUS_AREA,
    SITE_SPECKS,
    STD_INTENSITY,
    TREATMENT,
    WELL,
)

_PLATEMAP = [
    (PLATE, "plate name, as on the plate sheet"),
    (BATCH, "imaging batch (day, instrument), as on the plate sheet"),
    (WELL, "well, zero-padded (`B07`)"),
    (TREATMENT, "the platemap's treatment"),
    (ROLE, "negcon, poscon or treatment (the platemap's role)"),
    (DOSE, "the platemap's `dose` column, where it has one"),
    ("Metadata_{any}", "any other platemap column (`moa`, `target`, ...) as written there"),
]
_SITE = [(SITE, "site (field) number within the well")]
_CELL = [(OBJECT, "the cell's label in the site's label images (`masks/{plate}.npz`)")]
# a row of a whole site (crops.unit: site) in place of a cell's object number
_WHOLE_SITE = [(SITE_CELLS_META, "crops.unit site: a row is a whole site; its segmented cells")]
_CELLPROFILER = [
    (
        "{compartment}_{any}",
        "a CellProfiler measurement (cp_measure) of the Nuclei, Cells or Cytoplasm object, named "
        "as CellProfiler names it: compartment, module, feature, channel(s) and scale "
        "(docs/features.md)",
    )
]
_QUALITY = [
    (
        f"{FOCUS}_{{channel}}",
        "CellProfiler's focus measure: slope of the log-log radial power spectrum",
    ),
    (
        f"{SHARPNESS}_{{channel}}",
        "median gradient at the nuclei's half-maximum contour over their contrast (1/px; focus)",
    ),
    (
        f"{HALF_MAXIMUM_AREA}_{{channel}}",
        "median object area (px) at half maximum, the size the focus test adjusts for",
    ),
    (
        f"{SATURATION}_{{channel}}",
        "share of pixels at the image's maximum, 255 in 8-bit images (saturation)",
    ),
    (f"{MEAN_INTENSITY}_{{channel}}", "mean intensity of the site, as read"),
    (f"{STD_INTENSITY}_{{channel}}", "standard deviation of the site's intensity"),
    (SITE_CELLS, "cells segmented in the site"),
    (SITE_NUCLEUS_AREA, "median nucleus area of the site (px)"),
    ("Count_UnpairedNuclei", "nuclei without a cell (dropped)"),
    ("Count_UnpairedCells", "cells without a nucleus (dropped)"),
    (SITE_SPECKS, "specks left out as artefacts, not cells"),
]
# segmentation's cell table: where each cell is and a few measures QC and crops use
_CELL_TABLE = [
    *_PLATEMAP,
    *_SITE,
    *_CELL,
    ("Nuclei_Location_Center_{any}", "nucleus centre (px), where the crop is cut"),
    ("Nuclei_Touching_Border", "the nucleus touches the site's border"),
    ("Cells_Touching_Border", "the cell touches the site's border"),
    *_CELLPROFILER,
]
_PROFILE = [("emb_{k}", "embedding dimension k of a trained model"), *_CELLPROFILER]

OUTPUT_COLUMNS: dict[str, list[tuple[str, str]]] = {
    "manifest/{plate}.parquet": [
        *_PLATEMAP,
        *_SITE,
        (f"{PATH}{{channel}}", "the channel's image file of the site"),
    ],
    "cells/{plate}.parquet": _CELL_TABLE,
    "sites/{plate}.parquet": [*_PLATEMAP, *_SITE, *_QUALITY],
    "qc/{plate}.parquet": [
        *_PLATEMAP,
        *_SITE,
        *_QUALITY,
        (
            "QC_FocusDeviation",
            "robust SDs the site's focus lies from what the plate predicts for it (NaN: not "
            "judged)",
        ),
        (QC_PASS, "the site passed QC (its cells get crops and profiles)"),
        (QC_FAILED, "why it failed (empty when it passed)"),
    ],
    "crops/{plate}.parquet": [
        *_CELL_TABLE,
        (CROP_AT_EDGE, "the crop window reached past the site's edge (padded)"),
        *_WHOLE_SITE,
    ],
    "features/{plate}.parquet": [*_PLATEMAP, *_SITE, *_CELL, *_CELLPROFILER],
    "embeddings/{source}/{plate}.parquet": [
        *_PLATEMAP,
        *_SITE,
        *_CELL,
        *_WHOLE_SITE,
        ("emb_{k}", "embedding dimension k"),
    ],
    "external/{source}/{plate}.parquet": [
        *_PLATEMAP,
        (
            "{compartment}_{any}",
            "a CellProfiler measurement of the external table (`features: cellprofiler`), "
            "positional and object-bookkeeping columns left out",
        ),
        ("{any}", "a feature of an external table (`features: embedding`), named as there"),
    ],
    "profiles/{source}/{correction}/wells.parquet": [
        *_PLATEMAP,
        (
            COUNT_CELLS,
            "cells aggregated into the well (pycytominer.aggregate's name; crops.unit site: "
            "the cells of its sites)",
        ),
        *_PROFILE,
        ("harmony_pc_{k}", "Harmony-corrected principal component k (correction harmony)"),
    ],
    "profiles/{source}/{correction}/consensus.parquet": [
        (TREATMENT, "the treatment"),
        (DOSE, "its dose, where the platemap has one"),
        ("Metadata_{any}", "metadata constant over the treatment's wells"),
        (COUNT_WELLS, "wells aggregated into the treatment's profile"),
        *_PROFILE,
        ("harmony_pc_{k}", "Harmony-corrected principal component k (correction harmony)"),
    ],
    "profiles/{source}/features.tsv": [
        ("feature", "a feature of the source's per-cell table"),
        ("kept", "true: in the profiles; false: dropped by feature selection"),
        ("dropped_by", "the selection step that dropped it (profiles.feature_select)"),
    ],
    "report/ranking.tsv": [
        ("rank", "the row's place, best overall first"),
        ("method", "a trained method or cellprofiler"),
        ("correction", "none, sphering or harmony"),
        ("seeds", "runs averaged: seeds, x held-out batches rotating (1 without seeds)"),
        ("overall", "activity_weight x activity + the rest x matching (docs/metrics.md)"),
        ("activity", "calling hits against negcon: mean of the treatments' mAP and share called"),
        ("matching", "held-out (or leave-one-batch-out) matching score"),
        ("generalisation", "held-out batches' retrieval score"),
        ("batch", "mean of the batch-removal scores (shown, not ranked)"),
        ("bio", "mean of the biology-conservation scores (shown, not ranked)"),
        ("{score} sd", "standard deviation of a score over runs (seeds, held-out batches)"),
        ("held-out kNN acc", "held-out wells whose nearest training well has their treatment"),
        ("held-out mAP", "mean AP of held-out wells retrieving their treatment"),
        ("batch acc", "cross-validated accuracy of predicting the batch"),
        ("chance", "the largest batch's share of wells, batch acc's chance level"),
        ("transductive", "the correction was fitted with the held-out wells (harmony)"),
        ("flags", "over-correction flags (batch acc below chance, replicates pulled apart, ...)"),
        ("held-out vs {reference}", "paired held-out difference to the reference method"),
        ("vs {reference} low", "its 95 % bootstrap interval, low end"),
        ("vs {reference} high", "its 95 % bootstrap interval, high end"),
        ("vs {reference} real", "the interval excludes 0"),
    ],
    "report/wilds.tsv": [
        ("method", "a method trained under the WILDS protocol (docs/metrics.md)"),
        ("unit", "what a crops row is, so what `acc` counts: cell, or site (crops.unit: site)"),
        ("seeds", "models (seeds); each `{stat}` below is the mean or the sd over them"),
        ("OOD test acc {stat}", "held-out batches' per-row accuracy at the selected epoch"),
        ("OOD test well acc {stat}", "held-out batches' per-well accuracy (mean softmax)"),
        ("validation acc {stat}", "validation batches' per-row accuracy: what selected the epoch"),
        ("validation well acc {stat}", "validation batches' per-well accuracy"),
        ("ID test acc {stat}", "per-row accuracy on the training batches' id_sites"),
        ("ID test well acc {stat}", "per-well accuracy on the training batches' id_sites"),
        ("selected epoch {stat}", "the epoch model.pt holds (best validation accuracy)"),
    ],
}


def _pattern(column: str) -> re.Pattern:
    parts = re.split(r"(\{[a-z]+\})", column)
    wildcards = {
        "{k}": r"\d+",
        "{channel}": r"[^_]+",
        "{compartment}": r"(?:Nuclei|Cells|Cytoplasm)",
    }
    regex = "".join(
        wildcards.get(part, r".+") if part.startswith("{") else re.escape(part) for part in parts
    )
    return re.compile(regex)


def meaning(output: str, column: str) -> str | None:
    """What ``column`` of ``output`` (a key of OUTPUT_COLUMNS) means, or None if undocumented:
    the first pattern that matches it."""
    for pattern, text in OUTPUT_COLUMNS[output]:
        if _pattern(pattern).fullmatch(column):
            return text
    return None
