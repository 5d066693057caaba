"""Consensus profiles: one row per treatment, aggregated over its wells on every plate."""

from __future__ import annotations

import numpy as np
import pandas as pd

from debatch.settings import (
    AGGREGATES,
    COUNT_CELLS,
    COUNT_WELLS,
    METADATA,
    TREATMENT,
    check_choice,
    feature_columns,
)


def consensus(wells: pd.DataFrame, method: str = "median") -> pd.DataFrame:
    """One profile per treatment (aggregate over its wells on every plate), with well counts."""
    check_choice("profiles.consensus", method, AGGREGATES)
    features = feature_columns(wells.columns)
    grouped = wells.groupby(TREATMENT, sort=True)
    metadata = [c for c in wells.columns if c.startswith(METADATA) and c != TREATMENT]
    constant = grouped[metadata].nunique(dropna=False).max() <= 1
    keep = [c for c in metadata if constant[c] and c != COUNT_CELLS]
    out = pd.concat(
        [
            grouped[keep].first(),
            grouped.size().rename(COUNT_WELLS),
            getattr(grouped[features], method)().astype(np.float32),
        ],
        axis=1,
    )
    return out.reset_index()
