"""Order statistics of a site's float32 pixels, sorted by radix (numba): the background's median
and MAD that nuclei are judged against, and the tolerance of Li's threshold (half the smallest
gap between two pixel values), which scikit-image finds with ``np.unique``.

A million float32 pixels sort in two counting passes over 16 bits of their bit patterns, a few
times faster than numpy's comparison sort on them, and the results are numpy's bit for bit
(tests/test_sorting.py): the same medians (as ``np.median`` computes them in float32) and the
same tolerance, so thresholds and objects are unchanged.
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
    """``np.sort(values.ravel())`` for float32 values without NaN (bit for bit; -0.0 sorts
    before 0.0)."""
    values = np.ascontiguousarray(values, np.float32).ravel()
    return _radix_sort(values.view(np.uint32)).view(np.float32)


def median_of_sorted(ascending: np.ndarray) -> np.float32:
    """``np.median`` of float32 values already sorted: the middle value, or the mean of the two
    middle values in float32, as numpy computes it."""
    middle = len(ascending) // 2
    if len(ascending) % 2:
        return ascending[middle]
    return (ascending[middle - 1] + ascending[middle]) / 2


@numba.njit(cache=True, nogil=True)
def _deviations_at(ascending, centre, right, ranks):  # pragma: no cover
    """The ``ranks``-th smallest of |ascending - centre| (float32), merging the values below
    the centre (their deviations rise leftwards from ``right - 1``) with those from ``right``
    on (rising rightwards)."""
    left = right - 1
    out = np.empty(len(ranks), np.float32)
    taken = 0
    for r in range(len(ranks)):
        while True:
            below = abs(ascending[left] - centre) if left >= 0 else np.float32(np.inf)
            above = abs(ascending[right] - centre) if right < len(ascending) else np.float32(np.inf)
            smaller = min(below, above)
            if below <= above:
                left -= 1
            else:
                right += 1
            taken += 1
            if taken > ranks[r]:
                out[r] = smaller
                break
    return out


def median_deviation_of_sorted(ascending: np.ndarray, centre: float) -> np.float32:
    """``np.median(np.abs(ascending - centre))`` (in float32, as numpy with a float32 array) of
    float32 values already sorted, without computing and sorting every deviation."""
    n = len(ascending)
    ranks = np.array([n // 2] if n % 2 else [n // 2 - 1, n // 2], np.int64)
    centre = np.float32(centre)
    at = _deviations_at(ascending, centre, np.searchsorted(ascending, centre), ranks)
    return at[0] if n % 2 else (at[0] + at[1]) / 2


def smallest_gap(ascending: np.ndarray) -> np.float32 | None:
    """``np.min(np.diff(np.unique(ascending)))`` of float32 values already sorted, or None
    when they hold fewer than two distinct values."""
    gaps = np.diff(ascending)
    gaps = gaps[gaps > 0]
    return gaps.min() if len(gaps) else None
