"""Cells -> wells: exact median (or mean) per well, fast and memory-lean on millions of cells.

Features are processed a block of columns at a time in feature-major layout (one contiguous
row per feature), so a Parquet plate is never held whole in memory and each well's median is
one vectorised selection (``np.partition`` with a single kth, which numpy runs with SIMD
quickselect; a two-kth partition is ~10x slower, so the lower middle of an even count is the
max of the left part instead). ``benchmarks/aggregate.py`` measures it against
``pycytominer.aggregate``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

WELL_KEY = ["Metadata_Plate", "Metadata_Well"]
COUNT_COLUMN = "Metadata_Count_Cells"
METHODS = ("median", "mean")


def feature_columns(columns) -> list[str]:
    """pycytominer's convention: every column not starting with ``Metadata_`` is a feature."""
    return [c for c in columns if not c.startswith("Metadata_")]


@dataclass
class WellGroups:
    """Cells grouped by (plate, well): contiguous runs after ``order`` (None = already sorted)."""

    order: np.ndarray | None
    starts: np.ndarray
    counts: np.ndarray
    wells: pd.DataFrame  # one row per well: keys, well-constant metadata, cell count
    cell_wells: np.ndarray  # well name of every cell (for error messages)


def group_wells(metadata: pd.DataFrame) -> WellGroups:
    """Group cells by (plate, well), sorted by name; keep the metadata constant within every well.

    Per-cell metadata (site, object number) differ within a well and are dropped. Works on
    factorized codes with reduceat instead of pandas groupby, which is slow on millions of rows.
    """
    missing = [c for c in WELL_KEY if c not in metadata]
    if missing:
        raise ValueError(f"cell table lacks column(s) {missing}")
    if metadata[WELL_KEY].isna().any().any():
        raise ValueError("cell table has cells without Metadata_Plate/Metadata_Well")
    plate_codes, plates = pd.factorize(metadata["Metadata_Plate"], sort=True)
    well_codes, well_names = pd.factorize(metadata["Metadata_Well"], sort=True)
    codes = plate_codes.astype(np.int64) * len(well_names) + well_codes
    order = None
    if len(codes) > 1 and (np.diff(codes) < 0).any():
        order = np.argsort(codes, kind="stable")
        codes = codes[order]
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]]) if len(codes) else np.array([], int)
    counts = np.diff(np.r_[starts, len(codes)])
    first = starts if order is None else order[starts]
    wells = {"Metadata_Plate": plates.to_numpy()[codes[starts] // len(well_names)],
             "Metadata_Well": well_names.to_numpy()[codes[starts] % len(well_names)]}
    for column in metadata.columns:
        if column in WELL_KEY:
            continue
        values, _ = pd.factorize(metadata[column], use_na_sentinel=False)
        values = values if order is None else values[order]
        if len(starts) and (np.minimum.reduceat(values, starts) == np.maximum.reduceat(values, starts)).all():
            wells[column] = metadata[column].to_numpy()[first]
    wells[COUNT_COLUMN] = counts
    return WellGroups(order, starts, counts, pd.DataFrame(wells),
                      metadata["Metadata_Well"].to_numpy())


def _aggregate_block(block: np.ndarray, groups: WellGroups, method: str) -> np.ndarray:
    """(features x cells, grouped contiguously) -> (wells x features); reorders ``block``."""
    if method == "mean":
        sums = np.add.reduceat(block, groups.starts, axis=1, dtype=np.float64)
        return (sums / groups.counts).T
    out = np.empty((len(groups.starts), block.shape[0]), np.float64)
    for i, (start, count) in enumerate(zip(groups.starts, groups.counts)):
        middle = count // 2
        part = block[:, start:start + count]
        part.partition(middle, axis=1)  # in place: the block is this pass's own copy
        upper = part[:, middle].astype(np.float64)
        out[i] = upper if count % 2 else (upper + part[:, :middle].max(axis=1)) / 2
    return out


def _aggregate(read_block: Callable[[list[str]], np.ndarray], metadata: pd.DataFrame,
               features: list[str], method: str, columns_per_pass: int) -> pd.DataFrame:
    if method not in METHODS:
        raise ValueError(f"unknown aggregate method {method!r}; use median or mean")
    if not features:
        raise ValueError("cell table has no feature columns (every column starts with Metadata_)")
    groups = group_wells(metadata)
    values = np.empty((len(groups.starts), len(features)), np.float32)
    bad = np.zeros(len(metadata), bool)
    for first in range(0, len(features), max(1, columns_per_pass)):
        names = features[first:first + columns_per_pass]
        block = read_block(names)
        bad |= ~np.isfinite(block).all(axis=0)
        if groups.order is not None:
            block = block[:, groups.order]
        values[:, first:first + len(names)] = _aggregate_block(block, groups, method)
    if bad.any():
        wells = sorted(set(groups.cell_wells[bad]))
        raise ValueError(f"{int(bad.sum())} cell(s) have NaN/inf features (wells {wells[:5]})")
    return pd.concat([groups.wells, pd.DataFrame(values, columns=features)], axis=1)


def aggregate_wells(cells: pd.DataFrame, method: str = "median",
                    columns_per_pass: int = 16) -> pd.DataFrame:
    """One row per (plate, well) of an in-memory cell table: metadata, cell count, features."""
    features = feature_columns(cells.columns)
    metadata = cells[[c for c in cells.columns if c not in features]]

    def read_block(names):
        block = np.empty((len(names), len(cells)), np.float32)
        for row, name in zip(block, names):
            row[:] = cells[name].to_numpy()
        return block

    return _aggregate(read_block, metadata, features, method, columns_per_pass)


def aggregate_parquet(path, method: str = "median", columns_per_pass: int = 16) -> pd.DataFrame:
    """Like :func:`aggregate_wells`, reading ``columns_per_pass`` feature columns at a time.

    Peak memory is about cells x columns_per_pass x 8 bytes plus the metadata, whatever the
    number of features.
    """
    table = pq.ParquetFile(path)
    names = table.schema_arrow.names
    features = feature_columns(names)
    metadata = table.read(columns=[c for c in names if c not in features]).to_pandas()

    def read_block(names):
        chunk = table.read(columns=names)
        block = np.empty((len(names), chunk.num_rows), np.float32)
        for row, column in zip(block, chunk.columns):
            row[:] = column.to_numpy()
        return block

    try:
        return _aggregate(read_block, metadata, features, method, columns_per_pass)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
