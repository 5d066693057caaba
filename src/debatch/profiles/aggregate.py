"""Cells -> wells: exact median (or mean) per well, fast and memory-lean on millions of cells.

Features are processed a block of columns at a time in feature-major layout (one contiguous
row per feature, cells sorted by well once), so a Parquet plate is never held whole in memory
and each well's median is one vectorised selection along the contiguous axis (``np.partition``
with a single kth, which numpy runs with SIMD quickselect; a two-kth partition is ~10x slower,
so the lower middle of an even count is the max of the left part instead), on the float32
values themselves (int32 keys ordered like them partition a little faster, but making the
keys cost more than they saved: benchmarks/notes.md). Blocks of columns run on a thread
each (numpy's partition and pyarrow's Parquet reader release the GIL), every thread reusing one
scratch block: on the VMs measured, faulting in fresh pages cost about as much as the selection
itself. CellProfiler's tables, whose few NaN mean "not measurable" (``skip_nan``), take the same
path; only the feature rows holding a NaN are then sorted, to read each well's middle of its
finite values. ``benchmarks/aggregate.py`` measures both against ``pycytominer.aggregate``.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from debatch.core.parallel import usable_cores
from debatch.settings import (
    AGGREGATES,
    COUNT_CELLS,
    OBJECT,
    PLATE,
    SITE,
    SITE_CELLS_META,
    WELL,
    check_choice,
    feature_columns,
)

_WELL_KEY = [PLATE, WELL]
# name a site or a cell, never a well, even where a well has one; a whole site's cell count
# (crops.unit: site) is summed into the well's instead
_PER_CELL = (SITE, OBJECT, SITE_CELLS_META)


@dataclass
class WellGroups:
    """Cells grouped by (plate, well): contiguous runs after ``order`` (None = already sorted)."""

    order: np.ndarray | None
    starts: np.ndarray
    counts: np.ndarray
    wells: pd.DataFrame  # one row per well: keys, well-constant metadata, cell count
    cell_wells: pd.Series  # well name of every cell (for error messages)


def _sorted_codes(series: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Integer codes ordered like the sorted distinct values (pd.factorize(sort=True), but a
    categorical's codes are reused, sorted by category name rather than category order)."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        categories = series.cat.categories
        by_name = np.argsort(categories.to_numpy(), kind="stable")
        rank = np.empty(len(categories), np.int64)
        rank[by_name] = np.arange(len(categories))
        return rank[series.cat.codes.to_numpy()], categories[by_name]
    return pd.factorize(series, sort=True)


def _group_wells(metadata: pd.DataFrame) -> WellGroups:
    """Group cells by (plate, well), sorted by name; keep the metadata constant within every well.

    Per-cell metadata (site, object number) are dropped, even in a well with one site, so a
    well table has the same columns whatever the number of sites; rows of whole sites
    (``Metadata_Cells``: crops.unit site) give the well the sum of their cells as its count.
    Works on factorized codes with reduceat instead of pandas groupby, which is slow on
    millions of rows.
    """
    missing = [c for c in _WELL_KEY if c not in metadata]
    if missing:
        raise ValueError(f"cell table lacks column(s) {missing}")
    if metadata[_WELL_KEY].isna().any().any():
        raise ValueError(f"cell table has cells without {PLATE}/{WELL}")
    plate_codes, plates = _sorted_codes(metadata[PLATE])
    well_codes, well_names = _sorted_codes(metadata[WELL])
    codes = plate_codes.astype(np.int64) * len(well_names) + well_codes
    order = None
    if len(codes) > 1 and (np.diff(codes) < 0).any():
        order = np.argsort(codes, kind="stable")
        codes = codes[order]
    starts = (
        np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]]) if len(codes) else np.array([], int)
    )
    counts = np.diff(np.r_[starts, len(codes)])
    first = starts if order is None else order[starts]
    wells = {
        PLATE: plates.to_numpy()[codes[starts] // len(well_names)],
        WELL: well_names.to_numpy()[codes[starts] % len(well_names)],
    }
    for column in metadata.columns:
        if column in _WELL_KEY or column in _PER_CELL:
            continue
        series = metadata[column]
        if isinstance(series.dtype, np.dtype) and series.dtype.kind in "iub":
            values = series.to_numpy()
        else:  # strings, floats (NaN != NaN), ...: compare codes
            values, _ = pd.factorize(series, use_na_sentinel=False)
        values = values if order is None else values[order]
        if (
            len(starts)
            and (np.minimum.reduceat(values, starts) == np.maximum.reduceat(values, starts)).all()
        ):
            wells[column] = series.iloc[first].to_numpy()
    wells[COUNT_CELLS] = counts
    if SITE_CELLS_META in metadata:  # rows are whole sites: the well's cells are theirs
        cells = metadata[SITE_CELLS_META].to_numpy(np.int64)
        cells = cells if order is None else cells[order]
        wells[COUNT_CELLS] = np.add.reduceat(cells, starts) if len(starts) else counts
    return WellGroups(order, starts, counts, pd.DataFrame(wells), metadata[WELL])


def _is_finite(values: np.ndarray) -> bool:
    """Whether every value of ``values`` (float) is finite: min and max are NaN where any value
    is, and +-inf where one is; two SIMD passes, faster than a sum or ``isfinite(...).all()``."""
    return not values.size or bool(np.isfinite(values.min()) and np.isfinite(values.max()))


def _fill_block(block: np.ndarray, columns, order: np.ndarray) -> np.ndarray:
    """Copy each of ``columns`` (float32) into its row of ``block``, cells in well order
    (``order``, empty when they already are); returns which rows hold no NaN/inf. An inf is
    made NaN, so that every value that is not finite sorts last, and -0.0 is made 0.0 (adding
    0.0), so that which zero a median picks does not depend on the partition's path."""
    finite = np.ones(len(block), bool)
    for i, (row, column) in enumerate(zip(block, columns)):
        finite[i] = _is_finite(column)
        if len(order):
            np.take(column, order, out=row, mode="wrap")  # "raise" would buffer the output
            row += 0.0
        else:
            np.add(column, 0.0, out=row)  # the copy
        if not finite[i]:
            row[np.isinf(row)] = np.nan
    return finite


def _middles(part: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(upper, lower) middle values of every row of ``part`` (features x a well's cells), equal
    for an odd count; reorders ``part``. One single-kth ``partition`` (numpy's SIMD
    quickselect; a two-kth partition is ~10x slower, so the lower middle of an even count is
    the max of the left part)."""
    count = part.shape[1]
    middle = count // 2
    part.partition(middle, axis=1)  # in place: the block is this pass's own copy
    upper = part[:, middle]
    return upper, upper if count % 2 else part[:, :middle].max(axis=1)


def _middles_of_finite(
    part: np.ndarray, rows_with_nan: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """As ``_middles`` over each row's finite values only, and which rows have none.
    ``rows_with_nan``: the rows with a NaN in some well (in CellProfiler's tables a few
    features are NaN for some cells). Every row is partitioned as usual, which is right for
    the others; these, whose finite counts differ, are then sorted (NaN sorts last) and read
    at their own middle."""
    upper, lower = (values.copy() for values in _middles(part))
    partial = np.sort(part[rows_with_nan], axis=1)
    finite = part.shape[1] - np.isnan(partial).sum(axis=1)
    rows, at_least_one = np.arange(len(partial)), np.maximum(finite, 1)
    upper[rows_with_nan] = partial[rows, at_least_one // 2]
    lower[rows_with_nan] = partial[rows, (at_least_one - 1) // 2]
    empty = np.zeros(len(part), bool)
    empty[rows_with_nan] = finite == 0
    return upper, lower, empty


def _aggregate_block(
    block: np.ndarray,
    groups: WellGroups,
    method: str,
    out: np.ndarray,
    rows_with_nan: np.ndarray | None = None,
) -> None:
    """(features x cells, grouped contiguously, float32) -> ``out`` (wells x features);
    reorders ``block``.

    Each well's cells are a contiguous slice of every feature row, so its median is one
    ``partition`` along the last (contiguous) axis of a (features x cells-in-well) view.
    ``rows_with_nan``: the block's rows that hold a NaN/inf; each well's median (mean) of them is
    over its finite values only (NaN where a well has none), like pandas' and pycytominer's:
    for CellProfiler features, where NaN means "could not be measured", not a broken model.
    """
    with_nan = rows_with_nan is not None and rows_with_nan.any()
    if method == "mean":
        if with_nan:
            _mean_block_skipping_nan(block, groups, out)
            return
        sums = np.add.reduceat(block, groups.starts, axis=1, dtype=np.float64)
        out[:] = (sums / groups.counts).T
        return
    upper = np.empty(out.shape, np.float32)
    lower = np.empty(out.shape, np.float32)
    empty = np.zeros(out.shape, bool)
    for i, (start, count) in enumerate(zip(groups.starts.tolist(), groups.counts.tolist())):
        part = block[:, start : start + count]
        if with_nan:
            upper[i], lower[i], empty[i] = _middles_of_finite(part, rows_with_nan)
        else:
            upper[i], lower[i] = _middles(part)
    # an even count: the mean of the two middle values, in float64 like pandas
    out[:] = (upper.astype(np.float64) + lower) / 2
    out[empty] = np.nan


def _mean_block_skipping_nan(block: np.ndarray, groups: WellGroups, out: np.ndarray) -> None:
    """Each well's mean over its finite values (NaN where a well has none; ``_fill_block`` made
    every inf NaN)."""
    with warnings.catch_warnings():  # a well without any finite value: NaN, counted later
        warnings.simplefilter("ignore", RuntimeWarning)
        for i, (start, count) in enumerate(zip(groups.starts.tolist(), groups.counts.tolist())):
            out[i] = np.nanmean(block[:, start : start + count].astype(np.float64), axis=1)


_MAX_THREADS = 8  # default cap: each thread holds its own block of columns
_READ_CELLS = 1 << 20  # values per Parquet read call at most (_parquet_columns)


def _aggregate(
    read_columns: Callable[[list[str]], Iterable[np.ndarray]],
    metadata: pd.DataFrame,
    features: list[str],
    method: str,
    columns_per_pass: int,
    threads: int | None,
    skip_nan: bool = False,
) -> pd.DataFrame:
    check_choice("profiles.aggregate", method, AGGREGATES)
    if not features:
        raise ValueError("cell table has no feature columns (every column starts with Metadata_)")
    groups = _group_wells(metadata)
    values = np.empty((len(groups.starts), len(features)), np.float32)
    step = max(1, min(columns_per_pass, len(features)))
    scratch = threading.local()  # per thread, reused by every pass: fresh pages cost more
    order = np.empty(0, np.intp) if groups.order is None else groups.order.astype(np.intp)

    def one_pass(first: int) -> np.ndarray | None:
        """Aggregate one block of feature columns into ``values``; the cells with NaN/inf, if
        any."""
        names = features[first : first + step]
        if not hasattr(scratch, "block"):
            scratch.block = np.empty((step, len(metadata)), np.float32)
        block, out = scratch.block[: len(names)], values[:, first : first + len(names)]
        finite = _fill_block(block, read_columns(names), order)
        if not finite.all() and not skip_nan:
            bad = np.isnan(block).any(axis=0)
            return bad if groups.order is None else bad[np.argsort(groups.order)]
        _aggregate_block(block, groups, method, out, ~finite)
        return None

    passes = range(0, len(features), step)
    threads = min(
        min(usable_cores(), _MAX_THREADS) if threads is None else max(1, threads), len(passes)
    )
    if threads > 1:  # numpy's partition and pyarrow's reader release the GIL
        with ThreadPoolExecutor(threads) as pool:
            results = list(pool.map(one_pass, passes))
    else:
        results = [one_pass(first) for first in passes]
    bad = [mask for mask in results if mask is not None]
    if bad:
        bad = np.logical_or.reduce(bad)
        wells = sorted(set(groups.cell_wells.to_numpy()[bad]))
        raise ValueError(f"{int(bad.sum())} cell(s) have NaN/inf features (wells {wells[:5]})")
    return pd.concat([groups.wells, pd.DataFrame(values, columns=features)], axis=1)


def aggregate_wells(
    cells: pd.DataFrame,
    method: str = "median",
    columns_per_pass: int = 32,
    threads: int | None = None,
) -> pd.DataFrame:
    """One row per (plate, well) of an in-memory cell table: metadata, cell count, features.

    ``threads`` (default: the usable cores, at most ``_MAX_THREADS``) aggregate blocks of
    ``columns_per_pass`` columns in parallel. Float32 features stay float32 (an odd count's
    median is exact; an even count's is the float64 mean of the two middle values, rounded to
    float32); cells with NaN/inf are an error naming their wells.
    """
    features = feature_columns(cells.columns)
    metadata = cells[[c for c in cells.columns if c not in features]]

    def read_columns(names):
        return (cells[name].to_numpy(np.float32) for name in names)

    return _aggregate(read_columns, metadata, features, method, columns_per_pass, threads)


def aggregate_parquet(
    path,
    method: str = "median",
    columns_per_pass: int = 32,
    threads: int | None = None,
    rows: np.ndarray | None = None,
    features: list[str] | None = None,
    skip_nan: bool = False,
) -> pd.DataFrame:
    """Like :func:`aggregate_wells`, reading ``columns_per_pass`` feature columns at a time.

    ``rows``: the row positions (file order) of the cells to aggregate, default all;
    ``features``: the feature columns, default every non-``Metadata_`` column; ``skip_nan``:
    a well's value is over its finite values (``_aggregate_block``) instead of
    NaN being an error. Peak memory is about cells x columns_per_pass x 4 bytes per thread (a
    float32 block), plus the columns of one read (``_READ_CELLS`` values, or one column where
    the file has more rows, in its stored type, and its float32 copy) and the metadata,
    whatever the number of features.
    """
    schema = pq.ParquetFile(path).schema_arrow
    every_feature = feature_columns(schema.names)
    is_feature = set(every_feature)  # once: a per-column lookup made it quadratic in columns
    columns = [c for c in schema.names if c not in is_feature]
    features = every_feature if features is None else features
    missing = sorted(set(features) - set(schema.names))
    if missing:
        raise ValueError(f"{path}: no feature column(s) {missing[:5]} ({len(missing)} missing)")
    strings = [
        c
        for c in columns
        if pa.types.is_string(schema.field(c).type)
        or pa.types.is_large_string(schema.field(c).type)
    ]
    # strings dictionary-encoded (pandas categoricals): grouping works on their codes
    metadata = pq.read_table(path, columns=columns, read_dictionary=strings).to_pandas()
    file_rows = len(metadata)
    if rows is not None:
        metadata = metadata.iloc[rows].reset_index(drop=True)
    read_columns = _parquet_columns(path, rows, file_rows)
    try:
        return _aggregate(
            read_columns, metadata, features, method, columns_per_pass, threads, skip_nan
        )
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None


def _parquet_columns(path, rows: np.ndarray | None, file_rows: int):
    """``read_columns(names)``: the float32 values of those columns of ``path`` (its ``rows``;
    nulls NaN), one reader per thread. Up to _READ_CELLS values per Parquet read: a large
    plate's columns one at a time (the reader's buffers are freed and reused at once, never
    returned to the OS: faulting fresh pages in costs more than decoding them), a small plate's
    whole block of columns at once (each read call has a fixed cost, which CellProfiler's
    thousands of columns multiply)."""
    local = threading.local()
    per_read = max(1, _READ_CELLS // max(1, file_rows))

    def read_columns(names):
        if not hasattr(local, "file"):
            local.file = pq.ParquetFile(path)
        for first in range(0, len(names), per_read):
            chunk = names[first : first + per_read]
            table = local.file.read(columns=chunk, use_threads=False)
            for column in map(table.column, chunk):
                values = (
                    column.chunk(0).to_numpy(zero_copy_only=False)
                    if column.num_chunks == 1
                    else column.to_numpy()
                )  # nulls become NaN
                values = values if rows is None else values[rows]
                yield values.astype(np.float32, copy=False)

    return read_columns
