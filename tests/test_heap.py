"""The propagation's queue (debatch.segment.grow) against Python's heapq of tuples with skipped
stale entries, the queue it replaced: the same pops in the same order."""

import heapq

import numpy as np
import pytest

from debatch.segment.grow import _PIXEL, _empty_queue, _pop, _push


def test_pops_come_in_the_order_of_a_heapq_that_skips_stale_entries():
    rng = np.random.default_rng(3)
    pixels = 500
    keys, ties, where = _empty_queue(pixels, pixels)
    size, reference, best, ours, theirs = 0, [], {}, [], []
    for _ in range(6000):
        if size and rng.random() < 0.35:
            key, tie, size = _pop(keys, ties, where, size)
            ours.append((key, tie))
            while True:  # the reference pops its stale entries until a live one
                entry = heapq.heappop(reference)
                if best.get(entry[1] & _PIXEL) == entry:
                    del best[entry[1] & _PIXEL]
                    theirs.append(entry)
                    break
            continue
        pixel = int(rng.integers(pixels))
        key = float(rng.integers(0, 40)) / 4  # few values: many equal keys, ordered by tie
        tie = (int(rng.integers(1, 4)) << 32) | pixel
        if pixel in best and best[pixel] <= (key, tie):
            continue  # only a shorter path lowers a queued pixel (as the searches ask)
        size = _push(keys, ties, where, size, key, tie)
        best[pixel] = (key, tie)
        heapq.heappush(reference, (key, tie))
    assert len(ours) > 1000 and size == len(best)
    assert ours == theirs
    assert np.count_nonzero(where >= 0) == size


def test_an_image_too_large_for_the_queue_is_refused():
    with pytest.raises(ValueError, match="too large to propagate"):
        _empty_queue(10, 2**31)
