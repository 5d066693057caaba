"""Crops as training input: the memmapped crop set, per-channel input scaling, flips/rotations.

Shared by training (debatch.cnn.train) and embedding (debatch.cnn.embed) so both feed the
network exactly the same numbers.

Input scaling (per channel, applied before the network):

- ``global``: subtract the mean and divide by the std of that channel over (a seeded sample of)
  the training crops; one pair of numbers per channel, stored in ``model.pt``.
- ``plate`` (DeepNoise): mean/std per channel over the crops of the crop's own plate, computed
  for every plate from its own crops (training and held-out plates alike; no labels are used),
  and recomputed from the plate's crops when a plate is embedded. In training the two statistics
  are jittered per crop and channel by a uniform factor in [1 - jitter, 1 + jitter].
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from debatch.crops.store import crop_unit, open_crops
from debatch.settings import BATCH, PLATE, SITE, TREATMENT, WELL

NORM_SAMPLE_CELLS = 20000  # crops (seeded sample / evenly spaced subset) used to estimate mean/std
_GATHER_CHUNK = 4096  # crops read per chunk when estimating statistics


class CropSet:
    """All plates' crops as one indexable set; global index = plate offset + row.

    Per crop: ``batch``, ``treatment`` (strings), ``plate`` (index into ``plates``) and ``well``
    (index into ``wells``, unique per plate and well), used for held-out batches, labels, plate
    grouping/normalisation and well-level scores; ``site`` (strings, Metadata_Site; None when a
    table lacks the column) for in-distribution test sites (train.id_sites). ``unit``: what a
    crop is, ``cell`` or a whole ``site`` (crops.unit), the same for every plate.
    """

    def __init__(self, plates: list[tuple[str, str]]):
        if not plates:
            raise ValueError("no plates given")
        self.memmaps, frames, shapes, units = [], [], set(), set()
        for npy_path, parquet_path in plates:
            crops, meta = open_crops(npy_path, parquet_path)
            missing = {PLATE, BATCH, WELL, TREATMENT} - set(meta.columns)
            if missing:
                raise ValueError(f"{parquet_path} lacks column(s) {sorted(missing)}")
            if meta[TREATMENT].isna().any():
                raise ValueError(f"{parquet_path} has cells with missing Metadata_Treatment")
            self.memmaps.append(crops)
            frames.append(meta[[c for c in (PLATE, BATCH, WELL, TREATMENT, SITE) if c in meta]])
            shapes.add(crops.shape[1:])
            units.add(crop_unit(meta))
        if len(shapes) > 1:
            raise ValueError(f"plates have different crop shapes {sorted(shapes)}")
        if len(units) > 1:
            raise ValueError("plates mix crops of cells and whole sites (crops.unit)")
        self.unit = units.pop()
        self.crop_shape = shapes.pop()
        self.dtype = np.result_type(*(m.dtype for m in self.memmaps))
        self.sizes = [len(m) for m in self.memmaps]
        self.offsets = np.cumsum([0] + self.sizes)
        meta = pd.concat(frames, ignore_index=True)
        self.batch = meta[BATCH].astype(str).to_numpy()
        self.treatment = meta[TREATMENT].astype(str).to_numpy()
        has_site = SITE in meta and not meta[SITE].isna().any()
        self.site = meta[SITE].astype(str).to_numpy() if has_site else None
        self.plate = np.repeat(np.arange(len(self.memmaps)), self.sizes)
        self.plate_name = meta[PLATE].astype(str).to_numpy()
        plate_well = meta[PLATE].astype(str) + "/" + meta[WELL].astype(str)
        self.wells, self.well = np.unique(plate_well.to_numpy(), return_inverse=True)

    def gather(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sorted indices and their crops, read plate by plate in row order (memmap locality)."""
        idx = np.sort(idx)
        out = np.empty((len(idx), *self.crop_shape), dtype=self.dtype)
        bounds = np.searchsorted(idx, self.offsets)
        for plate, crops in enumerate(self.memmaps):
            lo, hi = bounds[plate], bounds[plate + 1]
            if hi > lo:
                np.take(crops, idx[lo:hi] - self.offsets[plate], axis=0, out=out[lo:hi])
        return idx, out


def _moments(chunks, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean/std (float64) of an iterable of N x C x S x S arrays."""
    total, total_sq, count = np.zeros(channels), np.zeros(channels), 0
    for crops in chunks:
        crops = crops.astype(np.float64)
        total += crops.sum(axis=(0, 2, 3))
        total_sq += np.square(crops).sum(axis=(0, 2, 3))
        count += crops.shape[0] * crops.shape[2] * crops.shape[3]
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    std[std < 1e-8] = 1.0  # a constant channel carries no information; avoid dividing by 0
    return mean, std


def training_channel_stats(
    data: CropSet, train_idx: np.ndarray, seed: int
) -> tuple[list[float], list[float]]:
    """``global`` scaling: per-channel mean/std over a seeded sample of the training crops."""
    sample = train_idx
    if len(sample) > NORM_SAMPLE_CELLS:
        sample = np.random.default_rng([seed, 1 << 30]).choice(
            train_idx, NORM_SAMPLE_CELLS, replace=False
        )
    chunks = (
        data.gather(sample[s : s + _GATHER_CHUNK])[1] for s in range(0, len(sample), _GATHER_CHUNK)
    )
    mean, std = _moments(chunks, data.crop_shape[0])
    return mean.tolist(), std.tolist()


def plate_channel_stats(crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``plate`` scaling: per-channel mean/std of one plate's crops (N x C x S x S, e.g. memmap).

    Plates larger than NORM_SAMPLE_CELLS use an evenly spaced subset of rows, so training and
    embedding (which see the same file) compute identical statistics without sharing a seed.
    """
    rows = np.arange(len(crops))
    if len(rows) > NORM_SAMPLE_CELLS:
        rows = np.linspace(0, len(crops) - 1, NORM_SAMPLE_CELLS).round().astype(np.int64)
    chunks = (
        np.asarray(crops[rows[s : s + _GATHER_CHUNK]]) for s in range(0, len(rows), _GATHER_CHUNK)
    )
    return _moments(chunks, crops.shape[1])


def to_input(
    crops: np.ndarray, mean: torch.Tensor, std: torch.Tensor, device: torch.device
) -> torch.Tensor:
    """float16 numpy batch -> scaled float32 tensor on device (converted after transfer).

    ``mean``/``std`` broadcast against N x C x S x S: (1, C, 1, 1) for one scaling of the whole
    batch, (N, C, 1, 1) for one per crop (plate scaling, jitter).
    """
    x = torch.from_numpy(crops).to(device, non_blocking=True).float()
    return ((x - mean) / std).contiguous(memory_format=torch.channels_last)


def jitter_stats(
    mean: torch.Tensor, std: torch.Tensor, jitter: float, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-crop statistics (N, C, 1, 1) each multiplied by an independent U(1-jitter, 1+jitter)."""
    factors = torch.from_numpy(rng.uniform(1 - jitter, 1 + jitter, (2, *mean.shape)))
    factors = factors.to(mean.device, mean.dtype)
    return mean * factors[0], std * factors[1]


def random_tiles(crops: np.ndarray, tile: int, rng: np.random.Generator) -> np.ndarray:
    """A random ``tile`` x ``tile`` square of each crop (N x C x S x S), each its own place
    (train.tile: the network ends in global pooling, so it embeds the whole crop all the same)."""
    side = crops.shape[-1]
    if tile > side:
        raise ValueError(f"train.tile {tile} is larger than the stored crops' side {side} px")
    if tile == side:
        return crops
    corners = rng.integers(0, side - tile + 1, (len(crops), 2))
    return np.stack([crop[:, y : y + tile, x : x + tile] for crop, (y, x) in zip(crops, corners)])


def augment_batch(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Uniform random element of the dihedral group D4 per (square) crop.

    Three coins: flip W, flip H (together the 4 flips/180-degree rotation), then transpose;
    the 8 outcomes are the 8 distinct flips and 90-degree rotations.
    """
    coins = torch.from_numpy(rng.random((3, x.shape[0])) < 0.5).to(x.device).view(3, -1, 1, 1, 1)
    x = torch.where(coins[0], x.flip(-1), x)
    x = torch.where(coins[1], x.flip(-2), x)
    return torch.where(coins[2], x.transpose(-1, -2), x)
