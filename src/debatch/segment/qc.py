"""Image quality control per site: focus, saturation and cell count, and which sites fail.

Measured on the raw pixels by the segmentation job (it reads them anyway), with CellProfiler's
MeasureImageQuality definitions so numbers compare with existing pipelines:

- ``ImageQuality_PowerLogLogSlope_{channel}``: slope of the log-log radial power spectrum over
  radii 2 .. min(H, W)/8 (CellProfiler's range; the highest frequencies only hold noise).
  Blur removes high frequencies, so an out-of-focus site has a steeper, more negative slope.
- ``ImageQuality_PercentMaximal_{channel}``: percent of pixels at the image's maximum value
  (saturated detector pixels pile up there; 0 for a blank image).
- ``ImageQuality_MeanIntensity_{channel}``, ``ImageQuality_StdIntensity_{channel}``: of the raw
  pixels. A constant (e.g. blank) channel fails its site; so does a channel whose mean is more
  than ``max_scale_ratio`` times off the plate's median for that channel, the signature of a
  site exported at another bit depth (8-bit values in a 16-bit file are ~256x dimmer).

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
from debatch.settings import NEGCON, PLATE, QC, QC_FAILED, QC_PASS, ROLE, SITE_CELLS, WELL

log = logging.getLogger(__name__)

# Floor of the robust SD of focus slopes: on a plate of near-identical sites (or very few)
# the MAD can be ~0 and would fail sites over differences no one could see.
MIN_FOCUS_SPREAD = 0.05
FOCUS = "ImageQuality_PowerLogLogSlope"
SATURATION = "ImageQuality_PercentMaximal"
MEAN, SPREAD = "ImageQuality_MeanIntensity", "ImageQuality_StdIntensity"
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
        measures[f"{MEAN}_{channel}"] = float(image.mean(dtype=np.float64))
        measures[f"{SPREAD}_{channel}"] = float(image.std(dtype=np.float64))
    return measures


def _channel_faults(sites: pd.DataFrame, plates: pd.Series, max_ratio: float | None) -> pd.Series:
    """Per site, the channels that are constant or on another intensity scale than the plate's
    ("constant AGP;scale Mito x0.004"), empty when none (tables without these measures: none)."""
    faults = {index: [] for index in sites.index}
    for column in [c for c in sites if c.startswith(SPREAD + "_")]:
        channel = column.removeprefix(SPREAD + "_")
        mean = sites[f"{MEAN}_{channel}"]
        ratio = mean / mean.groupby(plates).transform("median")
        for index in sites.index[sites[column] == 0]:
            faults[index].append(f"constant {channel}")
        if max_ratio is not None:
            off = (sites[column] > 0) & ((ratio > max_ratio) | (ratio < 1 / max_ratio))
            for index in sites.index[off]:
                faults[index].append(f"scale {channel} x{ratio[index]:.3g}")
    return pd.Series({index: ";".join(found) for index, found in faults.items()})


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
    plates = sites[PLATE] if PLATE in sites else pd.Series("", index=sites.index)
    if p["focus_mad"] is not None:
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
    channels = _channel_faults(sites, plates, p["max_scale_ratio"])
    flagged = sites.copy()
    flagged[QC_PASS] = ~failed.any(axis=1) & (channels == "")
    flagged[QC_FAILED] = [
        ";".join([*(name for name, bad in row.items() if bad), *filter(None, [extra])])
        for (_, row), extra in zip(failed.iterrows(), channels)
    ]
    return flagged


def summary(flagged: pd.DataFrame) -> str:
    """One log line: how many sites failed, by which test, and how many cells they hold."""
    bad = flagged[~flagged[QC_PASS]]
    reasons = pd.Series(
        [r.split(" x")[0] for text in bad[QC_FAILED] for r in text.split(";")]
    ).value_counts()
    detail = ", ".join(f"{reason} {count}" for reason, count in reasons.items()) or "none"
    return (
        f"QC: {len(bad)} of {len(flagged)} sites failed ({detail}); they hold "
        f"{int(bad[COUNT].sum())} of {int(flagged[COUNT].sum())} cells, which get no crops"
    )


def check_negcon(flagged: pd.DataFrame, plate: str, params: dict | None = None) -> str | None:
    """Known right after QC, not after training: a plate whose negcon wells keep no cell
    cannot be normalised. ``plate_without_negcon: fail`` raises naming the wells and why;
    ``drop`` returns the warning (the plate is then left out of every profile)."""
    p = QC.merge(params)
    negcon = flagged[flagged[ROLE] == NEGCON] if ROLE in flagged else flagged.iloc[:0]
    kept = negcon[negcon[QC_PASS] & (negcon[COUNT] > 0)]
    if len(negcon) == 0 or len(kept):
        return None
    reasons = pd.Series(
        [r.split(" x")[0] for text in negcon[QC_FAILED] for r in text.split(";") if r]
    ).value_counts()
    message = (
        f"plate {plate}: QC left no cell in its negcon wells {sorted(negcon[WELL].unique())} "
        f"({', '.join(f'{k} {v}' for k, v in reasons.items()) or 'no cells'}), so it cannot be "
        f"normalised"
    )
    if p["plate_without_negcon"] == "fail":
        raise ValueError(
            message + "; relax the QC thresholds (config qc), or set "
            "qc.plate_without_negcon: drop to leave the plate out of the profiles"
        )
    return message + "; left out of the profiles (qc.plate_without_negcon: drop)"
