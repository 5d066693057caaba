"""The training data as the network sees it: which cells train and which held-out cells are
scored (``split_cells``), ABRA's groups, the input scaling of crops and the held-out scores.

Cells of ``holdout_batches`` (OOD test), ``validation_batches`` (WILDS model selection) and, in
the training batches, of the sites ``id_sites`` (in-distribution test) never enter training
(nor the global input statistics); a fixed subset of each is scored every epoch, per cell and
per well.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch

from debatch.cnn import methods
from debatch.cnn.data import (
    CropSet,
    augment_batch,
    jitter_stats,
    plate_channel_stats,
    to_input,
    training_channel_stats,
)

log = logging.getLogger(__name__)


class InputScaling:
    """Per-crop channel mean/std for the network input: one global pair (from training crops),
    or each crop's plate's own pair (plate scaling), optionally jittered (debatch.cnn.data)."""

    def __init__(
        self,
        data: CropSet,
        train_idx: np.ndarray,
        train: dict,
        device: torch.device,
        stats: tuple[list[float], list[float]] | None = None,
    ):
        channels = data.crop_shape[0]
        self.crop_shape = data.crop_shape
        self.per_plate = methods.plate_scaling(train["recipe"]) and train["normalise"]
        self.plate = torch.from_numpy(data.plate)
        if self.per_plate:
            pairs = [plate_channel_stats(crops) for crops in data.memmaps]
            self.global_stats = None
            mean, std = (np.stack([pair[i] for pair in pairs]) for i in (0, 1))
        else:
            if stats is None:
                stats = (
                    training_channel_stats(data, train_idx, train["seed"])
                    if train["normalise"]
                    else ([0.0] * channels, [1.0] * channels)
                )
            self.global_stats = stats
            mean, std = np.array([stats[0]]), np.array([stats[1]])
        self.mean = torch.tensor(mean, dtype=torch.float32, device=device)[:, :, None, None]
        self.std = torch.tensor(std, dtype=torch.float32, device=device)[:, :, None, None]
        self.jitter = train["recipe"]["jitter"] if self.per_plate else 0.0

    def __call__(
        self,
        rows: np.ndarray,
        crops: np.ndarray,
        device: torch.device,
        rng: np.random.Generator | None = None,
    ) -> torch.Tensor:
        """Scaled input tensor of ``crops`` (global rows ``rows``); jittered when ``rng`` given."""
        if not self.per_plate:
            return to_input(crops, self.mean, self.std, device)
        index = self.plate[torch.from_numpy(rows)].to(device)
        mean, std = self.mean[index], self.std[index]
        if rng is not None and self.jitter > 0:
            mean, std = jitter_stats(mean, std, self.jitter, rng)
        return to_input(crops, mean, std, device)

    def view(self, rows: np.ndarray, crops: np.ndarray, device, rng, flips: bool) -> torch.Tensor:
        """One noisy view of crops as network input: scaled (jittered), flipped/rotated."""
        x = self(rows, crops, device, rng)
        return augment_batch(x, rng) if flips else x


def _group_codes(data: CropSet, train: dict) -> tuple[np.ndarray, int]:
    """Per-crop group index for ABRA's batch-wise statistics (plate, batch or one group)."""
    recipe = train["recipe"]
    group_by = recipe["abra"]["group_by"] if recipe["augment"] == "abra" else "none"
    if group_by == "plate":
        return data.plate, len(data.memmaps)
    if group_by == "batch":
        names, codes = np.unique(data.batch, return_inverse=True)
        return codes, len(names)
    return np.zeros(len(data.plate), dtype=np.int64), 1


def holdout_scores(
    model, data, idx, labels, scaling, device, batch_size, autocast
) -> tuple[float, float]:
    """Held-out accuracy per cell (argmax) and per well (argmax of the mean softmax of the
    well's scored cells); NaN without held-out cells."""
    if len(idx) == 0:
        return float("nan"), float("nan")
    model.eval()
    rows_seen, probabilities = [], []
    with torch.inference_mode(), autocast():
        for start in range(0, len(idx), batch_size):
            rows, crops = data.gather(idx[start : start + batch_size])
            logits = model(scaling(rows, crops, device))
            probabilities.append(torch.softmax(logits.float(), 1).cpu().numpy())
            rows_seen.append(rows)
    rows, probabilities = np.concatenate(rows_seen), np.concatenate(probabilities)
    cell_acc = float((probabilities.argmax(1) == labels[rows]).mean())
    wells, well_index = np.unique(data.well[rows], return_inverse=True)
    well_prob = np.zeros((len(wells), probabilities.shape[1]))
    np.add.at(well_prob, well_index, probabilities)
    well_label = np.zeros(len(wells), dtype=np.int64)
    well_label[well_index] = labels[rows]  # one treatment per well
    return cell_acc, float((well_prob.argmax(1) == well_label).mean())


@dataclass
class Split:
    """Which cells train, which held-out cells are scored (held-out batches; validation batches;
    in-distribution test sites of the training batches), their labels and ABRA groups."""

    train_idx: np.ndarray
    holdout_idx: np.ndarray
    classes: list[str]
    labels: np.ndarray
    groups: np.ndarray
    n_groups: int
    val_idx: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    id_idx: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def data_key(self, data: CropSet) -> dict:
        """What a checkpoint must have been trained on to be resumed."""
        return {
            "plate_sizes": data.sizes,
            "crop_shape": list(data.crop_shape),
            "classes": self.classes,
            "n_train": int(len(self.train_idx)),
        }

    def scored(self) -> dict[str, np.ndarray]:
        """The cells scored every epoch, by training-log prefix (holdout, val, id)."""
        return {"holdout": self.holdout_idx, "val": self.val_idx, "id": self.id_idx}


def _subset(idx: np.ndarray, train: dict, stream: int) -> np.ndarray:
    """A fixed seeded subset of ``idx`` of at most ``max_holdout_cells`` (``stream``: one
    draw per scored set; the held-out batches' is the one they always had)."""
    cap = train["max_holdout_cells"]
    if cap is None or len(idx) <= cap:
        return idx
    key = [train["seed"], 1 << 31] + ([stream] if stream else [])
    return np.sort(np.random.default_rng(key).choice(idx, cap, replace=False))


def _id_cells(data: CropSet, train: dict, training: np.ndarray) -> np.ndarray:
    """Cells of the training batches on the sites ``id_sites`` (in-distribution test)."""
    sites = [str(site) for site in train["id_sites"]]
    if not sites:
        return np.zeros(len(data.batch), dtype=bool)
    if data.site is None:
        raise ValueError("id_sites needs Metadata_Site in every crops table")
    chosen = training & np.isin(data.site, sites)
    if not chosen.any():
        raise ValueError(
            f"id_sites {train['id_sites']} match no cell of the training batches "
            f"(their sites: {sorted(set(data.site[training]))})"
        )
    return chosen


def _unknown_batches(data: CropSet, train: dict, key: str) -> None:
    unknown = sorted(set(train[key]) - set(data.batch))
    if unknown:
        raise ValueError(
            f"{key} {unknown} not found in Metadata_Batch (present: {sorted(set(data.batch))})"
        )


def split_cells(data: CropSet, train: dict) -> Split:
    """Training cells (not in ``holdout_batches`` nor ``validation_batches``, not on the
    ``id_sites``) and fixed subsets of the scored cells whose treatment is among the training
    classes; errors name the setting that leaves none."""
    for key in ("holdout_batches", "validation_batches"):
        _unknown_batches(data, train, key)
    held = np.isin(data.batch, train["holdout_batches"])
    validating = np.isin(data.batch, train["validation_batches"])
    in_distribution = _id_cells(data, train, ~held & ~validating)
    train_idx = np.flatnonzero(~held & ~validating & ~in_distribution)
    if len(train_idx) < 2:
        raise ValueError(
            f"no training cells: {len(train_idx)} cells remain after removing "
            f"holdout_batches {train['holdout_batches']}, validation_batches "
            f"{train['validation_batches']} and id_sites {train['id_sites']}"
        )
    classes = sorted(set(data.treatment[train_idx]))
    if len(classes) < 2:
        raise ValueError(f"need at least 2 treatments among training cells, found {classes}")
    labels = np.searchsorted(classes, data.treatment).astype(np.int64)
    known = np.isin(data.treatment, classes)
    holdout_idx = _subset(np.flatnonzero(held & known), train, 0)
    val_idx = _subset(np.flatnonzero(validating & known), train, 1)
    if validating.any() and len(val_idx) == 0:
        raise ValueError(
            f"validation_batches {train['validation_batches']} have no cell of a training "
            f"treatment {classes}: nothing to select the model on"
        )
    id_idx = _subset(np.flatnonzero(in_distribution & known), train, 2)
    unscored = (held | validating | in_distribution) & ~known
    if unscored.any():
        log.info(
            "%d held-out cells have treatments absent from training and are not scored",
            int(unscored.sum()),
        )
    groups, n_groups = _group_codes(data, train)
    return Split(train_idx, holdout_idx, classes, labels, groups, n_groups, val_idx, id_idx)
