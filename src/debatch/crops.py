"""Crops stage: a fixed-size, illumination-corrected image around every cell.

Output: an N x C x S x S float16 .npy (memory-mappable, row i = row i of the crops table).
Intensity scaling: ``corrected_intensity / scale`` with ``scale`` = 65535 by default, i.e. the
fraction of the 16-bit range. Nothing per plate or per batch is normalised here on purpose:
batch effects stay in the crops so training methods are compared on the same input.
Cells whose crop reaches past the image edge are kept, zero-padded, and flagged.

Which cells get a crop is decided here (select_cells): cells of sites that failed image QC are
left out, and so, when ``drop_border_cells`` is set, are cells cut by the image border. The
crops table is the index of every later stage, so nothing upstream is rewritten; each drop is
counted in the job's log.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from debatch.images import read_site
from debatch.io import atomic_path
from debatch.params import merge_params as check_params

log = logging.getLogger(__name__)

DEFAULTS = {
    "size": 32,                  # crop side in pixels, centred on the nucleus centroid
    "scale": 65535.0,            # stored value = corrected intensity / scale
    "drop_border_cells": False,  # leave out cells whose mask touches the image border (cut cells)
}


def merge_params(params: dict | None) -> dict:
    return check_params("crops", DEFAULTS, params)


def select_cells(cells: pd.DataFrame, qc: pd.DataFrame | None, params: dict | None = None
                 ) -> tuple[pd.DataFrame, dict[str, int]]:
    """The cells that get crops, in table order, and how many were left out and why.

    ``qc`` is the plate's QC table (one row per site with ``QC_Pass``); sites missing from it
    are an error rather than silently passed.
    """
    params = merge_params(params)
    keep = pd.Series(True, index=cells.index)
    counts = {"cells": len(cells), "failed_qc": 0, "border": 0}
    if qc is not None:
        site = ["Metadata_Well", "Metadata_Site"]
        verdict = cells[site].merge(qc[site + ["QC_Pass"]], on=site, how="left")["QC_Pass"]
        if verdict.isna().any():
            first = cells.loc[verdict.isna().to_numpy(), site].iloc[0]
            raise ValueError(f"QC table has no row for well {first['Metadata_Well']} site "
                             f"{first['Metadata_Site']}, which has cells")
        passed = verdict.astype(bool).to_numpy()
        counts["failed_qc"] = int((~passed).sum())
        keep &= passed
    if params["drop_border_cells"]:
        border = cells["Cells_Touching_Border"].astype(bool) & keep
        counts["border"] = int(border.sum())
        keep &= ~border
    return cells[keep.to_numpy()].reset_index(drop=True), counts


def crop_site(images: np.ndarray, centers_yx: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Crops (n, C, size, size) around integer centres of a C x H x W stack, and a padded flag."""
    channels, height, width = images.shape
    half = size // 2
    padded = np.pad(images, ((0, 0), (half, half), (half, half)))
    top = np.rint(centers_yx[:, 0]).astype(int) - half
    left = np.rint(centers_yx[:, 1]).astype(int) - half
    out = np.empty((len(centers_yx), channels, size, size), images.dtype)
    for i, (y, x) in enumerate(zip(top, left)):
        out[i] = padded[:, y + half:y + half + size, x + half:x + half + size]
    touches_edge = (top < 0) | (left < 0) | (top + size > height) | (left + size > width)
    return out, touches_edge


def write_plate_crops(cells: pd.DataFrame, manifest: pd.DataFrame, channels: list[str],
                      illum: dict[str, np.ndarray] | None, npy_path: str | os.PathLike,
                      params: dict | None = None, threads: int = 1) -> pd.DataFrame:
    """Write the plate's crops to ``npy_path`` and return the crops table (cells + flag column).

    Sites are read once each (in parallel) and written straight into a memory-mapped file, so
    memory stays at a few sites whatever the plate size.
    """
    params = merge_params(params)
    size = int(params["size"])
    cells = cells.reset_index(drop=True)
    site_key = ["Metadata_Well", "Metadata_Site"]
    manifest_by_site = {(row["Metadata_Well"], row["Metadata_Site"]): row
                        for row in manifest.to_dict("records")}
    groups = list(cells.groupby(site_key, sort=False).indices.items())
    flags = np.zeros(len(cells), bool)

    def load(key):
        images = read_site(manifest_by_site[key], channels, illum)
        return np.stack([images[c] for c in channels]).astype(np.float32) / params["scale"]

    with atomic_path(npy_path) as tmp:
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16,
                                          shape=(len(cells), len(channels), size, size))
        with ThreadPoolExecutor(max(1, threads)) as pool:
            stacks = pool.map(load, [key for key, _ in groups])
            written = 0
            for done, ((key, rows), stack) in enumerate(zip(groups, stacks), 1):
                centers = cells.loc[rows, ["Nuclei_Location_Center_Y", "Nuclei_Location_Center_X"]].to_numpy()
                crops, edge = crop_site(stack, centers, size)
                array[rows] = crops.astype(np.float16)
                flags[rows] = edge
                written += len(rows)
                if done % max(1, len(groups) // 10) == 0 or done == len(groups):
                    log.info("crops: %d/%d sites, %d cells", done, len(groups), written)
        array.flush()
        del array
    table = cells.copy()
    table["Crops_TouchingEdge"] = flags
    log.info("crops: %d cells from %d sites; %d crops zero-padded at the image edge",
             len(table), len(groups), int(flags.sum()))
    return table
