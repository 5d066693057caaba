"""Profiles stage: cells -> wells -> per-plate normalised -> corrected -> per-treatment consensus.

Column names follow pycytominer: metadata columns start with ``Metadata_``, every other column
is a feature. Aggregation streams one plate at a time (and a block of feature columns at a
time, see ``debatch.aggregate``), so memory is bounded by a slice of one plate.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from debatch.aggregate import COUNT_COLUMN, aggregate_parquet, feature_columns
from debatch.metrics import pca
from debatch.params import merge_params as check_params

log = logging.getLogger(__name__)

DEFAULTS = {
    "aggregate": "median",        # cells -> well: median (robust to segmentation debris) or mean
    "aggregate_columns": 32,      # feature columns per pass and thread (memory ~ cells x this x 5 B each)
    "normalise": "mad_robustize",  # per plate against negcon wells: mad_robustize or standardize
    "corrections": ["none"],      # post-hoc corrections, one output folder each: none, sphering, harmony
    "sphering_epsilon": 1e-2,     # ridge added to the negcon covariance's eigenvalues (relative)
    "harmony_components": 50,     # Harmony runs on this many principal components of the profiles
    "harmony_theta": 2.0,         # Harmony diversity penalty: higher mixes batches harder
    "harmony_max_iter": 20,       # Harmony rounds (Arevalo et al. 2024 use 20)
    "harmony_clusters": None,     # soft k-means clusters; None = wells / 30 (1 to 100, harmonypy's rule)
    "harmony_seed": 0,            # Harmony's k-means initialisation
    "consensus": "median",        # wells -> treatment: median or mean
}
CORRECTIONS = ("none", "sphering", "harmony")
MAD_SCALE = 1.4826  # makes the MAD a consistent estimator of the standard deviation
BATCH_COLUMN = "Metadata_Batch"


def merge_params(params: dict | None) -> dict:
    merged = check_params("profiles", DEFAULTS, params)
    bad = sorted(set(merged["corrections"]) - set(CORRECTIONS))
    if bad:
        raise ValueError(f"unknown correction(s) {bad}; known: {list(CORRECTIONS)}")
    for key, allowed in [("aggregate", ("median", "mean")), ("consensus", ("median", "mean")),
                         ("normalise", ("mad_robustize", "standardize"))]:
        if merged[key] not in allowed:
            raise ValueError(f"profiles.{key} must be one of {list(allowed)}, not {merged[key]!r}")
    clusters = merged["harmony_clusters"]
    if clusters is not None and (not isinstance(clusters, int) or clusters < 2):
        raise ValueError(f"profiles.harmony_clusters must be null or an integer >= 2, not {clusters!r}")
    for key in ("aggregate_columns", "harmony_components", "harmony_max_iter"):
        if merged[key] < 1:
            raise ValueError(f"profiles.{key} must be >= 1, not {merged[key]}")
    return merged


def normalise_plates(wells: pd.DataFrame, method: str = "mad_robustize",
                     control_role: str = "negcon") -> pd.DataFrame:
    """Per plate: subtract the negcon centre and divide by the negcon spread of each feature.

    Removes plate-level shifts while keeping treatment effects as distances from control.
    """
    if method not in ("mad_robustize", "standardize"):
        raise ValueError(f"unknown normalise method {method!r}; use mad_robustize or standardize")
    features = feature_columns(wells.columns)
    out = wells.copy()
    for plate, rows in wells.groupby("Metadata_Plate").groups.items():
        controls = wells.loc[rows]
        controls = controls[controls["Metadata_Role"] == control_role][features].to_numpy(np.float64)
        if len(controls) == 0:
            raise ValueError(f"plate {plate} has no {control_role} well to normalise against")
        if method == "mad_robustize":
            centre = np.median(controls, axis=0)
            spread = MAD_SCALE * np.median(np.abs(controls - centre), axis=0)
        else:
            centre, spread = controls.mean(axis=0), controls.std(axis=0)
        spread = np.where(spread > 1e-8, spread, 1.0)  # a constant feature stays centred, not inf
        values = (wells.loc[rows, features].to_numpy(np.float64) - centre) / spread
        out.loc[rows, features] = values.astype(np.float32)
    return out


def sphering_transform(controls: np.ndarray, epsilon: float) -> tuple[np.ndarray, np.ndarray]:
    """ZCA whitening fitted on control profiles: (mean, W) so that (x - mean) @ W is white on controls.

    The ridge is relative to the largest eigenvalue so it behaves the same whatever the scale.
    """
    mean = controls.mean(axis=0)
    covariance = np.cov(controls - mean, rowvar=False)
    eigenvalues, eigenvectors = np.linalg.eigh(np.atleast_2d(covariance))
    eigenvalues = np.clip(eigenvalues, 0, None) + epsilon * max(eigenvalues.max(), 1e-12)
    return mean, (eigenvectors / np.sqrt(eigenvalues)) @ eigenvectors.T


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
    result = harmonypy.run_harmony(scores, pd.DataFrame({"batch": batches}), ["batch"],
                                   theta=params["harmony_theta"], nclust=clusters,
                                   max_iter_harmony=params["harmony_max_iter"],
                                   random_state=params["harmony_seed"], verbose=False, ncores=1)
    corrected = np.asarray(result.Z_corr)
    return corrected if corrected.shape == scores.shape else corrected.T


def correct(wells: pd.DataFrame, method: str, params: dict | None = None,
            control_role: str = "negcon") -> pd.DataFrame:
    """Apply a post-hoc batch correction across all plates of a method's well profiles."""
    params = merge_params(params)
    if method not in CORRECTIONS:
        raise ValueError(f"unknown correction {method!r}; known: {list(CORRECTIONS)}")
    out = wells.copy()
    if method == "none":
        return out
    features = feature_columns(wells.columns)
    values = wells[features].to_numpy(np.float64)
    if method == "sphering":
        controls = values[(wells["Metadata_Role"] == control_role).to_numpy()]
        if len(controls) < 2:
            raise ValueError(f"sphering needs at least 2 {control_role} wells, found {len(controls)}")
        mean, transform = sphering_transform(controls, params["sphering_epsilon"])
        corrected = (values - mean) @ transform
    else:
        batches = wells[BATCH_COLUMN].astype(str).to_numpy()
        if len(np.unique(batches)) < 2:
            log.warning("harmony: a single batch, nothing to correct; profiles left unchanged")
            return out
        corrected = harmony(values, batches, params)
        names = [f"harmony_pc_{i:03d}" for i in range(corrected.shape[1])]
        metadata = out.drop(columns=features)
        return pd.concat([metadata, pd.DataFrame(corrected.astype(np.float32), columns=names,
                                                 index=out.index)], axis=1)
    out[features] = corrected.astype(np.float32)
    return out


def consensus(wells: pd.DataFrame, method: str = "median") -> pd.DataFrame:
    """One profile per treatment (aggregate over its wells on every plate), with well counts."""
    if method not in ("median", "mean"):
        raise ValueError(f"unknown consensus method {method!r}; use median or mean")
    features = feature_columns(wells.columns)
    grouped = wells.groupby("Metadata_Treatment", sort=True)
    metadata = [c for c in wells.columns if c.startswith("Metadata_") and c != "Metadata_Treatment"]
    constant = grouped[metadata].nunique(dropna=False).max() <= 1
    keep = [c for c in metadata if constant[c] and c != COUNT_COLUMN]
    out = pd.concat([grouped[keep].first(), grouped.size().rename("Metadata_Count_Wells"),
                     getattr(grouped[features], method)().astype(np.float32)], axis=1)
    return out.reset_index()


def build_profiles(plate_paths, params: dict | None = None, threads: int = 1) -> pd.DataFrame:
    """Aggregate and normalise each plate's per-cell Parquet table, one plate at a time
    (``threads`` aggregate blocks of feature columns in parallel)."""
    params = merge_params(params)
    wells = []
    for path in plate_paths:
        plate_wells = aggregate_parquet(path, params["aggregate"], params["aggregate_columns"], threads)
        try:
            wells.append(normalise_plates(plate_wells, params["normalise"]))
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None
        log.info("profiles: %s: %d cells -> %d wells", path, int(plate_wells[COUNT_COLUMN].sum()),
                 len(plate_wells))
    return pd.concat(wells, ignore_index=True)
