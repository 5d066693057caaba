"""Consensus profiles: one row per treatment (and dose, where the platemap has a ``dose``
column), aggregated over its wells on every plate."""

from __future__ import annotations

import numpy as np
import pandas as pd

from debatch.settings import (
    AGGREGATES,
    COUNT_CELLS,
    COUNT_WELLS,
    DOSE,
    METADATA,
    TREATMENT,
    check_choice,
    feature_columns,
)


def consensus(wells: pd.DataFrame, method: str = "median") -> pd.DataFrame:
    """One profile per treatment and dose (aggregate over its wells on every plate), with well
    counts; a dose left empty in the platemap (negcon) is a group of its own."""
    check_choice("profiles.consensus", method, AGGREGATES)
    features = feature_columns(wells.columns)
    by = [TREATMENT, DOSE] if DOSE in wells else [TREATMENT]
    grouped = wells.groupby(by, sort=True, dropna=False)
    metadata = [c for c in wells.columns if c.startswith(METADATA) and c not in by]
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
