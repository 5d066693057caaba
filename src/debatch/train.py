"""Train the crop CNN (ERM: cross-entropy on Metadata_Treatment) with resumable checkpoints.

Inputs are the crops stage's per-plate pairs ``crops/{plate}.npy`` (N x C x S x S, opened as a
memmap) and ``crops/{plate}.parquet`` (N aligned metadata rows). Minibatches are gathered
straight from the memmaps, so memory holds only a batch (plus the OS page cache).

Reproducibility: the model is initialised from ``seed``; every epoch draws its data order,
augmentations and the global torch RNG (for stochastic modules such as DSU/MixStyle) from a
generator seeded by ``(seed, epoch)``. A resumed run therefore continues exactly like an
uninterrupted one without storing RNG states, and on CPU the same seed gives bit-identical
weights. The learning-rate schedule depends only on ``lr_schedule_epochs``, not on ``epochs``,
so raising ``epochs`` later extends the same trajectory instead of invalidating it.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from debatch.io import atomic_path, write_text
from debatch.models import CellResNet
from debatch.params import merge_params as check_params

DEFAULTS: dict = {
    "method": "erm",            # training objective; only "erm" (cross-entropy, linear head) so far
    "epochs": 30,               # epochs to reach; a finished run called with more epochs resumes
    "batch_size": 256,          # crops per optimiser step (last partial batch of an epoch dropped)
    "lr": 1e-3,                 # AdamW peak learning rate
    "lr_schedule_epochs": 30,   # cosine decay of lr to 1% over this many epochs, then constant
    "weight_decay": 0.01,       # AdamW decoupled weight decay
    "seed": 0,                  # initialisation, data order, augmentation
    "width": 32,                # channels of the stem and first stage (doubled per stage)
    "depth": 2,                 # residual blocks per stage
    "stages": 3,                # stages, each halving the resolution (32 px -> 4 px)
    "embedding_dim": 128,       # size of the embedding written by embed.py
    "holdout_batches": [],      # Metadata_Batch values never trained on; scored each epoch
    "max_holdout_cells": 20000,  # fixed random subset of held-out cells scored; None = all
    "augment": True,            # random flips and 90-degree rotations of every crop
    "max_cells_per_epoch": None,  # cap on crops drawn (without replacement) per epoch; None = all
    "normalise": True,          # standardise each channel with mean/std of training crops
    "num_threads": 1,           # torch CPU threads
    "device": "auto",           # "auto" (cuda if available), "cpu" or "cuda"
    "amp": True,                # mixed precision (bf16, or fp16 + loss scaling); only on cuda
}

# Parameters that change how fast a run goes, not where it ends: a checkpoint that differs from
# the current call only in these is resumed.
RESUMABLE_DIFFERENCES = ("epochs", "num_threads", "device", "amp")
NORM_SAMPLE_CELLS = 20000  # training crops sampled (seeded) to estimate channel mean/std
LR_FLOOR = 0.01            # final fraction of lr reached by the cosine schedule
LOG_COLUMNS = ["epoch", "loss", "train_acc", "holdout_acc", "crops_per_s", "seconds"]
CHECKPOINT_FORMAT = 1


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda when available, else cpu; 'cuda' without a GPU is a clear error."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but torch.cuda.is_available() is False")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', not {name!r}")
    return torch.device(name)


def amp_settings(device: torch.device, amp: bool) -> tuple[bool, torch.dtype]:
    """(autocast enabled, dtype): bf16 where the GPU supports it, else fp16; never on CPU."""
    if device.type != "cuda" or not amp:
        return False, torch.float32
    return True, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


class CropSet:
    """All plates' crops as one indexable set; global index = plate offset + row."""

    def __init__(self, plates: list[tuple[str, str]]):
        if not plates:
            raise ValueError("no plates given")
        self.memmaps, frames, shapes = [], [], set()
        for npy_path, parquet_path in plates:
            crops = np.load(npy_path, mmap_mode="r")
            meta = pd.read_parquet(parquet_path)
            if crops.ndim != 4 or crops.shape[0] != len(meta):
                raise ValueError(f"{npy_path} has shape {crops.shape} but {parquet_path} has "
                                 f"{len(meta)} rows; expected N x C x S x S with N rows")
            missing = {"Metadata_Batch", "Metadata_Treatment"} - set(meta.columns)
            if missing:
                raise ValueError(f"{parquet_path} lacks column(s) {sorted(missing)}")
            if meta["Metadata_Treatment"].isna().any():
                raise ValueError(f"{parquet_path} has cells with missing Metadata_Treatment")
            self.memmaps.append(crops)
            frames.append(meta[["Metadata_Batch", "Metadata_Treatment"]])
            shapes.add(crops.shape[1:])
        if len(shapes) > 1:
            raise ValueError(f"plates have different crop shapes {sorted(shapes)}")
        self.crop_shape = shapes.pop()
        self.dtype = np.result_type(*(m.dtype for m in self.memmaps))
        self.offsets = np.cumsum([0] + [len(m) for m in self.memmaps])
        meta = pd.concat(frames, ignore_index=True)
        self.batch = meta["Metadata_Batch"].astype(str).to_numpy()
        self.treatment = meta["Metadata_Treatment"].astype(str).to_numpy()
        self.sizes = [len(m) for m in self.memmaps]

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


def merge_params(params: dict) -> dict:
    p = check_params("train", DEFAULTS, params, nullable=("max_holdout_cells",))
    if p["method"] != "erm":
        raise ValueError(f"method {p['method']!r} is not implemented; only 'erm'")
    if isinstance(p["holdout_batches"], str):
        raise ValueError("holdout_batches must be a list of Metadata_Batch values, not a string")
    p["holdout_batches"] = sorted(str(b) for b in p["holdout_batches"])
    for key in ("epochs", "lr_schedule_epochs"):
        if p[key] < 1:
            raise ValueError(f"{key} must be at least 1, not {p[key]}")
    if p["max_cells_per_epoch"] is not None and p["max_cells_per_epoch"] < 2:
        raise ValueError("max_cells_per_epoch must be None or at least 2")
    return p


def _channel_stats(data: CropSet, train_idx: np.ndarray, seed: int, normalise: bool
                   ) -> tuple[list[float], list[float]]:
    """Per-channel mean/std over (a seeded sample of) training crops; identity if not normalise."""
    channels = data.crop_shape[0]
    if not normalise:
        return [0.0] * channels, [1.0] * channels
    rng = np.random.default_rng([seed, 1 << 30])
    sample = train_idx
    if len(sample) > NORM_SAMPLE_CELLS:
        sample = rng.choice(train_idx, NORM_SAMPLE_CELLS, replace=False)
    total = np.zeros(channels)
    total_sq = np.zeros(channels)
    for start in range(0, len(sample), 4096):
        _, crops = data.gather(sample[start:start + 4096])
        crops = crops.astype(np.float64)
        total += crops.sum(axis=(0, 2, 3))
        total_sq += np.square(crops).sum(axis=(0, 2, 3))
    count = len(sample) * data.crop_shape[1] * data.crop_shape[2]
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean ** 2, 0.0))
    std[std < 1e-8] = 1.0  # a constant channel carries no information; avoid dividing by 0
    return mean.tolist(), std.tolist()


def to_input(crops: np.ndarray, mean: torch.Tensor, std: torch.Tensor,
             device: torch.device) -> torch.Tensor:
    """float16 numpy batch -> normalised float32 tensor on device (converted after transfer)."""
    x = torch.from_numpy(crops).to(device, non_blocking=True).float()
    return ((x - mean) / std).contiguous(memory_format=torch.channels_last)


def augment_batch(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Uniform random element of the dihedral group D4 per (square) crop.

    Three coins: flip W, flip H (together the 4 flips/180-degree rotation), then transpose;
    the 8 outcomes are the 8 distinct flips and 90-degree rotations.
    """
    coins = torch.from_numpy(rng.random((3, x.shape[0])) < 0.5).to(x.device).view(3, -1, 1, 1, 1)
    x = torch.where(coins[0], x.flip(-1), x)
    x = torch.where(coins[1], x.flip(-2), x)
    return torch.where(coins[2], x.transpose(-1, -2), x)


def _holdout_accuracy(model, data, idx, labels, mean, std, device, batch_size, autocast) -> float:
    if len(idx) == 0:
        return float("nan")
    model.eval()
    correct = 0
    with torch.inference_mode(), autocast():
        for start in range(0, len(idx), batch_size):
            rows, crops = data.gather(idx[start:start + batch_size])
            logits = model(to_input(crops, mean, std, device))
            target = torch.from_numpy(labels[rows]).to(device)
            correct += int((logits.argmax(1) == target).sum())
    return correct / len(idx)


def _write_log(history: list[dict], path: Path) -> None:
    frame = pd.DataFrame(history, columns=LOG_COLUMNS)
    write_text(frame.to_csv(sep="\t", index=False, na_rep="NaN"), path)


def _save(obj: dict, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _resume_problem(checkpoint: dict, params: dict, data_key: dict) -> str | None:
    """Why ``checkpoint`` cannot be continued with these params and data (None if it can)."""
    if checkpoint.get("format") != CHECKPOINT_FORMAT:
        return f"checkpoint format {checkpoint.get('format')} != {CHECKPOINT_FORMAT}"
    old = checkpoint["params"]
    diffs = [f"{k}: {old.get(k)!r} -> {params[k]!r}" for k in sorted(params)
             if k not in RESUMABLE_DIFFERENCES and old.get(k) != params[k]]
    if diffs:
        return "params differ (" + "; ".join(diffs) + ")"
    if checkpoint["data_key"] != data_key:
        return "input plates differ"
    if checkpoint["epoch"] > params["epochs"]:
        return f"checkpoint is at epoch {checkpoint['epoch']}, past epochs={params['epochs']}"
    return None


def train_model(plates: list[tuple[str, str]], out_dir, params: dict, log=print) -> dict:
    """Train on non-held-out cells; write model.pt, checkpoints/last.pt and training_log.tsv.

    Resumes from ``out_dir/checkpoints/last.pt`` when its params (apart from RESUMABLE_DIFFERENCES)
    and input plates match, otherwise starts fresh and logs why. Returns a summary dict:
    train_acc, holdout_acc (last epoch), epochs_run (in this call), resumed_from (epochs already
    done by the checkpoint, 0 for a fresh start), epochs, n_train_cells, n_holdout_cells, classes.
    """
    p = merge_params(params)
    out_dir = Path(out_dir)
    checkpoint_path = out_dir / "checkpoints" / "last.pt"
    data = CropSet(plates)

    held = np.isin(data.batch, p["holdout_batches"])
    unknown_batches = sorted(set(p["holdout_batches"]) - set(data.batch))
    if unknown_batches:
        raise ValueError(f"holdout_batches {unknown_batches} not found in Metadata_Batch "
                         f"(present: {sorted(set(data.batch))})")
    train_idx = np.flatnonzero(~held)
    if len(train_idx) < 2:
        raise ValueError(f"no training cells: {len(train_idx)} cells remain after removing "
                         f"holdout_batches {p['holdout_batches']}")
    classes = sorted(set(data.treatment[train_idx]))
    if len(classes) < 2:
        raise ValueError(f"need at least 2 treatments among training cells, found {classes}")
    labels = np.searchsorted(classes, data.treatment).astype(np.int64)
    known = np.isin(data.treatment, classes)
    holdout_idx = np.flatnonzero(held & known)
    if p["max_holdout_cells"] is not None and len(holdout_idx) > p["max_holdout_cells"]:
        holdout_idx = np.sort(np.random.default_rng([p["seed"], 1 << 31]).choice(
            holdout_idx, p["max_holdout_cells"], replace=False))
    if (held & ~known).any():
        log(f"{int((held & ~known).sum())} held-out cells have treatments absent from training "
            f"and are not scored")
    data_key = {"plate_sizes": data.sizes, "crop_shape": list(data.crop_shape),
                "classes": classes, "n_train": int(len(train_idx))}

    device = resolve_device(p["device"])
    use_amp, amp_dtype = amp_settings(device, p["amp"])

    def autocast():
        return torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp)

    previous_threads = torch.get_num_threads()
    previous_deterministic = (torch.are_deterministic_algorithms_enabled(),
                              torch.is_deterministic_algorithms_warn_only_enabled())
    torch.set_num_threads(p["num_threads"])
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    else:
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        torch.manual_seed(p["seed"])
        arch = {"in_channels": data.crop_shape[0], "n_classes": len(classes),
                "width": p["width"], "depth": p["depth"], "stages": p["stages"],
                "embedding_dim": p["embedding_dim"], "head": "linear"}
        model = CellResNet(**arch).to(device, memory_format=torch.channels_last)
        optimizer = torch.optim.AdamW(model.parameters(), lr=p["lr"],
                                      weight_decay=p["weight_decay"])
        n_epoch = len(train_idx) if p["max_cells_per_epoch"] is None else min(
            len(train_idx), p["max_cells_per_epoch"])
        steps_per_epoch = max(1, n_epoch // p["batch_size"])
        horizon = p["lr_schedule_epochs"] * steps_per_epoch

        def lr_factor(step: int) -> float:
            progress = min(step / horizon, 1.0)
            return LR_FLOOR + (1 - LR_FLOOR) * 0.5 * (1 + math.cos(math.pi * progress))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
        scaler = torch.amp.GradScaler(device.type, enabled=use_amp and amp_dtype == torch.float16)

        start_epoch, history, stats = 0, [], None
        if checkpoint_path.exists():
            try:
                checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
                problem = _resume_problem(checkpoint, p, data_key)
            except Exception as exc:  # truncated or foreign file: never fatal, just retrain
                problem = f"unreadable checkpoint ({type(exc).__name__}: {exc})"
            if problem:
                log(f"starting fresh instead of resuming {checkpoint_path}: {problem}")
            else:
                model.load_state_dict(checkpoint["model"])
                optimizer.load_state_dict(checkpoint["optimizer"])
                scheduler.load_state_dict(checkpoint["scheduler"])
                scaler.load_state_dict(checkpoint["scaler"])
                start_epoch, history = checkpoint["epoch"], checkpoint["history"]
                stats = checkpoint["norm_mean"], checkpoint["norm_std"]
                log(f"resuming from {checkpoint_path} after epoch {start_epoch}"
                    + (" (training already finished)" if start_epoch == p["epochs"] else ""))
        if stats is None:
            stats = _channel_stats(data, train_idx, p["seed"], p["normalise"])
        mean = torch.tensor(stats[0], device=device).view(1, -1, 1, 1)
        std = torch.tensor(stats[1], device=device).view(1, -1, 1, 1)
        log(f"training {len(train_idx)} cells ({len(classes)} classes), "
            f"{len(holdout_idx)} held-out cells scored, on {device}")

        for epoch in range(start_epoch + 1, p["epochs"] + 1):
            started = time.perf_counter()
            rng = np.random.default_rng([p["seed"], epoch])
            torch.manual_seed(int(rng.integers(2 ** 62)))
            order = rng.permutation(train_idx)[:n_epoch]
            if n_epoch >= p["batch_size"]:  # drop the partial last batch; tiny sets: one batch
                order = order[:steps_per_epoch * p["batch_size"]]
            model.train()
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), device=device, dtype=torch.int64)
            seen = 0
            for step in range(steps_per_epoch):
                batch = order[step * p["batch_size"]:(step + 1) * p["batch_size"]]
                rows, crops = data.gather(batch)
                x = to_input(crops, mean, std, device)
                if p["augment"]:
                    x = augment_batch(x, rng)
                target = torch.from_numpy(labels[rows]).to(device, non_blocking=True)
                with autocast():
                    logits = model(x, target)
                    loss = F.cross_entropy(logits.float(), target)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                loss_sum += loss.detach() * len(rows)
                correct += (logits.argmax(1) == target).sum()
                seen += len(rows)
            train_seconds = time.perf_counter() - started
            loss_value = float(loss_sum) / seen
            if not math.isfinite(loss_value):
                raise FloatingPointError(f"training loss is {loss_value} in epoch {epoch}; "
                                         "check training crops for NaN/inf")
            holdout_acc = _holdout_accuracy(model, data, holdout_idx, labels, mean, std, device,
                                            2 * p["batch_size"], autocast)
            row = {"epoch": epoch, "loss": loss_value, "train_acc": int(correct) / seen,
                   "holdout_acc": holdout_acc, "crops_per_s": seen / train_seconds,
                   "seconds": time.perf_counter() - started}
            history.append(row)
            _save({"format": CHECKPOINT_FORMAT, "epoch": epoch, "params": p,
                   "data_key": data_key, "model": model.state_dict(),
                   "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                   "scaler": scaler.state_dict(), "history": history,
                   "norm_mean": stats[0], "norm_std": stats[1]}, checkpoint_path)
            _write_log(history, out_dir / "training_log.tsv")
            log(f"epoch {epoch}/{p['epochs']} loss {row['loss']:.4f} "
                f"train_acc {row['train_acc']:.3f} holdout_acc {holdout_acc:.3f} "
                f"{row['crops_per_s']:.0f} crops/s {row['seconds']:.1f} s")

        _write_log(history, out_dir / "training_log.tsv")
        _save({"format": CHECKPOINT_FORMAT, "arch": arch, "params": p, "classes": classes,
               "norm_mean": stats[0], "norm_std": stats[1],
               "crop_shape": list(data.crop_shape), "epoch": p["epochs"],
               "state_dict": {k: v.cpu() for k, v in model.state_dict().items()}},
              out_dir / "model.pt")
    finally:
        torch.set_num_threads(previous_threads)
        torch.use_deterministic_algorithms(previous_deterministic[0],
                                           warn_only=previous_deterministic[1])

    last = history[-1]
    return {"train_acc": last["train_acc"], "holdout_acc": last["holdout_acc"],
            "epochs_run": p["epochs"] - start_epoch, "resumed_from": start_epoch,
            "epochs": p["epochs"], "n_train_cells": int(len(train_idx)),
            "n_holdout_cells": int(len(holdout_idx)), "classes": classes}
