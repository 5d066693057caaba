"""Every stage's settings in one torch-free place: defaults, allowed values and column names.

A config block (``illum:``, ``segment.propagate:``, ``train:``, ...) is a :class:`Block`: its
defaults, the keys that may be null, and the checks of its values. ``Block.merge`` lays a
user's block over the defaults and raises a ValueError naming ``block.key`` for an unknown key,
a value of the wrong type or an impossible value, so a config typo never silently falls back to
a default. ``workflow/rules/common.smk`` imports this module (and nothing that imports torch)
to check the whole config at start-up; the library checks the same blocks again when called
directly. ``tests/test_settings.py`` keeps the config schema's enums equal to the tuples here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

# --- column names shared between stages (pycytominer's Metadata_ convention) ------------------

METADATA = "Metadata_"
PLATE, BATCH, WELL, SITE = "Metadata_Plate", "Metadata_Batch", "Metadata_Well", "Metadata_Site"
OBJECT, TREATMENT, ROLE = "Metadata_ObjectNumber", "Metadata_Treatment", "Metadata_Role"
COUNT_CELLS, COUNT_WELLS = "Metadata_Count_Cells", "Metadata_Count_Wells"
SITE_KEY = [WELL, SITE]  # a site within a plate; every per-site table is sorted by it
PATH = "Path_"  # manifest: Path_{channel} per logical channel
CENTER_X, CENTER_Y = "Nuclei_Location_Center_X", "Nuclei_Location_Center_Y"
QC_PASS, QC_FAILED, SITE_CELLS = "QC_Pass", "QC_Failed", "Count_Cells"
SITE_NUCLEUS_AREA = "Nuclei_MedianArea"  # per site, px: the segmented nuclei's median area
SITE_SPECKS = "Count_Specks"  # per site: specks left out as artefacts (propagate; not cells)
# per site, px: the median object area at half maximum of the nuclei channel (its suffix), the
# size the focus test adjusts for (debatch.segment.qc)
HALF_MAXIMUM_AREA = "ImageQuality_HalfMaximumArea"
CROP_AT_EDGE = "Crops_TouchingEdge"


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
    "report.references",
)
SEGMENT_METHODS = ("propagate", "cellpose")
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

# --- checking a block ----------------------------------------------------------------------

Check = Callable[[dict, str], None]


def check_choice(name: str, value, allowed: Iterable) -> None:
    """ValueError naming ``name`` unless ``value`` is one of ``allowed``."""
    allowed = list(allowed)
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, not {value!r}")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _type_ok(default, value) -> bool:
    if default is None:  # optional settings: None means "off", anything else is checked below
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, float):
        return _is_number(value)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, type(default))


class Block:
    """One config block: defaults (nested blocks for dict-valued keys), nullable keys, checks.

    ``checks`` run on the merged block in order; each raises a ValueError naming the key, and
    may normalise a value in place (e.g. sort a list) so every caller sees the same settings.
    """

    def __init__(
        self,
        name: str,
        defaults: dict,
        *,
        nullable: Iterable[str] = (),
        checks: Iterable[Check] = (),
    ):
        self.name, self.nullable, self.checks = name, set(nullable), list(checks)
        self.children = {key: value for key, value in defaults.items() if isinstance(value, Block)}
        self.defaults = {
            key: value.defaults if isinstance(value, Block) else value
            for key, value in defaults.items()
        }

    def merge(self, params: dict | None) -> dict:
        """``params`` over the defaults, every key and value checked (see the module docstring)."""
        params = dict(params or {})
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise ValueError(
                f"unknown {self.name} parameter(s) {unknown}; known: {sorted(self.defaults)}"
            )
        for key, value in params.items():
            if key in self.children or (value is None and key in self.nullable):
                continue
            if not _type_ok(self.defaults[key], value):
                raise ValueError(
                    f"{self.name}.{key} must be of type "
                    f"{type(self.defaults[key]).__name__}, not {value!r}"
                )
        merged = {**self.defaults, **params}
        for key, child in self.children.items():
            if merged[key] is not None and not isinstance(merged[key], dict):
                raise ValueError(f"{child.name} must be a block of settings, not {merged[key]!r}")
            merged[key] = child.merge(merged[key])
        for check in self.checks:
            check(merged, self.name)
        return merged


def _rule(test: Callable, rule: str, *keys: str, nullable: bool = True) -> Check:
    """A check that every key's value passes ``test``; ``rule`` completes "must be ..."."""

    def check(p: dict, name: str) -> None:
        for key in keys:
            value = p[key]
            if value is None and nullable:
                continue
            if not (_is_number(value) and test(value)):
                raise ValueError(f"{name}.{key} must be {rule}, not {value!r}")

    return check


def at_least(low: float, *keys: str) -> Check:
    return _rule(lambda v: v >= low, f">= {low}", *keys)


def above(low: float, *keys: str) -> Check:
    return _rule(lambda v: v > low, f"> {low}", *keys)


def between(low: float, high: float, *keys: str, open_high: bool = False) -> Check:
    test = (lambda v: low <= v < high) if open_high else (lambda v: low <= v <= high)
    return _rule(test, f"in [{low}, {high}{')' if open_high else ']'}", *keys)


def number_or_null(*keys: str, positive: bool = False) -> Check:
    return _rule(
        (lambda v: v > 0) if positive else (lambda v: True),
        f"a number{' > 0' if positive else ''} or null",
        *keys,
    )


def one_of(allowed: Iterable, *keys: str) -> Check:
    allowed = tuple(allowed)

    def check(p: dict, name: str) -> None:
        for key in keys:
            check_choice(f"{name}.{key}", p[key], allowed)

    return check


def each_one_of(allowed: Iterable, key: str, noun: str) -> Check:
    allowed = tuple(allowed)

    def check(p: dict, name: str) -> None:
        bad = sorted(set(p[key]) - set(allowed))
        if bad:
            raise ValueError(f"unknown {noun}(s) {bad} in {name}.{key}; known: {list(allowed)}")

    return check


def ordered(low_key: str, high_key: str) -> Check:
    def check(p: dict, name: str) -> None:
        if not p[low_key] < p[high_key]:
            raise ValueError(
                f"{name}.{low_key} ({p[low_key]}) must be below {high_key} ({p[high_key]})"
            )

    return check


# --- the blocks, in stage order --------------------------------------------------------------

ILLUM = Block(
    "illum",
    {
        "downsample": 4,  # block-average factor before smoothing (the function is smooth)
        "smoothing": 0.1,  # Gaussian sigma as a fraction of the image's shorter side
        "floor": 0.1,  # function never below this fraction of its median: dead corners
        # and empty regions are not amplified more than 1/floor times
        "max_sites": None,  # average at most this many sites (evenly spaced); None = all
    },
    checks=[
        at_least(1, "downsample", "max_sites"),
        at_least(0, "smoothing"),
        between(0, 1, "floor", open_high=True),
    ],
)


def _bounds(key: str) -> Check:
    """A check that ``key`` is [low, high] with 0 <= low <= high."""

    def check(p: dict, name: str) -> None:
        value = p[key]
        numbers = isinstance(value, list | tuple) and all(_is_number(v) for v in value)
        if not (numbers and len(value) == 2 and 0 <= value[0] <= value[1]):
            raise ValueError(f"{name}.{key} must be [low, high], 0 <= low <= high, not {value!r}")

    return check


PROPAGATE = Block(
    "segment.propagate",
    {
        # Typical nucleus diameter (px). Every size below is a multiple of it: for other nuclei
        # (e.g. ~50 px at 20x, NF1) change only this.
        "nucleus_diameter": 12.0,
        # Gaussian sigma before thresholding nuclei, x diameter (suppresses texture and noise).
        "smoothing": 0.1,
        # Nuclei threshold: minimum_cross_entropy (CellProfiler's Cell Painting choice: outlines
        # where CellProfiler draws them on real fields), otsu (outlines at half contrast: real
        # nuclei come out too small), or log_otsu (Otsu on log intensity, to find dim
        # nuclei next to bright ones, then each object trimmed at half its own contrast).
        "threshold_method": "minimum_cross_entropy",
        # Multiplies the nuclei threshold (>1 stricter, smaller and fewer nuclei).
        "threshold_correction": 1.0,
        # Smallest nucleus, as a fraction of the area of a disc of nucleus_diameter (debris filter).
        "min_area": 0.15,
        # Largest nucleus after declumping, x that disc area (unsplit clumps and artefacts go).
        "max_area": 6.0,
        # Smallest distance between the centres of two nuclei split apart, x diameter
        # (lower splits more eagerly; higher keeps elongated nuclei whole).
        "declump_distance": 0.4,
        # Gaussian sigma (px) of the cell channel before thresholding it (propagation itself
        # follows the unsmoothed image, as CellProfiler's does).
        "cell_smoothing": 0.0,
        # Cell-channel threshold, one of THRESHOLD_METHODS, x its correction factor, clipped to
        # [low, high] on CellProfiler's 0-1 intensity scale (1 = the pixel type's maximum).
        "cell_threshold_method": "log_otsu",
        "cell_threshold_correction": 1.0,
        "cell_threshold_bounds": [0.0, 1.0],
        # Cap the cell threshold at this fraction of the cell channel's median over the nuclei
        # (null: off), for confluent monolayers, where Otsu finds no gaps and cuts into the
        # cytoplasm instead.
        "cell_level_fraction": None,
        # Cells reach at most this far beyond the nuclei, x diameter, so cells in dim or
        # unthresholdable regions stay local (null: no limit, as in CellProfiler).
        "max_cell_distance": 3.0,
        # CellProfiler's regularisation factor of IdentifySecondaryObjects' propagation: the
        # weight of spatial distance against intensity differences on the 0-1 scale (0: cells
        # meet at intensity ridges only; large: at half the distance between nuclei).
        "regularisation": 0.05,
        # Fill holes inside each cell (IdentifySecondaryObjects' "Fill holes").
        "fill_holes": True,
        # Objects whose mean intensity exceeds the background by fewer than this many background
        # noise SDs are dropped, so a field without nuclei yields none instead of noise blobs;
        # so are objects whose unsmoothed median does not (specks: a few bright pixels, counted
        # for QC; small solid objects are left to the size filter and not counted).
        "min_contrast": 3.0,
    },
    checks=[
        above(
            0, "nucleus_diameter", "threshold_correction", "max_area", "cell_threshold_correction"
        ),
        at_least(
            0,
            "smoothing",
            "min_area",
            "declump_distance",
            "cell_smoothing",
            "max_cell_distance",
            "regularisation",
            "min_contrast",
            "cell_level_fraction",
        ),
        ordered("min_area", "max_area"),
        one_of(THRESHOLD_METHODS, "threshold_method", "cell_threshold_method"),
        _bounds("cell_threshold_bounds"),
    ],
    nullable=("max_cell_distance", "cell_level_fraction"),
)

CELLPOSE = Block(
    "segment.cellpose",
    {
        # Built-in model name (cellpose 3: nuclei, cyto3, ...; cellpose 4: cpsam) or the path of a
        # trained model file, for nuclei and for whole cells. cell_model null: cells grow from the
        # nuclei by the classical propagation (segment.propagate).
        "nuclei_model": "nuclei",
        "cell_model": "cyto3",
        "nucleus_diameter": None,  # px; null = the model's own (trained: training size; nuclei: 17)
        "cell_diameter": None,  # px; null = the model's own (cyto3: 30)
        "flow_threshold": 0.4,  # largest flow error of a kept mask (cellpose default; 0: all)
        "cellprob_threshold": 0.0,  # cell-probability logit threshold (lower: more, larger masks)
        "min_size": 15,  # masks smaller than this many px are dropped
        "batch_size": 4,  # tiles per forward pass (fastest per tile on one CPU thread)
        "sites_per_call": 8,  # sites evaluated together (their tiles share forward passes)
        "device": "auto",  # auto (cuda when available) | cpu | cuda
        "download_timeout": 10.0,  # s to reach cellpose's server for missing weights; 0 = never
    },
    nullable=("cell_model",),
    checks=[
        number_or_null("nucleus_diameter", "cell_diameter", positive=True),
        one_of(DEVICES, "device"),
        at_least(1, "batch_size", "sites_per_call"),
    ],
)

SEGMENT = Block(
    "segment",
    {
        "method": "propagate",  # propagate | cellpose
        "shards": 1,  # jobs per plate for segment and crops (contiguous blocks of sites)
        "save_masks": True,  # keep label images (masks/{plate}.npz) for QC
        "propagate": PROPAGATE,
        "cellpose": CELLPOSE,
    },
    checks=[one_of(SEGMENT_METHODS, "method"), at_least(1, "shards")],
)

# a site fails for specks (qc.max_speck_share) only with at least this many: fewer say little
# about it (a dust grain on an otherwise empty field)
MIN_SPECKS = 3

QC = Block(
    "qc",
    {
        # focus of the nuclei channel: edge_sharpness (the blur itself) or power_log_log_slope
        # (CellProfiler's MeasureImageQuality slope, which also follows nucleus size)
        "focus_measure": "edge_sharpness",
        # fail this many robust SDs below the focus the plate predicts for the site (null: off)
        "focus_mad": 5.0,
        # Judge focus after removing what nucleus size and cell density explain of it (a robust
        # fit per plate), so a treatment that enlarges nuclei or crowds cells is not "blurred".
        "focus_adjust": True,
        # warn when one treatment holds this share of a QC run's failed sites (and >= 3 of
        # them) while failing at least twice as often as the other sites (null: off)
        "concentration_share": 0.5,
        "min_focus": None,  # fail below this absolute value of the focus measure (null: off)
        "max_saturated_percent": 1.0,  # fail when a channel has more % of pixels at its max
        "min_cells": 1,  # fail sites with fewer cells (0: off)
        "max_cells": None,  # fail sites with more cells, e.g. debris as cells (null: off)
        "max_scale_ratio": 16.0,  # fail a channel this many x off the plate median (null: off)
        # fail a site whose objects are more than this share specks (a few bright pixels without
        # a nucleus's body, left out by the propagate segmentation; cellpose counts none; null: off)
        "max_speck_share": 0.5,
        "overlay_sites": 4,  # sites drawn in the segmentation overlay figure of each plate
        # a plate whose negcon wells keep no cell after QC: fail at QC, or drop it from profiles
        "plate_without_negcon": "fail",
    },
    nullable=(
        "focus_mad",
        "max_saturated_percent",
        "max_scale_ratio",
        "concentration_share",
        "max_speck_share",
    ),
    checks=[
        one_of(("fail", "drop"), "plate_without_negcon"),
        one_of(("edge_sharpness", "power_log_log_slope"), "focus_measure"),
        between(0, 1, "concentration_share", "max_speck_share"),
        number_or_null("min_focus", "max_cells"),
        at_least(0, "overlay_sites", "min_cells"),
        above(1, "max_scale_ratio"),
    ],
)

CROPS = Block(
    "crops",
    {
        "size": 32,  # crop side in pixels, centred on the nucleus centroid
        "scale": 65535.0,  # stored value = corrected intensity / scale
        "drop_border_cells": False,  # leave out cells whose mask touches the image border
    },
    checks=[at_least(1, "size"), above(0, "scale")],
)

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


def _texture_scales(p: dict, name: str) -> None:
    scales = p["texture_scales"]
    if not scales or not all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in scales
    ):
        raise ValueError(
            f"{name}.texture_scales must be a non-empty list of integers >= 1, not {scales!r}"
        )


FEATURES = Block(
    "features",
    {
        "enabled": True,  # measure CellProfiler features and profile them as `cellprofiler`
        "measurements": list(MEASUREMENTS),  # modules to run (all: what a real screen gets)
        "shrink_nuclei": True,  # Cytoplasm = cells minus nuclei shrunk by their outline pixel
        "zernike_degree": 9,  # highest Zernike degree (AreaShape and RadialDistribution)
        "texture_scales": [3],  # Haralick co-occurrence distances (px), one feature set each
        "texture_gray_levels": 256,  # gray levels of the co-occurrence matrices
        "granularity_spectrum": 16,  # granular spectrum length (Granularity_1 .. _N)
        "granularity_subsample": 0.25,  # image subsampling before granularity
        "granularity_background_subsample": 0.25,  # further subsampling for the background
        "granularity_element_size": 10,  # background opening radius (px, after subsampling)
        "radial_bins": 4,  # RadialDistribution rings from centre to edge (scaled per object)
        "correlation_threshold": 15.0,  # Manders / RWC / Overlap: % of each object's maximum
    },
    checks=[
        each_one_of(MEASUREMENTS, "measurements", "measurement"),
        at_least(1, "zernike_degree", "granularity_spectrum", "granularity_element_size"),
        at_least(1, "radial_bins"),
        between(2, 256, "texture_gray_levels"),  # co-occurrence of 8-bit quantised pixels
        between(0, 1, "granularity_subsample", "granularity_background_subsample"),
        between(0, 100, "correlation_threshold"),
        _texture_scales,
    ],
)

# --- training: a method is a recipe of orthogonal parts ----------------------------------
#
# input scaling x feature-statistic augmentation x head x mean teacher (docs/methods.md). The
# five named methods are presets: their blocks keep the keys they always had, and
# ``preset_recipe`` turns a block into the recipe it stands for. ``train.recipes`` holds
# user-named recipes; ``train.methods`` lists presets and recipes alike.

SCALINGS = ("global", "plate")
AUGMENTS = ("none", "dsu", "mixstyle", "abra")
SPREADS = ("within", "between")
TEACHER_CELLS = ("training", "all")

_MARGIN_HEAD = {
    "head_s": 30.0,  # scale s of a margin head
    "head_m": 0.1,  # margin m of a margin head
}
_HEAD = one_of(HEADS, "head")


def _levels(*keys: str) -> Check:
    def check(p: dict, name: str) -> None:
        for key in keys:
            levels = p[key]
            if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in levels):
                raise ValueError(
                    f"{name}.{key} must be a list of feature levels >= 0, not {levels!r}"
                )

    return check


def _dsu(name: str) -> Block:
    return Block(
        name,
        {
            "levels": [
                0,
                1,
                2,
                3,
            ],  # feature levels (0 = stem, i = after stage i) with a DSU module
            "p": 0.5,  # probability that a module acts in a forward pass
        },
        checks=[between(0, 1, "p"), _levels("levels")],
    )


def _mixstyle(name: str) -> Block:
    return Block(
        name,
        {
            "levels": [1, 2],  # feature levels with a MixStyle module
            "p": 0.5,  # probability that a module acts in a forward pass
            "alpha": 0.1,  # mixing weight lambda ~ Beta(alpha, alpha)
        },
        checks=[between(0, 1, "p"), above(0, "alpha"), _levels("levels")],
    )


_ABRA = {
    "level": 1,  # feature level whose channel statistics are perturbed; -1: the input crop
    "group_by": "plate",  # plate | batch | none: groups sharing one statistics shift
    "spread": "within",  # within: shift scale = spread of a group's images; between: of groups
    "steps": 1,  # K gradient-ascent steps of the inner maximisation
    "bound": 2.0,  # |shift| <= bound x the spread of the statistic
    "step_size": 1.0,  # ascent step, x the spread (signed gradient)
    "adv_fraction": 0.5,  # share of each mini-batch trained on perturbed features
    "adv_weight": 1.0,  # weight of the perturbed images' loss
    "align_weight": 1.0,  # weight of the clean/perturbed embedding alignment term
}
_ABRA_CHECKS = [
    one_of(GROUPINGS, "group_by"),
    one_of(SPREADS, "spread"),
    between(0, 1, "adv_fraction"),
    at_least(-1, "level"),
    at_least(0, "steps", "bound", "step_size"),
]


def _teacher(name: str) -> Block:
    return Block(
        name,
        {
            "decay": 0.99,  # EMA decay of the teacher's weights per optimiser step
            "weight": 1.0,  # weight of the student/teacher consistency loss (after its ramp)
            "ramp_epochs": 2,  # the weight rises linearly from 0 over this many epochs
            "cells": "training",  # unlabeled cells of the consistency loss: training | all
        },
        checks=[
            between(0, 1, "decay"),
            at_least(0, "weight", "ramp_epochs"),
            one_of(TEACHER_CELLS, "cells"),
        ],
    )


METHOD_BLOCKS = {
    "erm": Block(
        "train.erm",
        {
            "head": "linear",  # linear | cosface | arcface
            **_MARGIN_HEAD,
        },
        checks=[_HEAD],
    ),
    "dsu": _dsu("train.dsu"),
    "mixstyle": _mixstyle("train.mixstyle"),
    "abra": Block(
        "train.abra",
        {
            **_ABRA,
            "head": "arcface",  # arcface | cosface | linear
            **_MARGIN_HEAD,
        },
        checks=[*_ABRA_CHECKS, _HEAD],
    ),
    "deepnoise": Block(
        "train.deepnoise",
        {
            "jitter": 0.1,  # per-plate channel mean/std each x U(1 - jitter, 1 + jitter)
            **_MARGIN_HEAD,  # of its ArcFace head
        },
        checks=[between(0, 1, "jitter", open_high=True)],
    ),
}
assert tuple(METHOD_BLOCKS) == TRAIN_METHODS


def recipe_block(name: str) -> Block:
    """The block of a user-named recipe ``train.recipes.{name}``."""
    return Block(
        f"train.recipes.{name}",
        {
            "scaling": "global",  # global: training crops' channel mean/std | plate: each plate's
            "jitter": 0.0,  # plate scaling: each statistic x U(1 - jitter, 1 + jitter) in training
            "augment": "none",  # none | dsu | mixstyle | abra (settings in the blocks below)
            "dsu": _dsu(f"train.recipes.{name}.dsu"),
            "mixstyle": _mixstyle(f"train.recipes.{name}.mixstyle"),
            "abra": Block(f"train.recipes.{name}.abra", dict(_ABRA), checks=_ABRA_CHECKS),
            "head": "linear",  # linear | cosface | arcface
            **_MARGIN_HEAD,
            "teacher": False,  # mean teacher: EMA teacher and a consistency loss on unlabeled cells
            "mean_teacher": _teacher(f"train.recipes.{name}.mean_teacher"),
        },
        checks=[
            one_of(SCALINGS, "scaling"),
            one_of(AUGMENTS, "augment"),
            _HEAD,
            between(0, 1, "jitter", open_high=True),
        ],
    )


def preset_recipe(method: str, block: dict) -> dict:
    """The recipe a preset's block stands for (exactly what the preset always did)."""
    recipe = recipe_block(method).merge(None)
    if method == "erm":
        recipe.update(head=block["head"], head_s=block["head_s"], head_m=block["head_m"])
    elif method in ("dsu", "mixstyle"):
        recipe.update(augment=method, **{method: dict(block)})
    elif method == "abra":
        head = {key: block[key] for key in ("head", "head_s", "head_m")}
        recipe.update(augment="abra", abra={k: block[k] for k in _ABRA}, **head)
    elif method == "deepnoise":
        recipe.update(
            scaling="plate",
            jitter=block["jitter"],
            head="arcface",
            head_s=block["head_s"],
            head_m=block["head_m"],
        )
    else:
        raise ValueError(f"{method!r} is not a preset method; presets: {list(TRAIN_METHODS)}")
    return recipe


def source_name(method: str, seed: int | None) -> str:
    """A source of per-cell features as it names output folders: ``{method}/seed{k}`` for a
    trained model, the bare name for a source without seeds (``cellprofiler``)."""
    return method if seed is None else f"{method}/seed{seed}"


def parse_source(source: str) -> tuple[str, int | None]:
    """(method, seed or None) of a source name (the inverse of ``source_name``)."""
    method, _, seed = source.partition("/seed")
    return method, (int(seed) if seed else None)


def _holdout_batches_sorted(p: dict, name: str) -> None:
    if isinstance(p["holdout_batches"], str):
        raise ValueError(
            f"{name}.holdout_batches must be a list of Metadata_Batch values, not a string"
        )
    p["holdout_batches"] = sorted(str(batch) for batch in p["holdout_batches"])


def _recipe_resolved(p: dict, name: str) -> None:
    """``p["recipe"]``: the recipe the run trains (a preset's, or the given user recipe)."""
    if p["method"] in TRAIN_METHODS:
        p["recipe"] = preset_recipe(p["method"], p[p["method"]])
    elif p["recipe"] is None:
        raise ValueError(
            f"{name}.method {p['method']!r} is neither a preset "
            f"{list(TRAIN_METHODS)} nor given a recipe (train.recipes)"
        )
    else:
        p["recipe"] = recipe_block(p["method"]).merge(p["recipe"])


TRAIN = Block(
    "train",
    {
        "method": "erm",  # the method a run trains (the workflow: each of train.methods)
        "recipe": None,  # a user recipe's block (train.recipes.{method}); presets: derived
        "epochs": 30,  # epochs to reach; a finished run called with more epochs resumes
        "batch_size": 256,  # crops per optimiser step (last partial batch of an epoch dropped)
        "lr": 1e-3,  # AdamW peak learning rate
        "lr_schedule_epochs": 30,  # cosine decay of lr to 1% over this many epochs, then constant
        "weight_decay": 0.01,  # AdamW decoupled weight decay
        "seed": 0,  # initialisation, data order, augmentation (the workflow: each of train.seeds)
        "width": 32,  # channels of the stem and first stage (doubled per stage)
        "depth": 2,  # residual blocks per stage
        "stages": 3,  # stages, each halving the resolution (32 px -> 4 px)
        "embedding_dim": 128,  # size of the embedding written by the embed stage
        "holdout_batches": [],  # Metadata_Batch values never trained on; scored each epoch
        "max_holdout_cells": 20000,  # fixed random subset of held-out cells scored; None = all
        "augment": True,  # random flips and 90-degree rotations of every crop
        "max_cells_per_epoch": None,  # cap on crops drawn per epoch (no replacement); None = all
        "normalise": True,  # standardise channels (training-crop stats; plate scaling: per plate)
        "num_threads": 1,  # torch CPU threads
        "device": "auto",  # "auto" (cuda if available), "cpu" or "cuda"
        "amp": True,  # mixed precision (bf16, or fp16 + loss scaling); only on cuda
        **METHOD_BLOCKS,  # one block per preset; a run uses only its method's block
    },
    nullable=("max_holdout_cells",),
    checks=[
        one_of(DEVICES, "device"),
        at_least(
            1,
            "epochs",
            "lr_schedule_epochs",
            "batch_size",
            "num_threads",
            "width",
            "depth",
            "stages",
            "embedding_dim",
            "max_holdout_cells",
        ),
        at_least(2, "max_cells_per_epoch"),
        _holdout_batches_sorted,
        _recipe_resolved,
    ],
)

EMBED = Block(
    "embed",
    {
        "batch_size": 512,  # crops per forward pass
        "device": "auto",  # auto (cuda if available) | cpu | cuda
    },
    checks=[at_least(1, "batch_size"), one_of(DEVICES, "device")],
)

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

FEATURE_SELECT = Block(
    "profiles.feature_select",
    {
        # pycytominer feature_select operations, in order, on CellProfiler sources' well profiles
        # (drop_outliers also on embeddings' wells)
        "operations": list(SELECTIONS),
        "na_cutoff": 0.05,  # drop a feature missing in more than this share of wells
        "outlier_cutoff": 500.0,  # drop a feature whose |normalised value| exceeds this anywhere
        "freq_cut": 0.05,  # near-zero variance: 2nd most common value / most common below this
        "unique_cut": 0.01,  # ... or distinct values / wells below this
        "corr_threshold": 0.9,  # of a pair correlated above this, drop the more correlated one
    },
    checks=[
        each_one_of(SELECTIONS, "operations", "feature selection operation"),
        between(0, 1, "na_cutoff", "freq_cut", "unique_cut", "corr_threshold"),
        above(0, "outlier_cutoff"),
    ],
)

PROFILES = Block(
    "profiles",
    {
        "aggregate": "median",  # cells -> well: median (robust to segmentation debris) or mean
        "aggregate_columns": 32,  # feature columns per pass and thread (memory: cells x this x 5 B)
        "normalise": "mad_robustize",  # per plate vs negcon wells: mad_robustize | standardize
        # mad_robustize divides by (1.4826 MAD + this), pycytominer's mad_robustize_epsilon: a
        # feature whose negcon wells do not vary blows up and drop_outliers removes it
        "mad_epsilon": 1e-18,
        "corrections": ["none"],  # post-hoc corrections, one output folder each
        "sphering_epsilon": 1e-2,  # ridge added to the negcon covariance's eigenvalues (relative)
        # plates dealt into this many groups, each sphered by a fit on the others' negcon wells
        # (1: one fit on every negcon well, as pycytominer)
        "sphering_folds": 5,
        "harmony_components": 50,  # Harmony runs on this many principal components of the profiles
        "harmony_theta": 2.0,  # Harmony diversity penalty: higher mixes batches harder
        "harmony_max_iter": 20,  # Harmony rounds (Arevalo et al. 2024 use 20)
        "harmony_clusters": None,  # soft k-means clusters; None = wells / 30 (1 to 100)
        "harmony_seed": 0,  # Harmony's k-means initialisation
        "consensus": "median",  # wells -> treatment: median or mean
        "feature_select": FEATURE_SELECT,  # CellProfiler features: pycytominer's selection
    },
    checks=[
        each_one_of(CORRECTIONS, "corrections", "correction"),
        one_of(AGGREGATES, "aggregate", "consensus"),
        one_of(NORMALISATIONS, "normalise"),
        _rule(
            lambda v: isinstance(v, int) and v >= 2, "null or an integer >= 2", "harmony_clusters"
        ),
        at_least(
            1, "aggregate_columns", "harmony_components", "harmony_max_iter", "sphering_folds"
        ),
        at_least(0, "sphering_epsilon", "mad_epsilon"),
    ],
)

DIAGNOSTICS = Block(
    "diagnostics",
    {
        "seed": 0,  # batch-classifier folds and the mAP permutation null
        "max_folds": 5,  # batch-classifier cross-validation folds (fewer if a batch is small)
        "lisi_perplexity": 30.0,  # LISI neighbourhood (lowered automatically on small screens)
        "neighbours": 15,  # kNN graph of graph connectivity
        "knn_neighbours": 5,  # kNN treatment classifier of leave-one-batch-out
        "holdout_neighbours": 1,  # kNN of held-out wells among the training batches' wells
        "pcr_components": 50,  # principal components of the batch PC regression
        "map_null_size": 10000,  # permutations of the mAP p-value null
        "map_threshold": 0.05,  # corrected p below which a treatment counts as retrieved / active
    },
    checks=[
        at_least(
            1,
            "max_folds",
            "neighbours",
            "knn_neighbours",
            "holdout_neighbours",
            "pcr_components",
            "map_null_size",
        ),
        _rule(lambda v: 0 < v < 1, "in (0, 1)", "map_threshold"),
        above(0, "lisi_perplexity"),
    ],
)

REPORT = Block(
    "report",
    {
        "title": "debatch report",  # the page title
        # methods every row's held-out difference is measured against (those present)
        "references": ["erm", CELLPROFILER],
        "bootstrap": 2000,  # bootstrap draws of held-out wells for the intervals of differences
        "seed": 0,  # the bootstrap's random draws, and the gallery's random cells
        "gallery_cells": 5,  # per treatment, this many random and this many typical cells
    },
    checks=[at_least(100, "bootstrap"), at_least(1, "gallery_cells")],
)

OUTPUTS = Block(
    "outputs",
    {
        # per-cell AnnData, cells/{source}/{plate}.h5ad: embeddings or CellProfiler features of
        # every profiled cell (as large as the per-cell tables: off unless asked for)
        "anndata_cells": False,
    },
)

THREADS = Block(
    "threads",
    {
        "images": 2,  # illum, segment, crops, well aggregation
        "train": 2,  # train and embed
    },
    checks=[at_least(1, "images", "train")],
)


def _demo_fits_the_plate(p: dict, name: str) -> None:
    if not p["cell_radius"] > p["nucleus_radius"]:
        raise ValueError(
            f"{name}.cell_radius ({p['cell_radius']}) must exceed "
            f"nucleus_radius ({p['nucleus_radius']})"
        )
    if not p["n_treatments"] * p["replicates"] < p["rows"] * p["cols"]:
        raise ValueError(
            f"{name}: n_treatments x replicates ({p['n_treatments']} x "
            f"{p['replicates']}) must leave at least one DMSO well of "
            f"rows x cols ({p['rows']} x {p['cols']})"
        )
    if not p["n_inactive"] <= p["n_treatments"]:
        raise ValueError(
            f"{name}.n_inactive ({p['n_inactive']}) must be at most "
            f"n_treatments ({p['n_treatments']})"
        )


DEMO_BATCH = Block(
    "demo.params.batch",
    {  # technical effect strengths per batch; 0 = off (debatch.demo.batches)
        "gain": 0.25,  # SD of the log per-channel gain
        "offset": 0.02,  # scale of the per-channel additive camera offset (full scale ~1)
        "vignetting": 0.3,  # mean amplitude of the radial illumination falloff
        "blur": 0.8,  # mean extra Gaussian blur sigma in pixels
        "background": 0.03,  # mean extra per-channel background (illuminated like the signal)
        "noise": 0.02,  # mean extra noise level
        "density": 0.2,  # SD of the log cell-density multiplier (denser = smaller cells)
        "gamma": 0.15,  # SD of the log per-channel detector gamma (nonlinear response)
        "crosstalk": 0.1,  # mean bleed-through fraction from the bluer neighbouring stain
        "illumination_shape": 0.3,  # illumination gradient and ellipticity per batch
        "psf": 0.3,  # PSF anisotropy (SD of log sigma_y/sigma_x) and chromatic blur per batch
        "size": 0.15,  # SD of the log cell-size multiplier per batch (beside density)
    },
    checks=[
        at_least(
            0,
            "gain",
            "offset",
            "vignetting",
            "blur",
            "background",
            "noise",
            "density",
            "gamma",
            "crosstalk",
            "illumination_shape",
            "psf",
            "size",
        )
    ],
)

DEMO = Block(
    "demo.params",
    {
        "seed": 0,  # master seed: layout, treatment effects, batches and every site
        "rows": 4,  # plate rows used (letters A..), at most 16
        "cols": 6,  # plate columns used (1..), at most 24
        "sites": 2,  # fields of view per well
        "image_size": 256,  # square image side in pixels
        "cells_per_site": 40,  # mean cell count per site before the batch density multiplier
        "nucleus_radius": 6.0,  # mean nucleus radius in pixels
        "cell_radius": 13.0,  # mean cell radius in pixels (before neighbours cut it)
        "n_treatments": 8,  # compounds cpd01.. (each in `replicates` wells); other wells DMSO
        "replicates": 2,  # wells per compound on every plate
        "n_inactive": 3,  # compounds with no effect at all
        "effect_size": 0.35,  # relative change of an affected knob (x 1.35 or x 0.65)
        "cell_heterogeneity": 0.3,  # per-cell SD of the effect, relative to its log size
        # 0: cells keep their own outline, gaps between them. 1: a confluent monolayer: cells
        # fill the space between nuclei, neighbours separated only by their membranes, and the
        # cell (AGP) channel has a perinuclear Golgi ring.
        "confluence": 0.0,
        # fraction of sites imaged out of focus (extra blur of `defocus` px sigma on every
        # channel), listed in truth/sites.tsv: what focus QC should catch
        "blurred_sites": 0.0,
        "defocus": 2.0,
        "batch": DEMO_BATCH,
    },
    checks=[
        between(1, 16, "rows"),
        between(1, 24, "cols"),
        at_least(1, "sites", "replicates"),
        at_least(32, "image_size"),
        at_least(0, "cells_per_site", "n_treatments", "n_inactive", "cell_heterogeneity"),
        above(0, "nucleus_radius"),
        between(0, 1, "effect_size", open_high=True),
        between(0, 1, "confluence", "blurred_sites"),
        at_least(0, "defocus"),
        _demo_fits_the_plate,
    ],
)

STAGES = {
    block.name: block
    for block in (
        ILLUM,
        SEGMENT,
        QC,
        CROPS,
        FEATURES,
        TRAIN,
        EMBED,
        PROFILES,
        DIAGNOSTICS,
        REPORT,
        OUTPUTS,
        THREADS,
        DEMO,
    )
}
