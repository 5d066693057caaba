"""MeasureObjectIntensityDistribution with each object set's geometry computed once.

Everything costly in CellProfiler's radial distribution depends on the objects, not on the
channel: each pixel's distance from its object's centre and edge (hence its ring), its sector,
and the Zernike polynomials on each object's enclosing circle. cp_measure recomputes them for
every channel; here ``RadialGeometry`` is built once per object set and every channel only
sums its intensities into rings, sectors and moments, with the same numbers as cp_measure's
``get_radial_distribution`` and ``get_radial_zernikes`` (tests/test_features.py).

Rings are scaled per object (CellProfiler's "Scale the bins? Yes", its default); the centre is
the point farthest from the edge (first in row-major order on ties).
"""

from __future__ import annotations

import heapq

import numba
import numpy as np
from centrosome import zernike
from scipy import ndimage


def _centres(distance: np.ndarray, labels: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of each object's first (row-major) pixel farthest from its edge."""
    flat_labels, flat_distance = labels.ravel(), distance.ravel()
    maxima = np.full(n + 1, -np.inf)
    np.maximum.at(maxima, flat_labels, flat_distance)
    at_max = np.flatnonzero((flat_labels > 0) & (flat_distance == maxima[flat_labels]))
    first = np.full(n + 1, labels.size, np.intp)
    np.minimum.at(first, flat_labels[at_max], at_max)
    return np.unravel_index(first[1:], labels.shape)


@numba.njit(cache=True, nogil=True)
def _from_centres(labels, seed_rows, seed_cols):  # pragma: no cover
    """Each pixel's distance from its object's seed along 8-connected steps that stay inside
    the object (-1 where no such path reaches it): centrosome's ``propagate`` on a flat image
    (steps cost sqrt(1) or sqrt(2), added to the pixel's own distance as it is taken off the
    queue), which cp_measure runs once per colour of objects that never touch; one queue for
    all objects here, as every step stays inside its object."""
    rows, cols = labels.shape
    distances = np.full((rows, cols), -1.0)
    done = np.zeros((rows, cols), np.bool_)
    heap = [(0.0, np.int64(0))]
    heap.pop()
    for s in range(seed_rows.shape[0]):
        distances[seed_rows[s], seed_cols[s]] = 0.0
        heap.append((0.0, np.int64(seed_rows[s] * cols + seed_cols[s])))
    heapq.heapify(heap)
    while heap:
        _, index = heapq.heappop(heap)
        i1, j1 = index // cols, index % cols
        if done[i1, j1]:
            continue
        done[i1, j1] = True
        label, here = labels[i1, j1], distances[i1, j1]
        for i2 in range(max(i1 - 1, 0), min(i1 + 2, rows)):
            for j2 in range(max(j1 - 1, 0), min(j1 + 2, cols)):
                if done[i2, j2] or labels[i2, j2] != label:
                    continue
                reached = np.sqrt(float(abs(i2 - i1) + abs(j2 - j1))) + here
                if distances[i2, j2] == -1.0 or distances[i2, j2] > reached:
                    distances[i2, j2] = reached
                    heapq.heappush(heap, (reached, np.int64(i2 * cols + j2)))
    return distances


def to_edges(labels: np.ndarray) -> np.ndarray:
    """centrosome's ``distance_to_edge``: each object pixel's Euclidean distance to the nearest
    pixel outside its object. That pixel touches the object, so each object's transform is
    taken in its bounding box grown by one pixel (the image's edge is no edge, as before).
    AreaShape's radii are the same distances for objects clear of the image's edge."""
    out = np.zeros(labels.shape)
    rows, cols = labels.shape
    for label, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        grown = tuple(
            slice(max(s.start - 1, 0), min(s.stop + 1, size)) for s, size in zip(box, (rows, cols))
        )
        inside = labels[grown] == label
        out[grown][inside] = ndimage.distance_transform_edt(inside)[inside]
    return out


class RadialGeometry:
    """Ring and sector of every measurable pixel of one object set (labels 1..N)."""

    def __init__(self, labels: np.ndarray, bins: int, to_edge: np.ndarray | None = None):
        """``to_edge``: ``to_edges(labels)`` where already made."""
        self.count, self.bins = int(labels.max()), bins
        to_edge = to_edges(labels) if to_edge is None else to_edge
        ci, cj = _centres(to_edge, labels, self.count)
        from_centre = _from_centres(labels, ci.astype(np.int64), cj.astype(np.int64))
        self.index = np.flatnonzero(from_centre >= 0)
        self.objects = labels.ravel()[self.index].astype(np.intp) - 1
        scaled = from_centre.ravel()[self.index] / (
            from_centre.ravel()[self.index] + to_edge.ravel()[self.index] + 0.001
        )
        self.ring = np.minimum((scaled * bins).astype(int), bins)
        rows, cols = np.unravel_index(self.index, labels.shape)
        di, dj = rows - ci[self.objects], cols - cj[self.objects]
        self.sector = (di > 0).astype(int) + 2 * (dj > 0) + 4 * (np.abs(di) > np.abs(dj))
        self.pixels_per_ring = self._sum(np.ones(len(self.index)))

    def _sum(self, values: np.ndarray) -> np.ndarray:
        """(objects, bins + 1) sums of ``values`` per ring (the last one: overflow, empty
        when scaled)."""
        flat = np.bincount(
            self.objects * (self.bins + 1) + self.ring, values, self.count * (self.bins + 1)
        )
        return flat.reshape(self.count, self.bins + 1)

    def measure(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """FracAtD, MeanFrac and RadialCV of every ring, as ``RadialDistribution_*_{i}of{n}``."""
        values = image.ravel()[self.index]
        with np.errstate(divide="ignore", invalid="ignore"):
            fraction = self._sum(values) / self._sum(values).sum(1, keepdims=True)
            area_fraction = self.pixels_per_ring / self.pixels_per_ring.sum(1, keepdims=True)
            mean_fraction = fraction / (area_fraction + np.finfo(float).eps)
        cells = self.objects * 8 + self.sector
        out = {}
        for ring in range(self.bins):
            in_ring = self.ring == ring
            shape = (self.count, 8)
            totals = np.bincount(cells[in_ring], values[in_ring], self.count * 8).reshape(shape)
            counts = np.bincount(cells[in_ring], None, self.count * 8).reshape(shape)
            suffix = f"{ring + 1}of{self.bins}"
            out[f"RadialDistribution_FracAtD_{suffix}"] = fraction[:, ring]
            out[f"RadialDistribution_MeanFrac_{suffix}"] = mean_fraction[:, ring]
            out[f"RadialDistribution_RadialCV_{suffix}"] = sector_cv(totals, counts)
        return out


def sector_cv(totals: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per object (row), the coefficient of variation of its sectors' mean intensities over
    the sectors with pixels: CellProfiler's RadialCV, ``std / mean`` of the masked means as
    numpy.ma computes it, operation for operation, without numpy.ma's cost per call (small
    sites paid more for it than for measuring). In numpy.ma a masked sector adds 0 to the
    sums; a quotient that is not finite or whose divisor is below its dividend x tiny is masked
    and holds the dividend; a row whose mean is masked so has every deviation masked (CV 0),
    as has a row without pixels."""
    tiny = np.finfo(float).tiny
    kept = counts > 0
    n = kept.sum(1)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        means = np.where(kept, totals / counts, 0.0)
        sums = means.sum(1)
        mean = sums / n
        deviations = np.where(kept, means - mean[:, None], 0.0)
        std = np.sqrt((deviations * deviations).sum(1) / n)
        cv = std / mean
        masked_quotient = ~np.isfinite(cv) | (np.abs(std) * tiny >= np.abs(mean))
        masked_mean = ~np.isfinite(mean) | (np.abs(sums) * tiny >= n)
    cv[masked_quotient] = 0.0
    cv += masked_quotient * std
    cv[masked_mean] = 0.0
    return cv


@numba.njit(cache=True, nogil=True)
def _zernike_sums(y, x, objects, weights, indexes, coefficients, count):  # pragma: no cover
    """Per object, polynomial and weight column: the sums of polynomial x weight over the
    object's pixels (real, imaginary), with cp_measure's arithmetic per pixel (Horner on r^2,
    0 outside the unit circle, ``z = y + ix`` and its powers by repeated multiplication) and
    its summation order (pixels in row-major order), in one pass over the pixels."""
    polynomials, columns = indexes.shape[0], weights.shape[1]
    real = np.zeros((count, polynomials, columns))
    imag = np.zeros((count, polynomials, columns))
    top = 0
    for k in range(polynomials):
        top = max(top, indexes[k, 1])
    power_real, power_imag = np.empty(top + 1), np.empty(top + 1)
    for p in range(objects.shape[0]):
        r_square = x[p] * x[p] + y[p] * y[p]
        if r_square > 1:  # NaN (a one-pixel object) goes on, as in cp_measure
            continue
        a, b = y[p], x[p]
        for m in range(1, top + 1):
            power_real[m], power_imag[m] = a, b
            a, b = a * y[p] - b * x[p], a * x[p] + b * y[p]
        o = objects[p]
        for k in range(polynomials):
            n, m = indexes[k, 0], indexes[k, 1]
            radial = 0.0
            for c in range((n - m) // 2 + 1):
                radial *= r_square
                radial += coefficients[k, c]
            for c in range(columns):
                weighted = radial * weights[p, c]
                if m == 0:
                    real[o, k, c] += weighted
                else:
                    real[o, k, c] += weighted * power_real[m]
                    imag[o, k, c] += weighted * power_imag[m]
    return real, imag


class ZernikeBasis:
    """Zernike polynomials on each object's minimum enclosing circle, for the object's shape
    (``AreaShape_Zernike``) and intensity moments (``RadialDistribution_ZernikeMagnitude`` /
    ``Phase``): the circle is found once per object set and the polynomials evaluated once per
    pixel for the shape and every channel together (cp_measure redoes both per channel and
    again for the shape); the numbers are cp_measure's ``get_zernike`` and
    ``get_radial_zernikes`` (tests/test_features.py)."""

    def __init__(self, labels: np.ndarray, degree: int):
        self.count = int(labels.max())
        self.indexes = zernike.get_zernike_indexes(degree + 1)
        centres, radii = zernike.minimum_enclosing_circle(labels, np.arange(1, self.count + 1))
        self.radii = np.asarray(radii, float)
        rows, cols = np.nonzero(labels)
        self.index = rows * labels.shape[1] + cols
        self.objects = labels[rows, cols].astype(np.intp) - 1
        self.pixels = np.bincount(self.objects, minlength=self.count).astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):  # 1-px objects: radius 0
            self.y = (rows - centres[self.objects, 0]) / self.radii[self.objects]
            self.x = (cols - centres[self.objects, 1]) / self.radii[self.objects]
        self.coefficients = zernike.construct_zernike_lookuptable(self.indexes)

    def measure(
        self, images: dict[str, np.ndarray]
    ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, np.ndarray]]]:
        """(``{Zernike_{n}_{m}: ...}`` of the shape, ``{channel:
        {RadialDistribution_ZernikeMagnitude_{n}_{m}: ..., ...Phase_{n}_{m}: ...}}``)."""
        channels = list(images)
        weights = np.empty((len(self.objects), 1 + len(channels)))
        weights[:, 0] = 1.0  # the shape: the unweighted polynomial
        for i, channel in enumerate(channels, start=1):
            weights[:, i] = images[channel].ravel()[self.index]
        real, imag = _zernike_sums(
            self.y,
            self.x,
            self.objects,
            weights,
            np.asarray(self.indexes, np.int64),
            self.coefficients,
            self.count,
        )
        names = [f"{n}_{m}" for n, m in self.indexes]
        with np.errstate(invalid="ignore", divide="ignore"):
            magnitude = np.sqrt(real * real + imag * imag)
            shape = magnitude[:, :, 0] / (np.pi * self.radii * self.radii)[:, None]
            magnitude = magnitude[:, :, 1:] / self.pixels[:, None, None]
        phase = np.arctan2(real[:, :, 1:], imag[:, :, 1:])
        out = {channel: {} for channel in channels}
        for k, name in enumerate(names):
            for i, channel in enumerate(channels):
                out[channel][f"RadialDistribution_ZernikeMagnitude_{name}"] = magnitude[:, k, i]
                out[channel][f"RadialDistribution_ZernikePhase_{name}"] = phase[:, k, i]
        return {f"Zernike_{name}": shape[:, k] for k, name in enumerate(names)}, out
