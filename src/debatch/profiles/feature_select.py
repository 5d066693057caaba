"""Feature selection of well profiles, with pycytominer's ``feature_select`` semantics.

Run per screen on the plate-normalised well profiles of CellProfiler features (hundreds of
wells, not millions of cells: selection is about which *features* carry signal between wells,
and a well table is small enough to decide that exactly), before any correction. Operations,
in ``profiles.feature_select.operations`` order, each on the features the previous ones kept:

- ``drop_na_columns``: a feature missing in more than ``na_cutoff`` of the wells;
- ``drop_outliers``: a feature whose absolute value exceeds ``outlier_cutoff`` in any well (after
  normalisation: a negcon spread near 0 blew it up). First by default, so the correlation step
  never keeps an artefact in place of a sound partner. Embeddings' wells go through this step
  too (``settings.GUARDS``);
- ``frequency_threshold``: near-zero variance, as caret's ``nearZeroVar``: the second most
  common value is rarer than ``freq_cut`` x the most common one, or fewer than ``unique_cut`` x
  wells distinct values;
- ``correlation_threshold``: of every pair correlated above ``corr_threshold`` (Pearson, signed,
  as pycytominer), the one with the larger total absolute correlation to all features;
- ``blocklist``: CellProfiler features known to be noisy (``data/blocklist.txt``, the list
  pycytominer ships, from Way 2019).

``tests/test_feature_select.py`` checks the kept columns equal ``pycytominer.feature_select``'s.
"""

from __future__ import annotations

from importlib.resources import files

import numpy as np
import pandas as pd

from debatch.settings import FEATURE_SELECT, feature_columns


def blocklist() -> list[str]:
    """The packaged blocklist of noisy CellProfiler features."""
    text = files("debatch.profiles").joinpath("data/blocklist.txt").read_text()
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def _na_columns(values: pd.DataFrame, cutoff: float) -> list[str]:
    return values.columns[values.isna().mean() > cutoff].tolist()


def _value_counts(column: np.ndarray) -> tuple[float, int]:
    """A column's count of its second most common value over its most common's (0 with one
    value or none) and its number of distinct values, NaN left out: pandas' value_counts and
    nunique, without their per-column cost (seconds over thousands of CellProfiler features)."""
    counts = np.unique(column[~np.isnan(column)], return_counts=True)[1]
    if len(counts) < 2:
        return 0.0, len(counts)
    second, first = np.partition(counts, -2)[-2:]
    return second / first, len(counts)


def _outlier_columns(values: pd.DataFrame, cutoff: float) -> list[str]:
    """Features whose largest absolute value (NaN skipped) exceeds ``cutoff``."""
    return values.columns[values.abs().max() > cutoff].tolist()


def _low_variance_columns(values: pd.DataFrame, freq_cut: float, unique_cut: float) -> list[str]:
    ratios, distinct = (
        np.array([_value_counts(column) for column in values.to_numpy(np.float64).T])
        .reshape(-1, 2)
        .T
    )
    with np.errstate(invalid="ignore"):  # no wells: nothing is low
        low = (ratios < freq_cut) | (distinct / len(values) < unique_cut)
    return values.columns[low].tolist()


def _correlated_columns(values: pd.DataFrame, threshold: float) -> list[str]:
    """Of each pair above ``threshold``, the member with the larger total |correlation|."""
    if values.shape[1] < 2:
        return []
    data = values.to_numpy(np.float64)
    if np.isfinite(data).all():
        correlation = pd.DataFrame(
            np.corrcoef(data.T), index=values.columns, columns=values.columns
        )
    else:
        correlation = values.corr(method="pearson")
    names = correlation.columns
    rank = np.empty(len(names), np.int64)  # position in ascending total |correlation|
    rank[names.get_indexer(correlation.abs().sum().sort_values().index)] = np.arange(len(names))
    lower = np.tril(np.ones(correlation.shape, bool), k=-1)
    rows, cols = np.nonzero(lower & (correlation.to_numpy() > threshold))
    dropped = np.unique(np.where(rank[rows] > rank[cols], rows, cols))
    return sorted(names[dropped])


def select_features(wells: pd.DataFrame, params: dict | None = None) -> tuple[list[str], dict]:
    """(kept feature columns in table order, {operation: dropped columns})."""
    feature_select = FEATURE_SELECT.merge(params)
    kept = feature_columns(wells.columns)
    dropped = {}
    for operation in feature_select["operations"]:
        values = wells[kept]
        if operation == "drop_na_columns":
            out = _na_columns(values, feature_select["na_cutoff"])
        elif operation == "drop_outliers":
            out = _outlier_columns(values, feature_select["outlier_cutoff"])
        elif operation == "frequency_threshold":
            out = _low_variance_columns(
                values, feature_select["freq_cut"], feature_select["unique_cut"]
            )
        elif operation == "correlation_threshold":
            out = _correlated_columns(values, feature_select["corr_threshold"])
        else:
            remaining = set(kept)
            out = [name for name in blocklist() if name in remaining]
        dropped[operation] = sorted(out)
        dropped_now = set(out)
        kept = [name for name in kept if name not in dropped_now]
    return kept, dropped
