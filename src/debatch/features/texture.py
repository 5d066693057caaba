"""MeasureTexture of a 2D site: cp_measure's numba ``get_texture`` with every object's crop
cut and measured in one compiled loop.

cp_measure quantises the channel to grey levels for each call, then builds scikit-image
``regionprops`` and, object by object in Python, its masked crop for the compiled Haralick
kernel; on a dense 1080 px field that host-side work cost about as much as the kernel. Here the
quantised channel (``grey_levels``) is made once per channel, shared by the object sets and
scales, and one compiled loop cuts each object's crop (its bounding box, 0 outside the object,
as ``regionprops``' ``image_intensity``) and calls cp_measure's own ``haralick_object`` on it,
so every number is cp_measure's bit for bit (tests/test_features.py compares them).
"""

from __future__ import annotations

import numba
import numpy as np
import skimage.exposure
import skimage.util
from cp_measure.core.measuretexture import _pack
from cp_measure.core.numba._texture import DELTAS_2D, haralick_object
from scipy import ndimage


def grey_levels(pixels: np.ndarray, levels: int) -> np.ndarray:
    """The channel quantised as cp_measure's texture quantises it: 8-bit
    (``img_as_ubyte``), then rescaled to ``levels`` grey levels."""
    quantised = skimage.util.img_as_ubyte(pixels, force_copy=True)
    if levels != 256:
        quantised = skimage.exposure.rescale_intensity(
            quantised, in_range=(0, 255), out_range=(0, levels - 1)
        ).astype(np.uint8)
    return quantised


@numba.njit(cache=True, nogil=True)
def _haralick_objects(labels, quantised, boxes, offsets):  # pragma: no cover
    """(directions, 13, objects) Haralick features of each object's crop."""
    count = boxes.shape[0]
    out = np.empty((offsets.shape[0], 13, count))
    for o in range(count):
        top, bottom, left, right = boxes[o, 0], boxes[o, 1], boxes[o, 2], boxes[o, 3]
        crop = np.zeros((1, bottom - top, right - left), np.uint8)
        for r in range(top, bottom):
            for c in range(left, right):
                if labels[r, c] == o + 1:
                    crop[0, r - top, c - left] = quantised[r, c]
        features = haralick_object(crop, offsets)
        for d in range(offsets.shape[0]):
            for f in range(13):
                out[d, f, o] = features[d, f]
    return out


def get_texture(
    labels: np.ndarray, quantised: np.ndarray, scale: int, levels: int
) -> dict[str, np.ndarray]:
    """cp_measure's ``get_texture(labels, pixels, scale, levels)`` of a 2D label image
    (labels 1..N, no gaps), given ``quantised = grey_levels(pixels, levels)``."""
    if scale < 1:
        raise ValueError(f"scale must be at least 1 pixel, got {scale}")
    boxes = np.array(
        [[s[0].start, s[0].stop, s[1].start, s[1].stop] for s in ndimage.find_objects(labels)],
        np.int64,
    ).reshape(-1, 4)
    offsets = np.ascontiguousarray(scale * DELTAS_2D)
    return _pack(_haralick_objects(labels, quantised, boxes, offsets), scale, levels)
