"""Segmentation stage: nuclei and whole cells of every site of a plate ("propagate" method).

The CellProfiler recipe IdentifyPrimaryObjects + IdentifySecondaryObjects (propagation):

- nuclei: Gaussian smoothing, Otsu threshold, small holes filled, touching nuclei split by a
  watershed on the distance transform (one seed per distance peak), then a size filter;
- cells: each nucleus grows by a watershed on the cell channel's intensity gradient (plus a
  little distance, CellProfiler's "regularisation"), inside the cell channel's log-Otsu
  foreground and at most ``max_cell_distance`` beyond the nuclei. Cell i grows from nucleus i,
  so the pairing is one-to-one and each cell is one connected piece containing its nucleus.

Every size is relative to ``nucleus_diameter`` (px), so a new magnification needs one number
changed (12 px suits the demo screen; about 50 for the NF1 20x fields). Settings:
``segment.propagate`` (debatch.settings.PROPAGATE).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.filters import sobel, threshold_otsu
from skimage.segmentation import relabel_sequential, watershed

from debatch.core.stats import MAD_SCALE
from debatch.settings import PROPAGATE, Channels

_EIGHT = np.ones((3, 3), bool)  # objects are 8-connected, as in CellProfiler


def _otsu(values: np.ndarray) -> float:
    """Otsu threshold, or +inf for a constant (object-free) image."""
    return float(threshold_otsu(values)) if values.size and values.min() < values.max() else np.inf


def _log_otsu(smooth: np.ndarray) -> float:
    """Otsu threshold of log intensity, in intensity units (non-positive pixels clipped)."""
    top = float(smooth.max())
    if not top > 0:
        return np.inf
    return float(np.exp(_otsu(np.log(np.maximum(smooth, top * 1e-6)))))


def _fill_small_holes(mask: np.ndarray, max_hole: float) -> np.ndarray:
    """Fill background pockets smaller than max_hole px (not the gap inside a ring of nuclei)."""
    holes, n = ndimage.label(~mask)
    if n == 0:
        return mask
    sizes = np.bincount(holes.ravel())
    small = sizes < max_hole
    small[0] = False
    return mask | small[holes]


def _background(image: np.ndarray, foreground: np.ndarray) -> tuple[float, float]:
    """Median and robust SD (MAD_SCALE x MAD) of the pixels outside ``foreground``."""
    values = image[~foreground]
    if values.size == 0:
        return float(image.min()), 0.0
    level = float(np.median(values))
    return level, MAD_SCALE * float(np.median(np.abs(values - level)))


def _nuclei_foreground(dna: np.ndarray, smooth: np.ndarray, p: dict) -> np.ndarray:
    """Thresholded nuclei pixels; objects not clearly above the background noise removed."""
    if p["log_threshold"]:
        foreground = smooth > _log_otsu(smooth) * p["threshold_correction"]
    else:
        foreground = smooth > _otsu(smooth) * p["threshold_correction"]
    if not foreground.any():
        return foreground
    level, noise = _background(dna, foreground)
    objects, n = ndimage.label(foreground, _EIGHT)
    index = np.arange(1, n + 1)
    means = np.asarray(ndimage.mean(smooth, objects, index))
    keep = np.concatenate([[False], means - level >= p["min_contrast"] * noise])
    if p["log_threshold"]:
        # Trim each object half-way between the background and the mean of its core (the pixels
        # above half its overall mean), near the half-maximum edge a linear Otsu would find.
        core = np.where(2 * smooth > level + means[objects - 1], objects, 0)
        top = np.concatenate([[np.inf], ndimage.mean(smooth, core, index)])
        return keep[objects] & (2 * smooth > level + top[objects])
    return keep[objects]


def segment_nuclei(dna: np.ndarray, params: dict | None = None) -> np.ndarray:
    """Label nuclei 1..n (int32): smooth, threshold, fill holes, split clumps, size filter."""
    p = PROPAGATE.merge(params)
    diameter = p["nucleus_diameter"]
    disc_area = np.pi * diameter**2 / 4
    dna = np.asarray(dna, np.float32)
    smooth = ndimage.gaussian_filter(dna, p["smoothing"] * diameter)
    foreground = _fill_small_holes(_nuclei_foreground(dna, smooth, p), disc_area)
    components, n = ndimage.label(foreground, _EIGHT)
    if n == 0:
        return np.zeros(dna.shape, np.int32)

    # Declump: one seed per peak of the (lightly smoothed) distance to the background.
    distance = ndimage.gaussian_filter(
        ndimage.distance_transform_edt(foreground), max(1.0, 0.05 * diameter)
    )
    window = 2 * max(1, round(p["declump_distance"] * diameter)) + 1
    peaks = foreground & (distance >= ndimage.maximum_filter(distance, window))
    markers, n_markers = ndimage.label(peaks, _EIGHT)  # a flat top is one seed
    # A small nucleus next to a larger one can lose its peak to the neighbour's window.
    unseeded = np.setdiff1d(np.arange(1, n + 1), components[peaks])
    for k, position in enumerate(ndimage.maximum_position(distance, components, unseeded), 1):
        markers[position] = n_markers + k
    nuclei = watershed(-distance, markers, connectivity=2, mask=foreground)

    areas = np.bincount(nuclei.ravel())
    bad = (areas < p["min_area"] * disc_area) | (areas > p["max_area"] * disc_area)
    bad[0] = False
    nuclei[bad[nuclei]] = 0
    return relabel_sequential(nuclei)[0].astype(np.int32)


def segment_cells(
    nuclei: np.ndarray, cell_image: np.ndarray, params: dict | None = None
) -> np.ndarray:
    """Grow each nucleus into its cell (int32): cell i contains nucleus i and is one piece."""
    p = PROPAGATE.merge(params)
    nuclei = np.asarray(nuclei, np.int32)
    if nuclei.max() == 0:
        return np.zeros(nuclei.shape, np.int32)
    smooth = ndimage.gaussian_filter(np.asarray(cell_image, np.float32), p["cell_smoothing"])
    foreground = smooth > _log_otsu(smooth) * p["cell_threshold_correction"]
    distance = ndimage.distance_transform_edt(nuclei == 0)
    reach = p["max_cell_distance"] * p["nucleus_diameter"]
    disc_area = np.pi * p["nucleus_diameter"] ** 2 / 4
    mask = _fill_small_holes((foreground & (distance <= reach)) | (nuclei > 0), disc_area)
    low, high = np.percentile(smooth[mask], [1, 99])
    edges = sobel(smooth) / (high - low if high > low else 1.0)
    elevation = edges + p["regularisation"] * distance / p["nucleus_diameter"]
    # Nuclei are the markers, so each cell keeps its whole nucleus and floods only from it.
    return watershed(elevation, nuclei, mask=mask).astype(np.int32)


def segment_site(
    images: dict[str, np.ndarray],
    channels: Channels,
    params: dict | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(nuclei, cells) label images of one site; label i of both is the same cell."""
    nuclei = segment_nuclei(images[channels.nuclei], params)
    return nuclei, segment_cells(nuclei, images[channels.cell], params)
