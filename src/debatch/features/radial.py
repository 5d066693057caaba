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

import numpy as np
import scipy.sparse
from centrosome import zernike
from centrosome.cpmorphology import color_labels, distance_to_edge
from centrosome.propagate import propagate


def _centres(distance: np.ndarray, labels: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of each object's first (row-major) pixel farthest from its edge."""
    flat_labels, flat_distance = labels.ravel(), distance.ravel()
    maxima = np.full(n + 1, -np.inf)
    np.maximum.at(maxima, flat_labels, flat_distance)
    at_max = np.flatnonzero((flat_labels > 0) & (flat_distance == maxima[flat_labels]))
    first = np.full(n + 1, labels.size, np.intp)
    np.minimum.at(first, flat_labels[at_max], at_max)
    return np.unravel_index(first[1:], labels.shape)


class RadialGeometry:
    """Ring and sector of every measurable pixel of one object set (labels 1..N)."""

    def __init__(self, labels: np.ndarray, bins: int):
        self.count, self.bins = int(labels.max()), bins
        to_edge = distance_to_edge(labels)
        ci, cj = _centres(to_edge, labels, self.count)
        seeds = np.zeros(labels.shape, int)
        seeds[ci, cj] = labels[ci, cj]
        colours = color_labels(labels)
        from_centre = np.zeros(labels.shape)
        reached = np.zeros(labels.shape, int)
        for colour in range(1, int(colours.max()) + 1):  # objects of one colour never touch
            mask = colours == colour
            grown, distance = propagate(np.zeros(labels.shape), seeds, mask, 1)
            from_centre[mask], reached[mask] = distance[mask], grown[mask]
        good = reached > 0
        self.index = np.flatnonzero(good)
        self.objects = labels.ravel()[self.index].astype(np.intp) - 1
        owner = reached.ravel()[self.index] - 1
        scaled = from_centre.ravel()[self.index] / (
            from_centre.ravel()[self.index] + to_edge.ravel()[self.index] + 0.001
        )
        self.ring = np.minimum((scaled * bins).astype(int), bins)
        rows, cols = np.unravel_index(self.index, labels.shape)
        di, dj = rows - ci[owner], cols - cj[owner]
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
            with np.errstate(divide="ignore", invalid="ignore"):
                means = np.ma.MaskedArray(totals / counts, counts == 0)  # sectors with pixels
                cv = np.std(means, 1) / np.mean(means, 1)
            cv[(counts > 0).sum(1) == 0] = 0
            suffix = f"{ring + 1}of{self.bins}"
            out[f"RadialDistribution_FracAtD_{suffix}"] = fraction[:, ring]
            out[f"RadialDistribution_MeanFrac_{suffix}"] = mean_fraction[:, ring]
            out[f"RadialDistribution_RadialCV_{suffix}"] = np.asarray(cv, float)
        return out


class ZernikeBasis:
    """Zernike polynomials on each object's minimum enclosing circle, for intensity moments
    (``RadialDistribution_ZernikeMagnitude`` / ``Phase``); evaluated once per object set."""

    def __init__(self, labels: np.ndarray, degree: int):
        self.count = int(labels.max())
        self.indexes = zernike.get_zernike_indexes(degree + 1)
        centres, radii = zernike.minimum_enclosing_circle(labels, np.arange(1, self.count + 1))
        radii = np.asarray(radii, float)
        rows, cols = np.nonzero(labels)
        self.index = rows * labels.shape[1] + cols
        self.objects = labels[rows, cols].astype(np.intp) - 1
        self.pixels = np.bincount(self.objects, minlength=self.count).astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):  # 1-px objects: radius 0
            y = (rows - centres[self.objects, 0]) / radii[self.objects]
            x = (cols - centres[self.objects, 1]) / radii[self.objects]
        self.r_square, self.z = x * x + y * y, y + 1j * x
        self.coefficients = zernike.construct_zernike_lookuptable(self.indexes)

    def polynomials(self):
        """(n, m, values on the object pixels) for every index (0 outside the unit circle)."""
        power, powers = self.z, {}
        for m in range(1, int(self.indexes[:, 1].max()) + 1):
            powers[m] = power
            power = power * self.z
        for k, (n, m) in enumerate(self.indexes):
            radial = np.zeros_like(self.r_square)
            for c in self.coefficients[k, : (n - m) // 2 + 1]:  # Horner on r^2
                radial *= self.r_square
                radial += c
            radial[self.r_square > 1] = 0
            yield n, m, (radial if m == 0 else radial * powers[m])

    def measure(self, images: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
        """{channel: {``RadialDistribution_ZernikeMagnitude_{n}_{m}``: ..., ``Phase``: ...}}:
        every channel's moments of one polynomial in one sparse product (object sums)."""
        channels = list(images)
        weights = np.stack([images[c].ravel()[self.index] for c in channels], axis=1)
        sums = scipy.sparse.csr_matrix(
            (np.ones(len(self.objects)), (self.objects, np.arange(len(self.objects)))),
            shape=(self.count, len(self.objects)),
        )
        out = {channel: {} for channel in channels}
        for n, m, values in self.polynomials():
            moments = sums @ (values[:, None] * weights)  # (objects, channels)
            real, imag = moments.real, (np.zeros_like(moments.real) if m == 0 else moments.imag)
            with np.errstate(invalid="ignore", divide="ignore"):
                magnitude = np.sqrt(real * real + imag * imag) / self.pixels[:, None]
            phase = np.arctan2(real, imag)
            for i, channel in enumerate(channels):
                out[channel][f"RadialDistribution_ZernikeMagnitude_{n}_{m}"] = magnitude[:, i]
                out[channel][f"RadialDistribution_ZernikePhase_{n}_{m}"] = phase[:, i]
        return out
