"""One shard of a plate through the features stage, in the cells table's row order.

A shard is the same contiguous block of sites as in segmentation (``shard_sites``), so the
shards' files, gathered in order, are the plate's ``features/{plate}.parquet``: one row per row
of ``cells/{plate}.parquet``, its ``Metadata_`` columns first. Sites are read, corrected and
measured in ``threads`` worker processes, a few ahead of the writer, which streams each site's
rows to the file (a plate's table is gigabytes); the job log gets progress, the CPU seconds of
each measurement module and the features that came out NaN (with how many cells), since NaN is
what CellProfiler also gives for what it cannot measure.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd
import pyarrow as pa

from debatch.core.images import check_illum, read_raw_site
from debatch.core.io import ParquetStream
from debatch.core.parallel import ordered_map
from debatch.core.shards import shard_sites
from debatch.features.gather import check_cells_order
from debatch.features.site import feature_names, measure_site, site_images
from debatch.settings import CELL_KEY, FEATURES, METADATA, OBJECT, SITE, SITE_KEY, WELL

log = logging.getLogger(__name__)


def _scale_max(raw: dict[str, np.ndarray]) -> int:
    """The grid Costes' search steps on: the raw pixel type's maximum (65535 for float)."""
    dtype = next(iter(raw.values())).dtype
    return int(np.iinfo(dtype).max) if dtype.kind in "ui" else 65535


_WORKER: dict = {}  # what every site of a shard shares, set once in each worker process


def _start_worker(masks_path, channels: list[str], illum, features_settings: dict) -> None:
    _WORKER.update(
        masks=np.load(masks_path),
        channels=channels,
        illum=illum,
        features_settings=features_settings,
    )


def _measure(task: tuple[dict, np.ndarray]) -> tuple[pd.DataFrame, dict]:
    """The features of the cells (object numbers) of one site, in that order, and the CPU
    seconds of each module (in a worker set up by ``_start_worker``)."""
    row, objects = task
    masks, channels, illum, features_settings = (
        _WORKER[k] for k in ("masks", "channels", "illum", "features_settings")
    )
    raw = read_raw_site(row, channels)
    check_illum(raw, row, illum)
    name = f"{row[WELL]}_{row[SITE]}"
    if f"{name}_nuclei" not in masks.files:
        raise ValueError(
            f"the plate's masks have no label images of well {row[WELL]} site {row[SITE]}"
        )
    timings: dict[str, float] = {}
    images = site_images(raw, illum)
    table = measure_site(
        masks[f"{name}_nuclei"],
        masks[f"{name}_cells"],
        images,
        features_settings,
        _scale_max(raw),
        timings=timings,
    )
    if objects.max(initial=0) > len(table):
        raise ValueError(
            f"well {row[WELL]} site {row[SITE]}: the cells table has objects the masks lack"
        )
    return table.iloc[objects - 1].reset_index(drop=True), timings


def _sites(tasks: list, setup: tuple, processes: int) -> Iterator[tuple[pd.DataFrame, dict]]:
    """``_measure`` of every task in order: in this process, or on ``processes`` forked workers
    (the measurements hold the GIL, so threads would not run them in parallel)."""
    if processes <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        _start_worker(*setup)
        try:
            yield from map(_measure, tasks)
        finally:
            _WORKER.pop("masks").close()
        return
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(processes, context, _start_worker, setup) as pool:
        yield from ordered_map(pool, _measure, tasks, 2 * processes)


def _log_timings(timings: dict[str, float]) -> None:
    """One line on the CPU seconds each measurement module took, the costliest first."""
    spent = sorted(timings.items(), key=lambda item: -item[1])
    log.info("features: CPU seconds per module: %s", ", ".join(f"{k} {v:.1f}" for k, v in spent))


def _log_missing(nan_counts: pd.Series) -> None:
    """One line on the features that came out NaN for some cells (``nan_counts``: cells per
    feature) and the most affected, so a reader sees what failed."""
    missing = nan_counts[nan_counts > 0].sort_values(ascending=False)
    if missing.empty:
        log.info("features: no NaN")
        return
    worst = ", ".join(f"{name} ({count})" for name, count in missing.head(8).items())
    log.info(
        "features: %d of %d features NaN for some cells (CellProfiler gives NaN there too: "
        "objects too small or empty, undefined correlations); most cells: %s",
        len(missing),
        len(nan_counts),
        worst,
    )


def features_schema(metadata: pd.DataFrame, names: list[str]) -> pa.Schema:
    """A features file's columns: those of ``metadata`` (the cells table's ``Metadata_``
    columns, their types read from their values: pandas 2 holds text as ``object``), then
    ``names`` as float32."""
    features = pa.schema([(name, pa.float32()) for name in names])
    return pa.unify_schemas([pa.Schema.from_pandas(metadata, preserve_index=False), features])


def measure_shard(
    cells: pd.DataFrame,
    manifest: pd.DataFrame,
    shards: int,
    shard: int,
    channels: list[str],
    illum: dict[str, np.ndarray] | None,
    masks_path: str | os.PathLike,
    out: str | os.PathLike,
    params: dict | None = None,
    threads: int = 1,
    provenance: dict | None = None,
) -> tuple[int, int]:
    """Write the CellProfiler features of the cells of shard ``shard`` of ``shards`` to the
    Parquet file ``out`` (``features_schema``: the cells table's ``Metadata_`` columns, then
    ``feature_names``), one row per cell, and return its (rows, columns).

    Each site's rows go to the file as they are measured (ParquetStream), so the job holds
    a few row groups, not the plate's table: a 384-well plate of 9 dense sites has
    hundreds of thousands of cells x thousands of features. A whole plate (one shard) is
    checked to be the cells table's rows in order before the file is committed.
    """
    features_settings = FEATURES.merge(params)
    sites = shard_sites(manifest, shards, shard)
    by_site = dict(tuple(cells.groupby(SITE_KEY, sort=False)))
    rows = [row for row in sites.to_dict("records") if (row[WELL], row[SITE]) in by_site]
    metadata = [c for c in cells.columns if c.startswith(METADATA)]
    names = feature_names(channels, features_settings)
    tasks = [(row, by_site[row[WELL], row[SITE]][OBJECT].to_numpy()) for row in rows]
    timings: dict[str, float] = {}
    keys, nan_counts = [cells[CELL_KEY].head(0)], np.zeros(len(names), np.int64)
    whole_plate = shards == 1  # then checked against the cells table before it is committed
    step = max(1, round(len(rows) / 10))
    measured = _sites(tasks, (masks_path, channels, illum, features_settings), threads)
    with ParquetStream(out, features_schema(cells[metadata], names), provenance) as stream:
        for done, (row, (features, spent)) in enumerate(zip(rows, measured), start=1):
            site_cells = by_site[row[WELL], row[SITE]][metadata].reset_index(drop=True)
            stream.write(pd.concat([site_cells, features], axis=1))
            if whole_plate:
                keys.append(site_cells[CELL_KEY])
            nan_counts += np.isnan(features.to_numpy()).sum(axis=0)
            for module, seconds in spent.items():
                timings[module] = timings.get(module, 0.0) + seconds
            if done % step == 0 or done == len(rows):
                log.info(
                    "shard %d/%d: measured %d/%d sites, %d cells",
                    shard + 1,
                    shards,
                    done,
                    len(rows),
                    stream.rows,
                )
        if whole_plate:
            check_cells_order(pd.concat(keys, ignore_index=True), cells)
    if timings:
        _log_timings(timings)
    if rows:
        _log_missing(pd.Series(nan_counts, names))
    return stream.rows, len(stream.schema)
