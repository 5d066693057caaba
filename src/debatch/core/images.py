"""Reading raw images and applying illumination correction, shared by image stages."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import tifffile


class ImageError(ValueError):
    """A raw image that cannot be used; the message names the file."""


def _read_raw(path: str) -> np.ndarray:
    """Read one 2-D plane in its stored dtype, with a one-line error naming the file."""
    try:
        image = tifffile.imread(path)
    except FileNotFoundError:
        raise ImageError(f"image file missing: {path}") from None
    except Exception as exc:  # tifffile raises many types for truncated/corrupt files
        raise ImageError(f"cannot read image {path}: {type(exc).__name__}: {exc}") from None
    image = np.squeeze(image)
    if image.ndim != 2:
        raise ImageError(f"image {path} has shape {image.shape}; expected one 2-D plane")
    return image


def read_image(path: str) -> np.ndarray:
    """Read one 2-D plane as float32 (see _read_raw)."""
    return _read_raw(path).astype(np.float32, copy=False)


def read_raw_site(row: Mapping, channels: list[str]) -> dict[str, np.ndarray]:
    """Every channel of one site (a manifest row) in its stored dtype.

    Raises ImageError when channels disagree in shape or dtype (a channel exported at another
    bit depth would silently be scaled differently), naming the site.
    """
    images = {channel: _read_raw(row[f"Path_{channel}"]) for channel in channels}
    site = f"well {row.get('Metadata_Well')} site {row.get('Metadata_Site')}"
    shapes = {name: image.shape for name, image in images.items()}
    if len(set(shapes.values())) > 1:
        raise ImageError(f"channels of {site} differ in shape: {shapes}")
    dtypes = {name: str(image.dtype) for name, image in images.items()}
    if len(set(dtypes.values())) > 1:
        raise ImageError(f"channels of {site} differ in pixel type: {dtypes}")
    return images


def correct_site(
    raw: Mapping[str, np.ndarray], row: Mapping, illum: Mapping[str, np.ndarray] | None = None
) -> dict[str, np.ndarray]:
    """float32 images of one site divided by the plate's illumination functions (if any)."""
    check_illum(raw, row, illum)
    images = {}
    for channel, image in raw.items():
        image = image.astype(np.float32, copy=False)
        if illum is not None:
            image = image / illum[channel]
        images[channel] = image
    return images


def check_illum(
    raw: Mapping[str, np.ndarray], row: Mapping, illum: Mapping[str, np.ndarray] | None
) -> None:
    """Raise ImageError, naming the file, when an illumination function does not fit its image."""
    if illum is None:
        return
    for channel, image in raw.items():
        function = illum[channel]
        if function.shape != image.shape:
            raise ImageError(
                f"image {row[f'Path_{channel}']} has shape {image.shape} but the plate's "
                f"illumination function for {channel} has shape {function.shape}"
            )


def cellprofiler_scale(dtype) -> float:
    """Factor that puts raw intensities on CellProfiler's scale, where 1 is the pixel type's
    maximum (65535 for 16 bit; floats are taken as already scaled)."""
    dtype = np.dtype(dtype)
    return 1.0 / np.iinfo(dtype).max if dtype.kind in "ui" else 1.0


def read_site(
    row: Mapping, channels: list[str], illum: Mapping[str, np.ndarray] | None = None
) -> dict[str, np.ndarray]:
    """Every channel of one site as float32, illumination-corrected (see read_raw_site)."""
    return correct_site(read_raw_site(row, channels), row, illum)
