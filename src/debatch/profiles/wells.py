"""Well profiles of a source's per-cell tables: aggregated per well, normalised per plate.

Streams one plate at a time (and a block of feature columns at a time, debatch.profiles.
aggregate), so memory is bounded by a slice of one plate whatever the screen's size.

CellProfiler features (``cellprofiler``) differ from embeddings in three ways: for the
``cellprofiler`` source only the cells of the crops tables are profiled (``cell_tables``: the
cells every CNN embeds, so all sources describe the same cells), positional features are left
out (``settings.POSITIONAL_FEATURES``), and NaN is "not measurable", skipped when aggregating.
After normalisation, pycytominer's feature selection picks the features
(``profiles.feature_select``); a kept feature's rare NaN wells get 0, the negative controls'
median on the normalised scale. Embeddings go through the selection's guards only
(``settings.GUARDS``: a dimension blown up by a near-zero negcon spread is dropped, as a
CellProfiler feature would be).

A reference run's well profiles (``reference``: its wells_normalised.parquet) join this run's
in the reference's feature space: they were normalised the same way, per plate against its own
negcon, so old and new plates are comparable without touching the old ones; only the guards
run again, on old and new wells together.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from debatch.profiles.aggregate import aggregate_parquet
from debatch.profiles.feature_select import select_features
from debatch.profiles.normalise import normalise_plates
from debatch.settings import (
    CELL_KEY,
    COUNT_CELLS,
    GUARDS,
    OBJECT,
    PLATE,
    POSITIONAL_FEATURES,
    PROFILES,
    SITE_KEY,
    WELL,
    feature_columns,
)

log = logging.getLogger(__name__)


def profiled_rows(features_path, cells_path) -> np.ndarray:
    """Positions, in the features table, of the cells of ``cells_path`` (a crops table); a
    crops table of whole sites (``crops.unit: site``) names sites: every cell on them."""
    if OBJECT not in pq.ParquetFile(cells_path).schema_arrow.names:
        table = pq.read_table(features_path, columns=SITE_KEY).to_pandas()
        sites = pd.MultiIndex.from_frame(pd.read_parquet(cells_path, columns=SITE_KEY))
        return np.flatnonzero(pd.MultiIndex.from_frame(table).isin(sites))
    table = pq.read_table(features_path, columns=CELL_KEY).to_pandas()
    wanted = pd.read_parquet(cells_path, columns=CELL_KEY)
    position = pd.Series(np.arange(len(table)), index=pd.MultiIndex.from_frame(table))
    found = pd.MultiIndex.from_frame(wanted)
    missing = ~found.isin(position.index)
    if missing.any():
        raise ValueError(
            f"{features_path}: {int(missing.sum())} cells of {cells_path} have no features "
            f"(first: well {wanted[WELL].iloc[np.argmax(missing)]}); rerun the features stage"
        )
    return position.loc[found].to_numpy()


def profile_columns(path) -> list[str]:
    """A per-cell table's features without the positional ones (where, not what)."""
    names = feature_columns(pq.ParquetFile(path).schema_arrow.names)
    return [n for n in names if not any(part in n for part in POSITIONAL_FEATURES)]


def _selected(wells: pd.DataFrame, params: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Wells with the selected features only (NaN filled) and the selection report
    (``params``: the ``profiles.feature_select`` block)."""
    features = feature_columns(wells.columns)
    kept, dropped = select_features(wells, params)
    if not kept:
        counts = ", ".join(f"{op} dropped {len(names)}" for op, names in dropped.items())
        raise ValueError(f"feature selection kept none of {len(features)} features ({counts})")
    why = {name: operation for operation, names in dropped.items() for name in names}
    is_kept = set(kept)
    report = pd.DataFrame(
        {
            "feature": features,
            "kept": [f in is_kept for f in features],
            "dropped_by": [why.get(f, "") for f in features],
        }
    )
    filled = int(wells[kept].isna().to_numpy().sum())
    metadata = [c for c in wells.columns if c not in features]
    # one concat: assigning thousands of CellProfiler columns back one by one is pandas' slow path
    wells = pd.concat([wells[metadata], wells[kept].fillna(0.0)], axis=1)
    log.info(
        "feature selection: %d of %d features kept (%s); %d NaN well values of kept features "
        "set to 0 (the negcon median)",
        len(kept),
        len(features),
        ", ".join(f"{op} dropped {len(names)}" for op, names in dropped.items()),
        filled,
    )
    return wells, report


def with_reference(wells: pd.DataFrame, reference) -> pd.DataFrame:
    """The reference run's wells, then these, in the reference's features (see the module
    docstring). A plate in both is this run's (a plate imaged or processed again replaces the
    old one, logged); a reference feature these wells lack is an error."""
    old = pd.read_parquet(reference)
    both = sorted(set(old[PLATE]) & set(wells[PLATE]))
    if both:
        log.warning(
            "profiles: plate(s) %s of the reference %s replaced by this run's", both, reference
        )
        old = old[~old[PLATE].isin(both)]
    features = feature_columns(old.columns)
    missing = sorted(set(features) - set(wells.columns))
    if missing:
        raise ValueError(
            f"this run's wells lack {len(missing)} feature(s) of profiles.reference {reference} "
            f"(first: {missing[0]}): the source must be the same model or features"
        )
    measured = set(feature_columns(wells.columns))
    metadata = [c for c in wells.columns if c not in measured]
    log.info("profiles: %d wells of the reference %s join %d", len(old), reference, len(wells))
    return pd.concat([old, wells[metadata + features]], ignore_index=True)


def well_profiles(
    plate_paths,
    params: dict | None = None,
    threads: int = 1,
    cell_tables=None,
    drop_plates_without_negcon: bool = False,
    reference=None,
    cellprofiler: bool | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(well profiles of every plate, aggregated and normalised per plate; the features report:
    feature, kept, dropped_by). ``threads`` aggregate blocks of feature columns in parallel;
    ``cellprofiler``: the tables hold CellProfiler features (see the module docstring; default:
    when ``cell_tables`` are given); ``cell_tables``: per plate, the crops table naming the
    cells to profile (the ``cellprofiler`` source's features tables). A plate without negcon cells
    (QC removed them all) is an error, or left out with a warning when
    ``drop_plates_without_negcon`` (``qc.plate_without_negcon: drop``). ``reference``: a
    finished run's wells_normalised.parquet of the same source, joined before the guards."""
    params = PROFILES.merge(params)
    cellprofiler = cell_tables is not None if cellprofiler is None else cellprofiler
    wells = []
    for i, path in enumerate(plate_paths):
        options = {}
        if cellprofiler:
            options = {"features": profile_columns(path), "skip_nan": True}
        if cell_tables is not None:
            options["rows"] = profiled_rows(path, cell_tables[i])
        plate_wells = aggregate_parquet(
            path, params["aggregate"], params["aggregate_columns"], threads, **options
        )
        try:
            wells.append(
                normalise_plates(
                    plate_wells, params["normalise"], mad_epsilon=params["mad_epsilon"]
                )
            )
        except ValueError as error:
            if drop_plates_without_negcon and "no negcon well" in str(error):
                log.warning(
                    "profiles: %s: %s; left out (qc.plate_without_negcon: drop)", path, error
                )
                continue
            raise ValueError(
                f"{path}: {error} (QC may have removed them: see its log, qc.plate_without_negcon)"
            ) from None
        log.info(
            "profiles: %s: %d cells -> %d wells",
            path,
            int(plate_wells[COUNT_CELLS].sum()),
            len(plate_wells),
        )
    if not wells:
        raise ValueError("no plate has negcon cells left to normalise against")
    wells = pd.concat(wells, ignore_index=True)
    selection = params["feature_select"]
    if reference is not None:
        wells = with_reference(wells, reference)
    if not cellprofiler or reference is not None:
        selection = {**selection, "operations": [o for o in selection["operations"] if o in GUARDS]}
    return _selected(wells, selection)
