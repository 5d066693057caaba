"""MeasureObjectIntensity of a 2D site: cp_measure's numba backend with its quartiles found by
selection instead of sorting.

cp_measure's ``get_intensity`` sorts every object's pixels twice (values, then absolute
deviations from the median) to read four order statistics; on a dense 1080 px field that sort
was most of the module. ``_segment_quantiles`` reads the same order statistics with
quickselect (a three-way partition: average time linear in the object's pixels, also where
many pixels share a value) and interpolates them with cp_measure's formula, so every number
equals cp_measure's bit for bit (tests/test_features.py compares the two), but for the sign of
a zero: where an object holds both -0.0 and 0.0, which of them a quartile reads can differ
(equal as numbers; raw images of unsigned pixels have no -0.0). The other reductions are
cp_measure's own kernels, called as its ``get_intensity`` calls them.
"""

from __future__ import annotations

import numba
import numpy as np
from cp_measure.core.measureobjectintensity import (
    C_LOCATION,
    INTEGRATED_INTENSITY,
    INTEGRATED_INTENSITY_EDGE,
    INTENSITY,
    LOC_CMI_X,
    LOC_CMI_Y,
    LOC_CMI_Z,
    LOC_MAX_X,
    LOC_MAX_Y,
    LOC_MAX_Z,
    LOWER_QUARTILE_INTENSITY,
    MAD_INTENSITY,
    MASS_DISPLACEMENT,
    MAX_INTENSITY,
    MAX_INTENSITY_EDGE,
    MEAN_INTENSITY,
    MEAN_INTENSITY_EDGE,
    MEDIAN_INTENSITY,
    MIN_INTENSITY,
    MIN_INTENSITY_EDGE,
    STD_INTENSITY,
    STD_INTENSITY_EDGE,
    UPPER_QUARTILE_INTENSITY,
)
from cp_measure.primitives._segment_numba import (
    flatten_numba,
    inner_boundary,
    segment_moments,
    segment_resid_sumsq,
    segment_stats,
)

# the edge measurements, in the order get_intensity computes them
_EDGE_FEATURES = [
    INTEGRATED_INTENSITY_EDGE,
    MEAN_INTENSITY_EDGE,
    STD_INTENSITY_EDGE,
    MIN_INTENSITY_EDGE,
    MAX_INTENSITY_EDGE,
]


@numba.njit(cache=True, nogil=True)
def _select(values: np.ndarray, first: int, last: int, k: int) -> None:  # pragma: no cover
    """Reorders values[first..last] so values[k] is its (k - first)-th smallest, the smaller
    ones before it and the larger after: quickselect with a median-of-three pivot and a
    three-way partition, so an object of one value (a blank or saturated channel) or of a few
    takes one pass per distinct value, not one per pixel."""
    while last > first:
        a, b, c = values[first], values[(first + last) // 2], values[last]
        pivot = max(min(a, b), min(max(a, b), c))
        below, i, above = first, first, last
        while i <= above:  # [first, below) < pivot, [below, i) == pivot, (above, last] > pivot
            value = values[i]
            if value < pivot:
                values[i], values[below] = values[below], value
                below += 1
                i += 1
            elif value > pivot:
                values[i], values[above] = values[above], value
                above -= 1
            else:
                i += 1
        if k < below:
            last = below - 1
        elif k > above:
            first = above + 1
        else:
            return


@numba.njit(cache=True, nogil=True)
def _pair(values, first, last, k):  # pragma: no cover
    """The k-th and the next order statistic of values[first..last] (the k-th twice when k is
    ``last``), k in [first, last]. Reorders the range: its k-th smallest at k, no larger ones
    before it, no smaller ones after."""
    _select(values, first, last, k)
    following = values[k]
    if k < last:
        following = values[k + 1]
        for j in range(k + 2, last + 1):
            following = min(following, values[j])
    return values[k], following


@numba.njit(cache=True, nogil=True)
def _position(n, fraction, legacy):  # pragma: no cover
    """cp_measure's interpolation of the ``fraction`` quantile of n sorted values: (the lower
    position, the weight of the next value)."""
    position = n * fraction if legacy else (n - 1) * fraction
    low = min(int(position), n - 1)
    return low, position - low


@numba.njit(cache=True, nogil=True)
def _object_quantiles(pixels, legacy):  # pragma: no cover
    """(lower quartile, median, upper quartile, MAD) of one object's pixels, reordering them.
    The median's selection splits the pixels at its position; each quartile is then selected in
    its own side, so the two selections never move each other's values."""
    first, last = np.int64(0), pixels.shape[0] - 1  # typed: a literal 0 compiles _pair twice
    middle, middle_weight = _position(pixels.shape[0], 0.5, legacy)
    at_middle, after_middle = _pair(pixels, first, last, middle)
    out = np.empty(4)
    out[1] = at_middle * (1.0 - middle_weight) + after_middle * middle_weight
    for i, fraction in ((0, 0.25), (2, 0.75)):
        low, weight = _position(pixels.shape[0], fraction, legacy)
        if low == middle:
            value, following = at_middle, after_middle
        elif low < middle:  # the lower side; the value after its last is the median's
            value, following = _pair(pixels, first, middle - 1, low)
            if low == middle - 1:
                following = at_middle
        else:
            value, following = _pair(pixels, middle + 1, last, low)
        out[i] = value * (1.0 - weight) + following * weight
    value, following = _pair(np.abs(pixels - out[1]), first, last, middle)  # the MAD: a median
    out[3] = value * (1.0 - middle_weight) + following * middle_weight
    return out


@numba.njit(cache=True, nogil=True)
def _segment_quantiles(values, segment, counts, legacy):  # pragma: no cover
    """Per object (segment 0..n-1): lower quartile, median, upper quartile and MAD (the median
    of absolute deviations from the median; cp_measure's 2D convention), as four arrays."""
    n = counts.shape[0]
    starts = np.zeros(n + 1, np.int64)
    for k in range(n):
        starts[k + 1] = starts[k] + counts[k]
    grouped = np.empty(starts[n], np.float64)
    cursor = starts[:n].copy()
    for i in range(values.shape[0]):
        grouped[cursor[segment[i]]] = values[i]
        cursor[segment[i]] += 1
    lower, median, upper, mad = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
    for k in range(n):
        if counts[k] > 0:
            quantiles = _object_quantiles(grouped[starts[k] : starts[k + 1]], legacy)
            lower[k], median[k], upper[k], mad[k] = quantiles
    return lower, median, upper, mad


def get_intensity(labels: np.ndarray, image: np.ndarray, legacy: bool = True) -> dict:
    """cp_measure's ``get_intensity`` of a 2D ``image`` (labels 1..N, no gaps): the same keys
    in the same order with the same values. ``legacy``: CellProfiler's quartile convention
    (n * q; numpy's (n - 1) * q otherwise); the MAD is the median of absolute deviations
    either way (cp_measure's 1 / ndim quantile in 2D)."""
    n = int(labels.max(initial=0))
    integrated, mean, std, minimum, maximum, displacement = (np.zeros(n) for _ in range(6))
    lower, median, upper, mad = (np.zeros(n) for _ in range(4))
    cmi_x, cmi_y, cmi_z, max_x, max_y, max_z = (np.zeros(n) for _ in range(6))
    values, segment, xc, yc, zc = flatten_numba(
        np.ascontiguousarray(labels[np.newaxis]), np.ascontiguousarray(image[np.newaxis])
    )
    if values.size:
        count, integrated, minimum, maximum, max_x, max_y, max_z, *sums = segment_moments(
            values, segment, xc, yc, zc, n
        )
        sx, sy, sz, sxi, syi, szi = sums
        pixels = count.astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = integrated / pixels
            std = np.sqrt(segment_resid_sumsq(values, segment, n, mean) / pixels)
            cmi_x, cmi_y, cmi_z = sxi / integrated, syi / integrated, szi / integrated
            displacement = np.sqrt(
                (sx / pixels - cmi_x) ** 2 + (sy / pixels - cmi_y) ** 2 + (sz / pixels - cmi_z) ** 2
            )
        lower, median, upper, mad = _segment_quantiles(values, segment, count, legacy)
    edge = {feature: np.zeros(n) for feature in _EDGE_FEATURES}
    boundary = inner_boundary(np.ascontiguousarray(labels)) > 0
    edge_values = image[boundary].astype(np.float64)
    if edge_values.size:
        edge_segment = labels[boundary].astype(np.int64) - 1  # flatten_numba's type: one compile
        edge_count, edge_sum, edge_min, edge_max = segment_stats(edge_values, edge_segment, n)
        on_edge, edge_pixels = edge_count > 0, edge_count.astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            edge_mean = edge_sum / edge_pixels
            edge_ss = segment_resid_sumsq(edge_values, edge_segment, n, edge_mean)
            measured = (edge_sum, edge_mean, np.sqrt(edge_ss / edge_pixels), edge_min, edge_max)
        for feature, value in zip(_EDGE_FEATURES, measured):
            edge[feature][on_edge] = value[on_edge]
    columns = [
        (INTENSITY, INTEGRATED_INTENSITY, integrated),
        (INTENSITY, MEAN_INTENSITY, mean),
        (INTENSITY, STD_INTENSITY, std),
        (INTENSITY, MIN_INTENSITY, minimum),
        (INTENSITY, MAX_INTENSITY, maximum),
        (INTENSITY, MASS_DISPLACEMENT, displacement),
        (INTENSITY, LOWER_QUARTILE_INTENSITY, lower),
        (INTENSITY, MEDIAN_INTENSITY, median),
        (INTENSITY, MAD_INTENSITY, mad),
        (INTENSITY, UPPER_QUARTILE_INTENSITY, upper),
        (C_LOCATION, LOC_CMI_X, cmi_x),
        (C_LOCATION, LOC_CMI_Y, cmi_y),
        (C_LOCATION, LOC_CMI_Z, cmi_z),
        (C_LOCATION, LOC_MAX_X, max_x),
        (C_LOCATION, LOC_MAX_Y, max_y),
        (C_LOCATION, LOC_MAX_Z, max_z),
        *((INTENSITY, feature, edge[feature]) for feature in _EDGE_FEATURES),
    ]
    return {f"{category}_{feature}": value for category, feature, value in columns}
