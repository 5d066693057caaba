"""Whole-site crops (``crops.unit: site``): each site that passed QC, illumination-corrected,
area-averaged to ``crops.site_size`` px a side, as ABRA and DeepNoise classify RxRx1 sites.

Same file contract as the cell crops (debatch.crops.cut): an N x C x S x S float16 .npy, row i
= row i of the table, value = corrected intensity / ``crops.scale``; only a row is a site.
Area averaging: every output pixel is the mean of the input area it covers (exactly a block
mean when ``site_size`` divides the image side, pixels weighted by their overlap otherwise), so
no intensity is lost or invented and the stored site is the corrected site seen coarser.
A site that is not square is squeezed to the square.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from debatch.core.images import check_illum, read_raw_site
from debatch.core.io import atomic_path, open_npy
from debatch.core.parallel import ordered_map
from debatch.crops.cut import to_float16
from debatch.settings import CROPS, SITE_KEY

log = logging.getLogger(__name__)


def area_weights(length: int, size: int) -> np.ndarray:
    """(size x length) matrix averaging ``length`` pixels into ``size``: row i holds the overlap
    of output pixel i's span [i, i + 1) x length / size with each input pixel, divided by the
    span, so every row sums to 1 (a block mean when ``size`` divides ``length``)."""
    edges = np.arange(size + 1) * (length / size)
    starts, ends = edges[:-1, None], edges[1:, None]
    pixels = np.arange(length)[None, :]
    overlap = np.clip(np.minimum(ends, pixels + 1) - np.maximum(starts, pixels), 0, None)
    return (overlap / (length / size)).astype(np.float32)


def area_resize(planes: Sequence[np.ndarray], size: int) -> np.ndarray:
    """C x size x size float32 area averages of C equally shaped float32 planes."""
    height, width = planes[0].shape
    rows, columns = area_weights(height, size), area_weights(width, size).T
    return np.stack([rows @ np.asarray(plane, np.float32) @ columns for plane in planes])


def corrected_site(
    raw: Sequence[np.ndarray], illum: Sequence[np.ndarray] | None, size: int, scale: float
) -> np.ndarray:
    """float16 C x size x size site: raw / illumination function (read_site's correction) at
    full resolution, then area-averaged and divided by ``scale``."""
    planes = [np.asarray(plane, np.float32) for plane in raw]
    if illum is not None:
        planes = [plane / function for plane, function in zip(planes, illum)]
    values = area_resize(planes, size)
    np.divide(values, np.float32(scale), out=values)
    return to_float16(values)


def write_plate_sites(
    sites: pd.DataFrame,
    manifest: pd.DataFrame,
    channels: list[str],
    illum: dict[str, np.ndarray] | None,
    npy_path: str | os.PathLike,
    params: dict | None = None,
    threads: int = 1,
) -> pd.DataFrame:
    """Write ``sites``' whole-site crops to ``npy_path`` (row i: row i of ``sites``, the table
    debatch.crops.eligible.select_sites makes) and return the table. Sites are read in parallel,
    a bounded number ahead, and written straight into the memory-mapped file."""
    params = CROPS.merge(params)
    size, scale = int(params["site_size"]), float(params["scale"])
    sites = sites.reset_index(drop=True)
    by_site = {tuple(row[key] for key in SITE_KEY): row for row in manifest.to_dict("records")}
    keys = [tuple(row) for row in sites[SITE_KEY].itertuples(index=False)]
    functions = None if illum is None else [np.asarray(illum[c], np.float32) for c in channels]

    def load(key):
        row = by_site[key]
        raw = read_raw_site(row, channels)
        check_illum(raw, row, illum)
        return corrected_site([raw[c] for c in channels], functions, size, scale)

    with atomic_path(npy_path) as tmp:
        array = open_npy(tmp, np.float16, (len(sites), len(channels), size, size))
        with ThreadPoolExecutor(max(1, threads)) as pool:
            loaded = ordered_map(pool, load, keys, 2 * max(1, threads))
            for index, site in enumerate(loaded):
                array[index] = site
        del array
    log.info("crops: %d whole sites, %d px a side", len(sites), size)
    return sites
