"""Crops stage: a fixed-size, illumination-corrected image around every cell.

Output: an N x C x S x S float16 .npy (memory-mappable, row i = row i of the crops table).
Intensity scaling: ``corrected_intensity / scale`` with ``scale`` = 65535 by default, i.e. the
fraction of the 16-bit range. Nothing per plate or per batch is normalised here on purpose:
batch effects stay in the crops so training methods are compared on the same input.
Cells whose crop reaches past the image edge are kept, zero-padded, and flagged.

Which cells get a crop is decided before (debatch.crops.eligible); the crops table is the index
of every later stage. Settings: ``crops`` (debatch.settings.CROPS).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

try:  # only for a fast float16 conversion (to_float16); OpenCV is pinned for cellpose
    import cv2
except ImportError:  # pragma: no cover
    cv2 = None

from debatch.core.images import check_illum, read_raw_site
from debatch.core.io import atomic_path, open_npy
from debatch.core.parallel import ordered_map
from debatch.settings import CENTER_X, CENTER_Y, CROP_AT_EDGE, CROPS, SITE_KEY

log = logging.getLogger(__name__)


def _row_windows(plane: np.ndarray, size: int) -> np.ndarray:
    """Read-only (H - size + 1) x (W - size + 1) x size view of ``plane``: element [y, x, r] is
    row r of the size x size window at (y, x), as one opaque ``size``-pixel item.

    Gathering whole rows as single items is ~3x faster than numpy's fancy indexing of a
    sliding_window_view, which copies one pixel at a time (numpy checks the view's bounds).
    """
    plane = np.ascontiguousarray(plane)
    height, width = plane.shape
    row = np.dtype((np.void, size * plane.itemsize))
    view = np.ndarray(
        (height - size + 1, width - size + 1, size),
        row,
        plane,
        0,
        (plane.strides[0], plane.itemsize, plane.strides[0]),
    )
    view.flags.writeable = False  # overlapping items: never write through it
    return view


def crop_site(
    images: np.ndarray | Sequence[np.ndarray], centers_yx: np.ndarray, size: int, fill: float = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Crops (n, C, size, size) around integer centres of a C x H x W stack, and a padded flag.

    ``images`` is a C x H x W array or a sequence of C equally shaped 2-D planes (no stacked
    copy needed). Pixels of a crop that fall outside the image are ``fill``. Nothing is padded
    or copied whole: crops clear of the edge are gathered straight from the planes; crops that
    reach past an edge read clipped coordinates and get ``fill`` where they fall outside.
    """
    planes = list(images)
    height, width = planes[0].shape
    half = size // 2
    centers = np.asarray(centers_yx, dtype=np.float64).reshape(-1, 2)
    top = np.rint(centers[:, 0]).astype(np.intp) - half
    left = np.rint(centers[:, 1]).astype(np.intp) - half
    dtype = planes[0].dtype
    out = np.empty((len(centers), len(planes), size, size), dtype)
    touches_edge = (top < 0) | (left < 0) | (top + size > height) | (left + size > width)
    inner = np.flatnonzero(~touches_edge)
    if len(inner):
        row = np.dtype((np.void, size * dtype.itemsize))
        rows = out.view(row).reshape(len(out), len(planes), size)
        inner_top, inner_left = top[inner], left[inner]
        for c, plane in enumerate(planes):
            rows[inner, c] = _row_windows(plane, size)[inner_top, inner_left]
    edge = np.flatnonzero(touches_edge)
    if len(edge):
        ys = top[edge, None] + np.arange(size)
        xs = left[edge, None] + np.arange(size)
        inside_y, inside_x = (ys >= 0) & (ys < height), (xs >= 0) & (xs < width)
        outside = ~(inside_y[:, :, None] & inside_x[:, None, :])
        ys = np.clip(ys, 0, height - 1)[:, :, None]
        xs = np.clip(xs, 0, width - 1)[:, None, :]
        for c, plane in enumerate(planes):
            values = plane[ys, xs]
            values[outside] = fill
            out[edge, c] = values
    return out, touches_edge


def to_float16(values: np.ndarray) -> np.ndarray:
    """``values.astype(np.float16)``, bit for bit, 3-5x faster where OpenCV is installed.

    numpy converts float32 to float16 one element at a time (~1.4 ns each here, the largest
    cost of the crops stage); OpenCV uses the CPU's F16C instructions, same rounding.
    """
    if cv2 is None or values.dtype != np.float32 or values.size == 0:
        return values.astype(np.float16)
    flat = np.ascontiguousarray(values).reshape(-1, values.shape[-1])
    return cv2.multiply(flat, 1.0, dtype=cv2.CV_16F).reshape(values.shape)


def corrected_crops(
    raw: Sequence[np.ndarray],
    illum: Sequence[np.ndarray] | None,
    centers_yx: np.ndarray,
    size: int,
    scale: float,
) -> tuple[np.ndarray, np.ndarray]:
    """float16 crops of one site's raw planes, illumination-corrected and scaled, and edge flags.

    The same numbers as correcting the whole images (``read_site``: float32 / function), then
    dividing by ``scale`` and zero-padding (test_crops checks that bit for bit), but only the
    crop pixels are converted and divided: raw pixels are cut in their stored dtype, the
    functions are cut the same way (1 outside the image, so padding stays 0).
    """
    crops, touches_edge = crop_site(raw, centers_yx, size)
    values = np.empty(crops.shape, np.float32)
    if illum is not None:
        functions, _ = crop_site(illum, centers_yx, size, fill=1)
        np.divide(crops, functions, out=values, dtype=np.float32)  # casts crops to float32 first
        np.divide(values, np.float32(scale), out=values)
    else:
        np.divide(crops, np.float32(scale), out=values, dtype=np.float32)
    return to_float16(values), touches_edge


def _write_sites(array: np.ndarray, flags: np.ndarray, groups: list, loaded) -> None:
    """Each site's crops (and edge flags) into its rows of ``array``, progress logged."""
    written = 0
    for done, ((_, rows), (crops, edge)) in enumerate(zip(groups, loaded), 1):
        if rows[-1] - rows[0] + 1 == len(rows):  # usual: a site's cells are adjacent
            array[rows[0] : rows[-1] + 1] = crops
        else:
            array[rows] = crops
        flags[rows] = edge
        written += len(rows)
        if done % max(1, len(groups) // 10) == 0 or done == len(groups):
            log.info("crops: %d/%d sites, %d cells", done, len(groups), written)


def write_plate_crops(
    cells: pd.DataFrame,
    manifest: pd.DataFrame,
    channels: list[str],
    illum: dict[str, np.ndarray] | None,
    npy_path: str | os.PathLike,
    params: dict | None = None,
    threads: int = 1,
) -> pd.DataFrame:
    """Write the plate's crops to ``npy_path`` and return the crops table (cells + flag column).

    Sites are read once each (in parallel, a bounded number ahead) and their crops written
    straight into a memory-mapped file, so memory stays at a few sites whatever the plate size.
    Only crop pixels are converted to float and corrected (corrected_crops), not whole images.
    """
    params = CROPS.merge(params)
    size = int(params["size"])
    scale = float(params["scale"])
    cells = cells.reset_index(drop=True)
    manifest_by_site = {
        tuple(row[key] for key in SITE_KEY): row for row in manifest.to_dict("records")
    }
    groups = list(cells.groupby(SITE_KEY, sort=False).indices.items())
    centers = cells[[CENTER_Y, CENTER_X]].to_numpy(np.float64)
    functions = None if illum is None else [np.asarray(illum[c], np.float32) for c in channels]
    flags = np.zeros(len(cells), bool)

    def load(group):
        key, rows = group
        row = manifest_by_site[key]
        raw = read_raw_site(row, channels)
        check_illum(raw, row, illum)
        return corrected_crops([raw[c] for c in channels], functions, centers[rows], size, scale)

    with atomic_path(npy_path) as tmp:
        array = open_npy(tmp, np.float16, (len(cells), len(channels), size, size))
        ahead = 2 * max(1, threads)  # sites read and cropped ahead of the writer
        with ThreadPoolExecutor(max(1, threads)) as pool:
            _write_sites(array, flags, groups, ordered_map(pool, load, groups, ahead))
        del array
    table = cells.copy()
    table[CROP_AT_EDGE] = flags
    log.info(
        "crops: %d cells from %d sites; %d crops zero-padded at the image edge",
        len(table),
        len(groups),
        int(flags.sum()),
    )
    return table
