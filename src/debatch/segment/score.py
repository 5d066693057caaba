"""Scoring a segmentation against reference label images (ground truth or another tool's masks).

Average precision at an IoU threshold t as the instance-segmentation community reports it
(cellpose, StarDist, the Data Science Bowl): AP(t) = TP / (TP + FP + FN), where a predicted
object is a true positive when its IoU with a reference object exceeds t. For t >= 0.5 an
object can overlap at most one partner that much, so matches are unique without assignment.
Counts are pooled over sites, so many small sites weigh like one big one of the same objects.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy import ndimage

from debatch.segment.cell_table import border_labels

_THRESHOLDS = (0.5, 0.75)


def _iou_pairs(
    truth: np.ndarray, predicted: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(truth label, predicted label, IoU) for every overlapping pair of objects."""
    if truth.shape != predicted.shape:
        raise ValueError(f"label images differ in shape: {truth.shape} vs {predicted.shape}")
    truth, predicted = truth.ravel().astype(np.int64), predicted.ravel().astype(np.int64)
    both = (truth > 0) & (predicted > 0)
    width = int(predicted.max()) + 1
    pairs, overlap = np.unique(truth[both] * width + predicted[both], return_counts=True)
    t, p = pairs // width, pairs % width
    truth_area = np.bincount(truth, minlength=int(truth.max()) + 1)
    predicted_area = np.bincount(predicted, minlength=width)
    return t, p, overlap / (truth_area[t] + predicted_area[p] - overlap)


def score_site(
    truth: np.ndarray, predicted: np.ndarray, thresholds: Iterable[float] = _THRESHOLDS
) -> dict:
    """Object counts and true positives at each IoU threshold (>= 0.5) for one site."""
    n_true = len(np.setdiff1d(np.unique(truth), [0]))
    n_predicted = len(np.setdiff1d(np.unique(predicted), [0]))
    _, _, iou = _iou_pairs(truth, predicted)
    row = {"n_true": n_true, "n_predicted": n_predicted}
    for threshold in thresholds:
        if threshold < 0.5:
            raise ValueError(f"IoU threshold {threshold} < 0.5: matches would not be unique")
        row[f"tp@{threshold}"] = int((iou > threshold).sum())
    return row


def summarise(sites: pd.DataFrame, thresholds: Iterable[float] = _THRESHOLDS) -> dict:
    """Pooled AP at each threshold and the mean absolute relative count error per site."""
    summary = {"sites": len(sites), "objects": int(sites["n_true"].sum())}
    for threshold in thresholds:
        tp = sites[f"tp@{threshold}"].sum()
        fp, fn = sites["n_predicted"].sum() - tp, sites["n_true"].sum() - tp
        summary[f"AP@{threshold}"] = float(tp / max(tp + fp + fn, 1))
    error = (sites["n_predicted"] - sites["n_true"]).abs() / sites["n_true"].clip(lower=1)
    summary["count_error"] = float(error.mean())
    return summary


def drop_border_objects(labels: np.ndarray) -> np.ndarray:
    """Labels with every object touching the image edge removed (CellProfiler's default)."""
    touching = border_labels(labels)
    touching[0] = False
    return np.where(touching[labels], 0, labels)


def median_area(labels: np.ndarray) -> float:
    """Median object area (px) of a label image (NaN without objects)."""
    areas = np.bincount(labels.ravel())[1:]
    areas = areas[areas > 0]
    return float(np.median(areas)) if len(areas) else float("nan")


def score_against_labels(reference: np.ndarray, found: np.ndarray) -> dict:
    """One field's objects against another tool's label image (e.g. CellProfiler's objects,
    which leave out everything touching the border): ours touching the border are dropped too.
    AP at each threshold, counts, count error and the median-area ratio ours / reference."""
    found = drop_border_objects(found)
    summary = summarise(pd.DataFrame([score_site(reference, found)]))
    summary["area_ratio"] = median_area(found) / median_area(reference)
    return summary


def _single_nucleus_components(cells_mask: np.ndarray, nuclei_mask: np.ndarray) -> np.ndarray:
    """Components of a binary cell mask that hold exactly one component of the nuclei mask:
    the cells a binary export (touching cells merged) still separates."""
    eight = np.ones((3, 3), bool)
    cells = ndimage.label(cells_mask > 0, eight)[0]
    nuclei = ndimage.label(nuclei_mask > 0, eight)[0]
    pairs = np.unique(np.stack([cells[nuclei > 0], nuclei[nuclei > 0]]), axis=1)
    pairs = pairs[:, pairs[0] > 0]
    held = np.bincount(pairs[0], minlength=cells.max() + 1)
    single = held == 1
    single[0] = False
    return np.where(single[cells], cells, 0)


def score_against_binary_cells(
    cells_mask: np.ndarray, nuclei_mask: np.ndarray, found_cells: np.ndarray
) -> dict:
    """Cells against a binary cell mask (touching cells merged, as NF1's exports): foreground
    IoU of the whole mask, and score_site's counts of our (non-border) cells against the
    single-nucleus components (pool fields with ``summarise``), counting only our cells whose
    centre lies in such a component (the others sit in merged components: not judged)."""
    found = drop_border_objects(found_cells)
    union = ((cells_mask > 0) | (found > 0)).sum()
    foreground_iou = float(((cells_mask > 0) & (found > 0)).sum() / max(union, 1))
    reference = _single_nucleus_components(cells_mask, nuclei_mask)
    index = np.arange(1, found.max() + 1)
    present = np.asarray(ndimage.sum(np.ones_like(found), found, index)) > 0
    centres = ndimage.center_of_mass(found > 0, found, index[present])
    judged = [
        label
        for label, (y, x) in zip(index[present], centres)
        if reference[int(round(y)), int(round(x))] > 0
    ]
    found = np.where(np.isin(found, judged), found, 0)
    return {**score_site(reference, found), "foreground_iou": foreground_iou}
