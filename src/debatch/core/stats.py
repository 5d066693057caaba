"""Robust statistics shared by segmentation, QC and profile normalisation."""

from __future__ import annotations

import numpy as np

MAD_SCALE = 1.4826  # makes the median absolute deviation a consistent estimator of the SD


def median_and_mad(
    values: np.ndarray, axis=None, skip_nan: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Median and robust SD (MAD_SCALE x median absolute deviation) along ``axis``, over the
    non-NaN values when ``skip_nan`` (the same numbers when there is no NaN)."""
    median = np.nanmedian if skip_nan else np.median
    centre = median(values, axis=axis)
    return centre, MAD_SCALE * median(np.abs(values - centre), axis=axis)


def pca(values: np.ndarray, n_components: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Scores and explained-variance ratios of the first components (SVD of centred data)."""
    centred = values - values.mean(axis=0)
    _, singular, components = np.linalg.svd(centred, full_matrices=False)
    n_components = min(n_components, len(singular))
    variance = singular**2
    total = variance.sum() if variance.sum() > 0 else 1.0
    return centred @ components[:n_components].T, variance[:n_components] / total
