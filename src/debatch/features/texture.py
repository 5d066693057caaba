"""MeasureTexture of a 2D site: cp_measure's numba ``get_texture`` with every object's crop
cut in one compiled loop.

cp_measure quantises the channel to grey levels for each call, then builds scikit-image
``regionprops`` and, object by object in Python, its masked crop for the compiled Haralick
kernel; on a dense 1080 px field that host-side work cost about as much as the kernel. Here the
quantised channel (``grey_levels``) is made once per channel, shared by the object sets and
scales, and one compiled loop cuts every object's crop (its bounding box, 0 outside the object,
as ``regionprops``' ``image_intensity``) into one buffer; cp_measure's own ``haralick_object``
then measures each crop (called from Python: a compiled caller would keep a copy of it in its
numba cache that an upgrade of cp_measure would not refresh), so every number is cp_measure's
numba backend's bit for bit (tests/test_features.py compares them).
"""

from __future__ import annotations

import numba
import numpy as np
import skimage.exposure
import skimage.util
from cp_measure.core.measuretexture import _pack
from cp_measure.core.numba._texture import DELTAS_2D, haralick_object

from debatch.features.objects import bounding_boxes


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
def _crops(labels, quantised, boxes):  # pragma: no cover
    """Every object's crop (its bounding box of ``quantised``, 0 outside the object), one after
    another in a flat buffer, and where each starts."""
    starts = np.zeros(boxes.shape[0] + 1, np.int64)
    for o in range(boxes.shape[0]):
        starts[o + 1] = starts[o] + (boxes[o, 1] - boxes[o, 0]) * (boxes[o, 3] - boxes[o, 2])
    crops = np.zeros(starts[-1], np.uint8)
    for o in range(boxes.shape[0]):
        top, bottom, left, right = boxes[o, 0], boxes[o, 1], boxes[o, 2], boxes[o, 3]
        at = starts[o]
        for r in range(top, bottom):
            for c in range(left, right):
                if labels[r, c] == o + 1:
                    crops[at] = quantised[r, c]
                at += 1
    return crops, starts


def get_texture(
    labels: np.ndarray,
    quantised: np.ndarray,
    scale: int,
    levels: int,
    boxes: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """cp_measure's numba ``get_texture(labels, pixels, scale, levels)`` of a 2D label image
    (labels 1..N, no gaps), given ``quantised = grey_levels(pixels, levels)`` (``levels``
    names the features; it must be the count the channel was quantised to). ``boxes``:
    ``objects.bounding_boxes(labels)`` where already made."""
    if scale < 1:
        raise ValueError(f"scale must be at least 1 pixel, got {scale}")
    if labels.ndim != 2 or labels.shape != quantised.shape:
        raise ValueError(f"labels {labels.shape} and image {quantised.shape} differ or are not 2D")
    boxes = bounding_boxes(labels) if boxes is None else boxes
    offsets = np.ascontiguousarray(scale * DELTAS_2D)
    crops, starts = _crops(labels, quantised, boxes)
    features = np.empty((len(offsets), 13, len(boxes)))
    for o, (top, bottom, left, right) in enumerate(boxes):
        crop = crops[starts[o] : starts[o + 1]].reshape(1, bottom - top, right - left)
        features[:, :, o] = haralick_object(crop, offsets)  # cp_measure's compiled kernel
    return _pack(features, scale, levels)
