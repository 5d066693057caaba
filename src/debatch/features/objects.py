"""The object sets CellProfiler measures per cell: Nuclei, Cells and Cytoplasm.

Label i of every set belongs to cell i of the cells table (the segment stage pairs nucleus i
with cell i). Cytoplasm is made as CellProfiler's IdentifyTertiaryObjects makes it: the cell
minus its nucleus, where by default (``shrink_nuclei``) the nucleus first loses its outline
pixels, so every cytoplasm keeps at least a one-pixel ring and never has zero area.
"""

from __future__ import annotations

import numpy as np
from centrosome.outline import outline
from scipy import ndimage


def bounding_boxes(labels: np.ndarray) -> np.ndarray:
    """(N, 4) int64 rows of top, bottom, left, right (exclusive) of objects 1..N of a 2D
    label image, for the compiled per-object loops (shape, texture)."""
    slices = ndimage.find_objects(labels)
    if None in slices:
        raise ValueError("labels must be 1..N without gaps")
    boxes = [[s[0].start, s[0].stop, s[1].start, s[1].stop] for s in slices]
    return np.array(boxes, np.int64).reshape(-1, 4)


def cytoplasm(cells: np.ndarray, nuclei: np.ndarray, shrink_nuclei: bool = True) -> np.ndarray:
    """Cell labels with the nuclei taken out (their outline pixels kept when shrinking)."""
    inside_nucleus = nuclei > 0
    if shrink_nuclei:
        inside_nucleus &= outline(nuclei) == 0
    labels = cells.copy()
    labels[inside_nucleus] = 0
    return labels


def object_sets(
    nuclei: np.ndarray, cells: np.ndarray, shrink_nuclei: bool = True
) -> dict[str, np.ndarray]:
    """{CellProfiler object name: label image}, labels as in the cells table."""
    return {
        "Nuclei": nuclei,
        "Cells": cells,
        "Cytoplasm": cytoplasm(cells, nuclei, shrink_nuclei),
    }
