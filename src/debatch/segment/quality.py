"""Image-quality measures of one site's raw pixels: focus, saturation and intensity.

Measured on the raw pixels by the segmentation job (it reads them anyway), with CellProfiler's
MeasureImageQuality definitions so numbers compare with existing pipelines:

- ``ImageQuality_PowerLogLogSlope_{channel}``: slope of the log-log radial power spectrum over
  radii 2 .. min(H, W)/8 (CellProfiler's range; the highest frequencies only hold noise).
  Blur removes high frequencies, so an out-of-focus site has a steeper, more negative slope.
- ``ImageQuality_EdgeSharpness_{channel}`` (the nuclei channel only): the median gradient at the
  objects' half-maximum contour over their contrast (object - background level), in 1/px.
  A Gaussian blur of sigma s gives a step edge 1 / (s sqrt(2 pi)): it measures the blur
  itself, and cell count does not enter it (a median over edges), unlike the spectrum.
- ``ImageQuality_HalfMaximumArea_{channel}`` (the nuclei channel only): the median area of the
  objects inside that contour: their size as the focus test sees it (blur leaves it nearly in
  place, while it moves a segmentation's lower threshold outwards).
- ``ImageQuality_PercentMaximal_{channel}``: percent of pixels at the image's maximum value
  (saturated detector pixels pile up there; 0 for a blank image); in 8-bit images at 255, where
  an 8-bit export clips (``percent_maximal``).
- ``ImageQuality_MeanIntensity_{channel}``, ``ImageQuality_StdIntensity_{channel}``: of the raw
  pixels.

``debatch.segment.qc`` judges the sites of a plate on them.
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.fft
from scipy import ndimage
from skimage.filters import threshold_otsu

from debatch.settings import (
    FOCUS,
    HALF_MAXIMUM_AREA,
    MEAN_INTENSITY,
    SATURATION,
    SHARPNESS,
    STD_INTENSITY,
)


@functools.lru_cache(maxsize=8)
def _low_frequency_rings(height: int, width: int, top: int):
    """Rows and columns of a real FFT's half spectrum that hold the frequencies below ``top``,
    their ring index (floor radius + 1) and weight: 2 for a column that also stands for its
    mirror image in the other half, else 1."""
    rows = np.flatnonzero(np.minimum(np.arange(height), height - np.arange(height)) < top)
    cols = np.arange(min(top, width // 2 + 1))
    fy = np.minimum(rows, height - rows)[:, None]
    radius = np.floor(np.sqrt(fy**2 + cols[None, :] ** 2)).astype(np.int64) + 1
    weight = np.where((cols == 0) | ((width % 2 == 0) & (cols == width // 2)), 1.0, 2.0)
    return rows, cols, radius.ravel(), np.broadcast_to(weight, radius.shape).ravel()


def power_log_log_slope(image: np.ndarray) -> float:
    """CellProfiler's PowerLogLogSlope: fit of log(ring power) on log(radius), radii 2..min/8.
    Ring power comes from the real FFT's half spectrum (the other half mirrors it), and only
    from the low frequencies the fit uses: the same sums as over the full spectrum. The 2-D
    transform is done by axes (scipy.fft, twice numpy's speed on these sizes, the same values):
    every row's real FFT, then the column FFTs of only the low-frequency columns."""
    pixels = np.asarray(image, np.float64)
    height, width = pixels.shape
    top = int(min(height, width) / 8)
    if top <= 3 or pixels.min() == pixels.max():  # too small or blank to judge: never fails focus
        return float("nan")
    rows, cols, radius, weight = _low_frequency_rings(height, width, top)
    by_row = scipy.fft.rfft(pixels - pixels.mean(), axis=1)[:, : len(cols)]
    spectrum = scipy.fft.fft(by_row, axis=0)[rows]
    power = spectrum.real**2 + spectrum.imag**2
    radii = np.arange(2, top)
    ring_power = np.bincount(radius, power.ravel() * weight, minlength=top)[radii]
    usable = ring_power > 0
    if usable.sum() < 2:
        return float("nan")
    return float(np.polyfit(np.log(radii[usable]), np.log(ring_power[usable]), 1)[0])


def _sobel_magnitude_at(image: np.ndarray, where: np.ndarray) -> np.ndarray:
    """ndimage.sobel's gradient magnitude (its "reflect" border) of ``image`` in float64, at the
    ``where`` pixels only: the contour is a few thousand of a site's million pixels."""
    padded = np.pad(image, 1, mode="symmetric")  # = ndimage's "reflect"
    rows, cols = np.nonzero(where)
    rows, cols = rows + 1, cols + 1

    def at(dr, dc):
        return padded[rows + dr, cols + dc].astype(np.float64, copy=False)

    across_rows = (at(1, -1) + 2 * at(1, 0) + at(1, 1)) - (at(-1, -1) + 2 * at(-1, 0) + at(-1, 1))
    across_cols = (at(-1, 1) + 2 * at(0, 1) + at(1, 1)) - (at(-1, -1) + 2 * at(0, -1) + at(1, -1))
    return np.hypot(across_rows, across_cols)


def _median_of_levels(levels: np.ndarray, counts: np.ndarray) -> float:
    """np.median of the values ``levels`` (ascending) repeated ``counts`` times: the mean of the
    two middle values (one for an odd count), read off the cumulative counts."""
    cumulative = np.cumsum(counts)
    ranks = [(cumulative[-1] - 1) // 2, cumulative[-1] // 2]
    middle = levels[np.searchsorted(cumulative, ranks, side="right")].astype(np.float64)
    return float(middle.sum() / 2)


def _half_maximum(image: np.ndarray) -> tuple[np.ndarray, float] | None:
    """The pixels above half-way between the objects' and the background's median levels
    (Otsu splits them), and that contrast; None for a constant image. An 8- or 16-bit image
    is counted once (np.bincount) and Otsu and both medians are read off the counts, the same
    numbers as skimage's and numpy's over the pixels in float64 in a fraction of the time."""
    if image.min() == image.max():
        return None
    if image.dtype.kind != "u" or image.dtype.itemsize > 2:
        pixels = np.asarray(image, np.float64)
        otsu = threshold_otsu(pixels)
        high, low = np.median(pixels[pixels > otsu]), np.median(pixels[pixels <= otsu])
        return pixels > (high + low) / 2, float(high - low)
    counts = np.bincount(image.ravel())
    levels = np.flatnonzero(counts)
    counts = counts[levels]
    # skimage's histogram of a float image: np.histogram over its own range, 256 bins
    binned, edges = np.histogram(
        levels.astype(np.float64),
        bins=256,
        range=(float(levels[0]), float(levels[-1])),
        weights=counts,
    )
    otsu = threshold_otsu(hist=(binned.astype(np.int64), (edges[:-1] + edges[1:]) / 2.0))
    above = levels > otsu
    high = _median_of_levels(levels[above], counts[above])
    low = _median_of_levels(levels[~above], counts[~above])
    return image > (high + low) / 2, float(high - low)


def edge_measures(image: np.ndarray) -> tuple[float, float]:
    """(edge sharpness, median object area at half maximum) of a nuclei channel.

    Sharpness: the median gradient magnitude on the half-maximum contour divided by the
    contrast, 1 / (sigma sqrt(2 pi)) for a step blurred by a Gaussian of sigma. Medians keep it
    steady on textured, unequally bright nuclei; small objects, whose blurred plateau is lower,
    still look a little sharper (debatch.segment.qc.flag_sites adjusts for size). Area: the
    size that adjustment uses, as blur leaves a half-maximum outline in place where it moves a
    segmentation's lower threshold outwards (a blurred site's nuclei would look bigger, not
    blurred)."""
    image = np.asarray(image)
    half = _half_maximum(image)
    if half is None:
        return float("nan"), float("nan")
    inside, contrast = half
    contour = inside & ~ndimage.binary_erosion(inside, border_value=1)
    if not contour.any():
        return float("nan"), float("nan")
    gradient = _sobel_magnitude_at(image, contour) / 8
    objects, _ = ndimage.label(inside, np.ones((3, 3), bool))
    area = float(np.median(np.bincount(objects.ravel())[1:]))
    return float(np.median(gradient) / contrast), area


def percent_maximal(image: np.ndarray) -> float:
    """Percent of pixels equal to the image maximum (0 for a constant image); in an 8-bit
    image, equal to 255. An 8-bit export (RxRx1) clips at 255, and below it the brightest
    pixels of a dim channel share one of few levels: a tie at the maximum, not saturation.
    Higher bit depths keep the image maximum (a 12-bit camera in 16-bit files clips at 4095)."""
    top = np.iinfo(np.uint8).max if image.dtype == np.uint8 else image.max()
    if image.min() == image.max():
        return 0.0
    return float(100.0 * np.count_nonzero(image == top) / image.size)


def image_quality(raw: dict[str, np.ndarray], focus_channel: str | None = None) -> dict[str, float]:
    """Focus slope, saturation and intensity of every channel of one site's raw images, and
    the edge sharpness and object size at half maximum of ``focus_channel``."""
    measures = {}
    if focus_channel is not None:
        sharpness, area = edge_measures(raw[focus_channel])
        measures[f"{SHARPNESS}_{focus_channel}"] = sharpness
        measures[f"{HALF_MAXIMUM_AREA}_{focus_channel}"] = area
    for channel, image in raw.items():
        measures[f"{FOCUS}_{channel}"] = power_log_log_slope(image)
        measures[f"{SATURATION}_{channel}"] = percent_maximal(image)
        measures[f"{MEAN_INTENSITY}_{channel}"] = float(image.mean(dtype=np.float64))
        measures[f"{STD_INTENSITY}_{channel}"] = float(image.std(dtype=np.float64))
    return measures
