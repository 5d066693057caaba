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

import numpy as np


class ObjectPixels:
    """The pixels of one object set: flat indexes, 0-based object of each, object count."""

    def __init__(self, labels: np.ndarray):
        flat = labels.ravel()
        self.index = np.flatnonzero(flat)
        self.objects = flat[self.index].astype(np.intp) - 1
        self.count = int(flat.max(initial=0))

    def sum(self, values: np.ndarray, where: np.ndarray | None = None) -> np.ndarray:
        """Per-object sum of ``values`` (one per object pixel), over ``where`` if given."""
        if where is None:
            return np.bincount(self.objects, values, self.count)
        return np.bincount(self.objects[where], values[where], self.count)

    def maximum(self, values: np.ndarray) -> np.ndarray:
        out = np.full(self.count, -np.inf)
        np.maximum.at(out, self.objects, values)
        return out


def _orthogonal_regression(first: np.ndarray, second: np.ndarray) -> tuple[float, float]:
    """Costes' regression line second = a * first + b, on pixels where either is nonzero."""
    nonzero = (first > 0) | (second > 0)
    x, y = first[nonzero], second[nonzero]
    xvar, yvar = np.var(x, ddof=1), np.var(y, ddof=1)
    covar = 0.5 * (np.var(x + y, ddof=1) - (xvar + yvar))
    with np.errstate(divide="ignore", invalid="ignore"):
        a = ((yvar - xvar) + np.sqrt((yvar - xvar) ** 2 + 4 * covar**2)) / (2 * covar)
    return float(a), float(np.mean(y) - a * np.mean(x))


def _first_step_below(values: np.ndarray, steps: np.ndarray, estimate: np.ndarray) -> np.ndarray:
    """For each value, the first index m with ``values < steps[m]`` (increasing ``steps``),
    from an estimate that is off by at most one; exact comparisons, as CellProfiler makes them."""
    last = len(steps) - 1
    m = np.clip(estimate, 0, last)
    m = np.where((values >= steps[m]) & (m < last), m + 1, m)
    below = np.maximum(m - 1, 0)
    return np.where((m > 0) & (values < steps[below]), below, m)


class _Background:
    """Pearson r of the pixel pairs below Costes' candidate thresholds, for every candidate.

    Candidate m (1..scale) keeps the pixels with ``first < m / scale`` or ``second < a m /
    scale + b``; with a > 0 the kept set only grows with m, so each pixel enters at one m and
    the sums of every candidate's set are cumulative sums over the entry points."""

    def __init__(self, first, second, a, b, scale):
        self.first, self.second, self.a, self.b, self.scale = first, second, a, b, scale
        self.monotone = np.isfinite(a) and np.isfinite(b) and a > 0 and scale <= 2**20
        if self.monotone:
            steps = np.arange(scale + 2) / scale
            entry_first = _first_step_below(
                first, steps, np.floor(first * scale).astype(np.intp) + 1
            )
            second_steps = a * steps + b
            guess = np.floor((second - b) / a * scale)
            guess = np.clip(np.nan_to_num(guess, nan=scale + 1), -1, scale + 1).astype(np.intp) + 1
            entry = np.minimum(entry_first, _first_step_below(second, second_steps, guess))
            x, y = first - first.mean(), second - second.mean()  # centred: no cancellation
            self.sums = [
                np.cumsum(np.bincount(entry, weights, scale + 2))
                for weights in (None, x, y, x * x, y * y, x * y)
            ]

    def count_and_r(self, m: float) -> tuple[int, float]:
        if self.monotone:
            n, sx, sy, sxx, syy, sxy = (s[int(m)] for s in self.sums)
            n = int(round(n))
        else:  # a <= 0 (anti-correlated channels): evaluate the candidate directly
            threshold = m / self.scale
            kept = (self.first < threshold) | (self.second < self.a * threshold + self.b)
            n = int(np.count_nonzero(kept))
            if n <= 2:
                return n, np.nan
            x, y = self.first[kept], self.second[kept]
            x, y = x - x.mean(), y - y.mean()
            sx = sy = 0.0
            sxx, syy, sxy = x @ x, y @ y, x @ y
        if n <= 2:
            return n, np.nan
        with np.errstate(divide="ignore", invalid="ignore"):
            r = (sxy - sx * sy / n) / np.sqrt((sxx - sx * sx / n) * (syy - sy * sy / n))
        return n, float(r)


def costes_thresholds(first: np.ndarray, second: np.ndarray, scale: int) -> tuple[float, float]:
    """Costes' automatic thresholds of two whole images, CellProfiler's "Faster" bisection:
    the highest candidate whose below-threshold pixels still correlate (r >= 0), searched
    1/6 below the top of a shrinking window, minus one grid step."""
    first, second = np.ravel(first).astype(np.float64), np.ravel(second).astype(np.float64)
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


def pair_coefficients(
    pixels: ObjectPixels,
    values: tuple[np.ndarray, np.ndarray],
    ranks: tuple[np.ndarray, np.ndarray],
    maxima: tuple[np.ndarray, np.ndarray],
    threshold: float,
    costes: tuple[float, float],
) -> dict[str, np.ndarray]:
    """Every coefficient of one channel pair for each object; keys name the direction
    (``Manders_1`` = the first channel's share, as cp_measure's keys)."""
    x, y = values
    mean_x, mean_y = (
        _ratio(pixels.sum(v), np.bincount(pixels.objects, minlength=pixels.count)) for v in values
    )
    dx, dy = x - mean_x[pixels.objects], y - mean_y[pixels.objects]
    out = {
        "Correlation_Pearson": _ratio(
            pixels.sum(dx * dy), np.sqrt(pixels.sum(dx * dx) * pixels.sum(dy * dy))
        )
    }
    above_x = x >= threshold / 100 * maxima[0][pixels.objects]
    above_y = y >= threshold / 100 * maxima[1][pixels.objects]
    both = above_x & above_y
    total_x, total_y = pixels.sum(x, above_x), pixels.sum(y, above_y)
    rank_x, rank_y = ranks
    top = max(rank_x.max(initial=0), rank_y.max(initial=0)) + 1
    weight = (top - np.abs(rank_x - rank_y)) / top
    squares_x, squares_y, product = (pixels.sum(v, both) for v in (x * x, y * y, x * y))
    zeros = np.zeros(pixels.count)
    any_both = bool(both.any())  # CellProfiler: all zero when no object has such a pixel
    out |= {
        "Correlation_Manders_1": _ratio(pixels.sum(x, both), total_x) if any_both else zeros,
        "Correlation_Manders_2": _ratio(pixels.sum(y, both), total_y) if any_both else zeros,
        "Correlation_RWC_1": _ratio(pixels.sum(x * weight, both), total_x) if any_both else zeros,
        "Correlation_RWC_2": _ratio(pixels.sum(y * weight, both), total_y) if any_both else zeros,
        "Correlation_Overlap": _ratio(product, np.sqrt(squares_x * squares_y))
        if any_both
        else zeros,
        "Correlation_K_1": _ratio(product, squares_x) if any_both else zeros,
        "Correlation_K_2": _ratio(product, squares_y) if any_both else zeros,
    }
    return out | _costes_coefficients(pixels, x, y, costes)


def _costes_coefficients(pixels: ObjectPixels, x, y, costes) -> dict[str, np.ndarray]:
    """Manders with the image's Costes thresholds: strictly above both in the numerator,
    at or above the channel's own threshold in the denominator (CellProfiler's convention)."""
    threshold_x, threshold_y = costes
    both = (x > threshold_x) & (y > threshold_y)
    zeros = np.zeros(pixels.count)
    if not both.any():
        return {"Correlation_Costes_1": zeros, "Correlation_Costes_2": zeros}
    total_x = pixels.sum(x, x >= threshold_x) if (x > threshold_x).any() else zeros
    total_y = pixels.sum(y, y >= threshold_y) if (y > threshold_y).any() else zeros
    return {
        "Correlation_Costes_1": _ratio(pixels.sum(x, both), total_x),
        "Correlation_Costes_2": _ratio(pixels.sum(y, both), total_y),
    }
