"""Order statistics by radix sort (debatch.core.sorting) against numpy's own, bit for bit, on
the value sets segmentation meets: smooth intensities, integer-valued pixels with many ties,
negatives and zeros, and tiny values."""

import numpy as np
from skimage.filters import threshold_li

from debatch.core import sorting
from debatch.segment.propagate import _minimum_cross_entropy


def _value_sets(rng):
    for n in (1, 2, 3, 10, 999, 4000):
        yield rng.normal(100, 5, n).astype(np.float32)
        yield np.round(rng.normal(0, 3, n)).astype(np.float32)  # ties, negatives, 0 and -0
        yield (rng.random(n) * 1e-3).astype(np.float32)


def test_sort_and_medians_are_numpys():
    for values in _value_sets(np.random.default_rng(2)):
        ascending = sorting.sort_float32(values)
        np.testing.assert_array_equal(ascending, np.sort(values))
        median = sorting.median_of_sorted(ascending)
        assert median == np.median(values) and median.dtype == np.float32
        level = float(median)
        assert sorting.median_deviation_of_sorted(ascending, level) == np.median(
            np.abs(values - level)
        )


def test_smallest_gap_is_the_gap_of_scikit_images_li_tolerance():
    """threshold_li's default tolerance is half of np.min(np.diff(np.unique(x - x.min())))."""
    for values in _value_sets(np.random.default_rng(3)):
        shifted = values - values.min()
        ascending = sorting.sort_float32(values)
        gap = sorting.smallest_gap(ascending - ascending[0])
        if len(np.unique(shifted)) < 2:
            assert gap is None
        else:
            assert gap == np.min(np.diff(np.unique(shifted)))


def _li_images():
    rng = np.random.default_rng(4)
    yield rng.gamma(2.0, 50.0, (1080, 1080)).astype(np.float32)  # smooth: tiny gaps
    yield rng.gamma(2.0, 50.0, (37, 53)).astype(np.float32)
    yield np.float32([[6, 1, 9, 5, 4, 0]])  # integer values: gaps of 1, where half matters
    for _ in range(20):
        yield np.round(rng.gamma(2.0, 30.0, (40, 40))).astype(np.float32)
        yield (rng.integers(0, 256, (40, 40)) / 255).astype(np.float32)  # an 8-bit export


def test_li_threshold_with_the_sorted_tolerance_is_scikit_images():
    for image in _li_images():
        assert _minimum_cross_entropy(image) == float(threshold_li(image))
