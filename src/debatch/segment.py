"""Segmentation stage: nuclei and whole cells of every site of a plate ("propagate" method).

The CellProfiler recipe IdentifyPrimaryObjects + IdentifySecondaryObjects (propagation):

- nuclei: Gaussian smoothing, Otsu threshold, small holes filled, touching nuclei split by a
  watershed on the distance transform (one seed per distance peak), then a size filter;
- cells: each nucleus grows by a watershed on the cell channel's intensity gradient (plus a
  little distance, CellProfiler's "regularisation"), inside the cell channel's log-Otsu
  foreground and at most ``max_cell_distance`` beyond the nuclei. Cell i grows from nucleus i,
  so the pairing is one-to-one and each cell is one connected piece containing its nucleus.

Every size is relative to ``nucleus_diameter`` (px), so a new magnification needs one number
changed (12 px suits the demo screen; about 50 for the NF1 20x fields).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
from scipy import ndimage
from skimage.filters import sobel, threshold_otsu
from skimage.segmentation import relabel_sequential, watershed

from debatch.images import read_site
from debatch.params import merge_params as check_params

DEFAULTS = {
    # Typical nucleus diameter (px). Every size below is a multiple of it: for other nuclei
    # (e.g. ~50 px at 20x, NF1) change only this.
    "nucleus_diameter": 12.0,
    # Gaussian sigma before thresholding nuclei, x diameter (suppresses texture and noise).
    "smoothing": 0.1,
    # False: Otsu on intensity (outlines at half contrast). True: Otsu on log intensity to find
    # dim nuclei next to bright ones, then each object trimmed at half its own contrast.
    "log_threshold": False,
    # Multiplies the nuclei threshold (>1 stricter, smaller and fewer nuclei).
    "threshold_correction": 1.0,
    # Smallest nucleus, as a fraction of the area of a disc of nucleus_diameter (debris filter).
    "min_area": 0.15,
    # Largest nucleus after declumping, x that disc area (unsplit clumps and artefacts go).
    "max_area": 6.0,
    # Smallest distance between the centres of two nuclei split apart, x diameter
    # (lower splits more eagerly; higher keeps elongated nuclei whole).
    "declump_distance": 0.4,
    # Gaussian sigma (px) of the cell channel before thresholding and taking its gradient.
    "cell_smoothing": 1.0,
    # Multiplies the cell-channel threshold (from Otsu on log intensity); >1 tighter cells.
    "cell_threshold_correction": 1.0,
    # Cells reach at most this far beyond the nuclei, x diameter, so cells in dim or
    # unthresholdable regions stay local. Raise it for very spread-out cells (NF1: 4).
    "max_cell_distance": 3.0,
    # Weight of distance (per nucleus diameter) against intensity edges (per unit of the
    # channel's 1-99 % range) when propagating; CellProfiler's default 0.05.
    "regularisation": 0.05,
    # Objects whose mean intensity exceeds the background by fewer than this many background
    # noise SDs are dropped, so a field without nuclei yields none instead of noise blobs.
    "min_contrast": 3.0,
}

_EIGHT = np.ones((3, 3), bool)  # objects are 8-connected, as in CellProfiler
_POSITIVE = ("nucleus_diameter", "threshold_correction", "max_area", "cell_threshold_correction")
_NON_NEGATIVE = ("smoothing", "min_area", "declump_distance", "cell_smoothing", "max_cell_distance",
                 "regularisation", "min_contrast")


def merge_params(params: dict | None) -> dict:
    """``params`` over DEFAULTS; an unknown key, a wrong type or an impossible value is a
    ValueError naming the key."""
    p = check_params("segment", DEFAULTS, params)
    for key in _POSITIVE:
        if not p[key] > 0:
            raise ValueError(f"segment.{key} must be > 0, not {p[key]!r}")
    for key in _NON_NEGATIVE:
        if not p[key] >= 0:
            raise ValueError(f"segment.{key} must be >= 0, not {p[key]!r}")
    if p["min_area"] >= p["max_area"]:
        raise ValueError(f"segment.min_area ({p['min_area']}) must be below "
                         f"max_area ({p['max_area']})")
    return p


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
    """Median and robust SD (1.4826 x MAD) of the pixels outside ``foreground``."""
    values = image[~foreground]
    if values.size == 0:
        return float(image.min()), 0.0
    level = float(np.median(values))
    return level, 1.4826 * float(np.median(np.abs(values - level)))


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
    p = merge_params(params)
    diameter = p["nucleus_diameter"]
    disc_area = np.pi * diameter**2 / 4
    dna = np.asarray(dna, np.float32)
    smooth = ndimage.gaussian_filter(dna, p["smoothing"] * diameter)
    foreground = _fill_small_holes(_nuclei_foreground(dna, smooth, p), disc_area)
    components, n = ndimage.label(foreground, _EIGHT)
    if n == 0:
        return np.zeros(dna.shape, np.int32)

    # Declump: one seed per peak of the (lightly smoothed) distance to the background.
    distance = ndimage.gaussian_filter(ndimage.distance_transform_edt(foreground),
                                       max(1.0, 0.05 * diameter))
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


def segment_cells(nuclei: np.ndarray, cell_image: np.ndarray,
                  params: dict | None = None) -> np.ndarray:
    """Grow each nucleus into its cell (int32): cell i contains nucleus i and is one piece."""
    p = merge_params(params)
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


def segment_site(images: dict[str, np.ndarray], nuclei_channel: str, cell_channel: str,
                 params: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(nuclei, cells) label images of one site; label i of both is the same cell."""
    nuclei = segment_nuclei(images[nuclei_channel], params)
    return nuclei, segment_cells(nuclei, images[cell_channel], params)


def _border_labels(labels: np.ndarray) -> np.ndarray:
    """Boolean per label (index = label): the object touches the image edge."""
    flags = np.zeros(int(labels.max()) + 1, bool)
    flags[np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])] = True
    return flags


def _dtype(column: str) -> str:
    """Column dtype of a measurement table (for the empty table of a site without cells)."""
    if column.endswith("Border"):
        return "bool"
    return "float64" if "Intensity" in column or "Center" in column else "int64"


def measure_site(nuclei: np.ndarray, cells: np.ndarray,
                 images: dict[str, np.ndarray]) -> pd.DataFrame:
    """One row per cell (label 1..n): nucleus centroid (x = column), areas, cell bounding box
    (minimum inclusive, maximum exclusive, like skimage), border flags, mean intensities."""
    columns = ["Metadata_ObjectNumber", "Nuclei_Location_Center_X", "Nuclei_Location_Center_Y",
               "Nuclei_AreaShape_Area", "Cells_AreaShape_Area",
               "Cells_AreaShape_BoundingBoxMinimum_X", "Cells_AreaShape_BoundingBoxMinimum_Y",
               "Cells_AreaShape_BoundingBoxMaximum_X", "Cells_AreaShape_BoundingBoxMaximum_Y",
               "Nuclei_Touching_Border", "Cells_Touching_Border"]
    columns += [f"{compartment}_Intensity_MeanIntensity_{channel}"
                for compartment in ("Nuclei", "Cells") for channel in images]
    n = int(nuclei.max())
    if n == 0:
        return pd.DataFrame({c: pd.Series(dtype=_dtype(c)) for c in columns})
    nuclei_flat, cells_flat = nuclei.ravel(), cells.ravel()
    nuclei_area = np.bincount(nuclei_flat, minlength=n + 1)[1:]
    cells_area = np.bincount(cells_flat, minlength=n + 1)[1:]
    inside = nuclei_flat > 0
    if (len(cells_area) != n or not nuclei_area.all()
            or not np.array_equal(cells_flat[inside], nuclei_flat[inside])):
        raise ValueError("nuclei and cells are not paired one-to-one (labels 1..n, cell i "
                         "containing nucleus i)")
    rows, cols = np.indices(nuclei.shape)
    boxes = ndimage.find_objects(cells)
    table = {
        "Metadata_ObjectNumber": np.arange(1, n + 1),
        "Nuclei_Location_Center_X": np.bincount(nuclei_flat, cols.ravel(), n + 1)[1:] / nuclei_area,
        "Nuclei_Location_Center_Y": np.bincount(nuclei_flat, rows.ravel(), n + 1)[1:] / nuclei_area,
        "Nuclei_AreaShape_Area": nuclei_area,
        "Cells_AreaShape_Area": cells_area,
        "Cells_AreaShape_BoundingBoxMinimum_X": [box[1].start for box in boxes],
        "Cells_AreaShape_BoundingBoxMinimum_Y": [box[0].start for box in boxes],
        "Cells_AreaShape_BoundingBoxMaximum_X": [box[1].stop for box in boxes],
        "Cells_AreaShape_BoundingBoxMaximum_Y": [box[0].stop for box in boxes],
        "Nuclei_Touching_Border": _border_labels(nuclei)[1:],
        "Cells_Touching_Border": _border_labels(cells)[1:],
    }
    for compartment, labels, area in (("Nuclei", nuclei_flat, nuclei_area),
                                      ("Cells", cells_flat, cells_area)):
        for channel, image in images.items():
            total = np.bincount(labels, np.asarray(image, np.float64).ravel(), n + 1)[1:]
            table[f"{compartment}_Intensity_MeanIntensity_{channel}"] = total / area
    return pd.DataFrame(table, columns=columns)


def segment_plate(manifest: pd.DataFrame, channels: list[str], illum: dict[str, np.ndarray] | None,
                  nuclei_channel: str, cell_channel: str, params: dict | None = None,
                  threads: int = 1, log: Callable[[str], None] | None = None
                  ) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Segment and measure every site (row) of a plate's manifest.

    Returns the per-cell table, with every Metadata_ column of the site's row first, sorted by
    well, site and object number, and the label images keyed "{well}_{site}_nuclei" /
    "{well}_{site}_cells". Sites run in a thread pool of ``threads``; results are collected in
    site order, so they do not depend on it. A site without cells is logged and adds no rows;
    a plate without any cell is a ValueError (almost always a wrong channel or diameter).
    """
    p = merge_params(params)
    say = log or (lambda message: None)
    sites = manifest.sort_values(["Metadata_Well", "Metadata_Site"], kind="stable")
    metadata_columns = [c for c in manifest.columns if c.startswith("Metadata_")]
    rows = sites.to_dict("records")

    def run(position: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
        images = read_site(rows[position], channels, illum)
        nuclei, cells = segment_site(images, nuclei_channel, cell_channel, p)
        table = measure_site(nuclei, cells, images)
        metadata = sites.iloc[[position] * len(table)][metadata_columns].reset_index(drop=True)
        return pd.concat([metadata, table], axis=1), nuclei, cells

    tables, masks, counts = [], {}, []
    step = max(1, round(len(rows) / 10))
    with ThreadPoolExecutor(max(1, threads)) as pool:
        for done, (row, (table, nuclei, cells)) in enumerate(
                zip(rows, pool.map(run, range(len(rows)))), start=1):
            key = f"{row['Metadata_Well']}_{row['Metadata_Site']}"
            dtype = np.uint16 if nuclei.max() < 2**16 else np.int32
            masks[f"{key}_nuclei"] = nuclei.astype(dtype)
            masks[f"{key}_cells"] = cells.astype(dtype)
            counts.append(len(table))
            if len(table):
                tables.append(table)
            else:
                say(f"well {row['Metadata_Well']} site {row['Metadata_Site']}: no cells found")
            if done % step == 0 or done == len(rows):
                say(f"segmented {done}/{len(rows)} sites, {sum(counts)} cells")
    if not tables:
        raise ValueError(f"no cells found on any of the {len(rows)} sites; check nuclei_channel "
                         f"and segment.propagate.nucleus_diameter")
    cells_table = pd.concat(tables, ignore_index=True)
    say(f"{len(rows)} sites, {len(cells_table)} cells; cells per site min {min(counts)}, "
        f"median {np.median(counts):g}, max {max(counts)}")
    return cells_table, masks
