"""Segmentation stage: nuclei and whole cells of every site of a plate ("propagate" method).

CellProfiler's IdentifyPrimaryObjects + IdentifySecondaryObjects idea: nuclei by a smoothed
Otsu threshold and distance-transform watershed (declumping), cells by watershed propagation
from the nuclei into the cell channel, bounded by a threshold and a maximum distance. Every
size-like parameter is relative to one ``nucleus_diameter`` so a new magnification needs one
number changed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
from scipy import ndimage
from skimage.feature import peak_local_max
from skimage.filters import sobel, threshold_otsu
from skimage.measure import regionprops_table
from skimage.segmentation import relabel_sequential, watershed

from debatch.images import read_site
from debatch.params import merge_params as check_params

log = logging.getLogger(__name__)

DEFAULTS = {
    "nucleus_diameter": 12.0,          # typical nucleus diameter in px; every size below scales with it
    "smoothing": 0.1,                  # Gaussian sigma before thresholding nuclei, x diameter
    "log_threshold": True,             # Otsu on log intensity: dim nuclei next to bright ones survive
    "threshold_correction": 1.0,       # multiplies the nuclei threshold (>1 stricter)
    "min_area": 0.15,                  # smallest nucleus, as a fraction of the expected disc area
    "max_area": 6.0,                   # largest nucleus (after declumping), x expected disc area
    "declump_distance": 0.4,           # min distance between split nuclei centres, x diameter
    "cell_smoothing": 1.0,             # Gaussian sigma (px) of the cell channel
    "cell_threshold_correction": 1.0,  # multiplies the cell-channel Otsu threshold
    "max_cell_distance": 1.5,          # cells reach at most this far beyond their nucleus, x diameter
    "regularisation": 0.05,            # weight of distance vs intensity edges when propagating
}


def merge_params(params: dict | None) -> dict:
    return check_params("segment", DEFAULTS, params)


def _otsu(values: np.ndarray) -> float:
    return float(threshold_otsu(values)) if values.size and values.min() < values.max() else np.inf


def segment_nuclei(dna: np.ndarray, params: dict | None = None) -> np.ndarray:
    """Label nuclei 1..n: smooth, threshold, fill holes, split touching nuclei, filter by size."""
    p = merge_params(params)
    diameter = p["nucleus_diameter"]
    smooth = ndimage.gaussian_filter(dna.astype(np.float32), max(p["smoothing"] * diameter, 0.5))
    if p["log_threshold"]:
        shifted = smooth - smooth.min()
        level = np.log1p(shifted)
        foreground = level > _otsu(level) * p["threshold_correction"]
    else:
        foreground = smooth > _otsu(smooth) * p["threshold_correction"]
    disc_area = np.pi * diameter**2 / 4
    foreground = ndimage.binary_fill_holes(foreground)
    components, n_components = ndimage.label(foreground)
    if n_components == 0:
        return np.zeros(dna.shape, np.int32)
    sizes = np.bincount(components.ravel())
    foreground &= sizes[components] >= p["min_area"] * disc_area
    components[~foreground] = 0

    distance = ndimage.distance_transform_edt(foreground)
    distance = ndimage.gaussian_filter(distance, 1.0)
    peaks = peak_local_max(distance, min_distance=max(1, int(p["declump_distance"] * diameter)),
                           labels=components, exclude_border=False)
    markers = np.zeros(dna.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    # A component without a distance peak (e.g. a flat ridge) still gets one seed.
    seeded = np.unique(components[markers > 0])
    for index in sorted(set(np.unique(components)) - set(seeded) - {0}):
        y, x = np.argwhere(components == index)[0]
        markers[y, x] = markers.max() + 1
    nuclei = watershed(-distance, markers, mask=foreground)

    areas = np.bincount(nuclei.ravel())
    bad = (areas < p["min_area"] * disc_area) | (areas > p["max_area"] * disc_area)
    bad[0] = False
    nuclei[bad[nuclei]] = 0
    return relabel_sequential(nuclei)[0].astype(np.int32)


def segment_cells(nuclei: np.ndarray, cell_image: np.ndarray, params: dict | None = None) -> np.ndarray:
    """Grow each nucleus into its cell; cell i contains nucleus i, so the pairing is one-to-one."""
    p = merge_params(params)
    if nuclei.max() == 0:
        return np.zeros(nuclei.shape, np.int32)
    smooth = ndimage.gaussian_filter(cell_image.astype(np.float32), p["cell_smoothing"])
    level = np.log1p(smooth - smooth.min())
    foreground = level > _otsu(level) * p["cell_threshold_correction"]
    distance = ndimage.distance_transform_edt(nuclei == 0)
    foreground = (foreground & (distance <= p["max_cell_distance"] * p["nucleus_diameter"])) | (nuclei > 0)
    span = np.ptp(level[foreground]) or 1.0
    edges = sobel(level) / span
    elevation = edges + p["regularisation"] * distance / p["nucleus_diameter"]
    cells = watershed(elevation, nuclei, mask=foreground)
    cells[nuclei > 0] = nuclei[nuclei > 0]
    # Keep only the part of each cell connected to its nucleus (watershed can leave islands).
    connected = np.zeros_like(cells)
    for index, region in enumerate(ndimage.find_objects(cells), start=1):
        if region is None:
            continue
        pieces, _ = ndimage.label(cells[region] == index)
        anchor = pieces[nuclei[region] == index]
        connected[region][np.isin(pieces, np.unique(anchor[anchor > 0]))] = index
    return connected.astype(np.int32)


def segment_site(images: dict[str, np.ndarray], nuclei_channel: str, cell_channel: str,
                 params: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    nuclei = segment_nuclei(images[nuclei_channel], params)
    return nuclei, segment_cells(nuclei, images[cell_channel], params)


def measure_site(nuclei: np.ndarray, cells: np.ndarray, images: dict[str, np.ndarray]) -> pd.DataFrame:
    """Per-cell table: centroid of the nucleus, areas, cell bounding box, mean intensities."""
    columns = ["Metadata_ObjectNumber", "Nuclei_Location_Center_X", "Nuclei_Location_Center_Y",
               "Nuclei_AreaShape_Area", "Cells_AreaShape_Area",
               "Cells_AreaShape_BoundingBoxMinimum_X", "Cells_AreaShape_BoundingBoxMinimum_Y",
               "Cells_AreaShape_BoundingBoxMaximum_X", "Cells_AreaShape_BoundingBoxMaximum_Y",
               "Nuclei_Touching_Border", "Cells_Touching_Border"]
    columns += [f"{compartment}_Intensity_MeanIntensity_{channel}"
                for compartment in ("Nuclei", "Cells") for channel in images]
    if nuclei.max() == 0:
        return pd.DataFrame(columns=columns)
    stack = np.stack(list(images.values()), axis=-1)
    nucleus = regionprops_table(nuclei, stack, properties=("label", "centroid", "area", "intensity_mean"))
    cell = regionprops_table(cells, stack, properties=("label", "area", "bbox", "intensity_mean"))
    if not np.array_equal(nucleus["label"], cell["label"]):
        raise AssertionError("nuclei and cells are not paired one-to-one")
    border = np.zeros(nuclei.max() + 1, bool)
    table = {"Metadata_ObjectNumber": nucleus["label"],
             "Nuclei_Location_Center_X": nucleus["centroid-1"],
             "Nuclei_Location_Center_Y": nucleus["centroid-0"],
             "Nuclei_AreaShape_Area": nucleus["area"], "Cells_AreaShape_Area": cell["area"],
             "Cells_AreaShape_BoundingBoxMinimum_X": cell["bbox-1"],
             "Cells_AreaShape_BoundingBoxMinimum_Y": cell["bbox-0"],
             "Cells_AreaShape_BoundingBoxMaximum_X": cell["bbox-3"],
             "Cells_AreaShape_BoundingBoxMaximum_Y": cell["bbox-2"]}
    for name, labels in (("Nuclei", nuclei), ("Cells", cells)):
        border[:] = False
        border[np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))] = True
        table[f"{name}_Touching_Border"] = border[nucleus["label"]]
    for compartment, props in (("Nuclei", nucleus), ("Cells", cell)):
        for i, channel in enumerate(images):
            table[f"{compartment}_Intensity_MeanIntensity_{channel}"] = props[f"intensity_mean-{i}"]
    return pd.DataFrame(table, columns=columns)


def segment_plate(manifest: pd.DataFrame, channels: list[str], illum: dict[str, np.ndarray] | None,
                  nuclei_channel: str, cell_channel: str, params: dict | None = None, threads: int = 1,
                  log: Callable[[str], None] | None = None) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Segment and measure every site (row) of a plate's manifest.

    Returns the per-cell table, with the site's Metadata_ columns first, and the label images
    keyed "{well}_{site}_nuclei" / "{well}_{site}_cells". Sites run in a thread pool; results are
    ordered by manifest row, so they do not depend on ``threads``.
    """
    p = merge_params(params)
    say = log or (lambda message: None)
    rows = manifest.sort_values(["Metadata_Well", "Metadata_Site"]).to_dict("records")
    metadata_columns = [c for c in manifest.columns if c.startswith("Metadata_")]

    def run(row):
        images = read_site(row, channels, illum)
        nuclei, cells = segment_site(images, nuclei_channel, cell_channel, p)
        table = measure_site(nuclei, cells, images)
        for column in reversed(metadata_columns):
            table.insert(0, column, row[column])
        return table, nuclei, cells

    tables, masks, counts = [], {}, []
    step = max(1, len(rows) // 10)
    with ThreadPoolExecutor(max(1, threads)) as pool:
        for done, (row, (table, nuclei, cells)) in enumerate(zip(rows, pool.map(run, rows)), 1):
            key = f"{row['Metadata_Well']}_{row['Metadata_Site']}"
            masks[f"{key}_nuclei"] = nuclei.astype(np.uint16 if nuclei.max() < 65536 else np.int32)
            masks[f"{key}_cells"] = cells.astype(masks[f"{key}_nuclei"].dtype)
            counts.append(len(table))
            if len(table):
                tables.append(table)
            else:
                say(f"well {row['Metadata_Well']} site {row['Metadata_Site']}: no cells found")
            if done % step == 0 or done == len(rows):
                say(f"segmented {done}/{len(rows)} sites, {sum(counts)} cells")
    if not tables:
        raise ValueError(f"no cells found on any of the {len(rows)} sites; check nuclei_channel and "
                         f"segment.propagate.nucleus_diameter")
    cells_table = pd.concat(tables, ignore_index=True)
    say(f"{len(rows)} sites, {len(cells_table)} cells; cells per site min {min(counts)}, "
        f"median {int(np.median(counts))}, max {max(counts)}")
    return cells_table, masks
