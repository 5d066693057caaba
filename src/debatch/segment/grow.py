"""CellProfiler's propagation (IdentifySecondaryObjects "Propagation"), compiled with numba.

Seeds grow over the pixels of ``mask`` in order of a geodesic distance: each step between
8-neighbours costs sqrt(d_I^2 + steps x regularisation^2), where d_I is the summed absolute
difference of the two pixels' 3 x 3 neighbourhoods (edges clamped) and steps the Manhattan
length of the step (1 or 2). A pixel goes to the seed that reaches it first (Dijkstra), so
borders fall on intensity ridges or, with a large regularisation, half-way between seeds.

This is centrosome's ``propagate`` (the code CellProfiler runs) with the same distance and
visiting order, so the same labels (tests compare them on a real field and on noisy plateaus).
Where two seeds reach a pixel at exactly the same distance, ours takes the lower label (the heap
orders by distance, then label, then pixel) while centrosome's queue takes whichever its heap
holds first, so such a tied pixel may go to the other, equally near seed: at regularisation 0 on
any flat region, and on symmetric toy images at any regularisation. Compiled, it is faster and
releases the GIL, so a shard's threads propagate in parallel.

No pixel reaches another connected component of the mask (8-connected, as the steps are), so
each component is grown on its own, with its own heap: the same labels (the heap's keys are
unique, so a component's pops come in the order one heap over the field would pop them), and
on a dense field faster than one heap over the whole field (benchmarks/notes.md).
"""

from __future__ import annotations

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
def _starts(seeds, mask, components, n_components, steps):
    """The seed pixels that border growth (_borders_growth), as flat indices in raster order,
    grouped by component: component k's are ``starts[ends[k - 1]:ends[k]]``."""
    rows, columns = seeds.shape
    found = np.empty(np.count_nonzero(seeds > 0), np.int64)
    owners = np.empty(len(found), np.int64)
    counts = np.zeros(n_components + 1, np.int64)  # component 0 is outside the mask: none
    n = 0
    for i in range(rows):
        for j in range(columns):
            if seeds[i, j] > 0 and mask[i, j] and _borders_growth(seeds, mask, i, j, steps):
                found[n], owners[n] = i * columns + j, components[i, j]
                counts[components[i, j]] += 1
                n += 1
    # grouped by a counting sort, which keeps raster order within a component (and compiles in
    # a fraction of the time numba's argsort takes)
    ends = np.cumsum(counts)
    slots = np.empty_like(ends)
    for k in range(len(ends)):
        slots[k] = ends[k] - counts[k]
    starts = np.empty(n, np.int64)
    for m in range(n):
        starts[slots[owners[m]]] = found[m]
        slots[owners[m]] += 1
    return starts, ends


# The queue: an indexed 4-ary min-heap over two arrays, ``keys`` (float64 distances) and ``ties``
# (int64, compared when keys are equal: label << 32 | pixel, the pixel a flat index). A pixel is
# queued at most once: reached again by a shorter path, its entry is lowered where it stands
# (``where``) instead of a second entry pushed and skipped when popped, as a heapq of tuples
# does. Entries are unique, so the pops come in a heapq's order (tests/test_heap.py), from a
# heap that holds each frontier pixel once. It lives here, beside its one caller, because numba's
# cache of a function is not renewed when a function it calls in another file changes.

_PIXEL = 0xFFFFFFFF  # the low 32 bits of a tie: the entry's pixel


def _empty_queue(capacity: int, pixels: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(keys, ties, where) of an empty queue for ``capacity`` entries over ``pixels`` pixels,
    made before the compiled search (numba then compiles none of numpy's constructors)."""
    if pixels > 2**31 - 1:  # ``where`` is int32 and a tie holds 32 bits of the pixel
        raise ValueError(f"an image of {pixels} pixels is too large to propagate over (2**31)")
    return (
        np.empty(capacity, np.float64),
        np.empty(capacity, np.int64),
        np.full(pixels, -1, np.int32),
    )


@numba.njit(cache=True, nogil=True)
def _before(key, tie, other_key, other_tie):
    """Whether entry (key, tie) comes off the queue before (other_key, other_tie)."""
    return key < other_key or (key == other_key and tie < other_tie)


@numba.njit(cache=True, nogil=True)
def _place(keys, ties, where, slot, key, tie):
    """Put entry (key, tie) at ``slot`` and note where its pixel now is."""
    keys[slot], ties[slot] = key, tie
    where[tie & _PIXEL] = slot


@numba.njit(cache=True, nogil=True)
def _settle_up(keys, ties, where, slot, key, tie):
    """Put (key, tie) at ``slot`` or above it, moving larger parents down."""
    while slot > 0:
        parent = (slot - 1) >> 2
        if not _before(key, tie, keys[parent], ties[parent]):
            break
        _place(keys, ties, where, slot, keys[parent], ties[parent])
        slot = parent
    _place(keys, ties, where, slot, key, tie)


@numba.njit(cache=True, nogil=True)
def _push(keys, ties, where, size, key, tie):
    """Add (key, tie), or lower the pixel's entry to it if the pixel is queued (``key`` must not
    be larger than its queued key, nor NaN); returns the new size."""
    slot = where[tie & _PIXEL]
    if slot < 0:
        slot = size
        size += 1
    _settle_up(keys, ties, where, slot, key, tie)
    return size


@numba.njit(cache=True, nogil=True)
def _pop(keys, ties, where, size):
    """(key, tie, new size) of the smallest entry, taken off the heap."""
    key, tie = keys[0], ties[0]
    where[tie & _PIXEL] = -1
    size -= 1
    if size == 0:
        return key, tie, size
    last_key, last_tie = keys[size], ties[size]
    slot = np.int64(0)  # typed: a literal 0 compiles _place a second time
    while True:
        child = 4 * slot + 1
        if child >= size:
            break
        best = child
        for other in range(child + 1, min(child + 4, size)):
            if _before(keys[other], ties[other], keys[best], ties[best]):
                best = other
        if not _before(keys[best], ties[best], last_key, last_tie):
            break
        _place(keys, ties, where, slot, keys[best], ties[best])
        slot = best
    _place(keys, ties, where, slot, last_key, last_tie)
    return key, tie, size


@numba.njit(cache=True, nogil=True)
def _grow_component(padded, seeds, mask, weight, steps, starts, labels, distances, queue):
    """Dijkstra from the seed pixels ``starts`` (flat indices) over their component of the
    mask, writing into ``labels`` and ``distances``; ``queue`` is an empty queue (above):
    pixels come off it by distance, then label, then pixel."""
    rows, columns = seeds.shape
    keys, ties, where = queue
    size = np.int64(0)  # typed: a literal 0 would compile _push and _pop twice
    for index in starts:
        size = _push(keys, ties, where, size, 0.0, (np.int64(seeds.flat[index]) << 32) | index)
    while size > 0:
        distance, tie, size = _pop(keys, ties, where, size)
        label, index = tie >> 32, tie & _PIXEL
        i1, j1 = index // columns, index % columns
        labels[i1, j1] = label
        for q in range(8):
            i2, j2 = i1 + steps[q, 0], j1 + steps[q, 1]
            if i2 < 0 or i2 >= rows or j2 < 0 or j2 >= columns:
                continue
            if labels[i2, j2] > 0 or not mask[i2, j2]:
                continue
            reached = distance + _step_cost(padded, i1, j1, i2, j2, weight)
            if distances[i2, j2] == -1.0 or distances[i2, j2] > reached:
                distances[i2, j2] = reached
                size = _push(keys, ties, where, size, reached, (label << 32) | (i2 * columns + j2))


@numba.njit(cache=True, nogil=True)
def _grow(padded, seeds, mask, weight, steps, components, n_components, queue):
    rows, columns = seeds.shape
    labels = np.zeros((rows, columns), np.int32)
    distances = np.full((rows, columns), -1.0)
    for i in range(rows):
        for j in range(columns):
            if seeds[i, j] > 0:
                distances[i, j] = 0.0  # never beaten: a seed pixel stays its seed's
    starts, ends = _starts(seeds, mask, components, n_components, steps)
    for k in range(1, n_components + 1):
        _grow_component(
            padded, seeds, mask, weight, steps, starts[ends[k - 1] : ends[k]], labels, distances,
            queue,
        )  # fmt: skip
    for i in range(rows):
        for j in range(columns):
            if seeds[i, j] > 0:
                labels[i, j] = seeds[i, j]
    return labels


def propagate(
    image: np.ndarray, seeds: np.ndarray, mask: np.ndarray, regularisation: float
) -> np.ndarray:
    """Labels (int32) grown from ``seeds`` (labelled pixels) over ``mask``, steered by ``image``
    (without NaN, which has no order); every seed pixel keeps its label, pixels outside the mask
    that no seed covers stay 0."""
    if not image.shape == seeds.shape == mask.shape:
        raise ValueError(
            f"shapes differ: image {image.shape}, seeds {seeds.shape}, mask {mask.shape}"
        )
    padded = np.pad(np.asarray(image, np.float64), 2, mode="edge")
    mask = np.asarray(mask, bool)
    components, n_components = ndimage.label(mask, np.ones((3, 3), bool))
    return _grow(
        padded,
        np.ascontiguousarray(seeds, np.int32),
        mask,
        float(regularisation),
        _STEPS,
        components,
        n_components,
        _empty_queue(np.count_nonzero(mask), mask.size),  # emptied by each component in turn
    )
