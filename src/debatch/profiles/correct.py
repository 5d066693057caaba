"""Post-hoc batch correction of well profiles across all plates: none, sphering, Harmony.

Sphering (ZCA whitening fitted on negative-control wells) and Harmony (batch as the covariate,
on principal components) are the two Arevalo et al. (2024) found most useful for image-based
profiles. Settings: the ``sphering_*`` and ``harmony_*`` keys of ``profiles``.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from debatch.core.stats import pca
from debatch.settings import (
    BATCH,
    NEGCON,
    PLATE,
    PROFILES,
    ROLE,
    check_choice,
    feature_columns,
)

log = logging.getLogger(__name__)


def sphering_transform(controls: np.ndarray, epsilon: float) -> tuple[np.ndarray, np.ndarray]:
    """ZCA whitening fitted on control profiles: (mean, W) so that (x - mean) @ W is white on
    controls.

    The ridge is relative to the largest eigenvalue so it behaves the same whatever the scale.
    """
    mean = controls.mean(axis=0)
    covariance = np.cov(controls - mean, rowvar=False)
    eigenvalues, eigenvectors = np.linalg.eigh(np.atleast_2d(covariance))
    eigenvalues = np.clip(eigenvalues, 0, None) + epsilon * max(eigenvalues.max(), 1e-12)
    return mean, (eigenvectors / np.sqrt(eigenvalues)) @ eigenvectors.T


def sphere(
    values: np.ndarray, controls: np.ndarray, plates: np.ndarray, epsilon: float, folds: int
) -> np.ndarray:
    """ZCA whitening fitted on negcon wells, cross-fitted by plate: the plates are dealt into
    ``folds`` groups and each group is transformed with the whitening fitted on the other
    groups' negcon wells (``folds`` 1, or a single plate: one fit on every negcon well, as
    pycytominer's ``spherize``).

    Why cross-fit: with fewer negcon wells than features, the whitening shrinks the controls it
    was fitted on into the subspace they span and blows up every direction they do not, so
    every other well, an inactive compound's too, lands far from them: measured against those
    same controls, every treatment looked active (docs/metrics.md). Controls transformed by a
    fit they were not part of scatter as treated wells do.
    """
    names = np.unique(plates)
    fold = dict(zip(names, np.arange(len(names)) % max(min(folds, len(names)), 1)))
    groups = np.array([fold[plate] for plate in plates])
    out = np.empty_like(values)
    single = len(np.unique(groups)) == 1
    for group in np.unique(groups):
        fit = controls if single else controls & (groups != group)
        if fit.sum() < 2:
            raise ValueError(
                f"sphering needs at least 2 negcon wells outside each fold of plates, found "
                f"{int(fit.sum())}; lower profiles.sphering_folds"
            )
        mean, transform = sphering_transform(values[fit], epsilon)
        chosen = groups == group
        out[chosen] = (values[chosen] - mean) @ transform
    return out


def harmony(values: np.ndarray, batches: np.ndarray, params: dict) -> np.ndarray:
    """Harmony (Korsunsky et al. 2019, harmonypy) with the batch as the covariate, on the first
    ``harmony_components`` principal components of the profiles.

    Harmony is designed for PCA scores: on the demo's raw normalised features a few extreme
    wells dominate its per-cluster regressions and it over-corrects (iLISI falls, batch
    accuracy drops far below chance), while on 50 PCs it mixes batches and keeps replicates.
    """
    import harmonypy

    scores, _ = pca(values, params["harmony_components"])
    clusters = params["harmony_clusters"] or min(max(round(len(values) / 30), 1), 100)
    result = harmonypy.run_harmony(
        scores,
        pd.DataFrame({"batch": batches}),
        ["batch"],
        theta=params["harmony_theta"],
        nclust=clusters,
        max_iter_harmony=params["harmony_max_iter"],
        random_state=params["harmony_seed"],
        verbose=False,
        ncores=1,
    )
    corrected = np.asarray(result.Z_corr)
    return corrected if corrected.shape == scores.shape else corrected.T


def _none(wells: pd.DataFrame, params: dict, control_role: str) -> pd.DataFrame:
    return wells.copy()


def _sphering(wells: pd.DataFrame, params: dict, control_role: str) -> pd.DataFrame:
    """Every feature sphered (``sphere``), the metadata kept."""
    features = feature_columns(wells.columns)
    plates = wells[PLATE].astype(str).to_numpy() if PLATE in wells else np.zeros(len(wells))
    controls = (wells[ROLE] == control_role).to_numpy()
    corrected = sphere(
        wells[features].to_numpy(np.float64),
        controls,
        plates,
        params["sphering_epsilon"],
        params["sphering_folds"],
    )
    out = wells.copy()
    out[features] = corrected.astype(np.float32)
    return out


def _harmony(wells: pd.DataFrame, params: dict, control_role: str) -> pd.DataFrame:
    """The metadata and Harmony's corrected principal components (``harmony_pc_000``...) in
    place of the features; a single batch is left as it is."""
    batches = wells[BATCH].astype(str).to_numpy()
    if len(np.unique(batches)) < 2:
        log.warning("harmony: a single batch, nothing to correct; profiles left unchanged")
        return wells.copy()
    features = feature_columns(wells.columns)
    corrected = harmony(wells[features].to_numpy(np.float64), batches, params)
    names = [f"harmony_pc_{i:03d}" for i in range(corrected.shape[1])]
    metadata = wells.drop(columns=features)
    return pd.concat(
        [metadata, pd.DataFrame(corrected.astype(np.float32), columns=names, index=wells.index)],
        axis=1,
    )


# Name -> correction: (wells, the profiles settings, the control role) -> corrected wells, every
# Metadata_ column kept. A correction's settings are the profiles keys named ``{name}_*``: the
# workflow gives each correction job only those (docs/extending.md: adding a correction).
CORRECTORS = {"none": _none, "sphering": _sphering, "harmony": _harmony}


def correct(
    wells: pd.DataFrame, method: str, params: dict | None = None, control_role: str = NEGCON
) -> pd.DataFrame:
    """Apply a post-hoc batch correction (one of ``CORRECTORS``) across all plates of a
    source's well profiles."""
    params = PROFILES.merge(params)
    check_choice("correction", method, CORRECTORS)
    return CORRECTORS[method](wells, params, control_role)
