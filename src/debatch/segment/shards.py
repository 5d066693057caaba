"""A plate's sites split into shards (one segmentation / crops job each) and gathered back.

Shard k of K holds the k-th contiguous block of the plate's sites in (well, site) order, so
concatenating the shards' outputs in shard order reproduces the one-job result exactly: the
per-plate files are identical whatever K (tests/test_shards.py checks 1 vs 3). Within a shard,
sites run on ``threads`` threads (propagate) or in batched cellpose calls, and label images are
streamed into the shard's .npz as they come, so memory holds a few sites, not the shard.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from debatch.core.images import cellprofiler_scale, correct_site, read_raw_site
from debatch.core.io import NpzWriter, atomic_path, link_or_copy, open_npy
from debatch.core.parallel import ordered_map
from debatch.segment.measure import measure_site
from debatch.segment.propagate import find_site
from debatch.segment.qc import image_quality
from debatch.segment.score import median_area
from debatch.settings import (
    METADATA,
    SEGMENT,
    SITE,
    SITE_CELLS,
    SITE_KEY,
    SITE_NUCLEUS_AREA,
    SITE_SPECKS,
    WELL,
    Channels,
)

log = logging.getLogger(__name__)


def shard_sites(manifest: pd.DataFrame, shards: int, shard: int) -> pd.DataFrame:
    """Rows of shard ``shard`` (0-based) of ``shards``: a contiguous block of sorted sites."""
    if not 0 <= shard < shards:
        raise ValueError(f"shard {shard} does not exist: segment.shards is {shards}")
    ordered = manifest.sort_values(SITE_KEY, kind="stable").reset_index(drop=True)
    return ordered.iloc[np.array_split(np.arange(len(ordered)), shards)[shard]]


def _segmented(
    rows: list[dict], channels: Channels, illum, settings: dict, threads: int
) -> Iterator[tuple]:
    """(row, quality, nuclei, cells, table, unpaired nuclei, unpaired cells, specks) per site,
    in order (specks: a few bright pixels left out as artefacts; propagate counts them,
    cellpose has no such test and counts none)."""
    propagate = settings["propagate"]

    def load(row):
        raw = read_raw_site(row, channels.names)
        scale = cellprofiler_scale(raw[channels.cell].dtype)
        return image_quality(raw, channels.nuclei), correct_site(raw, row, illum), scale

    with ThreadPoolExecutor(max(1, threads)) as pool:
        if settings["method"] == "propagate":

            def work(row):
                quality, images, scale = load(row)
                nuclei, cells, specks = find_site(images, channels, propagate, scale)
                table = measure_site(nuclei, cells, images)
                return row, quality, nuclei, cells, table, 0, 0, specks

            yield from ordered_map(pool, work, rows, 2 * max(1, threads))
            return
        from debatch.segment.cellpose import CellposeSegmenter

        segmenter = CellposeSegmenter(settings.get("cellpose"), propagate, threads)
        step = segmenter.p["sites_per_call"]
        loaded = ordered_map(pool, load, rows, 2 * step)
        for start in range(0, len(rows), step):
            chunk = [next(loaded) for _ in rows[start : start + step]]
            results = segmenter(
                [images for _, images, _ in chunk], channels, [scale for *_, scale in chunk]
            )
            for row, (quality, images, _), (nuclei, cells, lost_nuclei, lost_cells) in zip(
                rows[start : start + step], chunk, results
            ):
                table = measure_site(nuclei, cells, images)
                yield row, quality, nuclei, cells, table, lost_nuclei, lost_cells, 0


def _record_site(
    segmented: tuple, site_metadata: pd.DataFrame, masks: NpzWriter | None
) -> tuple[dict, pd.DataFrame]:
    """One segmented site's row of the sites table and its cells (``site_metadata``, the site's
    one-row Metadata_ columns, first); its label images go to ``masks`` (None: not kept).
    Empty sites and unpaired objects are logged."""
    row, quality, nuclei, cells, table, lost_nuclei, lost_cells, specks = segmented
    if masks is not None:
        dtype = np.uint16 if nuclei.max() < 2**16 else np.int32
        masks.add(f"{row[WELL]}_{row[SITE]}_nuclei", nuclei.astype(dtype))
        masks.add(f"{row[WELL]}_{row[SITE]}_cells", cells.astype(dtype))
    if not len(table):
        log.info("well %s site %s: no cells found", row[WELL], row[SITE])
    if lost_nuclei or lost_cells:
        log.info(
            "well %s site %s: %d nuclei without a cell of their own and %d cells without "
            "a nucleus left out",
            row[WELL],
            row[SITE],
            lost_nuclei,
            lost_cells,
        )
    site = {
        **{c: row[c] for c in site_metadata},
        **quality,
        SITE_CELLS: len(table),
        SITE_NUCLEUS_AREA: median_area(nuclei) if len(table) else 0.0,
        "Count_UnpairedNuclei": lost_nuclei,
        "Count_UnpairedCells": lost_cells,
        SITE_SPECKS: specks,
    }
    prefix = site_metadata.iloc[[0] * len(table)].reset_index(drop=True)
    return site, pd.concat([prefix, table], axis=1)


def segment_shard(
    manifest: pd.DataFrame,
    shards: int,
    shard: int,
    channels: Channels,
    illum: dict[str, np.ndarray] | None,
    settings: dict,
    masks_path: str | os.PathLike,
    threads: int = 1,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Segment, measure and QC-measure one shard's sites; label images go to ``masks_path``.

    ``settings`` is the ``segment`` config block (method, save_masks, propagate, cellpose).
    Returns (cells: one row per cell, Metadata_ columns of its site first; sites: one row per
    site with image-quality measures, the cell count and, for cellpose, the objects left
    unpaired). A shard without any cell is fine here; the gather checks the whole plate.
    """
    settings = SEGMENT.merge(settings)
    sites = shard_sites(manifest, shards, shard)
    metadata = [c for c in manifest.columns if c.startswith(METADATA)]
    rows = sites.to_dict("records")
    tables, site_rows = [], []
    step = max(1, round(len(rows) / 10))
    with NpzWriter(masks_path) as masks:
        segmented = _segmented(rows, channels, illum, settings, threads)
        for done, site in enumerate(segmented, start=1):
            site_row, cells = _record_site(
                site, sites.iloc[[done - 1]][metadata], masks if settings["save_masks"] else None
            )
            site_rows.append(site_row)
            if len(cells):
                tables.append(cells)
            if done % step == 0 or done == len(rows):
                log.info(
                    "shard %d/%d: segmented %d/%d sites, %d cells",
                    shard + 1,
                    shards,
                    done,
                    len(rows),
                    sum(len(t) for t in tables),
                )
    cells_table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    return cells_table, pd.DataFrame(site_rows)


def gather_tables(paths: list[str | os.PathLike]) -> pd.DataFrame:
    """Shard tables concatenated in shard order (empty shards skipped: they carry no dtypes)."""
    tables = [pd.read_parquet(path) for path in paths]
    filled = [table for table in tables if len(table)]
    return pd.concat(filled, ignore_index=True) if filled else tables[0]


def gather_cells(paths: list[str | os.PathLike], n_sites: int, plate: str) -> pd.DataFrame:
    """The plate's cell table from its shards; a plate without any cell is an error."""
    cells = gather_tables(paths)
    if not len(cells):
        raise ValueError(
            f"plate {plate}: no cells found on any of its {n_sites} sites; check nuclei_channel "
            f"and segment.propagate.nucleus_diameter (or the cellpose models)"
        )
    return cells


def plate_summary(sites: pd.DataFrame) -> str:
    """One log line: sites, cells and the spread of cells per site of a segmented plate."""
    counts = sites[SITE_CELLS]
    return (
        f"{len(sites)} sites, {int(counts.sum())} cells; cells per site min {counts.min()}, "
        f"median {np.median(counts):g}, max {counts.max()}"
    )


def small_cells_warning(cells: pd.DataFrame, plate: str) -> str | None:
    """A warning when cells are barely larger than their nuclei (median area ratio below 1.2):
    what a blank or wrong cell_channel gives, silently, otherwise."""
    ratio = float(np.median(cells["Cells_AreaShape_Area"] / cells["Nuclei_AreaShape_Area"]))
    if ratio >= 1.2:
        return None
    return (
        f"plate {plate}: cells are barely larger than their nuclei (median area ratio "
        f"{ratio:.2f}); is cell_channel the channel that outlines whole cells, and not blank?"
    )


def gather_npz(paths: list[str | os.PathLike], out: str | os.PathLike) -> int:
    """Merge shard .npz files into ``out`` one array at a time; returns the array count."""
    if len(paths) == 1:
        with atomic_path(out) as tmp:
            link_or_copy(paths[0], tmp)  # one shard: no I/O
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


def gather_npy(
    paths: list[str | os.PathLike], out: str | os.PathLike, rows_per_copy: int = 4096
) -> tuple:
    """Concatenate shard .npy arrays (same trailing shape) into ``out``; returns its shape."""
    if len(paths) == 1:
        with atomic_path(out) as tmp:
            link_or_copy(paths[0], tmp)  # one shard: no I/O
        return np.load(out, mmap_mode="r").shape
    parts = [np.load(path, mmap_mode="r") for path in paths]
    shape = (sum(len(part) for part in parts), *parts[0].shape[1:])
    with atomic_path(out) as tmp:
        array = open_npy(tmp, parts[0].dtype, shape)
        start = 0
        for part in parts:
            for first in range(0, len(part), rows_per_copy):
                block = part[first : first + rows_per_copy]
                array[start + first : start + first + len(block)] = block
            start += len(part)
        array.flush()
        del array
    return shape
