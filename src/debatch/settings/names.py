"""Names shared by every stage: column names, the allowed values of config keys and the
constants the stages agree on (torch-free; the blocks of settings live beside it)."""

from __future__ import annotations

import re
from dataclasses import dataclass

# --- column names shared between stages (pycytominer's Metadata_ convention) ------------------

METADATA = "Metadata_"
PLATE, BATCH, WELL, SITE = "Metadata_Plate", "Metadata_Batch", "Metadata_Well", "Metadata_Site"
OBJECT, TREATMENT, ROLE = "Metadata_ObjectNumber", "Metadata_Treatment", "Metadata_Role"
DOSE = "Metadata_dose"  # an optional platemap column: consensus profiles are per treatment and dose
# RxRx1's platemap columns (debatch.ingest.rxrx1): the cell type, a grouping key beside the batch,
# and the dataset its metadata puts a well in (train / test; RxRx1-WILDS: train / val / test)
CELL_TYPE, DATASET = "Metadata_cell_type", "Metadata_dataset"
# a well's cell count under pycytominer.aggregate's name; a treatment's well count
COUNT_CELLS, COUNT_WELLS = "Metadata_Object_Count", "Metadata_Count_Wells"
SITE_KEY = [WELL, SITE]  # a site within a plate; every per-site table is sorted by it
CELL_KEY = [*SITE_KEY, OBJECT]  # a cell within a plate: the cells table's rows, in its order
PATH = "Path_"  # manifest: Path_{channel} per logical channel
CENTER_X, CENTER_Y = "Nuclei_Location_Center_X", "Nuclei_Location_Center_Y"
QC_PASS, QC_FAILED, SITE_CELLS = "QC_Pass", "QC_Failed", "Count_Cells"
SITE_NUCLEUS_AREA = "Nuclei_MedianArea"  # per site, px: the segmented nuclei's median area
SITE_SPECKS = "Count_Specks"  # per site: specks left out as artefacts (propagate; not cells)
# per site, px: the median object area at half maximum of the nuclei channel (its suffix), the
# size the focus test adjusts for (debatch.segment.qc)
HALF_MAXIMUM_AREA = "ImageQuality_HalfMaximumArea"
# per site and channel (its suffix): CellProfiler's MeasureImageQuality measures of the raw
# pixels (debatch.segment.quality), which QC judges (debatch.segment.qc)
FOCUS, SHARPNESS = "ImageQuality_PowerLogLogSlope", "ImageQuality_EdgeSharpness"
SATURATION = "ImageQuality_PercentMaximal"
MEAN_INTENSITY, STD_INTENSITY = "ImageQuality_MeanIntensity", "ImageQuality_StdIntensity"
CROP_AT_EDGE = "Crops_TouchingEdge"
# a whole-site crop's cells (crops.unit: site): the site's segmented cell count, metadata that
# travels with the site's row into embeddings; a well of sites sums it (COUNT_CELLS)
SITE_CELLS_META = "Metadata_Cells"


def feature_columns(columns) -> list[str]:
    """pycytominer's convention: every column not starting with ``Metadata_`` is a feature."""
    return [c for c in columns if not c.startswith(METADATA)]


@dataclass(frozen=True)
class Channels:
    """The screen's logical channels in crop order, and the two that segmentation uses (config
    keys ``channels``, ``nuclei_channel``, ``cell_channel``)."""

    names: tuple[str, ...]
    nuclei: str
    cell: str

    def __post_init__(self):
        object.__setattr__(self, "names", tuple(str(name) for name in self.names))
        for key, name in (("nuclei_channel", self.nuclei), ("cell_channel", self.cell)):
            if name not in self.names:
                raise ValueError(f"{key} {name!r} is not one of the channels {list(self.names)}")

    def as_params(self) -> dict:
        """Plain data for a rule's params (Snakemake compares params to rerun)."""
        return {"names": list(self.names), "nuclei": self.nuclei, "cell": self.cell}


# --- allowed values ---------------------------------------------------------------------------

PLATE_SHEET_COLUMNS = ("plate", "batch", "images", "pattern", "platemap")
# optional plate-sheet columns: `split`, the plate's part in the WILDS protocol (train.splits:
# sheet), one of SPLITS
PLATE_SHEET_OPTIONAL = ("split",)
SPLITS = ("train", "val", "test")
# where train.holdout_batches and train.validation_batches come from: the config's lists, or the
# plate sheet's `split` column (test plates' batches held out, val plates' batches validate)
SPLIT_SOURCES = ("config", "sheet")
PLATEMAP_REQUIRED = ("well", "treatment", "role")
# the columns that group plates (sheet) and wells (platemap): two names in one of them that differ
# only by case or spaces (DMSO, dmso) would be two groups, so start-up refuses them; other
# columns keep case as written (a SMILES c1ccccc1 is not C1CCCCC1)
PLATE_SHEET_GROUPS = ("plate", "batch")
PLATEMAP_GROUPS = ("treatment", "role")
ROLES = ("negcon", "poscon", "treatment")
NEGCON = "negcon"
# config keys that hold names (channels, batches, methods): taken as written in the YAML file,
# which reads 2021_05_03, 001 or 1.0 as numbers (workflow/rules/common.smk)
NAME_KEYS = (
    "channels",
    "nuclei_channel",
    "cell_channel",
    "train.holdout_batches",
    "train.validation_batches",
    "report.references",
)
SEGMENT_METHODS = ("propagate", "cellpose")
# what one row of the crops stage is (crops.unit): a crop around a cell, or a whole site
CROP_UNITS = ("cell", "site")
# automatic thresholds of segment.propagate (CellProfiler's names: Otsu two-class, Otsu with
# "Log transform before thresholding", the same with three classes and the middle class in the
# foreground, Minimum Cross-Entropy)
THRESHOLD_METHODS = ("otsu", "log_otsu", "log_otsu_three_class", "minimum_cross_entropy")
TRAIN_METHODS = ("erm", "dsu", "mixstyle", "abra", "deepnoise")
HEADS = ("linear", "cosface", "arcface")
GROUPINGS = ("plate", "batch", "none")
DEVICES = ("auto", "cpu", "cuda")
AGGREGATES = ("median", "mean")
NORMALISATIONS = ("mad_robustize", "standardize")
CORRECTIONS = ("none", "sphering", "harmony")
# corrections fitted with every well, the held-out batches' treated wells included (Harmony):
# their held-out scores are not out of sample, so the verdict on matching across batches leaves
# them out (debatch.evaluate.compare)
TRANSDUCTIVE = ("harmony",)
# the report says "use X" only from at least this many seeds of every trained method
VERDICT_SEEDS = 3
# over-correction flag: a correction lowering the share of replicate pairs above the
# non-replicates' 95th percentile by more than this, against no correction
REPLICATE_DROP = 0.05
# ground truth of generated screens: the share of truly inactive compounds a truth score's hit
# calling may call active (debatch.evaluate.truth)
TRUTH_FPR = 0.2

# --- CellProfiler features (cp_measure): the `cellprofiler` source of profiles ---------------

CELLPROFILER = "cellprofiler"  # the source name of CellProfiler features beside CNN methods
OBJECTS = ("Nuclei", "Cells", "Cytoplasm")  # CellProfiler's object names, in column order
MEASUREMENTS = (  # CellProfiler's measurement modules as cp_measure splits them
    "areashape",  # MeasureObjectSizeShape incl. Zernike shape moments and Feret diameters
    "intensity",  # MeasureObjectIntensity
    "texture",  # MeasureTexture (Haralick)
    "granularity",  # MeasureGranularity
    "radial_distribution",  # MeasureObjectIntensityDistribution: FracAtD, MeanFrac, RadialCV
    "radial_zernikes",  # MeasureObjectIntensityDistribution: intensity Zernike moments
    "correlation",  # MeasureColocalization: Pearson, Manders, RWC, Overlap, K, Costes
)
# Features about where a cell lies in the field, not what it looks like: kept in the features
# table (CellProfiler writes them) but never part of a profile.
POSITIONAL_FEATURES = (
    "_Location_",
    "_AreaShape_Center_",
    "_AreaShape_BoundingBoxMinimum_",
    "_AreaShape_BoundingBoxMaximum_",
)

# CellProfiler's object bookkeeping (an object's label, its parent's, its children's count): which
# object, not what it looks like; an external CellProfiler table's columns left out of profiles
OBJECT_RELATIONS = ("_Number_Object_Number", "_Parent_", "_Children_")


def source_name(method: str, seed: int | None, fold: str | None = None) -> str:
    """A source of per-cell features as it names output folders: ``{method}_seed{k}`` for a
    trained model, ``{method}-{batch}_seed{k}`` for one trained with ``batch`` held out in turn
    (``train.rotate_holdout``), the bare name for a source without seeds (``cellprofiler``). One
    folder level for every source, so ``profiles/*/none/wells.parquet`` collects them all; a
    method name has no ``-``, so the first ``-`` ends it whatever the batch is called."""
    model = method if fold is None else f"{method}-{fold}"
    return model if seed is None else f"{model}_seed{seed}"


def parse_source(source: str) -> tuple[str, int | None]:
    """(method, seed or None) of a source name (the inverse of ``source_name``): a rotated
    model's method is its method's, so the ranking takes it as a run of that method."""
    found = SEEDED_SOURCE.fullmatch(source)
    if not found:
        return source, None
    fold = FOLD_MODEL.fullmatch(found[1])
    return (fold[1] if fold else found[1]), int(found[2])


def source_fold(source: str) -> str | None:
    """The batch a rotated model's source held out (``{method}-{batch}_seed{k}``), else None."""
    found = SEEDED_SOURCE.fullmatch(source)
    fold = FOLD_MODEL.fullmatch(found[1]) if found else None
    return fold[2] if fold else None


SEEDED_SOURCE = re.compile(r"(.+)_seed(\d+)")
FOLD_MODEL = re.compile(r"([A-Za-z][A-Za-z0-9_]*)-(.+)")  # {method}-{batch}: a rotated model
MODEL_CARD = "model.json"  # beside each model.pt: what it needs and was trained on, torch-free


# external sources (config `external:`): a table of cells or of wells; CellProfiler-named features
# (all of feature selection) or any other features, an embedding (its guards only)
LEVELS = ("cells", "wells")
FEATURE_KINDS = (CELLPROFILER, "embedding")
# a source's name is a folder of results/profiles/ and a wildcard value: one path component
SOURCE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

SELECTIONS = (
    "drop_na_columns",
    "drop_outliers",
    "frequency_threshold",
    "correlation_threshold",
    "blocklist",
)
# the selection steps every source's wells go through, embeddings included: a feature blown up
# by a near-zero negcon spread is an artefact whatever made it
GUARDS = ("drop_outliers",)
