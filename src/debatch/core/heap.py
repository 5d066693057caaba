"""The priority queue of the pipeline's shortest-path searches (numba): cells grown from their
nuclei (debatch.segment.grow) and each pixel's distance from its object's centre
(debatch.features.radial).

An indexed 4-ary min-heap over two arrays: ``keys`` (float64 distances) and ``ties`` (int64,
compared when keys are equal; their low 32 bits are the pixel's flat index). A pixel is in the
heap at most once: reaching it by a shorter path lowers its entry where the pixel is
(``where``), instead of pushing a second entry that is skipped when popped, as a ``heapq`` of
tuples does. Entries are unique, so pops come in the same order as from such a heapq (the
searches give the same labels and distances) from a heap a few times smaller: on a dense
1080 px field the propagation runs about a quarter faster (benchmarks/notes.md).
"""

from __future__ import annotations

import numba
import numpy as np

PIXEL = 0xFFFFFFFF  # the low 32 bits of a tie: the entry's pixel


def empty(capacity: int, pixels: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(keys, ties, where) of an empty heap for ``capacity`` entries over ``pixels`` pixels,
    made before the compiled search (numba then compiles none of numpy's constructors)."""
    return (
        np.empty(capacity, np.float64),
        np.empty(capacity, np.int64),
        np.full(pixels, -1, np.int32),
    )


@numba.njit(cache=True, nogil=True)
def _before(key, tie, other_key, other_tie):  # pragma: no cover
    return key < other_key or (key == other_key and tie < other_tie)


@numba.njit(cache=True, nogil=True)
def _settle_up(keys, ties, where, slot, key, tie):  # pragma: no cover
    """Put (key, tie) at ``slot`` or above it, moving larger parents down."""
    while slot > 0:
        parent = (slot - 1) >> 2
        if not _before(key, tie, keys[parent], ties[parent]):
            break
        keys[slot], ties[slot] = keys[parent], ties[parent]
        where[ties[slot] & PIXEL] = slot
        slot = parent
    keys[slot], ties[slot] = key, tie
    where[tie & PIXEL] = slot


@numba.njit(cache=True, nogil=True)
def push(keys, ties, where, size, key, tie):  # pragma: no cover
    """Add (key, tie), or lower the pixel's entry to it if the pixel is queued (``key`` must not
    be larger than its queued key); returns the new size."""
    slot = where[tie & PIXEL]
    if slot < 0:
        slot = size
        size += 1
    _settle_up(keys, ties, where, slot, key, tie)
    return size


@numba.njit(cache=True, nogil=True)
def pop(keys, ties, where, size):  # pragma: no cover
    """(key, tie, new size) of the smallest entry, taken off the heap."""
    key, tie = keys[0], ties[0]
    where[tie & PIXEL] = -1
    size -= 1
    if size == 0:
        return key, tie, size
    last_key, last_tie = keys[size], ties[size]
    slot = 0
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
        keys[slot], ties[slot] = keys[best], ties[best]
        where[ties[slot] & PIXEL] = slot
        slot = best
    keys[slot], ties[slot] = last_key, last_tie
    where[last_tie & PIXEL] = slot
    return key, tie, size
