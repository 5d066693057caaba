"""One shard of a plate through the features stage, in the cells table's row order.

A shard is the same contiguous block of sites as in segmentation (``shard_sites``), so the
shards' tables, concatenated in order, are the plate's ``features/{plate}.parquet``: one row
per row of ``cells/{plate}.parquet``, its ``Metadata_`` columns first. Sites are read, corrected
and measured in ``threads`` worker processes, a few ahead of the writer; the job log gets
progress, the CPU seconds of each measurement module and the features that came out NaN (with
how many cells), since NaN is what CellProfiler also gives for what it cannot measure.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd

from debatch.core.images import check_illum, read_raw_site
from debatch.core.parallel import ordered_map
from debatch.core.shards import shard_sites
from debatch.features.site import feature_names, measure_site, site_images
from debatch.settings import FEATURES, METADATA, OBJECT, SITE, SITE_KEY, WELL

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


def _log_missing(features: pd.DataFrame) -> None:
    """One line on the NaN features and the most affected, so a reader sees what failed."""
    missing = features.isna().sum()
    missing = missing[missing > 0].sort_values(ascending=False)
    if missing.empty:
        log.info("features: no NaN")
        return
    worst = ", ".join(f"{name} ({count})" for name, count in missing.head(8).items())
    log.info(
        "features: %d of %d features NaN for some cells (CellProfiler gives NaN there too: "
        "objects too small or empty, undefined correlations); most cells: %s",
        len(missing),
        features.shape[1],
        worst,
    )


def measure_shard(
    cells: pd.DataFrame,
    manifest: pd.DataFrame,
    shards: int,
    shard: int,
    channels: list[str],
    illum: dict[str, np.ndarray] | None,
    masks_path: str | os.PathLike,
    params: dict | None = None,
    threads: int = 1,
) -> pd.DataFrame:
    """CellProfiler features of the cells of shard ``shard`` of ``shards``: the cells table's
    ``Metadata_`` columns, then float32 features (``feature_names``), one row per cell."""
    features_settings = FEATURES.merge(params)
    sites = shard_sites(manifest, shards, shard)
    by_site = dict(tuple(cells.groupby(SITE_KEY, sort=False)))
    rows = [row for row in sites.to_dict("records") if (row[WELL], row[SITE]) in by_site]
    metadata = [c for c in cells.columns if c.startswith(METADATA)]
    tasks = [(row, by_site[row[WELL], row[SITE]][OBJECT].to_numpy()) for row in rows]
    timings: dict[str, float] = {}
    tables = []
    step = max(1, round(len(rows) / 10))
    measured = _sites(tasks, (masks_path, channels, illum, features_settings), threads)
    for done, (row, (features, spent)) in enumerate(zip(rows, measured), start=1):
        site_cells = by_site[row[WELL], row[SITE]][metadata].reset_index(drop=True)
        tables.append(pd.concat([site_cells, features], axis=1))
        for module, seconds in spent.items():
            timings[module] = timings.get(module, 0.0) + seconds
        if done % step == 0 or done == len(rows):
            log.info(
                "shard %d/%d: measured %d/%d sites, %d cells",
                shard + 1,
                shards,
                done,
                len(rows),
                sum(map(len, tables)),
            )
    if not tables:  # a shard without cells: the right columns, no rows
        columns = metadata + feature_names(channels, features_settings)
        return pd.DataFrame(columns=columns).astype(
            {c: np.float32 for c in columns[len(metadata) :]}
        )
    table = pd.concat(tables, ignore_index=True)
    if timings:
        spent = sorted(timings.items(), key=lambda item: -item[1])
        log.info(
            "features: CPU seconds per module: %s", ", ".join(f"{k} {v:.1f}" for k, v in spent)
        )
    _log_missing(table.drop(columns=metadata))
    return table
