"""MeasureGranularity with the image's spectrum computed once and reduced per object set.

CellProfiler's granular spectrum (Ravkin's method) is a property of the image: subsample,
subtract a morphological background, then erode and reconstruct N times. Only the last step,
each object's mean of the reconstruction at full resolution, depends on the objects. cp_measure
recomputes the whole spectrum for every object set; here ``granular_spectrum`` runs once per
channel and ``object_granularity`` reduces it for Nuclei, Cells and Cytoplasm, with the same
numbers (tests/test_features.py compares with cp_measure's ``get_granularity``). The
reconstruction, the cost of the spectrum, is Vincent's (1993) hybrid algorithm in numba; it
only takes maxima and minima of input values, so it equals scikit-image's exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import scipy.sparse
from scipy import ndimage
from skimage.morphology import dilation, disk, erosion

_CROSS = disk(1, dtype=bool)  # the 4-connected step CellProfiler erodes and reconstructs with


@numba.njit(cache=True, nogil=True)
def _reconstruct(marker: np.ndarray, mask: np.ndarray) -> np.ndarray:  # pragma: no cover
    """Grayscale reconstruction by dilation of ``marker`` under ``mask`` (4-connected)."""
    rows, cols = mask.shape
    out = np.minimum(marker, mask)
    for y in range(rows):  # raster scan: predecessors up and left
        for x in range(cols):
            value = out[y, x]
            if y > 0 and out[y - 1, x] > value:
                value = out[y - 1, x]
            if x > 0 and out[y, x - 1] > value:
                value = out[y, x - 1]
            out[y, x] = min(value, mask[y, x])
    queue = np.empty(rows * cols * 4 + 1, np.int64)
    head = tail = 0
    for y in range(rows - 1, -1, -1):  # anti-raster scan: successors down and right
        for x in range(cols - 1, -1, -1):
            value = out[y, x]
            if y < rows - 1 and out[y + 1, x] > value:
                value = out[y + 1, x]
            if x < cols - 1 and out[y, x + 1] > value:
                value = out[y, x + 1]
            value = min(value, mask[y, x])
            out[y, x] = value
            if (y < rows - 1 and out[y + 1, x] < value and out[y + 1, x] < mask[y + 1, x]) or (
                x < cols - 1 and out[y, x + 1] < value and out[y, x + 1] < mask[y, x + 1]
            ):
                queue[tail] = y * cols + x
                tail += 1
    while head < tail:  # propagate what the two scans could not reach
        p = queue[head]
        head += 1
        y, x = p // cols, p % cols
        for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            qy, qx = y + dy, x + dx
            if 0 <= qy < rows and 0 <= qx < cols:
                if out[qy, qx] < out[y, x] and out[qy, qx] != mask[qy, qx]:
                    out[qy, qx] = min(out[y, x], mask[qy, qx])
                    if tail == queue.shape[0]:  # compact the queue (never in practice)
                        for k in range(tail - head):  # by element: a slice copy compiles slowly
                            queue[k] = queue[head + k]
                        tail -= head
                        head = 0
                    queue[tail] = qy * cols + qx
                    tail += 1
    return out


def reconstruction(marker: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``skimage.morphology.reconstruction(marker, mask, footprint=disk(1))``, faster."""
    return _reconstruct(
        np.ascontiguousarray(marker, np.float64), np.ascontiguousarray(mask, np.float64)
    )


def _resample(image: np.ndarray, rows, cols) -> np.ndarray:
    """Bilinear samples of ``image`` at the grid rows x cols (as map_coordinates, order 1)."""
    i, j = np.meshgrid(rows, cols, indexing="ij")
    return ndimage.map_coordinates(image, (i, j), order=1)


@dataclass
class Spectrum:
    """The reconstructions of one image (subsampled) and the geometry to map them back."""

    original: np.ndarray  # the image as given (object means before any opening)
    small_shape: tuple[int, int]
    reconstructions: list[np.ndarray]


def _background_removed(small: np.ndarray, features: dict) -> np.ndarray:
    """The subsampled image minus its opening by a disc of ``granularity_element_size``,
    computed on a further subsampled copy (CellProfiler's background reduction)."""
    factor = features["granularity_background_subsample"]
    footprint = disk(features["granularity_element_size"], dtype=bool)
    if factor < 1:
        back_shape = np.array(small.shape) * factor
        grid = np.mgrid[0 : back_shape[0], 0 : back_shape[1]].astype(float) / factor
        back = ndimage.map_coordinates(small, tuple(grid), order=1)
    else:
        back, back_shape = small, np.array(small.shape)
    back = dilation(erosion(back, footprint=footprint), footprint=footprint)
    if factor < 1:
        rows = np.arange(small.shape[0]) * ((back_shape[0] - 1) / (small.shape[0] - 1))
        cols = np.arange(small.shape[1]) * ((back_shape[1] - 1) / (small.shape[1] - 1))
        back = _resample(back, rows, cols)
    return np.maximum(small - back, 0)


def granular_spectrum(pixels: np.ndarray, features: dict) -> Spectrum | None:
    """The image's granular spectrum (None when subsampling leaves fewer than 2 px a side)."""
    factor = features["granularity_subsample"]
    shape = np.array(pixels.shape)
    small_shape = (shape * factor).astype(int) if factor < 1 else shape
    if (small_shape < 2).any():
        return None
    if factor < 1:
        grid = np.mgrid[0 : small_shape[0], 0 : small_shape[1]].astype(float) / factor
        small = ndimage.map_coordinates(pixels, tuple(grid), order=1)
    else:
        small = pixels.astype(np.float64, copy=True)
    small = _background_removed(small, features)
    eroded, reconstructions = small, []
    for _ in range(features["granularity_spectrum"]):
        eroded = erosion(eroded, footprint=_CROSS)
        reconstructions.append(reconstruction(eroded, small))
    return Spectrum(pixels, tuple(int(s) for s in small_shape), reconstructions)


def _bilinear_weights(size: int, small: int) -> np.ndarray:
    """(size, small) weights of the bilinear upsampling of ``small`` samples to ``size`` along
    one axis, as map_coordinates (order 1) samples them; a position past the last sample
    weighs nothing (its constant mode's 0)."""
    position = np.arange(size) * ((small - 1) / (size - 1))
    inside = position <= small - 1
    low = np.floor(position).astype(np.intp)
    fraction = position - low
    weights = np.zeros((size, small))
    rows = np.flatnonzero(inside)
    np.add.at(weights, (rows, low[rows]), 1 - fraction[rows])
    np.add.at(weights, (rows, np.minimum(low[rows] + 1, small - 1)), fraction[rows])
    return weights


class ObjectMeans:
    """Per-object means, at full resolution, of bilinearly upsampled subsampled images: one
    sparse linear map per object set, shared by every channel's spectrum. Upsampling is
    separable, so an object's weights on the subsampled pixels are ``rows^T @ mask @ cols``
    in its bounding box (a few small products per object instead of four entries per pixel
    sorted into a sparse matrix). Also each object's mean of a full-resolution image."""

    def __init__(self, labels: np.ndarray, small_shape):
        self.count = int(labels.max())
        flat = labels.ravel()
        self.index = np.flatnonzero(flat)
        self.objects = flat[self.index].astype(np.intp) - 1
        self.pixels = np.bincount(self.objects, minlength=self.count)
        row_weights = _bilinear_weights(labels.shape[0], small_shape[0])
        col_weights = _bilinear_weights(labels.shape[1], small_shape[1])
        data, indices, lengths = [], [], np.zeros(self.count, np.intp)
        for i, box in enumerate(ndimage.find_objects(labels)):
            if box is None:
                continue
            rows, cols = row_weights[box[0]], col_weights[box[1]]
            used_rows = np.flatnonzero(rows.any(axis=0))
            used_cols = np.flatnonzero(cols.any(axis=0))
            mask = (labels[box] == i + 1).astype(np.float64)
            block = rows[:, used_rows].T @ mask @ cols[:, used_cols]
            data.append(block.ravel() / self.pixels[i])
            indices.append((used_rows[:, None] * small_shape[1] + used_cols).ravel())
            lengths[i] = block.size
        self.operator = scipy.sparse.csr_matrix(
            (
                np.concatenate(data) if data else np.zeros(0),
                np.concatenate(indices) if indices else np.zeros(0, np.intp),
                np.r_[0, np.cumsum(lengths)],
            ),
            shape=(self.count, small_shape[0] * small_shape[1]),
        )

    def of(self, small_image: np.ndarray) -> np.ndarray:
        return self.operator @ small_image.ravel()

    def of_full(self, image: np.ndarray) -> np.ndarray:
        """Each object's mean of ``image`` (full resolution), as ``ndimage.mean`` sums it."""
        return np.bincount(self.objects, image.ravel()[self.index], self.count) / self.pixels


def object_granularity(
    spectrum: Spectrum | None, labels: np.ndarray, means: ObjectMeans | None, length: int
) -> dict:
    """``Granularity_1`` .. ``_length`` of every object (labels 1..N): the % of the object's
    mean intensity each erosion step removes; NaN for an image too small to subsample.
    ``means``: ``ObjectMeans(labels, spectrum.small_shape)``, built once per object set."""
    n = int(labels.max())
    if spectrum is None:
        return {f"Granularity_{k}": np.full(n, np.nan) for k in range(1, length + 1)}
    means = means or ObjectMeans(labels, spectrum.small_shape)
    current = means.of_full(spectrum.original)
    start = np.maximum(current, np.finfo(float).eps)
    out = {}
    for k, reconstructed in enumerate(spectrum.reconstructions, start=1):
        new = means.of(reconstructed)
        out[f"Granularity_{k}"] = (current - new) * 100 / start
        current = new
    return out
