"""Illumination correction: one smooth multiplicative function per plate and channel.

CellProfiler's "Regular" approach: average every site of the plate (cells average out, the
optics do not), smooth heavily, floor it relative to its median so dark corners are not divided
by ~0, and scale to mean 1 so corrected images keep their intensity units. Settings: ``illum``
(debatch.settings.ILLUM).
"""

from __future__ import annotations

import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
from scipy import ndimage

from debatch.core.images import image_shape, read_image
from debatch.settings import ILLUM, PATH

log = logging.getLogger(__name__)


def _block_mean(image: np.ndarray, factor: int) -> np.ndarray:
    if factor <= 1:
        return image
    h, w = (s // factor * factor for s in image.shape)
    return image[:h, :w].reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3))


def _upsample(small: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling of ``small`` to ``shape``, edges repeated: skimage.transform.resize
    (order 1, mode "edge", no anti-aliasing) bit for bit, the same scipy call and clip, without
    importing skimage.transform (which loads scipy.spatial) in every illum job."""
    zoom = [1 / factor for factor in np.divide(small.shape, shape)]
    full = ndimage.zoom(small, zoom, order=1, mode="nearest", grid_mode=True)
    return np.clip(full, small.min(), small.max(), out=full)


def illumination_function(mean_image: np.ndarray, params: dict) -> np.ndarray:
    """Smooth, floor and normalise an average image into a mean-1 float32 function."""
    params = ILLUM.merge(params)
    small = _block_mean(mean_image.astype(np.float64), int(params["downsample"]))
    sigma = params["smoothing"] * min(small.shape)
    smooth = ndimage.gaussian_filter(small, sigma=sigma, mode="nearest")
    smooth = np.maximum(smooth, max(params["floor"] * np.median(smooth), 1e-12))
    full = _upsample(smooth, mean_image.shape)
    return (full / full.mean()).astype(np.float32)


def _select_sites(manifest: pd.DataFrame, max_sites: int | None) -> pd.DataFrame:
    if max_sites is None or len(manifest) <= max_sites:
        return manifest
    picks = np.linspace(0, len(manifest) - 1, int(max_sites)).round().astype(int)
    return manifest.iloc[np.unique(picks)]


def _odd_shapes(paths: list[str], channel: str) -> str:
    """The message naming the images whose shape is not the plate's usual one (the minority,
    whichever site comes first), from the files' headers."""
    shapes = {path: image_shape(path) for path in paths}
    usual = Counter(shapes.values()).most_common(1)[0][0]
    odd = [path for path, shape in shapes.items() if shape != usual]
    listed = ", ".join(f"{path} {shapes[path]}" for path in odd[:3])
    others = len(paths) - len(odd)
    return (
        f"{len(odd)} {channel} image(s) differ in shape from the plate's other {others} {usual}: "
        f"{listed}{' ...' if len(odd) > 3 else ''}"
    )


def compute_plate_illum(
    manifest: pd.DataFrame, channels: list[str], params: dict | None = None, threads: int = 1
) -> dict[str, np.ndarray]:
    """Illumination function per channel from every (or max_sites) site of one plate.

    Images are streamed: only a running sum per channel is held, never the whole plate.
    """
    params = ILLUM.merge(params)
    sites = _select_sites(manifest, params["max_sites"])
    functions = {}
    for channel in channels:
        paths = sites[f"{PATH}{channel}"].tolist()
        total = None
        with ThreadPoolExecutor(max(1, threads)) as pool:
            for image in pool.map(read_image, paths):
                if total is None:
                    total = np.zeros(image.shape, np.float64)
                elif image.shape != total.shape:
                    raise ValueError(_odd_shapes(paths, channel))
                total += image
        functions[channel] = illumination_function(total / len(paths), params)
        log.info(
            "illum %s: %d sites, function range %.3f-%.3f",
            channel,
            len(paths),
            functions[channel].min(),
            functions[channel].max(),
        )
    return functions
