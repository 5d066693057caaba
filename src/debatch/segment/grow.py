"""CellProfiler's propagation (IdentifySecondaryObjects "Propagation"), compiled with numba.

Seeds grow over the pixels of ``mask`` in order of a geodesic distance: each step between
8-neighbours costs sqrt(d_I^2 + steps x regularisation^2), where d_I is the summed absolute
difference of the two pixels' 3 x 3 neighbourhoods (edges clamped) and steps the Manhattan
length of the step (1 or 2). A pixel goes to the seed that reaches it first (Dijkstra), so
borders fall on intensity ridges or, with a large regularisation, half-way between seeds.

This is centrosome's ``propagate`` (the code CellProfiler runs) with the same distance, visiting
order and tie-breaking (distance, then label, then pixel), so the same labels (tests compare
them on a real field and on plateaus full of ties; only at regularisation 0, where a flat
region's distances are exactly equal, may a tied pixel go to the other, equally near seed);
compiled, it is faster and releases the GIL, so a shard's threads propagate in parallel.

No pixel reaches another connected component of the mask (8-connected, as the steps are), so
each component is grown on its own, with its own heap, inside its bounding box: the same labels
(the heap's pixel order within a component is the image's), and on a dense field faster than
one heap over the whole field, whose pops jump between cells across the field's per-pixel
arrays (benchmarks/notes.md).
"""

from __future__ import annotations

import heapq

import numba
import numpy as np
from scipy import ndimage

_STEPS = np.array([(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)])


@numba.njit(cache=True, nogil=True)
def _step_cost(padded, i1, j1, i2, j2, weight):
    """Cost of the step (i1, j1) -> (i2, j2), image coordinates; ``padded`` has 2 edge pixels."""
    difference = 0.0
    for di in range(-1, 2):
        for dj in range(-1, 2):
            difference += abs(padded[i1 + di + 2, j1 + dj + 2] - padded[i2 + di + 2, j2 + dj + 2])
    steps = abs(i1 - i2) + abs(j1 - j2)
    return np.sqrt(difference * difference + steps * weight * weight)


@numba.njit(cache=True, nogil=True)
def _borders_growth(seeds, mask, i, j, steps):
    """Whether seed pixel (i, j) has a neighbour to grow into (in the mask, not a seed). The
    others, inside a nucleus, would only be popped at distance 0 and relax nothing (a seed's
    distance 0 is never beaten), so they stay out of the heap: a sixth fewer pops on a dense
    field, the same labels."""
    rows, columns = seeds.shape
    for k in range(8):
        i2, j2 = i + steps[k, 0], j + steps[k, 1]
        if 0 <= i2 < rows and 0 <= j2 < columns and seeds[i2, j2] <= 0 and mask[i2, j2]:
            return True
    return False


@numba.njit(cache=True, nogil=True)
def _grow_component(padded, seeds, mask, weight, steps, components, k, box, labels, distances):
    """Dijkstra over connected component ``k`` of the mask, inside its bounding ``box`` (rows
    box[0]:box[1], columns box[2]:box[3]), writing into ``labels`` and ``distances``."""
    top, bottom, left, right = box[0], box[1], box[2], box[3]
    columns = seeds.shape[1]
    heap = [(0.0, np.int64(0), np.int64(0))]
    heap.pop()
    for i in range(top, bottom):
        for j in range(left, right):
            if components[i, j] == k and seeds[i, j] > 0:
                distances[i, j] = 0.0
                if _borders_growth(seeds, mask, i, j, steps):
                    heap.append((0.0, np.int64(seeds[i, j]), np.int64(i * columns + j)))
    heapq.heapify(heap)
    while heap:
        distance, label, index = heapq.heappop(heap)
        i1, j1 = index // columns, index % columns
        if labels[i1, j1] != 0:
            continue
        labels[i1, j1] = label
        for q in range(8):
            i2, j2 = i1 + steps[q, 0], j1 + steps[q, 1]
            if i2 < top or i2 >= bottom or j2 < left or j2 >= right:
                continue  # outside the box is outside the component
            if labels[i2, j2] > 0 or not mask[i2, j2]:
                continue
            reached = distance + _step_cost(padded, i1, j1, i2, j2, weight)
            if distances[i2, j2] == -1.0 or distances[i2, j2] > reached:
                distances[i2, j2] = reached
                heapq.heappush(heap, (reached, label, np.int64(i2 * columns + j2)))


@numba.njit(cache=True, nogil=True)
def _grow(padded, seeds, mask, weight, steps, components, boxes):
    rows, columns = seeds.shape
    labels = np.zeros((rows, columns), np.int32)
    distances = np.full((rows, columns), -1.0)
    for k in range(boxes.shape[0]):
        _grow_component(
            padded, seeds, mask, weight, steps, components, k + 1, boxes[k], labels, distances
        )
    for i in range(rows):
        for j in range(columns):
            if seeds[i, j] > 0:
                labels[i, j] = seeds[i, j]
    return labels


def propagate(
    image: np.ndarray, seeds: np.ndarray, mask: np.ndarray, regularisation: float
) -> np.ndarray:
    """Labels (int32) grown from ``seeds`` (labelled pixels) over ``mask``, steered by ``image``;
    every seed pixel keeps its label, pixels outside the mask that no seed covers stay 0."""
    if not image.shape == seeds.shape == mask.shape:
        raise ValueError(
            f"shapes differ: image {image.shape}, seeds {seeds.shape}, mask {mask.shape}"
        )
    padded = np.pad(np.asarray(image, np.float64), 2, mode="edge")
    mask = np.asarray(mask, bool)
    components, _ = ndimage.label(mask, np.ones((3, 3), bool))
    boxes = np.array(
        [
            (rows.start, rows.stop, cols.start, cols.stop)
            for rows, cols in ndimage.find_objects(components)
        ],
        np.int64,
    ).reshape(-1, 4)
    return _grow(
        padded, np.asarray(seeds, np.int32), mask, float(regularisation), _STEPS, components, boxes
    )
