"""Segmentation of one shard of a plate's sites (debatch.core.shards). Within a shard, sites run
on ``threads`` threads (propagate) or in batched cellpose calls, and label images are streamed
into the shard's .npz as they come, so memory holds a few sites, not the shard.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from debatch.core.images import cellprofiler_scale, correct_site, read_raw_site
from debatch.core.io import NpzWriter
from debatch.core.parallel import ordered_map
from debatch.core.shards import shard_sites
from debatch.segment.cell_table import measure_site
from debatch.segment.propagate import find_site
from debatch.segment.quality import image_quality
from debatch.segment.score import median_area
from debatch.settings import (
    METADATA,
    SEGMENT,
    SITE,
    SITE_CELLS,
    SITE_NUCLEUS_AREA,
    SITE_SPECKS,
    WELL,
    Channels,
)

log = logging.getLogger(__name__)


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
        step = segmenter.cellpose["sites_per_call"]
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


def stored_labels(labels: np.ndarray, largest: int) -> np.ndarray:
    """``labels`` as the plate's label images keep them: uint16 (half of int32's bytes) while
    the site's ``largest`` label fits."""
    return labels.astype(np.uint16 if largest < 2**16 else np.int32)


def _record_site(
    segmented: tuple, site_metadata: pd.DataFrame, masks: NpzWriter | None
) -> tuple[dict, pd.DataFrame]:
    """One segmented site's row of the sites table and its cells (``site_metadata``, the site's
    one-row Metadata_ columns, first); its label images go to ``masks`` (None: not kept).
    Empty sites and unpaired objects are logged."""
    row, quality, nuclei, cells, table, lost_nuclei, lost_cells, specks = segmented
    if masks is not None:
        largest = nuclei.max()  # cell i pairs with nucleus i
        masks.add(f"{row[WELL]}_{row[SITE]}_nuclei", stored_labels(nuclei, largest))
        masks.add(f"{row[WELL]}_{row[SITE]}_cells", stored_labels(cells, largest))
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
    unpaired). A shard without any cell is fine here; ``gather.check_plate`` checks the whole plate.
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
