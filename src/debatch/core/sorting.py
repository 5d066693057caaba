"""Order statistics of a site's float32 pixels, sorted by radix (numba): the background's median
and MAD that nuclei are judged against, and the tolerance of Li's threshold (half the smallest
gap between two pixel values), which scikit-image finds with ``np.unique``.

A million float32 pixels sort in two counting passes over 16 bits of their bit patterns, a few
times faster than numpy's comparison sort on them, into numpy's order (only -0.0 and 0.0, which
compare equal, may come in another order), so the medians are ``np.median``'s (in float32) and
the tolerance scikit-image's (tests/test_sorting.py): thresholds and objects are unchanged.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def _order_key(bits):  # pragma: no cover
    """A float32's bit pattern made to sort as unsigned integers in the float's order."""
    return ~bits if bits & np.uint32(0x80000000) else bits | np.uint32(0x80000000)


@numba.njit(cache=True, nogil=True)
def _radix_sort(bits):  # pragma: no cover
    """``bits`` (float32 bit patterns, uint32) in the order of their floats: two stable
    counting passes, low 16 bits then high."""
    keys = np.empty_like(bits)
    for k in range(len(bits)):
        keys[k] = _order_key(bits[k])
    spare = np.empty_like(keys)
    for shift in (0, 16):
        counts = np.zeros(65537, np.int64)
        for key in keys:
            counts[((key >> shift) & 0xFFFF) + 1] += 1
        for digit in range(65536):
            counts[digit + 1] += counts[digit]
        for key in keys:
            digit = (key >> shift) & 0xFFFF
            spare[counts[digit]] = key
            counts[digit] += 1
        keys, spare = spare, keys
    for k in range(len(keys)):  # back to float32 bit patterns
        key = keys[k]
        keys[k] = key & np.uint32(0x7FFFFFFF) if key & np.uint32(0x80000000) else ~key
    return keys


def sort_float32(values: np.ndarray) -> np.ndarray:
    """``np.sort(values.ravel())`` for float32 values without NaN (-0.0 sorts before 0.0)."""
    values = np.ascontiguousarray(values, np.float32).ravel()
    return _radix_sort(values.view(np.uint32)).view(np.float32)


def median_of_sorted(ascending: np.ndarray) -> np.float32:
    """``np.median`` of float32 values already sorted: the middle value, or the mean of the two
    middle values in float32, as numpy computes it."""
    middle = len(ascending) // 2
    if len(ascending) % 2:
        return ascending[middle]
    return (ascending[middle - 1] + ascending[middle]) / 2


def _deviation_at(ascending: np.ndarray, centre: np.float32, rank: int) -> np.float32:
    """The ``rank``-th smallest (from 0) of |ascending - centre| in float32. Deviations fall
    towards the centre and rise away from it (float32 rounding keeps that order), so the
    rank + 1 smallest are a window of the sorted values: the window of the k closest values is
    found by bisection, and its larger end is the answer."""
    size = rank + 1
    low, high = 0, len(ascending) - size
    while low < high:  # the window starting at middle, or one starting further right?
        middle = (low + high) // 2
        if abs(ascending[middle] - centre) > abs(ascending[middle + size] - centre):
            low = middle + 1
        else:
            high = middle
    return max(abs(ascending[low] - centre), abs(ascending[low + size - 1] - centre))


def median_deviation_of_sorted(ascending: np.ndarray, centre: float) -> np.float32:
    """``np.median(np.abs(ascending - centre))`` (in float32, as numpy with a float32 array) of
    float32 values already sorted, without computing and sorting every deviation."""
    n, centre = len(ascending), np.float32(centre)
    if n % 2:
        return _deviation_at(ascending, centre, n // 2)
    return (
        _deviation_at(ascending, centre, n // 2 - 1) + _deviation_at(ascending, centre, n // 2)
    ) / 2


def smallest_gap(ascending: np.ndarray) -> np.float32 | None:
    """``np.min(np.diff(np.unique(ascending)))`` of float32 values already sorted, or None
    when they hold fewer than two distinct values."""
    gaps = np.diff(ascending)
    gaps = gaps[gaps > 0]
    return gaps.min() if len(gaps) else None
