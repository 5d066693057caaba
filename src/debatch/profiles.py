"""Profiles stage: cells -> wells -> per-plate normalised -> corrected -> per-treatment consensus.

Column names follow pycytominer: metadata columns start with ``Metadata_``, every other column
is a feature. Aggregation streams one plate at a time, so memory is bounded by a plate.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from debatch.params import merge_params as check_params

log = logging.getLogger(__name__)

DEFAULTS = {
    "aggregate": "median",        # cells -> well: median (robust to segmentation debris) or mean
    "normalise": "mad_robustize",  # per plate against negcon wells: mad_robustize or standardize
    "corrections": ["none"],      # post-hoc corrections, one output folder each: none, sphering
    "sphering_epsilon": 1e-3,     # ridge added to the negcon covariance's eigenvalues (relative)
    "consensus": "median",        # wells -> treatment: median or mean
}
CORRECTIONS = ("none", "sphering")
WELL_KEY = ["Metadata_Plate", "Metadata_Well"]
COUNT_COLUMN = "Metadata_Count_Cells"
MAD_SCALE = 1.4826  # makes the MAD a consistent estimator of the standard deviation


def merge_params(params: dict | None) -> dict:
    merged = check_params("profiles", DEFAULTS, params)
    bad = sorted(set(merged["corrections"]) - set(CORRECTIONS))
    if bad:
        raise ValueError(f"unknown correction(s) {bad}; known: {list(CORRECTIONS)}")
    return merged


def feature_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if not c.startswith("Metadata_")]


def aggregate_wells(cells: pd.DataFrame, method: str = "median") -> pd.DataFrame:
    """One row per (plate, well): aggregated features, well-level metadata and the cell count.

    Well-level metadata are the Metadata_ columns constant within every well (treatment, role,
    batch...); per-cell ones (site, object number) are dropped.
    """
    if method not in ("median", "mean"):
        raise ValueError(f"unknown aggregate method {method!r}; use median or mean")
    features = feature_columns(cells)
    bad = cells[features].isna().any(axis=1) | ~np.isfinite(cells[features].to_numpy(np.float64)).all(axis=1)
    if bad.any():
        wells = sorted(cells.loc[bad, "Metadata_Well"].unique())
        raise ValueError(f"{int(bad.sum())} cell(s) have NaN/inf features (wells {wells[:5]})")
    grouped = cells.groupby(WELL_KEY, sort=True)
    metadata = [c for c in cells.columns if c.startswith("Metadata_") and c not in WELL_KEY]
    constant = grouped[metadata].nunique(dropna=False).max() <= 1
    well_metadata = grouped[[c for c in metadata if constant[c]]].first()
    values = getattr(grouped[features], method)().astype(np.float32)
    counts = grouped.size().rename(COUNT_COLUMN)
    wells = pd.concat([well_metadata, counts, values], axis=1).reset_index()
    return wells


def normalise_plates(wells: pd.DataFrame, method: str = "mad_robustize",
                     control_role: str = "negcon") -> pd.DataFrame:
    """Per plate: subtract the negcon centre and divide by the negcon spread of each feature.

    Removes plate-level shifts while keeping treatment effects as distances from control.
    """
    if method not in ("mad_robustize", "standardize"):
        raise ValueError(f"unknown normalise method {method!r}; use mad_robustize or standardize")
    features = feature_columns(wells)
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


def correct(wells: pd.DataFrame, method: str, params: dict | None = None,
            control_role: str = "negcon") -> pd.DataFrame:
    """Apply a post-hoc batch correction across all plates of a method's well profiles."""
    params = merge_params(params)
    if method == "none":
        return wells.copy()
    if method != "sphering":
        raise ValueError(f"unknown correction {method!r}; known: {list(CORRECTIONS)}")
    features = feature_columns(wells)
    controls = wells.loc[wells["Metadata_Role"] == control_role, features].to_numpy(np.float64)
    if len(controls) < 2:
        raise ValueError(f"sphering needs at least 2 {control_role} wells, found {len(controls)}")
    mean, transform = sphering_transform(controls, params["sphering_epsilon"])
    out = wells.copy()
    out[features] = ((wells[features].to_numpy(np.float64) - mean) @ transform).astype(np.float32)
    return out


def consensus(wells: pd.DataFrame, method: str = "median") -> pd.DataFrame:
    """One profile per treatment (aggregate over its wells on every plate), with well counts."""
    if method not in ("median", "mean"):
        raise ValueError(f"unknown consensus method {method!r}; use median or mean")
    features = feature_columns(wells)
    grouped = wells.groupby("Metadata_Treatment", sort=True)
    metadata = [c for c in wells.columns if c.startswith("Metadata_") and c != "Metadata_Treatment"]
    constant = grouped[metadata].nunique(dropna=False).max() <= 1
    keep = [c for c in metadata if constant[c] and c != COUNT_COLUMN]
    out = pd.concat([grouped[keep].first(), grouped.size().rename("Metadata_Count_Wells"),
                     getattr(grouped[features], method)().astype(np.float32)], axis=1)
    return out.reset_index()


def build_profiles(plate_tables, params: dict | None = None) -> pd.DataFrame:
    """Aggregate and normalise each plate's per-cell table (an iterable, one plate at a time)."""
    params = merge_params(params)
    wells = []
    for cells in plate_tables:
        plate_wells = aggregate_wells(cells, params["aggregate"])
        wells.append(normalise_plates(plate_wells, params["normalise"]))
        log.info("profiles: plate %s: %d cells -> %d wells", plate_wells["Metadata_Plate"].iloc[0],
                 len(cells), len(plate_wells))
    return pd.concat(wells, ignore_index=True)
