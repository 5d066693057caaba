"""A plate's sites split into shards (one segmentation / crops job each) and gathered back.

Shard k of K holds the k-th contiguous block of the plate's sites in (well, site) order, so
concatenating the shards' outputs in shard order reproduces the one-job result exactly: the
per-plate files are identical whatever K (tests/test_shards.py checks 1 vs 3). Within a shard,
sites run on ``threads`` threads (propagate) or in batched cellpose calls, and label images are
streamed into the shard's .npz as they come, so memory holds a few sites, not the shard.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from debatch.images import correct_site, read_raw_site
from debatch.io import atomic_path
from debatch.qc import COUNT, image_quality
from debatch.segment import measure_site, segment_site
from debatch.segment import merge_params as propagate_params

SITE_ORDER = ["Metadata_Well", "Metadata_Site"]
METHODS = ("propagate", "cellpose")


def shard_sites(manifest: pd.DataFrame, shards: int, shard: int) -> pd.DataFrame:
    """Rows of shard ``shard`` (0-based) of ``shards``: a contiguous block of sorted sites."""
    if not 0 <= shard < shards:
        raise ValueError(f"shard {shard} does not exist: segment.shards is {shards}")
    ordered = manifest.sort_values(SITE_ORDER, kind="stable").reset_index(drop=True)
    return ordered.iloc[np.array_split(np.arange(len(ordered)), shards)[shard]]


class NpzWriter:
    """An .npz written one array at a time (np.savez_compressed's format), renamed on close."""

    def __init__(self, path: str | os.PathLike):
        self._atomic = atomic_path(path)
        self._zip = zipfile.ZipFile(self._atomic.__enter__(), "w", zipfile.ZIP_DEFLATED,
                                    allowZip64=True)

    def add(self, name: str, array: np.ndarray) -> None:
        with self._zip.open(f"{name}.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)

    def __enter__(self) -> NpzWriter:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        self._zip.close()
        self._atomic.__exit__(kind, error, traceback)


def _ordered_map(pool: ThreadPoolExecutor, function: Callable, items: Iterable, ahead: int
                 ) -> Iterator:
    """pool.map that keeps at most ``ahead`` results in flight (bounded read-ahead)."""
    pending: deque = deque()
    for item in items:
        pending.append(pool.submit(function, item))
        if len(pending) >= ahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _segmented(rows: list[dict], channels, illum, nuclei_channel, cell_channel, settings: dict,
               threads: int) -> Iterator[tuple]:
    """(row, quality, nuclei, cells, table, unpaired nuclei, unpaired cells) per site, in order."""
    propagate = propagate_params(settings.get("propagate"))

    def load(row):
        raw = read_raw_site(row, channels)
        return image_quality(raw), correct_site(raw, row, illum)

    with ThreadPoolExecutor(max(1, threads)) as pool:
        if settings["method"] == "propagate":
            def work(row):
                quality, images = load(row)
                nuclei, cells = segment_site(images, nuclei_channel, cell_channel, propagate)
                return row, quality, nuclei, cells, measure_site(nuclei, cells, images), 0, 0

            yield from _ordered_map(pool, work, rows, 2 * max(1, threads))
            return
        from debatch.cellpose_seg import CellposeSegmenter

        segmenter = CellposeSegmenter(settings.get("cellpose"), propagate, threads)
        step = segmenter.p["sites_per_call"]
        loaded = _ordered_map(pool, load, rows, 2 * step)
        for start in range(0, len(rows), step):
            chunk = [next(loaded) for _ in rows[start:start + step]]
            results = segmenter([images for _, images in chunk], nuclei_channel, cell_channel)
            for row, (quality, images), (nuclei, cells, lost_nuclei, lost_cells) in zip(
                    rows[start:start + step], chunk, results):
                table = measure_site(nuclei, cells, images)
                yield row, quality, nuclei, cells, table, lost_nuclei, lost_cells


def segment_shard(manifest: pd.DataFrame, shards: int, shard: int, channels: list[str],
                  illum: dict[str, np.ndarray] | None, nuclei_channel: str, cell_channel: str,
                  settings: dict, masks_path: str | os.PathLike, threads: int = 1,
                  log: Callable[[str], None] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Segment, measure and QC-measure one shard's sites; label images go to ``masks_path``.

    ``settings`` is the ``segment`` config block (method, save_masks, propagate, cellpose).
    Returns (cells: one row per cell, Metadata_ columns of its site first; sites: one row per
    site with image-quality measures, the cell count and, for cellpose, the objects left
    unpaired). A shard without any cell is fine here; the gather checks the whole plate.
    """
    if settings.get("method", "propagate") not in METHODS:
        raise ValueError(f"segment.method {settings.get('method')!r} is not one of {list(METHODS)}")
    say = log or (lambda message: None)
    sites = shard_sites(manifest, shards, shard)
    metadata = [c for c in manifest.columns if c.startswith("Metadata_")]
    rows = sites.to_dict("records")
    tables, site_rows = [], []
    step = max(1, round(len(rows) / 10))
    with NpzWriter(masks_path) as masks:
        segmented = _segmented(rows, channels, illum, nuclei_channel, cell_channel,
                               {"method": "propagate", **settings}, threads)
        for done, (row, quality, nuclei, cells, table, lost_nuclei, lost_cells) in enumerate(
                segmented, start=1):
            key = f"{row['Metadata_Well']}_{row['Metadata_Site']}"
            if settings.get("save_masks", True):
                dtype = np.uint16 if nuclei.max() < 2**16 else np.int32
                masks.add(f"{key}_nuclei", nuclei.astype(dtype))
                masks.add(f"{key}_cells", cells.astype(dtype))
            site_rows.append({**{c: row[c] for c in metadata}, **quality, COUNT: len(table),
                              "Count_UnpairedNuclei": lost_nuclei,
                              "Count_UnpairedCells": lost_cells})
            if len(table):
                position = sites.index[done - 1]
                prefix = sites.loc[[position] * len(table), metadata].reset_index(drop=True)
                tables.append(pd.concat([prefix, table], axis=1))
            else:
                say(f"well {row['Metadata_Well']} site {row['Metadata_Site']}: no cells found")
            if lost_nuclei or lost_cells:
                say(f"well {row['Metadata_Well']} site {row['Metadata_Site']}: {lost_nuclei} "
                    f"nuclei without a cell of their own and {lost_cells} cells without a "
                    f"nucleus left out")
            if done % step == 0 or done == len(rows):
                say(f"shard {shard + 1}/{shards}: segmented {done}/{len(rows)} sites, "
                    f"{sum(len(t) for t in tables)} cells")
    cells_table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    return cells_table, pd.DataFrame(site_rows)


def gather_tables(paths: list[str | os.PathLike]) -> pd.DataFrame:
    """Shard tables concatenated in shard order (empty shards skipped: they carry no dtypes)."""
    tables = [pd.read_parquet(path) for path in paths]
    filled = [table for table in tables if len(table)]
    return pd.concat(filled, ignore_index=True) if filled else tables[0]


def gather_cells(paths: list[str | os.PathLike], n_sites: int) -> pd.DataFrame:
    """The plate's cell table from its shards; a plate without any cell is an error."""
    cells = gather_tables(paths)
    if not len(cells):
        raise ValueError(f"no cells found on any of the {n_sites} sites; check nuclei_channel and "
                         f"segment.propagate.nucleus_diameter (or the cellpose models)")
    return cells


def _link_or_copy(source: str | os.PathLike, target: Path) -> None:
    """One shard: the plate file is the shard file (a hard link: no I/O; a copy across devices)."""
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def gather_npz(paths: list[str | os.PathLike], out: str | os.PathLike) -> int:
    """Merge shard .npz files into ``out`` one array at a time; returns the array count."""
    if len(paths) == 1:
        with atomic_path(out) as tmp:
            _link_or_copy(paths[0], tmp)
        with np.load(out) as stored:
            return len(stored.files)
    count = 0
    with NpzWriter(out) as writer:
        for path in paths:
            with np.load(path) as stored:
                for name in stored.files:
                    writer.add(name, stored[name])
                    count += 1
    return count


def gather_npy(paths: list[str | os.PathLike], out: str | os.PathLike, rows_per_copy: int = 4096
               ) -> tuple:
    """Concatenate shard .npy arrays (same trailing shape) into ``out``; returns its shape."""
    if len(paths) == 1:
        with atomic_path(out) as tmp:
            _link_or_copy(paths[0], tmp)
        return np.load(out, mmap_mode="r").shape
    parts = [np.load(path, mmap_mode="r") for path in paths]
    shape = (sum(len(part) for part in parts), *parts[0].shape[1:])
    with atomic_path(out) as tmp:
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=parts[0].dtype, shape=shape)
        start = 0
        for part in parts:
            for first in range(0, len(part), rows_per_copy):
                block = part[first:first + rows_per_copy]
                array[start + first:start + first + len(block)] = block
            start += len(part)
        array.flush()
        del array
    return shape
