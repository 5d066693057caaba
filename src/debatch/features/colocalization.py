"""MeasureColocalization of objects, as CellProfiler computes it (``run_image_pair_objects``).

Per object and channel pair: Pearson correlation, Manders, rank-weighted colocalization (RWC),
Overlap and K (thresholds: a percentage of each object's maximum), and Manders with Costes'
automatic thresholds. Two things make CellProfiler's numbers differ from measuring each object
alone (which cp_measure 0.3 does, and which is why its RWC and Costes miss CellProfiler's):

- Costes' thresholds are found once on the *whole image* (every pixel pair, "Faster"
  bisection) and applied to every object;
- RWC ranks pixel intensities over all pixels of all objects of the set, not per object.

Everything is vectorised over objects (one ``bincount`` per sum), and the whole-image Costes
search, which CellProfiler runs as ~60 Pearson correlations of up to every pixel, is exact
from cumulative sums: a pixel leaves the candidate background at a threshold that can be
computed in advance, so each candidate's correlation is a lookup.
"""

from __future__ import annotations

import numba
import numpy as np


class ObjectPixels:
    """The pixels of one object set: flat indexes, 0-based object of each, object count."""

    def __init__(self, labels: np.ndarray):
        flat = labels.ravel()
        self.index = np.flatnonzero(flat)
        self.objects = flat[self.index].astype(np.intp) - 1
        self.count = int(flat.max(initial=0))

    def mean(self, values: np.ndarray) -> np.ndarray:
        """Per-object mean of ``values`` (one per object pixel)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            sums = np.bincount(self.objects, values, self.count)
            return sums / np.bincount(self.objects, minlength=self.count)

    def maximum(self, values: np.ndarray) -> np.ndarray:
        out = np.full(self.count, -np.inf)
        np.maximum.at(out, self.objects, values)
        return out


def _orthogonal_regression(first: np.ndarray, second: np.ndarray) -> tuple[float, float]:
    """Costes' regression line second = a * first + b, on pixels where either is nonzero."""
    nonzero = (first > 0) | (second > 0)
    x, y = (first, second) if nonzero.all() else (first[nonzero], second[nonzero])
    xvar, yvar = np.var(x, ddof=1), np.var(y, ddof=1)
    covar = 0.5 * (np.var(x + y, ddof=1) - (xvar + yvar))
    with np.errstate(divide="ignore", invalid="ignore"):
        a = ((yvar - xvar) + np.sqrt((yvar - xvar) ** 2 + 4 * covar**2)) / (2 * covar)
    return float(a), float(np.mean(y) - a * np.mean(x))


@numba.njit(cache=True, nogil=True)
def _background_sums(first, second, steps, second_steps, a, b, centres):  # pragma: no cover
    """(candidates, 6) sums of 1, x, y, x^2, y^2, xy (x, y: the pixels less ``centres``) over
    each candidate's background: summed at the candidate where each pixel enters, in one pass
    over the pixels (a candidate's six sums share a cache line), then accumulated in place
    over the candidates (np.cumsum's order and figures, without a fresh 3 MB array per channel
    pair; on small sites that allocation cost more than the pass). A pixel enters at the
    first m with ``first < steps[m]`` or ``second < second_steps[m]``: estimated from the line,
    which is off by at most one, then settled by exact comparisons, as CellProfiler makes them
    (written out inline: a helper function call here costs four times the whole loop)."""
    scale, last = steps.shape[0] - 2, steps.shape[0] - 1
    sums = np.zeros((steps.shape[0], 6))
    for p in range(first.shape[0]):
        u, v = first[p], second[p]
        m = min(max(int(np.floor(u * scale)) + 1, 0), last)
        if u >= steps[m] and m < last:
            m += 1
        if m > 0 and u < steps[m - 1]:
            m -= 1
        guess = np.floor((v - b) / a * scale)
        guess = scale + 1.0 if np.isnan(guess) else min(max(guess, -1.0), scale + 1.0)
        k = min(max(int(guess) + 1, 0), last)
        if v >= second_steps[k] and k < last:
            k += 1
        if k > 0 and v < second_steps[k - 1]:
            k -= 1
        entry = min(m, k)
        x, y = u - centres[0], v - centres[1]  # centred: no cancellation
        sums[entry, 0] += 1.0
        sums[entry, 1] += x
        sums[entry, 2] += y
        sums[entry, 3] += x * x
        sums[entry, 4] += y * y
        sums[entry, 5] += x * y
    for m in range(1, sums.shape[0]):
        for c in range(6):
            sums[m, c] += sums[m - 1, c]
    return sums


@numba.njit(cache=True, nogil=True)
def _below_sums(first, second, first_limit, second_limit, centres):  # pragma: no cover
    """The six sums of ``_background_sums`` over the pixels with ``first < first_limit`` or
    ``second < second_limit``, in one pass."""
    sums = np.zeros(6)
    for p in range(first.shape[0]):
        if first[p] < first_limit or second[p] < second_limit:
            x, y = first[p] - centres[0], second[p] - centres[1]
            sums[0] += 1.0
            sums[1] += x
            sums[2] += y
            sums[3] += x * x
            sums[4] += y * y
            sums[5] += x * y
    return sums


class _Background:
    """Pearson r of the pixel pairs below Costes' candidate thresholds, for every candidate.

    Candidate m (1..scale) keeps the pixels with ``first < m / scale`` or ``second < a m /
    scale + b``; with a > 0 the kept set only grows with m, so each pixel enters at one m and
    the sums of every candidate's set are cumulative sums over the entry points."""

    def __init__(self, first, second, a, b, scale):
        self.first, self.second, self.a, self.b, self.scale = first, second, a, b, scale
        self.centres = np.array([first.mean(), second.mean()])  # centred: no cancellation
        self.monotone = np.isfinite(a) and np.isfinite(b) and a > 0 and scale <= 2**20
        if self.monotone:
            steps = np.arange(scale + 2) / scale
            self.sums = _background_sums(first, second, steps, a * steps + b, a, b, self.centres)

    def count_and_r(self, m: float) -> tuple[int, float]:
        if self.monotone:
            sums = self.sums[int(m)]
        else:  # a <= 0 (anti-correlated channels): sum the candidate's pixels directly
            threshold = m / self.scale
            limit = self.a * threshold + self.b
            sums = _below_sums(self.first, self.second, threshold, limit, self.centres)
        n, sx, sy, sxx, syy, sxy = sums
        n = int(round(n))
        if n <= 2:
            return n, np.nan
        with np.errstate(divide="ignore", invalid="ignore"):
            r = (sxy - sx * sy / n) / np.sqrt((sxx - sx * sx / n) * (syy - sy * sy / n))
        return n, float(r)


def costes_thresholds(first: np.ndarray, second: np.ndarray, scale: int) -> tuple[float, float]:
    """Costes' automatic thresholds of two whole images, CellProfiler's "Faster" bisection:
    the highest candidate whose below-threshold pixels still correlate (r >= 0), searched
    1/6 below the top of a shrinking window, minus one grid step."""
    first, second = (np.ascontiguousarray(v, np.float64).ravel() for v in (first, second))
    a, b = _orthogonal_regression(first, second)
    background = _Background(first, second, a, b, scale)
    left, right = 1, scale
    mid, last_mid, valid = ((right - left) // (6 / 5)) + left, 0, 1
    while last_mid != mid:
        n, r = background.count_and_r(mid)
        if n <= 2 or r < 0:
            left = mid - 1
        elif r >= 0:
            right, valid = mid + 1, mid
        last_mid = mid
        mid = ((right - left) // (6 / 5 if right - left > 6 else 2)) + left
    threshold = (valid - 1) / scale
    return threshold, a * threshold + b


def dense_ranks(values: np.ndarray) -> np.ndarray:
    """0-based rank of each value among the distinct values (ties share a rank)."""
    return np.unique(values, return_inverse=True)[1]


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return numerator / denominator


# columns of _pair_sums' output
_DXDY, _DXDX, _DYDY, _TOTAL_X, _TOTAL_Y, _X, _Y, _WX, _WY, _XX, _YY, _XY = range(12)
_COSTES_X, _COSTES_Y, _COSTES_TOTAL_X, _COSTES_TOTAL_Y = range(12, 16)


@numba.njit(cache=True, nogil=True)
def _pair_sums(objects, x, y, ranks, means, limits, top, costes, count):  # pragma: no cover
    """Every per-object sum of one channel pair in one pass over the object pixels (the same
    products, summed in the same order, as one bincount per sum), and whether any pixel is
    above both thresholds, above both of Costes', above Costes' first, above its second."""
    sums = np.zeros((count, 16))
    flags = np.zeros(4, np.bool_)
    for p in range(objects.shape[0]):
        o, u, v = objects[p], x[p], y[p]
        du, dv = u - means[0][o], v - means[1][o]
        sums[o, _DXDY] += du * dv
        sums[o, _DXDX] += du * du
        sums[o, _DYDY] += dv * dv
        above_x, above_y = u >= limits[0][o], v >= limits[1][o]
        if above_x:
            sums[o, _TOTAL_X] += u
        if above_y:
            sums[o, _TOTAL_Y] += v
        if above_x and above_y:
            flags[0] = True
            weight = (top - abs(ranks[0][p] - ranks[1][p])) / top
            sums[o, _X] += u
            sums[o, _Y] += v
            sums[o, _WX] += u * weight
            sums[o, _WY] += v * weight
            sums[o, _XX] += u * u
            sums[o, _YY] += v * v
            sums[o, _XY] += u * v
        if u > costes[0] and v > costes[1]:
            flags[1] = True
            sums[o, _COSTES_X] += u
            sums[o, _COSTES_Y] += v
        flags[2] |= u > costes[0]
        flags[3] |= v > costes[1]
        if u >= costes[0]:
            sums[o, _COSTES_TOTAL_X] += u
        if v >= costes[1]:
            sums[o, _COSTES_TOTAL_Y] += v
    return sums, flags


def pair_coefficients(
    pixels: ObjectPixels,
    values: tuple[np.ndarray, np.ndarray],
    ranks: tuple[np.ndarray, np.ndarray],
    maxima: tuple[np.ndarray, np.ndarray],
    means: tuple[np.ndarray, np.ndarray],
    threshold: float,
    costes: tuple[float, float],
) -> dict[str, np.ndarray]:
    """Every coefficient of one channel pair for each object; keys name the direction
    (``Manders_1`` = the first channel's share, as cp_measure's keys). Per channel, its
    object pixels' ``values``, their dense ``ranks`` over all objects, and each object's
    maximum and mean. Manders, RWC, Overlap and K are all zero when no object has a pixel
    above both thresholds (CellProfiler's convention); Costes' Manders count pixels strictly
    above both of Costes' thresholds in the numerator, at or above the channel's own in the
    denominator."""
    top = max(ranks[0].max(initial=0), ranks[1].max(initial=0)) + 1
    limits = tuple(threshold / 100 * m for m in maxima)
    sums, (any_both, any_costes, costes_x, costes_y) = _pair_sums(
        pixels.objects, *values, ranks, means, limits, top, np.asarray(costes), pixels.count
    )
    s = sums.T
    zeros = np.zeros(pixels.count)
    out = {
        "Correlation_Pearson": _ratio(s[_DXDY], np.sqrt(s[_DXDX] * s[_DYDY])),
        "Correlation_Manders_1": _ratio(s[_X], s[_TOTAL_X]) if any_both else zeros,
        "Correlation_Manders_2": _ratio(s[_Y], s[_TOTAL_Y]) if any_both else zeros,
        "Correlation_RWC_1": _ratio(s[_WX], s[_TOTAL_X]) if any_both else zeros,
        "Correlation_RWC_2": _ratio(s[_WY], s[_TOTAL_Y]) if any_both else zeros,
        "Correlation_Overlap": _ratio(s[_XY], np.sqrt(s[_XX] * s[_YY])) if any_both else zeros,
        "Correlation_K_1": _ratio(s[_XY], s[_XX]) if any_both else zeros,
        "Correlation_K_2": _ratio(s[_XY], s[_YY]) if any_both else zeros,
    }
    if not any_costes:
        return out | {"Correlation_Costes_1": zeros, "Correlation_Costes_2": zeros}
    return out | {
        "Correlation_Costes_1": _ratio(s[_COSTES_X], s[_COSTES_TOTAL_X] if costes_x else zeros),
        "Correlation_Costes_2": _ratio(s[_COSTES_Y], s[_COSTES_TOTAL_Y] if costes_y else zeros),
    }
