"""MeasureObjectSizeShape of a 2D site: cp_measure's ``get_sizeshape`` (CellProfiler 4's
features: no advanced moments, no new features) without scikit-image's per-object
``regionprops``.

``regionprops`` builds each object's convex hull with Qhull and rasterises it point by point,
then its perimeter and Euler number with a convolution each; on a dense 1080 px field those
per-object calls were most of the module. Here a few compiled sweeps measure every object:

- convex area (a sweep of each object's bounding box): scikit-image counts the pixel
  centres inside the hull of each pixel's edge midpoints (``convex_hull_image``'s diamond
  offsets). In doubled coordinates those midpoints are integers, so the hull (Andrew's
  monotone chain on each row's end pixels, which span the same hull) and the count of centres
  in it, row by row, are exact integer arithmetic;
- perimeter (sweeps of the label image): scikit-image's histogram of border-pixel
  neighbourhood codes, per object, dotted with its weights as it does;
- Euler number (8-connectivity): its 2x2 configuration counts, per object, with its table.

Area, bounding box, centroid and extent are sums per label; the moments are cp_measure's own
batched ones; the radii are its per-object distance transforms, read from the radial
distribution's distances to the edge for objects clear of the image's edge. Every number equals
cp_measure's bit for bit (tests/test_features.py compares them).
"""

from __future__ import annotations

import numba
import numpy as np
from cp_measure.core.measureobjectsizeshape import (
    F_AREA,
    F_BBOX_AREA,
    F_CENTER_X,
    F_CENTER_Y,
    F_COMPACTNESS,
    F_CONVEX_AREA,
    F_ECCENTRICITY,
    F_EQUIVALENT_DIAMETER,
    F_EULER_NUMBER,
    F_EXTENT,
    F_FORM_FACTOR,
    F_MAJOR_AXIS_LENGTH,
    F_MAX_X,
    F_MAX_Y,
    F_MAXIMUM_RADIUS,
    F_MEAN_RADIUS,
    F_MEDIAN_RADIUS,
    F_MIN_X,
    F_MIN_Y,
    F_MINOR_AXIS_LENGTH,
    F_ORIENTATION,
    F_PERIMETER,
    F_SOLIDITY,
)
from cp_measure.primitives._moments import (
    axes_eccentricity_orientation,
    inertia_2d,
    spatial_moments_2d,
)
from scipy import ndimage

from debatch.features.objects import bounding_boxes

# scikit-image's perimeter: weight of each border pixel's code (1 for itself, 2 per border
# 4-neighbour, 10 per border diagonal neighbour) and its Euler table (8-connectivity) of the
# 2x2 configuration codes (1 the pixel, 2 above, 4 left, 8 above-left)
_PERIMETER_WEIGHTS = np.zeros(50)
_PERIMETER_WEIGHTS[[5, 7, 15, 17, 25, 27]] = 1
_PERIMETER_WEIGHTS[[21, 33]] = np.sqrt(2)
_PERIMETER_WEIGHTS[[13, 23]] = (1 + np.sqrt(2)) / 2
_EULER_8 = np.array([0, 0, 0, 0, 0, 0, -1, 0, 1, 0, 0, 0, 0, 0, -1, 0], np.int64)


@numba.njit(cache=True, nogil=True)
def _turn(o0, o1, a0, a1, b0, b1):  # pragma: no cover
    """Twice the signed area of o, a, b: > 0 where o -> a -> b turns counter-clockwise."""
    return (a0 - o0) * (b1 - o1) - (a1 - o1) * (b0 - o0)


@numba.njit(cache=True, nogil=True)
def _hull(points: np.ndarray) -> tuple[np.ndarray, int]:  # pragma: no cover
    """Vertices of the convex hull of integer ``points`` (which must come sorted by row, then
    column, without repeats), counter-clockwise in (row, column), and their count (Andrew's
    monotone chain; collinear points dropped)."""
    n = points.shape[0]
    hull = np.empty((2 * n + 1, 2), np.int64)
    k = 0
    for chain in range(2):  # lower chain, then upper
        start = k
        for j in range(n):
            p = j if chain == 0 else n - 1 - j
            while (
                k >= start + 2
                and _turn(
                    hull[k - 2, 0],
                    hull[k - 2, 1],
                    hull[k - 1, 0],
                    hull[k - 1, 1],
                    points[p, 0],
                    points[p, 1],
                )
                <= 0
            ):
                k -= 1
            hull[k, 0], hull[k, 1] = points[p, 0], points[p, 1]
            k += 1
        k -= 1  # a chain's last point is the other's first
    return hull, k


@numba.njit(cache=True, nogil=True)
def _convex_areas(labels, boxes) -> np.ndarray:  # pragma: no cover
    """Pixel centres inside (or on) the convex hull of each object's pixel edge midpoints,
    counted as scikit-image's ``convex_hull_image`` counts them, in each object's box.
    Coordinates are doubled, so a pixel (r, c) is (2r, 2c) and its midpoints integers: a
    row's first and last pixels give the leftmost and rightmost midpoint of doubled rows
    2r - 1, 2r and 2r + 1, and those extremes of each doubled row, in row order, are the
    hull's candidates already sorted (no sort to compile or run)."""
    areas = np.zeros(boxes.shape[0], np.int64)
    for o in range(boxes.shape[0]):
        top, bottom, left, right = boxes[o, 0], boxes[o, 1], boxes[o, 2], boxes[o, 3]
        levels = 2 * (bottom - top) + 1  # doubled rows -1 .. 2 (bottom - top) - 1
        lowest = np.full(levels, 1 << 40, np.int64)
        highest = np.full(levels, -(1 << 40), np.int64)
        for r in range(top, bottom):
            first, last = -1, -1
            for c in range(left, right):
                if labels[r, c] == o + 1:
                    last = c
                    if first < 0:
                        first = c
            if first < 0:
                continue
            level, a, b = 2 * (r - top) + 1, 2 * (first - left), 2 * (last - left)
            lowest[level] = min(lowest[level], a - 1)
            highest[level] = max(highest[level], b + 1)
            for side in (level - 1, level + 1):  # the top and bottom edges' midpoints
                lowest[side] = min(lowest[side], a)
                highest[side] = max(highest[side], b)
        points = np.empty((2 * levels, 2), np.int64)
        n = 0
        for level in range(levels):
            if lowest[level] <= highest[level]:
                points[n, 0], points[n, 1] = level - 1, lowest[level]
                n += 1
                if highest[level] > lowest[level]:
                    points[n, 0], points[n, 1] = level - 1, highest[level]
                    n += 1
        hull, k = _hull(points[:n])
        for r in range(bottom - top):
            # centres (2r, 2c) on the inner side of every edge a -> b:
            # (b0 - a0) * (2c - a1) >= (b1 - a1) * (2r - a0)
            low, high = 0, right - left - 1
            for e in range(k):
                a0, a1 = hull[e, 0], hull[e, 1]
                b0, b1 = hull[(e + 1) % k, 0], hull[(e + 1) % k, 1]
                du, bound = b0 - a0, (b0 - a0) * a1 + (b1 - a1) * (2 * r - a0)
                if du > 0:
                    low = max(low, -(-bound // (2 * du)))
                elif du < 0:
                    high = min(high, -bound // (-2 * du))
                elif bound > 0:
                    high = -1
            areas[o] += max(high - low + 1, 0)
    return areas


@numba.njit(cache=True, nogil=True)
def _topology_counts(labels, count) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
    """Per object: the histogram of scikit-image's perimeter codes of its border pixels (in
    its own mask, 4-connected erosion) and the counts of its 2x2 configuration codes (every
    window touching it, the image's outside empty)."""
    rows, cols = labels.shape
    border = np.zeros((rows, cols), np.bool_)
    for r in range(rows):
        for c in range(cols):
            label = labels[r, c]
            if label > 0:
                border[r, c] = (
                    r == 0
                    or c == 0
                    or r == rows - 1
                    or c == cols - 1
                    or labels[r - 1, c] != label
                    or labels[r + 1, c] != label
                    or labels[r, c - 1] != label
                    or labels[r, c + 1] != label
                )
    perimeter = np.zeros((count, 50), np.int64)
    for r in range(rows):
        for c in range(cols):
            label = labels[r, c]
            if not border[r, c]:
                continue
            code = 1
            for dr in range(-1, 2):
                for dc in range(-1, 2):
                    i, j = r + dr, c + dc
                    if (dr or dc) and 0 <= i < rows and 0 <= j < cols:
                        if border[i, j] and labels[i, j] == label:
                            code += 10 if dr and dc else 2
            perimeter[label - 1, code] += 1
    windows = np.zeros((count, 16), np.int64)
    corner = np.zeros(4, labels.dtype)  # a window's pixel, above, left and above-left
    for r in range(rows + 1):
        for c in range(cols + 1):
            corner[0] = labels[r, c] if r < rows and c < cols else 0
            corner[1] = labels[r - 1, c] if r > 0 and c < cols else 0
            corner[2] = labels[r, c - 1] if r < rows and c > 0 else 0
            corner[3] = labels[r - 1, c - 1] if r > 0 and c > 0 else 0
            for i in range(4):
                label, code = corner[i], 0
                for j in range(4):
                    if corner[j] == label:
                        code += 1 << j
                if label > 0 and code & ((1 << i) - 1) == 0:  # once per label in the window
                    windows[label - 1, code] += 1
    return perimeter, windows


def _radii(
    labels: np.ndarray, boxes: np.ndarray, to_edge: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Maximum, mean and median distance of each object's pixels to its outside: cp_measure's
    distance transform of the object padded by one pixel, which for an object clear of the
    image's edge is ``to_edge`` (radial.to_edges) where given."""
    radii = np.zeros((3, len(boxes)))
    rows, cols = labels.shape
    for index, (top, bottom, left, right) in enumerate(boxes):
        box = slice(top, bottom), slice(left, right)
        mask = labels[box] == index + 1
        inner = top > 0 and left > 0 and bottom < rows and right < cols
        if to_edge is not None and inner:
            inside = to_edge[box][mask]
        else:
            mask = np.pad(mask, 1)
            inside = ndimage.distance_transform_edt(mask)[mask]
        radii[:, index] = inside.max(), inside.mean(), np.median(inside)
    return radii[0], radii[1], radii[2]


def get_sizeshape(
    labels: np.ndarray, to_edge: np.ndarray | None = None, boxes: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """cp_measure's ``get_sizeshape(labels, None, calculate_advanced=False,
    new_features=False)`` of a 2D label image (labels 1..N, no gaps), feature -> value per
    object. ``to_edge``: ``radial.to_edges(labels)`` where already made (the radial
    distribution's), so most radii need no transform of their own; ``boxes``:
    ``objects.bounding_boxes(labels)`` where already made."""
    count = int(labels.max())
    boxes = bounding_boxes(labels) if boxes is None else boxes
    rows, cols = np.indices(labels.shape)
    flat = labels.ravel()
    area = np.bincount(flat, minlength=count + 1)[1:].astype(float)
    centre_y = np.bincount(flat, rows.ravel().astype(float), count + 1)[1:] / area
    centre_x = np.bincount(flat, cols.ravel().astype(float), count + 1)[1:] / area
    box_area = ((boxes[:, 1] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 2])).astype(float)
    convex_area = _convex_areas(labels, boxes).astype(float)
    perimeter_codes, window_codes = _topology_counts(labels, count)
    perimeter = np.array([codes @ _PERIMETER_WEIGHTS for codes in perimeter_codes])
    _, central, _, _ = spatial_moments_2d(labels)
    axis_major, axis_minor, eccentricity, orientation = axes_eccentricity_orientation(
        inertia_2d(central)
    )
    maximum_radius, mean_radius, median_radius = _radii(labels, boxes, to_edge)
    return {
        F_AREA: area,
        F_BBOX_AREA: box_area,
        F_CONVEX_AREA: convex_area,
        F_EQUIVALENT_DIAMETER: np.array([(2 * 2 * a / np.pi) ** (1 / 2) for a in area]),
        F_PERIMETER: perimeter,
        F_MAJOR_AXIS_LENGTH: axis_major,
        F_MINOR_AXIS_LENGTH: axis_minor,
        F_ECCENTRICITY: eccentricity,
        F_ORIENTATION: orientation * (180 / np.pi),
        F_CENTER_X: centre_x,
        F_CENTER_Y: centre_y,
        F_MIN_X: boxes[:, 2],
        F_MAX_X: boxes[:, 3],
        F_MIN_Y: boxes[:, 0],
        F_MAX_Y: boxes[:, 1],
        F_FORM_FACTOR: 4.0 * np.pi * area / perimeter**2,
        F_EXTENT: area / box_area,
        F_SOLIDITY: area / convex_area,
        F_COMPACTNESS: perimeter**2 / np.maximum(4.0 * np.pi * area, 1),
        F_EULER_NUMBER: window_codes @ _EULER_8,
        F_MAXIMUM_RADIUS: maximum_radius,
        F_MEAN_RADIUS: mean_radius,
        F_MEDIAN_RADIUS: median_radius,
    }
