"""Train the crop CNN for one method (debatch.methods) with resumable checkpoints.

Labels are Metadata_Treatment. Inputs are the crops stage's per-plate pairs ``crops/{plate}.npy``
(N x C x S x S, opened as a memmap) and ``crops/{plate}.parquet`` (N aligned metadata rows).
Minibatches are gathered straight from the memmaps (debatch.cropdata), so memory holds only a
batch (plus the OS page cache). Cells of ``holdout_batches`` never enter training (nor the global
input statistics); a fixed subset of them is scored every epoch, per cell and per well.

Reproducibility: the model is initialised from ``seed``; every epoch draws its data order,
augmentations and the global torch RNG (DSU, MixStyle, ABRA) from a generator seeded by
``(seed, epoch)``. A resumed run therefore continues exactly like an uninterrupted one without
storing RNG states, and on CPU the same seed gives bit-identical weights. The learning-rate
schedule depends only on ``lr_schedule_epochs``, not on ``epochs``, so raising ``epochs`` later
extends the same trajectory instead of invalidating it.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from debatch import methods
from debatch.cropdata import CropSet, augment_batch, jitter_stats, plate_channel_stats, \
    to_input, training_channel_stats
from debatch.io import atomic_path, write_text
from debatch.models import CellResNet
from debatch.params import merge_params as check_params

DEFAULTS: dict = {
    "method": "erm",            # training method: erm | dsu | mixstyle | abra | deepnoise
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
    "normalise": True,          # standardise channels (training-crop stats; deepnoise: per plate)
    "num_threads": 1,           # torch CPU threads
    "device": "auto",           # "auto" (cuda if available), "cpu" or "cuda"
    "amp": True,                # mixed precision (bf16, or fp16 + loss scaling); only on cuda
    # One block per method (debatch.methods.METHOD_DEFAULTS); only `method`'s block is used.
    **{name: dict(block) for name, block in methods.METHOD_DEFAULTS.items()},
}

METHOD_NAMES = methods.METHOD_NAMES  # values of train.methods / the {method} wildcard
# Parameters that change how fast a run goes, not where it ends: a checkpoint that differs from
# the current call only in these is resumed.
RESUMABLE_DIFFERENCES = ("epochs", "num_threads", "device", "amp")
LR_FLOOR = 0.01            # final fraction of lr reached by the cosine schedule
LOSS_PARTS = ["loss_ce", "loss_adv", "loss_align"]  # NaN where a method has no such part
LOG_COLUMNS = ["epoch", "loss", *LOSS_PARTS, "train_acc", "holdout_acc", "holdout_well_acc",
               "crops_per_s", "seconds"]
CHECKPOINT_FORMAT = 2


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


def merge_params(params: dict) -> dict:
    p = check_params("train", DEFAULTS, params, nullable=("max_holdout_cells",))
    if p["method"] not in METHOD_NAMES:
        raise ValueError(f"train.method {p['method']!r} is not one of {list(METHOD_NAMES)}")
    for name in METHOD_NAMES:
        p[name] = methods.check_method_settings(name, p[name])
    if isinstance(p["holdout_batches"], str):
        raise ValueError("holdout_batches must be a list of Metadata_Batch values, not a string")
    p["holdout_batches"] = sorted(str(b) for b in p["holdout_batches"])
    for key in ("epochs", "lr_schedule_epochs"):
        if p[key] < 1:
            raise ValueError(f"{key} must be at least 1, not {p[key]}")
    if p["max_cells_per_epoch"] is not None and p["max_cells_per_epoch"] < 2:
        raise ValueError("max_cells_per_epoch must be None or at least 2")
    return p


def run_settings(p: dict) -> dict:
    """The params that define a run: shared keys plus the active method's block only."""
    return {k: v for k, v in p.items() if k not in METHOD_NAMES or k == p["method"]}


class InputScaling:
    """Per-crop channel mean/std for the network input: one global pair (from training crops),
    or each crop's plate's own pair (deepnoise), optionally jittered (debatch.cropdata)."""

    def __init__(self, data: CropSet, train_idx: np.ndarray, p: dict, device: torch.device,
                 stats: tuple[list[float], list[float]] | None = None):
        channels = data.crop_shape[0]
        self.per_plate = methods.plate_scaling(p["method"]) and p["normalise"]
        self.plate = torch.from_numpy(data.plate)
        if self.per_plate:
            pairs = [plate_channel_stats(crops) for crops in data.memmaps]
            self.global_stats = None
            mean, std = (np.stack([pair[i] for pair in pairs]) for i in (0, 1))
        else:
            if stats is None:
                stats = (training_channel_stats(data, train_idx, p["seed"]) if p["normalise"]
                         else ([0.0] * channels, [1.0] * channels))
            self.global_stats = stats
            mean, std = np.array([stats[0]]), np.array([stats[1]])
        self.mean = torch.tensor(mean, dtype=torch.float32, device=device)[:, :, None, None]
        self.std = torch.tensor(std, dtype=torch.float32, device=device)[:, :, None, None]
        self.jitter = p["deepnoise"]["jitter"] if self.per_plate else 0.0

    def __call__(self, rows: np.ndarray, crops: np.ndarray, device: torch.device,
                 rng: np.random.Generator | None = None) -> torch.Tensor:
        """Scaled input tensor of ``crops`` (global rows ``rows``); jittered when ``rng`` given."""
        if not self.per_plate:
            return to_input(crops, self.mean, self.std, device)
        index = self.plate[torch.from_numpy(rows)].to(device)
        mean, std = self.mean[index], self.std[index]
        if rng is not None and self.jitter > 0:
            mean, std = jitter_stats(mean, std, self.jitter, rng)
        return to_input(crops, mean, std, device)


def group_codes(data: CropSet, p: dict) -> tuple[np.ndarray, int]:
    """Per-crop group index for ABRA's batch-wise statistics (plate, batch or one group)."""
    group_by = p["abra"]["group_by"] if p["method"] == "abra" else "none"
    if group_by == "plate":
        return data.plate, len(data.memmaps)
    if group_by == "batch":
        names, codes = np.unique(data.batch, return_inverse=True)
        return codes, len(names)
    return np.zeros(len(data.plate), dtype=np.int64), 1


def _holdout_scores(model, data, idx, labels, scaling, device, batch_size, autocast
                    ) -> tuple[float, float]:
    """Held-out accuracy per cell (argmax) and per well (argmax of the mean softmax of the
    well's scored cells); NaN without held-out cells."""
    if len(idx) == 0:
        return float("nan"), float("nan")
    model.eval()
    rows_seen, probabilities = [], []
    with torch.inference_mode(), autocast():
        for start in range(0, len(idx), batch_size):
            rows, crops = data.gather(idx[start:start + batch_size])
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


def _write_log(history: list[dict], path: Path) -> None:
    frame = pd.DataFrame(history, columns=LOG_COLUMNS)
    write_text(frame.to_csv(sep="\t", index=False, na_rep="NaN"), path)


def _save(obj: dict, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _resume_problem(checkpoint: dict, params: dict, data_key: dict) -> str | None:
    """Why ``checkpoint`` cannot be continued with these run settings and data (None if it can)."""
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

    Resumes from ``out_dir/checkpoints/last.pt`` when its settings (apart from
    RESUMABLE_DIFFERENCES) and input plates match, otherwise starts fresh and logs why. Returns a
    summary dict: train_acc, holdout_acc, holdout_well_acc (last epoch), epochs_run (in this
    call), resumed_from (epochs already done by the checkpoint, 0 for a fresh start), epochs,
    n_train_cells, n_holdout_cells, classes.
    """
    p = merge_params(params)
    settings = run_settings(p)
    method, method_settings = p["method"], p[p["method"]]
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
    groups, n_groups = group_codes(data, p)
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
        arch = methods.model_arch(
            method, method_settings, in_channels=data.crop_shape[0], n_classes=len(classes),
            width=p["width"], depth=p["depth"], stages=p["stages"],
            embedding_dim=p["embedding_dim"])
        model = CellResNet(**arch).to(device, memory_format=torch.channels_last)
        step_loss = methods.step_loss(method, method_settings, n_groups)
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
                problem = _resume_problem(checkpoint, settings, data_key)
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
                stats = checkpoint["norm_stats"]
                log(f"resuming from {checkpoint_path} after epoch {start_epoch}"
                    + (" (training already finished)" if start_epoch == p["epochs"] else ""))
        scaling = InputScaling(data, train_idx, p, device, stats)
        log(f"training {method} on {len(train_idx)} cells ({len(classes)} classes), "
            f"{len(holdout_idx)} held-out cells scored, on {device}")

        for epoch in range(start_epoch + 1, p["epochs"] + 1):
            started = time.perf_counter()
            rng = np.random.default_rng([p["seed"], epoch])
            torch.manual_seed(int(rng.integers(2 ** 62)))
            order = rng.permutation(train_idx)[:n_epoch]
            if n_epoch >= p["batch_size"]:  # drop the partial last batch; tiny sets: one batch
                order = order[:steps_per_epoch * p["batch_size"]]
            model.train()
            sums = torch.zeros(len(LOSS_PARTS) + 1, device=device)
            correct = torch.zeros((), device=device, dtype=torch.int64)
            seen, parts_seen = 0, set()
            for step in range(steps_per_epoch):
                batch = order[step * p["batch_size"]:(step + 1) * p["batch_size"]]
                rows, crops = data.gather(batch)
                x = scaling(rows, crops, device, rng)
                if p["augment"]:
                    x = augment_batch(x, rng)
                target = torch.from_numpy(labels[rows]).to(device, non_blocking=True)
                batch_groups = torch.from_numpy(groups[rows]).to(device, non_blocking=True)
                with autocast():
                    loss, logits, parts = step_loss(model, x, target, batch_groups)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                parts_seen.update(parts)
                values = [loss] + [parts.get(name, loss.new_zeros(())) for name in LOSS_PARTS]
                sums += torch.stack([v.detach().float() for v in values]) * len(rows)
                correct += (logits.argmax(1) == target).sum()
                seen += len(rows)
            train_seconds = time.perf_counter() - started
            means = (sums / seen).tolist()
            if not math.isfinite(means[0]):
                raise FloatingPointError(f"training loss is {means[0]} in epoch {epoch}; "
                                         "check training crops for NaN/inf")
            holdout_acc, holdout_well_acc = _holdout_scores(
                model, data, holdout_idx, labels, scaling, device, 2 * p["batch_size"], autocast)
            row = {"epoch": epoch, "loss": means[0],
                   **{name: value if name in parts_seen else float("nan")
                      for name, value in zip(LOSS_PARTS, means[1:])},
                   "train_acc": int(correct) / seen, "holdout_acc": holdout_acc,
                   "holdout_well_acc": holdout_well_acc, "crops_per_s": seen / train_seconds,
                   "seconds": time.perf_counter() - started}
            history.append(row)
            _save({"format": CHECKPOINT_FORMAT, "epoch": epoch, "params": settings,
                   "data_key": data_key, "model": model.state_dict(),
                   "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                   "scaler": scaler.state_dict(), "history": history,
                   "norm_stats": scaling.global_stats}, checkpoint_path)
            _write_log(history, out_dir / "training_log.tsv")
            log(f"epoch {epoch}/{p['epochs']} loss {row['loss']:.4f} "
                f"train_acc {row['train_acc']:.3f} holdout_acc {holdout_acc:.3f} "
                f"(wells {holdout_well_acc:.3f}) {row['crops_per_s']:.0f} crops/s "
                f"{row['seconds']:.1f} s")

        _write_log(history, out_dir / "training_log.tsv")
        norm = scaling.global_stats or (None, None)
        _save({"format": CHECKPOINT_FORMAT, "arch": arch, "params": settings, "classes": classes,
               "input_scaling": "plate" if scaling.per_plate else "global",
               "norm_mean": norm[0], "norm_std": norm[1],
               "crop_shape": list(data.crop_shape), "epoch": p["epochs"],
               "state_dict": {k: v.cpu() for k, v in model.state_dict().items()}},
              out_dir / "model.pt")
    finally:
        torch.set_num_threads(previous_threads)
        torch.use_deterministic_algorithms(previous_deterministic[0],
                                           warn_only=previous_deterministic[1])

    last = history[-1]
    return {"train_acc": last["train_acc"], "holdout_acc": last["holdout_acc"],
            "holdout_well_acc": last["holdout_well_acc"],
            "epochs_run": p["epochs"] - start_epoch, "resumed_from": start_epoch,
            "epochs": p["epochs"], "n_train_cells": int(len(train_idx)),
            "n_holdout_cells": int(len(holdout_idx)), "classes": classes}
