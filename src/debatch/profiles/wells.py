"""Well profiles of a source's per-cell tables: aggregated per well, normalised per plate.

Streams one plate at a time (and a block of feature columns at a time, debatch.profiles.
aggregate), so memory is bounded by a slice of one plate whatever the screen's size.
"""

from __future__ import annotations

import logging

import pandas as pd

from debatch.profiles.aggregate import aggregate_parquet
from debatch.profiles.normalise import normalise_plates
from debatch.settings import COUNT_CELLS, PROFILES

log = logging.getLogger(__name__)


def well_profiles(plate_paths, params: dict | None = None, threads: int = 1) -> pd.DataFrame:
    """Aggregate and normalise each plate's per-cell Parquet table, one plate at a time
    (``threads`` aggregate blocks of feature columns in parallel)."""
    params = PROFILES.merge(params)
    wells = []
    for path in plate_paths:
        plate_wells = aggregate_parquet(
            path, params["aggregate"], params["aggregate_columns"], threads
        )
        try:
            wells.append(normalise_plates(plate_wells, params["normalise"]))
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None
        log.info(
            "profiles: %s: %d cells -> %d wells",
            path,
            int(plate_wells[COUNT_CELLS].sum()),
            len(plate_wells),
        )
    return pd.concat(wells, ignore_index=True)
