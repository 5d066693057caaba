"""The image stages' blocks: illumination, segmentation (propagate, cellpose), QC, crops and
CellProfiler features. Each key's meaning is its comment in config/config.yaml."""

from __future__ import annotations

from .block import (
    Block,
    Check,
    above,
    at_least,
    between,
    each_one_of,
    is_number,
    number_or_null,
    one_of,
    ordered,
)
from .names import CROP_UNITS, DEVICES, MEASUREMENTS, SEGMENT_METHODS, THRESHOLD_METHODS

ILLUM = Block(
    "illum",
    {
        "downsample": 4,
        "smoothing": 0.1,
        "floor": 0.1,
        "max_sites": None,
    },
    checks=[
        at_least(1, "downsample", "max_sites"),
        at_least(0, "smoothing"),
        between(0, 1, "floor", open_high=True),
    ],
)


def _bounds(key: str) -> Check:
    """A check that ``key`` is [low, high] with 0 <= low <= high."""

    def check(merged: dict, name: str) -> None:
        value = merged[key]
        numbers = isinstance(value, list | tuple) and all(is_number(v) for v in value)
        if not (numbers and len(value) == 2 and 0 <= value[0] <= value[1]):
            raise ValueError(f"{name}.{key} must be [low, high], 0 <= low <= high, not {value!r}")

    return check


PROPAGATE = Block(
    "segment.propagate",
    {
        "nucleus_diameter": 12.0,
        "smoothing": 0.1,
        "threshold_method": "minimum_cross_entropy",
        "threshold_correction": 1.0,
        "min_area": 0.15,
        "max_area": 6.0,
        "declump_distance": 0.4,
        "cell_smoothing": 0.0,
        "cell_threshold_method": "log_otsu",
        "cell_threshold_correction": 1.0,
        "cell_threshold_bounds": [0.0, 1.0],
        "cell_level_fraction": None,
        "max_cell_distance": 3.0,
        "regularisation": 0.05,
        "fill_holes": True,
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
        "nuclei_model": "nuclei",
        "cell_model": "cyto3",
        "nucleus_diameter": None,
        "cell_diameter": None,
        "flow_threshold": 0.4,
        "cellprob_threshold": 0.0,
        "min_size": 15,
        "batch_size": 4,
        "sites_per_call": 8,
        "device": "auto",
        "download_timeout": 10.0,
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
        "method": "propagate",
        "shards": 1,
        "save_masks": True,
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
        "focus_measure": "edge_sharpness",
        "focus_mad": 5.0,
        "focus_adjust": True,
        "concentration_share": 0.5,
        "min_focus": None,
        "max_saturated_percent": 1.0,
        "min_cells": 1,
        "max_cells": None,
        "max_scale_ratio": 16.0,
        "max_speck_share": 0.5,
        "overlay_sites": 4,
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
        "unit": "cell",
        "size": 32,
        "site_size": 128,
        "scale": 65535.0,
        "drop_border_cells": False,
    },
    checks=[one_of(CROP_UNITS, "unit"), at_least(1, "size", "site_size"), above(0, "scale")],
)


def crop_side(crops: dict) -> tuple[str, int]:
    """(the key, its value) that sets the side of the crops stage's images: ``crops.size``
    around cells, ``crops.site_size`` for whole sites (``crops.unit``)."""
    crops = CROPS.merge(crops)
    key = "site_size" if crops["unit"] == "site" else "size"
    return f"crops.{key}", int(crops[key])


def _texture_scales(features: dict, name: str) -> None:
    scales = features["texture_scales"]
    if not scales or not all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in scales
    ):
        raise ValueError(
            f"{name}.texture_scales must be a non-empty list of integers >= 1, not {scales!r}"
        )


FEATURES = Block(
    "features",
    {
        "enabled": True,
        "measurements": list(MEASUREMENTS),
        "shrink_nuclei": True,
        "zernike_degree": 9,
        "texture_scales": [3],
        "texture_gray_levels": 256,
        "granularity_spectrum": 16,
        "granularity_subsample": 0.25,
        "granularity_background_subsample": 0.25,
        "granularity_element_size": 10,
        "radial_bins": 4,
        "correlation_threshold": 15.0,
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
