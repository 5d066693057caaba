"""Illumination correction: one smooth multiplicative function per plate and channel.

CellProfiler's "Regular" approach: average every site of the plate (cells average out, the
optics do not), smooth heavily, floor it relative to its median so dark corners are not divided by ~0,
and scale to mean 1 so corrected images keep their intensity units.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
from scipy import ndimage
from skimage.transform import resize

from debatch.images import read_image
from debatch.params import merge_params as check_params

log = logging.getLogger(__name__)

DEFAULTS = {
    "downsample": 4,           # block-average factor before smoothing (speed; the function is smooth)
    "smoothing": 0.1,          # Gaussian sigma as a fraction of the image's shorter side
    "floor": 0.1,              # function never below this fraction of its median: dead corners
                               # and empty regions are not amplified more than 1/floor times
    "max_sites": None,         # average at most this many sites (evenly spaced); None = all
}


def merge_params(params: dict | None) -> dict:
    return check_params("illum", DEFAULTS, params)


def _block_mean(image: np.ndarray, factor: int) -> np.ndarray:
    if factor <= 1:
        return image
    h, w = (s // factor * factor for s in image.shape)
    return image[:h, :w].reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3))


def illumination_function(mean_image: np.ndarray, params: dict) -> np.ndarray:
    """Smooth, floor and normalise an average image into a mean-1 float32 function."""
    params = merge_params(params)
    small = _block_mean(mean_image.astype(np.float64), int(params["downsample"]))
    sigma = params["smoothing"] * min(small.shape)
    smooth = ndimage.gaussian_filter(small, sigma=sigma, mode="nearest")
    smooth = np.maximum(smooth, max(params["floor"] * np.median(smooth), 1e-12))
    full = resize(smooth, mean_image.shape, order=1, mode="edge", anti_aliasing=False)
    return (full / full.mean()).astype(np.float32)


def select_sites(manifest: pd.DataFrame, max_sites: int | None) -> pd.DataFrame:
    if max_sites is None or len(manifest) <= max_sites:
        return manifest
    picks = np.linspace(0, len(manifest) - 1, int(max_sites)).round().astype(int)
    return manifest.iloc[np.unique(picks)]


def compute_plate_illum(manifest: pd.DataFrame, channels: list[str], params: dict | None = None,
                        threads: int = 1) -> dict[str, np.ndarray]:
    """Illumination function per channel from every (or max_sites) site of one plate.

    Images are streamed: only a running sum per channel is held, never the whole plate.
    """
    params = merge_params(params)
    sites = select_sites(manifest, params["max_sites"])
    functions = {}
    for channel in channels:
        paths = sites[f"Path_{channel}"].tolist()
        total = None
        with ThreadPoolExecutor(max(1, threads)) as pool:
            for path, image in zip(paths, pool.map(read_image, paths)):
                if total is None:
                    total = np.zeros(image.shape, np.float64)
                elif image.shape != total.shape:
                    raise ValueError(f"image {path} has shape {image.shape}, unlike the plate's "
                                     f"other {channel} images {total.shape}")
                total += image
        functions[channel] = illumination_function(total / len(paths), params)
        log.info("illum %s: %d sites, function range %.3f-%.3f", channel, len(paths),
                 functions[channel].min(), functions[channel].max())
    return functions


def plot_functions(functions: dict[str, np.ndarray], title: str, path) -> None:
    """One panel per channel so a scientist can eyeball vignetting and a bad estimate."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(functions), figsize=(max(3 * len(functions), 4.5), 3), squeeze=False)
    for ax, (channel, function) in zip(axes[0], functions.items()):
        shown = ax.imshow(function, cmap="magma")
        ax.set_title(channel)
        ax.axis("off")
        fig.colorbar(shown, ax=ax, fraction=0.046)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
