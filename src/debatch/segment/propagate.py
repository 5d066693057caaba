"""Segmentation stage: nuclei and whole cells of every site of a plate ("propagate" method).

The CellProfiler recipe IdentifyPrimaryObjects + IdentifySecondaryObjects (propagation):

- nuclei: Gaussian smoothing, an automatic threshold (Otsu, log Otsu or minimum cross-entropy),
  small holes filled, touching nuclei split by a watershed on the distance transform (one seed
  per distance peak), then a size filter;
- cells: the cell channel is thresholded as IdentifySecondaryObjects does (method, correction
  factor, bounds on CellProfiler's 0-1 scale), and every nucleus grows over that foreground by
  CellProfiler's propagation (debatch.segment.grow: all seeds together, over a distance mixing
  intensity differences and spatial distance by the regularisation factor), at most
  ``max_cell_distance`` beyond the nuclei; holes are filled. Cell i grows from nucleus i, so
  the pairing is one-to-one and each cell is one connected piece containing its nucleus.

Every size is relative to ``nucleus_diameter`` (px), so a new magnification needs one number
changed (12 px suits the demo screen; about 50 for the NF1 20x fields). Settings:
``segment.propagate`` (debatch.settings.PROPAGATE); docs/segmentation.md compares them with
CellProfiler's masks on real fields.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage
from skimage.filters import threshold_li, threshold_multiotsu, threshold_otsu
from skimage.segmentation import watershed

from debatch.core.sorting import (
    median_deviation_of_sorted,
    median_of_sorted,
    smallest_gap,
    sort_float32,
)
from debatch.core.stats import MAD_SCALE
from debatch.segment.grow import propagate
from debatch.segment.holes import fill_background_holes
from debatch.settings import PROPAGATE, THRESHOLD_METHODS, Channels

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


def _log_otsu_three_class(smooth: np.ndarray) -> float:
    """Lower of the two three-class Otsu thresholds of log intensity, in intensity units: the
    middle class (a confluent cell's cytoplasm, between gaps and bright membranes) is
    foreground, as CellProfiler's three-class Otsu with the middle class assigned to it."""
    top = float(smooth.max())
    if not top > 0 or smooth.min() == top:
        return np.inf
    logs = np.log(np.maximum(smooth, top * 1e-6))
    if len(np.unique(logs[:: max(1, logs.size // 4096)])) < 3:  # too few levels for 3 classes
        return _log_otsu(smooth)
    return float(np.exp(threshold_multiotsu(logs, classes=3)[0]))


def _minimum_cross_entropy(smooth: np.ndarray) -> float:
    """Li's minimum cross-entropy threshold (CellProfiler's "Minimum Cross-Entropy"). For a
    float32 image, scikit-image's default tolerance (half the smallest gap between two distinct
    values of the image less its minimum) is found by a radix sort instead of ``np.unique``:
    the same threshold in a fraction of the time."""
    if not smooth.size or smooth.min() == smooth.max():
        return np.inf
    tolerance = None
    if smooth.dtype == np.float32:
        ascending = sort_float32(smooth)
        gap = smallest_gap(ascending - ascending[0])
        tolerance = None if gap is None else gap / 2
    return float(threshold_li(smooth, tolerance=tolerance))


_THRESHOLDS = {
    "otsu": _otsu,
    "log_otsu": _log_otsu,
    "log_otsu_three_class": _log_otsu_three_class,
    "minimum_cross_entropy": _minimum_cross_entropy,
}
assert set(_THRESHOLDS) == set(THRESHOLD_METHODS)


def distance_to_background(foreground: np.ndarray) -> np.ndarray:
    """ndimage.distance_transform_edt of ``foreground``, equal to it bit for bit, in a sixth
    of the time: OpenCV's exact (Felzenszwalb) transform gives float32 distances, whose
    squares round back to the exact integer squared distances while distances stay below
    2,000 px (images whose diagonal is shorter). OpenCV errs on long strips under ~20 px wide
    (measured), and a field without background has no distances: both go to ndimage."""
    height, width = foreground.shape
    if foreground.all() or min(height, width) < 32 or np.hypot(height, width) >= 2000:
        return ndimage.distance_transform_edt(foreground)
    distance = cv2.distanceTransform(
        foreground.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE
    ).astype(np.float64)
    return np.sqrt(np.rint(distance**2))


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
    """Median and robust SD (MAD_SCALE x MAD) of the float32 pixels outside ``foreground``
    (np.median's numbers, from one radix sort; NaN, which sorts to an end, gives numpy's NaN)."""
    if foreground.all():
        return float(image.min()), 0.0
    ascending = sort_float32(image[~foreground])
    if np.isnan(ascending[0]) or np.isnan(ascending[-1]):
        return float("nan"), float("nan")
    level = float(median_of_sorted(ascending))
    return level, MAD_SCALE * float(median_deviation_of_sorted(ascending, level))


def _nuclei_foreground(
    dna: np.ndarray, smooth: np.ndarray, propagate_settings: dict
) -> tuple[np.ndarray, int]:
    """Thresholded nuclei pixels and the count of specks among the objects. Objects not clearly
    above the background noise are removed as noise. Bright objects whose unsmoothed pixels
    are mostly background (a hot pixel or a dust speck that the smoothing blurred into a blob:
    a few bright pixels without a nucleus's body) are removed as specks, and counted: QC
    fails a site made of them. Small but solid objects (an apoptotic body, a pyknotic or
    border-cut nucleus) are real objects, not specks: the size filter of find_nuclei removes
    those below the floor without counting them, so a sparse, dying well is not a data fault."""
    method = propagate_settings["threshold_method"]
    foreground = smooth > _THRESHOLDS[method](smooth) * propagate_settings["threshold_correction"]
    if not foreground.any():
        return foreground, 0
    level, noise = _background(dna, foreground)
    objects, n = ndimage.label(foreground, _EIGHT)
    index = np.arange(1, n + 1)
    means = np.asarray(ndimage.mean(smooth, objects, index))
    floor = propagate_settings["min_contrast"] * noise
    bright = means - level >= floor
    solid = object_medians(dna, objects, foreground, index) - level > floor
    keep = np.concatenate([[False], bright & solid])
    specks = int((bright & ~solid).sum())
    if method == "log_otsu":
        # Trim each object half-way between the background and the mean of its core (the pixels
        # above half its overall mean), near the half-maximum edge a linear Otsu would find.
        core = np.where(2 * smooth > level + means[objects - 1], objects, 0)
        top = np.concatenate([[np.inf], ndimage.mean(smooth, core, index)])
        return keep[objects] & (2 * smooth > level + top[objects]), specks
    return keep[objects], specks


def object_medians(
    image: np.ndarray, objects: np.ndarray, foreground: np.ndarray, index: np.ndarray
) -> np.ndarray:
    """ndimage.median(image, objects, index), equal to it, over the object pixels only
    (``foreground``: objects > 0): a few times faster on a field that is mostly background,
    whose pixels ndimage would sort with the objects'."""
    return np.asarray(ndimage.median(image[foreground], objects[foreground], index))


def _min_area(propagate_settings: dict) -> float:
    """The size floor of a nucleus (px): min_area x the area of a disc of nucleus_diameter."""
    return propagate_settings["min_area"] * np.pi * propagate_settings["nucleus_diameter"] ** 2 / 4


def _peak_position(values: np.ndarray, labels: np.ndarray, label: int, box) -> tuple[int, int]:
    """Where ``values`` peak inside object ``label`` (the first such pixel in raster order),
    searched in the object's bounding box: ndimage.maximum_position sorts the whole image."""
    inside = np.where(labels[box] == label, values[box], -np.inf)
    row, col = np.unravel_index(np.argmax(inside), inside.shape)
    return box[0].start + int(row), box[1].start + int(col)


def find_nuclei(dna: np.ndarray, params: dict | None = None) -> tuple[np.ndarray, int]:
    """Nuclei labelled 1..n (int32) and the count of specks left out (_nuclei_foreground):
    smooth, threshold, fill holes, split clumps, size filter."""
    propagate_settings = PROPAGATE.merge(params)
    diameter = propagate_settings["nucleus_diameter"]
    disc_area = np.pi * diameter**2 / 4
    dna = np.asarray(dna, np.float32)
    smooth = ndimage.gaussian_filter(dna, propagate_settings["smoothing"] * diameter)
    foreground, specks = _nuclei_foreground(dna, smooth, propagate_settings)
    foreground = _fill_small_holes(foreground, disc_area)
    components, n = ndimage.label(foreground, _EIGHT)
    if n == 0:
        return np.zeros(dna.shape, np.int32), specks

    # Declump: one seed per peak of the (lightly smoothed) distance to the background.
    distance = ndimage.gaussian_filter(
        distance_to_background(foreground), max(1.0, 0.05 * diameter)
    )
    window = 2 * max(1, round(propagate_settings["declump_distance"] * diameter)) + 1
    peaks = foreground & (distance >= ndimage.maximum_filter(distance, window))
    markers, n_markers = ndimage.label(peaks, _EIGHT)  # a flat top is one seed
    # A small nucleus next to a larger one can lose its peak to the neighbour's window.
    unseeded = np.setdiff1d(np.arange(1, n + 1), components[peaks])
    boxes = ndimage.find_objects(components)
    for k, label in enumerate(unseeded, 1):
        markers[_peak_position(distance, components, label, boxes[label - 1])] = n_markers + k
    nuclei = watershed(-distance, markers, connectivity=2, mask=foreground)

    areas = np.bincount(nuclei.ravel())
    kept = (
        (areas > 0)
        & (areas >= _min_area(propagate_settings))
        & (areas <= propagate_settings["max_area"] * disc_area)
    )
    kept[0] = False
    # the kept labels renumbered 1..n in order (relabel_sequential's result, in one lookup)
    renumbered = np.zeros(len(areas), np.int32)
    renumbered[kept] = np.arange(1, kept.sum() + 1)
    return renumbered[nuclei], specks


def segment_nuclei(dna: np.ndarray, params: dict | None = None) -> np.ndarray:
    """Nuclei labelled 1..n (int32), without the count of specks (find_nuclei)."""
    return find_nuclei(dna, params)[0]


def cell_foreground(
    cell_image: np.ndarray, nuclei: np.ndarray, params: dict | None = None
) -> np.ndarray:
    """Pixels of the cell channel (on CellProfiler's 0-1 scale) that belong to some cell:
    smoothed, then above the chosen automatic threshold x correction, clipped to the bounds,
    as IdentifySecondaryObjects thresholds its image. With ``cell_level_fraction`` the threshold
    is at most that fraction of the cell channel's median over the nuclei (a level every cell
    body reaches), so a confluent field, where no dark gaps exist to threshold against, stays
    foreground."""
    propagate_settings = PROPAGATE.merge(params)
    smooth = ndimage.gaussian_filter(cell_image, propagate_settings["cell_smoothing"])
    threshold = (
        _THRESHOLDS[propagate_settings["cell_threshold_method"]](smooth)
        * propagate_settings["cell_threshold_correction"]
    )
    if propagate_settings["cell_level_fraction"] is not None and nuclei.any():
        threshold = min(
            threshold,
            propagate_settings["cell_level_fraction"] * float(np.median(smooth[nuclei > 0])),
        )
    low, high = propagate_settings["cell_threshold_bounds"]
    return smooth > min(max(threshold, low), high)


def segment_cells(
    nuclei: np.ndarray, cell_image: np.ndarray, params: dict | None, scale: float
) -> np.ndarray:
    """Grow each nucleus into its cell (int32) by CellProfiler's propagation: cell i contains
    nucleus i and is one piece. ``scale`` puts ``cell_image`` on CellProfiler's 0-1 scale
    (debatch.core.images.cellprofiler_scale), where ``regularisation`` and the threshold
    bounds mean what they mean in a CellProfiler pipeline."""
    propagate_settings = PROPAGATE.merge(params)
    nuclei = np.asarray(nuclei, np.int32)
    if nuclei.max() == 0:
        return np.zeros(nuclei.shape, np.int32)
    image = np.asarray(cell_image, np.float64) * scale
    top = image.max()
    if np.isnan(top):
        raise ValueError("cell image holds NaN pixels: cells cannot grow over them")
    if top > 64:  # illumination correction lifts dim corners a few-fold, never 64x
        raise ValueError(
            f"cell image reaches {top:.3g} on CellProfiler's 0-1 scale: pass the scale "
            "of its pixel type (debatch.core.images.cellprofiler_scale)"
        )
    image = np.clip(image, 0.0, 1.0)  # as CellProfiler's CorrectIlluminationApply leaves it
    mask = cell_foreground(image, nuclei, propagate_settings)
    if propagate_settings["max_cell_distance"] is not None:
        reach = propagate_settings["max_cell_distance"] * propagate_settings["nucleus_diameter"]
        mask &= distance_to_background(nuclei == 0) <= reach
    # every nucleus seeds its cell, also where the cell channel is below the threshold
    cells = propagate(image, nuclei, mask | (nuclei > 0), propagate_settings["regularisation"])
    if propagate_settings["fill_holes"]:
        cells = fill_background_holes(cells)
    return cells.astype(np.int32)


def find_site(
    images: dict[str, np.ndarray],
    channels: Channels,
    params: dict | None,
    scale: float,
) -> tuple[np.ndarray, np.ndarray, int]:
    """(nuclei, cells, specks left out) of one site: label i of both images is the same cell;
    specks are counted by find_nuclei (the segment stage records them for QC)."""
    nuclei, specks = find_nuclei(images[channels.nuclei], params)
    return nuclei, segment_cells(nuclei, images[channels.cell], params, scale), specks


def segment_site(
    images: dict[str, np.ndarray],
    channels: Channels,
    params: dict | None,
    scale: float,
) -> tuple[np.ndarray, np.ndarray]:
    """(nuclei, cells) label images of one site; label i of both is the same cell (find_site,
    without the count of specks)."""
    return find_site(images, channels, params, scale)[:2]
