"""Image quality control per site: focus, saturation and cell count, and which sites fail.

Measured on the raw pixels by the segmentation job (it reads them anyway), with CellProfiler's
MeasureImageQuality definitions so numbers compare with existing pipelines:

- ``ImageQuality_PowerLogLogSlope_{channel}``: slope of the log-log radial power spectrum over
  radii 2 .. min(H, W)/8 (CellProfiler's range; the highest frequencies only hold noise).
  Blur removes high frequencies, so an out-of-focus site has a steeper, more negative slope.
- ``ImageQuality_PercentMaximal_{channel}``: percent of pixels at the image's maximum value
  (saturated detector pixels pile up there; 0 for a blank image).

A focus slope depends on the stain, magnification and cell density, so the default focus test
is relative: a site fails when its nuclei-channel slope lies more than ``focus_mad`` robust SDs
below the plate's median. Failed sites stay in every table, flagged; the crops stage leaves
their cells out (the crops table is the index of what is analysed), and counts are logged.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from debatch.core.stats import MAD_SCALE
from debatch.settings import PLATE, QC, QC_FAILED, QC_PASS, SITE_CELLS

log = logging.getLogger(__name__)

# Floor of the robust SD of focus slopes: on a plate of near-identical sites (or very few)
# the MAD can be ~0 and would fail sites over differences no one could see.
MIN_FOCUS_SPREAD = 0.05
FOCUS = "ImageQuality_PowerLogLogSlope"
SATURATION = "ImageQuality_PercentMaximal"
COUNT = SITE_CELLS


def power_log_log_slope(image: np.ndarray) -> float:
    """CellProfiler's PowerLogLogSlope: fit of log(ring power) on log(radius), radii 2..min/8."""
    pixels = np.asarray(image, np.float64)
    height, width = pixels.shape
    top = int(min(height, width) / 8)
    if top <= 3 or pixels.min() == pixels.max():  # too small or blank to judge: never fails focus
        return float("nan")
    power = np.abs(np.fft.fft2(pixels - pixels.mean())) ** 2
    fy = np.minimum(np.arange(height), height - np.arange(height))[:, None]
    fx = np.minimum(np.arange(width), width - np.arange(width))[None, :]
    radius = (np.floor(np.sqrt(fy**2 + fx**2)).astype(np.int64) + 1).ravel()
    radii = np.arange(2, top)
    ring_power = np.bincount(radius, power.ravel(), minlength=top)[radii]
    usable = ring_power > 0
    if usable.sum() < 2:
        return float("nan")
    return float(np.polyfit(np.log(radii[usable]), np.log(ring_power[usable]), 1)[0])


def percent_maximal(image: np.ndarray) -> float:
    """Percent of pixels equal to the image maximum (0 for a constant image)."""
    top = image.max()
    return 0.0 if top == image.min() else float(100.0 * np.count_nonzero(image == top) / image.size)


def image_quality(raw: dict[str, np.ndarray]) -> dict[str, float]:
    """Focus slope and saturation of every channel of one site's raw images."""
    measures = {}
    for channel, image in raw.items():
        measures[f"{FOCUS}_{channel}"] = power_log_log_slope(image)
        measures[f"{SATURATION}_{channel}"] = percent_maximal(image)
    return measures


def flag_sites(sites: pd.DataFrame, focus_channel: str, params: dict | None = None) -> pd.DataFrame:
    """The per-site table with ``QC_Pass`` and ``QC_Failed`` (the failed tests, ";"-separated).

    Focus is judged on ``focus_channel`` (the nuclei channel: sharp, present in every cell)
    within each plate; saturation on every channel; cell counts against absolute bounds.
    """
    p = QC.merge(params)
    focus_column = f"{FOCUS}_{focus_channel}"
    if focus_column not in sites:
        raise ValueError(
            f"QC table has no {focus_column}; measured channels: "
            f"{[c.removeprefix(FOCUS + '_') for c in sites if c.startswith(FOCUS)]}"
        )
    failed = pd.DataFrame(False, index=sites.index, columns=["focus", "saturation", "cell count"])
    focus = sites[focus_column]
    if p["focus_mad"] is not None:
        plates = sites[PLATE] if PLATE in sites else pd.Series("", index=sites.index)
        median = focus.groupby(plates).transform("median")
        spread = (focus - median).abs().groupby(plates).transform("median") * MAD_SCALE
        failed["focus"] |= focus < median - p["focus_mad"] * spread.clip(lower=MIN_FOCUS_SPREAD)
    if p["min_focus"] is not None:
        failed["focus"] |= focus < p["min_focus"]
    if p["max_saturated_percent"] is not None:
        saturation = sites[[c for c in sites if c.startswith(SATURATION + "_")]]
        failed["saturation"] = (saturation > p["max_saturated_percent"]).any(axis=1)
    failed["cell count"] = sites[COUNT] < p["min_cells"]
    if p["max_cells"] is not None:
        failed["cell count"] |= sites[COUNT] > p["max_cells"]
    flagged = sites.copy()
    flagged[QC_PASS] = ~failed.any(axis=1)
    flagged[QC_FAILED] = [
        ";".join(name for name, bad in row.items() if bad) for _, row in failed.iterrows()
    ]
    return flagged


def summary(flagged: pd.DataFrame) -> str:
    """One log line: how many sites failed, by which test, and how many cells they hold."""
    bad = flagged[~flagged[QC_PASS]]
    reasons = pd.Series([r for text in bad[QC_FAILED] for r in text.split(";")]).value_counts()
    detail = ", ".join(f"{reason} {count}" for reason, count in reasons.items()) or "none"
    return (
        f"QC: {len(bad)} of {len(flagged)} sites failed ({detail}); they hold "
        f"{int(bad[COUNT].sum())} of {int(flagged[COUNT].sum())} cells, which get no crops"
    )
