"""Per-cell measurements of a segmented site: the cells table's contract.

One row per cell (label 1..n of both label images): nucleus centroid, nucleus and cell areas,
the cell's bounding box, border flags and mean intensities per compartment and channel. The
crops stage cuts around the centroid; everything else is for QC and quick looks (the full
CellProfiler measurements are the features stage's).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage

from debatch.settings import CENTER_X, CENTER_Y, OBJECT


def border_labels(labels: np.ndarray) -> np.ndarray:
    """Boolean per label (index = label): the object touches the image edge."""
    flags = np.zeros(int(labels.max()) + 1, bool)
    flags[np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])] = True
    return flags


def _dtype(column: str) -> str:
    """Column dtype of a measurement table (for the empty table of a site without cells)."""
    if column.endswith("Border"):
        return "bool"
    return "float64" if "Intensity" in column or "Center" in column else "int64"


_SHAPE_COLUMNS = [
    OBJECT,
    CENTER_X,
    CENTER_Y,
    "Nuclei_AreaShape_Area",
    "Cells_AreaShape_Area",
    "Cells_AreaShape_BoundingBoxMinimum_X",
    "Cells_AreaShape_BoundingBoxMinimum_Y",
    "Cells_AreaShape_BoundingBoxMaximum_X",
    "Cells_AreaShape_BoundingBoxMaximum_Y",
    "Nuclei_Touching_Border",
    "Cells_Touching_Border",
]


def _sums(labels: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Per label 1..n, the sum of ``values`` (one per entry of ``labels``) in float64."""
    return np.bincount(labels, np.asarray(values, np.float64), n + 1)[1:]


def measure_site(
    nuclei: np.ndarray, cells: np.ndarray, images: dict[str, np.ndarray]
) -> pd.DataFrame:
    """One row per cell (label 1..n): nucleus centroid (x = column), areas, cell bounding box
    (minimum inclusive, maximum exclusive, like skimage), border flags, mean intensities."""
    columns = _SHAPE_COLUMNS + [
        f"{compartment}_Intensity_MeanIntensity_{channel}"
        for compartment in ("Nuclei", "Cells")
        for channel in images
    ]
    n = int(nuclei.max())
    if n == 0:
        return pd.DataFrame({c: pd.Series(dtype=_dtype(c)) for c in columns})
    nuclei_flat, cells_flat = nuclei.ravel(), cells.ravel()
    nuclei_area = np.bincount(nuclei_flat, minlength=n + 1)[1:]
    cells_area = np.bincount(cells_flat, minlength=n + 1)[1:]
    inside = nuclei_flat > 0
    if (
        len(cells_area) != n
        or not nuclei_area.all()
        or not np.array_equal(cells_flat[inside], nuclei_flat[inside])
    ):
        raise ValueError(
            "nuclei and cells are not paired one-to-one (labels 1..n, cell i containing nucleus i)"
        )
    wrong = {name: image.shape for name, image in images.items() if image.shape != nuclei.shape}
    if wrong:
        raise ValueError(f"images {wrong} differ in shape from the label images {nuclei.shape}")
    # Sums run over each compartment's own pixels only (in raster order, as over the whole
    # image: the same sums), a fraction of the site.
    in_nuclei, in_cells = np.flatnonzero(inside), np.flatnonzero(cells_flat)
    nucleus_of, cell_of = nuclei_flat[in_nuclei], cells_flat[in_cells]
    width = nuclei.shape[1]
    boxes = ndimage.find_objects(cells)
    table = {
        OBJECT: np.arange(1, n + 1),
        CENTER_X: _sums(nucleus_of, in_nuclei % width, n) / nuclei_area,
        CENTER_Y: _sums(nucleus_of, in_nuclei // width, n) / nuclei_area,
        "Nuclei_AreaShape_Area": nuclei_area,
        "Cells_AreaShape_Area": cells_area,
        "Cells_AreaShape_BoundingBoxMinimum_X": [box[1].start for box in boxes],
        "Cells_AreaShape_BoundingBoxMinimum_Y": [box[0].start for box in boxes],
        "Cells_AreaShape_BoundingBoxMaximum_X": [box[1].stop for box in boxes],
        "Cells_AreaShape_BoundingBoxMaximum_Y": [box[0].stop for box in boxes],
        "Nuclei_Touching_Border": border_labels(nuclei)[1:],
        "Cells_Touching_Border": border_labels(cells)[1:],
    }
    for compartment, labels, pixels, area in (
        ("Nuclei", nucleus_of, in_nuclei, nuclei_area),
        ("Cells", cell_of, in_cells, cells_area),
    ):
        for channel, image in images.items():
            total = _sums(labels, np.asarray(image).ravel()[pixels], n)
            table[f"{compartment}_Intensity_MeanIntensity_{channel}"] = total / area
    return pd.DataFrame(table, columns=columns)
