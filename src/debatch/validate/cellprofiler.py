"""CellProfiler's own outputs as references: its objects, its image preprocessing, its numbers.

Used to check debatch against CellProfiler on published real fields (tests, benchmarks, docs):

- ``label_mask`` / ``fill_outlines`` / ``objects_from_outlines``: CellProfiler's objects back
  from the binary masks or outline images a pipeline saved;
- ``match_object``: the object a CellProfiler table row describes (by its centre), accepted only
  with its area and bounding box: a mask component that merged touching neighbours is not it;
- ``subtract_background``: CorrectIlluminationCalculate (Background, Fit Polynomial, each image)
  + CorrectIlluminationApply (Subtract, clipped) + a 16-bit save, the preprocessing of the NF1
  pipeline (WayScience/nf1_schwann_cell_painting_data, NF1_illum_Plates_1_2.cppipe), which is
  why CellProfiler's intensities of that screen sit ~0.05 below the raw images';
- ``agreement``: per measurement module, the share of features within tolerance.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import tifffile
from centrosome.cpmorphology import block
from centrosome.smooth import fit_polynomial
from cp_measure._sanitize import sanitize_masks
from scipy import ndimage
from skimage.segmentation import expand_labels, relabel_sequential

_RELATIVE, _ABSOLUTE = 0.01, 1e-6  # "agrees": within 1 % of CellProfiler's value or 1e-6


def subtract_background(raw: np.ndarray, block_size: int = 50) -> np.ndarray:
    """The image CellProfiler measured in the NF1 pipeline, on CellProfiler's [0, 1] scale:
    the minimum of each ``block_size`` block, a quadratic surface fitted to those minima,
    subtracted, clipped to [0, 1] and saved at 16 bit (rounded)."""
    image = raw.astype(np.float64) / np.iinfo(raw.dtype).max
    blocks, indexes = block(image.shape, (block_size, block_size))
    background = np.asarray(ndimage.minimum(image, blocks, indexes))[blocks]
    corrected = np.clip(image - fit_polynomial(background, np.ones(image.shape, bool)), 0, 1)
    return np.round(corrected * 65535) / 65535


def label_mask(mask: np.ndarray) -> np.ndarray:
    """Connected components (8-connected) of a saved binary object mask."""
    return ndimage.label(mask > 0, structure=np.ones((3, 3), bool))[0]


def fill_outlines(outlines: np.ndarray, reach: float = 3.0) -> np.ndarray:
    """Objects of a CellProfiler outline image (nonzero = outline pixel): every region the
    outlines enclose, grown over the outline pixels within ``reach`` of it (an outline pixel is
    its object's own border pixel); regions touching the image edge are background."""
    outline = outlines > 0
    inside = ndimage.label(~outline)[0]
    edge = np.unique(np.concatenate([inside[0], inside[-1], inside[:, 0], inside[:, -1]]))
    inside[np.isin(inside, edge)] = 0
    objects = expand_labels(inside, reach)
    objects[~(outline | (inside > 0))] = 0
    return objects


def objects_from_outlines(path, min_area: int = 0) -> np.ndarray:
    """CellProfiler's objects from a saved outline image (RGB or grey TIFF): filled regions of
    at least ``min_area`` px, labelled 1..n (jagged outlines also enclose small pockets that
    are no object of CellProfiler's)."""
    outlines = tifffile.imread(path)
    objects = fill_outlines(outlines[..., 1] if outlines.ndim == 3 else outlines)
    areas = np.bincount(objects.ravel())
    small = areas < min_area
    small[0] = False
    objects[small[objects]] = 0
    return relabel_sequential(objects)[0]


def match_object(labels: np.ndarray, row: pd.Series, name: str):
    """The object a CellProfiler row describes (``name``: Nuclei, Cells, ...): the one whose
    centroid is CellProfiler's centre (within half a pixel; a ring-shaped cytoplasm's centre
    lies in its hole), accepted only with CellProfiler's area and bounding box, else
    (None, why)."""
    rows, cols = np.nonzero(labels)
    ids = labels[rows, cols]
    count = np.bincount(ids)
    with np.errstate(invalid="ignore", divide="ignore"):
        cy, cx = np.bincount(ids, rows) / count, np.bincount(ids, cols) / count
    off = np.hypot(cx - row[f"{name}_Location_Center_X"], cy - row[f"{name}_Location_Center_Y"])
    label = int(np.nanargmin(off))
    area = int(row[f"{name}_AreaShape_Area"])
    if off[label] > 0.5:
        centre = (round(row[f"{name}_Location_Center_Y"]), round(row[f"{name}_Location_Center_X"]))
        under = int(labels[int(centre[0]), int(centre[1])])
        if under and count[under] > area:
            merged = f"{count[under]} px, CellProfiler's object {area}"
            return None, f"the mask component there merges touching objects ({merged})"
        return None, f"no object centred at CellProfiler's centre ({off[label]:.1f} px off)"
    if count[label] != area:
        return None, f"mask component has {count[label]} px, CellProfiler's object {area}"
    mine = ids == label
    box = tuple(
        int(v)
        for v in (cols[mine].min(), cols[mine].max() + 1, rows[mine].min(), rows[mine].max() + 1)
    )
    theirs = tuple(
        int(row[f"{name}_AreaShape_BoundingBox{end}_{axis}"])
        for end, axis in (("Minimum", "X"), ("Maximum", "X"), ("Minimum", "Y"), ("Maximum", "Y"))
    )
    if box != theirs:
        return None, f"same area but bounding box {box}, CellProfiler's {theirs}"
    return label, ""


def _module_of(feature: str) -> str:
    """CellProfiler's module of a feature column: ``Cells_Texture_...`` -> ``Texture``."""
    return feature.split("_")[1]


def agreement(ours: pd.Series, theirs: pd.Series) -> pd.DataFrame:
    """Per feature both name: our value, CellProfiler's, and whether they agree (both NaN
    counts as agreeing: neither could measure it)."""
    common = ours.index.intersection(theirs.index)
    a = ours[common].astype(np.float64)
    b = pd.to_numeric(theirs[common], errors="coerce").astype(np.float64)
    close = (a - b).abs() <= np.maximum(_ABSOLUTE, _RELATIVE * b.abs())
    return pd.DataFrame(
        {
            "module": [_module_of(name) for name in common],
            "ours": a,
            "cellprofiler": b,
            "agrees": close | (a.isna() & b.isna()),
        }
    )


def compare_objects(
    objects: dict[str, np.ndarray],
    images: dict[str, np.ndarray],
    row: pd.Series,
    params: dict | None = None,
    modules: tuple[str, ...] | None = None,
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Our measurements of the objects one CellProfiler table row describes against its values.

    ``objects``: CellProfiler object name -> label image of all that field's objects (RWC and
    Costes depend on the other objects and the whole image too); ``images``: channel -> image
    as CellProfiler measured it. Each object is found by its centre and area (``match_object``);
    ``modules`` limits the comparison (e.g. ``("AreaShape",)`` when the intensities CellProfiler
    measured are not available). Returns (``agreement`` rows of every object compared,
    {object: why it was skipped})."""
    from debatch.features.site import measure_objects, prepare_site
    from debatch.settings import FEATURES

    features = FEATURES.merge(params)
    site = prepare_site(images, features, 65535)
    compared, skipped = [], {}
    for name, labels in objects.items():
        label, why = match_object(labels, row, name)
        if label is None:
            skipped[name] = why
            continue
        clean, ids = sanitize_masks(labels.astype(np.int32))  # labels 1..N without gaps
        measured = measure_objects(clean, site, features)
        at = int(np.searchsorted(ids, label))
        ours = pd.Series({f"{name}_{k}": float(np.asarray(v)[at]) for k, v in measured.items()})
        table = agreement(ours, row)
        compared.append(table if modules is None else table[table["module"].isin(modules)])
    return (pd.concat(compared) if compared else agreement(pd.Series(dtype=float), row)), skipped
