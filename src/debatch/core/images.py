"""Reading raw images and applying illumination correction, shared by image stages.

TIFF is read by tifffile, PNG (RxRx1's 8-bit sites, 16-bit exports) by Pillow: one grayscale
plane per file, kept in its stored dtype (uint8 or uint16) so every stage knows its scale.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import tifffile
from PIL import Image


class ImageError(ValueError):
    """A raw image that cannot be used; the message names the file."""


# Pillow's modes of one grayscale plane, 8 or 16 bit (16-bit PNGs open as I;16); a colour,
# palette or 32-bit PNG would be another scale or several channels in one file
_PNG_MODES = ("L", "I;16", "I;16B", "I;16L")


def _is_png(path: str) -> bool:
    return str(path).lower().endswith(".png")


def _read_png(path: str) -> np.ndarray:
    """One PNG's pixels as uint8 or uint16; other modes are an ImageError naming the file."""
    with Image.open(path) as image:
        if image.mode not in _PNG_MODES:
            raise ImageError(
                f"PNG {path} is mode {image.mode}; expected one grayscale plane of 8 or 16 bit"
            )
        dtype = np.uint8 if image.mode == "L" else np.uint16  # I;16B: big-endian to native
        return np.asarray(image).astype(dtype, copy=False)


def image_shape(path: str) -> tuple[int, ...]:
    """A plane's shape from the file's header (the pixels are not read), singletons dropped."""
    if _is_png(path):
        with Image.open(path) as image:
            return tuple(s for s in image.size[::-1] if s > 1)
    with tifffile.TiffFile(path) as tiff:
        return tuple(s for s in tiff.pages[0].shape if s > 1)


def _read_raw(path: str) -> np.ndarray:
    """Read one 2-D plane in its stored dtype, with a one-line error naming the file."""
    try:
        image = _read_png(path) if _is_png(path) else tifffile.imread(path)
    except FileNotFoundError:
        raise ImageError(f"image file missing: {path}") from None
    except ImageError:
        raise
    except Exception as exc:  # tifffile and Pillow raise many types for truncated/corrupt files
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


def read_illum(path, channels) -> dict[str, np.ndarray]:
    """A plate's illumination functions (illum/{plate}.npz) for ``channels``, in that order."""
    with np.load(path) as stored:
        missing = [channel for channel in channels if channel not in stored.files]
        if missing:
            raise ValueError(
                f"{path} has no illumination function for channel(s) {missing}; "
                f"rerun the illum rule (--forcerun illum)"
            )
        return {channel: stored[channel] for channel in channels}


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
    maximum (65535 for 16 bit, 255 for 8 bit; floats are taken as already scaled)."""
    dtype = np.dtype(dtype)
    return 1.0 / np.iinfo(dtype).max if dtype.kind in "ui" else 1.0


def read_site(
    row: Mapping, channels: list[str], illum: Mapping[str, np.ndarray] | None = None
) -> dict[str, np.ndarray]:
    """Every channel of one site as float32, illumination-corrected (see read_raw_site)."""
    return correct_site(read_raw_site(row, channels), row, illum)
