"""The shortest-path searches' queue (debatch.core.heap) against Python's heapq of tuples with
skipped stale entries, the queue it replaced: the same pops in the same order."""

import heapq

import numpy as np

from debatch.core import heap


def test_pops_come_in_the_order_of_a_heapq_that_skips_stale_entries():
    rng = np.random.default_rng(3)
    pixels = 500
    keys, ties, where = heap.empty(pixels, pixels)
    size, reference, best, ours, theirs = 0, [], {}, [], []
    for _ in range(6000):
        if size and rng.random() < 0.35:
            key, tie, size = heap.pop(keys, ties, where, size)
            ours.append((key, tie))
            while True:  # the reference pops its stale entries until a live one
                entry = heapq.heappop(reference)
                if best.get(entry[1] & heap.PIXEL) == entry:
                    del best[entry[1] & heap.PIXEL]
                    theirs.append(entry)
                    break
            continue
        pixel = int(rng.integers(pixels))
        key = float(rng.integers(0, 40)) / 4  # few values: many equal keys, ordered by tie
        tie = (int(rng.integers(1, 4)) << 32) | pixel
        if pixel in best and best[pixel] <= (key, tie):
            continue  # only a shorter path lowers a queued pixel (as the searches ask)
        size = heap.push(keys, ties, where, size, key, tie)
        best[pixel] = (key, tie)
        heapq.heappush(reference, (key, tie))
    assert len(ours) > 1000 and size == len(best)
    assert ours == theirs
    assert np.count_nonzero(where >= 0) == size
