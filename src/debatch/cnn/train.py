"""Train the crop CNN for one method (debatch.cnn.methods) with resumable checkpoints.

Labels are Metadata_Treatment. Inputs are the crops stage's per-plate pairs ``crops/{plate}.npy``
(N x C x S x S, opened as a memmap) and ``crops/{plate}.parquet`` (N aligned metadata rows).
Minibatches are gathered straight from the memmaps (debatch.cnn.data), so memory holds only a
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

import contextlib
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from debatch.cnn import methods
from debatch.cnn.data import (
    CropSet,
    augment_batch,
    jitter_stats,
    plate_channel_stats,
    to_input,
    training_channel_stats,
)
from debatch.cnn.models import CellResNet
from debatch.cnn.teacher import MeanTeacher
from debatch.core.device import amp_settings, resolve_device
from debatch.core.io import atomic_path, write_text
from debatch.settings import TRAIN, TRAIN_METHODS

log = logging.getLogger(__name__)

# Parameters that change how fast a run goes, not where it ends: a checkpoint that differs from
# the current call only in these is resumed.
RESUMABLE_DIFFERENCES = ("epochs", "num_threads", "device", "amp")
LR_FLOOR = 0.01  # final fraction of lr reached by the cosine schedule
LOSS_PARTS = ["loss_ce", "loss_adv", "loss_align", "loss_consistency"]  # NaN where not used
LOG_COLUMNS = [
    "epoch",
    "loss",
    *LOSS_PARTS,
    "train_acc",
    "holdout_acc",
    "holdout_well_acc",
    "crops_per_s",
    "seconds",
]
CHECKPOINT_FORMAT = 3


def run_settings(p: dict) -> dict:
    """The params that define a run: shared keys plus the active method's block and recipe."""
    return {k: v for k, v in p.items() if k not in TRAIN_METHODS or k == p["method"]}


class InputScaling:
    """Per-crop channel mean/std for the network input: one global pair (from training crops),
    or each crop's plate's own pair (plate scaling), optionally jittered (debatch.cnn.data)."""

    def __init__(
        self,
        data: CropSet,
        train_idx: np.ndarray,
        p: dict,
        device: torch.device,
        stats: tuple[list[float], list[float]] | None = None,
    ):
        channels = data.crop_shape[0]
        self.per_plate = methods.plate_scaling(p["recipe"]) and p["normalise"]
        self.plate = torch.from_numpy(data.plate)
        if self.per_plate:
            pairs = [plate_channel_stats(crops) for crops in data.memmaps]
            self.global_stats = None
            mean, std = (np.stack([pair[i] for pair in pairs]) for i in (0, 1))
        else:
            if stats is None:
                stats = (
                    training_channel_stats(data, train_idx, p["seed"])
                    if p["normalise"]
                    else ([0.0] * channels, [1.0] * channels)
                )
            self.global_stats = stats
            mean, std = np.array([stats[0]]), np.array([stats[1]])
        self.mean = torch.tensor(mean, dtype=torch.float32, device=device)[:, :, None, None]
        self.std = torch.tensor(std, dtype=torch.float32, device=device)[:, :, None, None]
        self.jitter = p["recipe"]["jitter"] if self.per_plate else 0.0

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


def group_codes(data: CropSet, p: dict) -> tuple[np.ndarray, int]:
    """Per-crop group index for ABRA's batch-wise statistics (plate, batch or one group)."""
    recipe = p["recipe"]
    group_by = recipe["abra"]["group_by"] if recipe["augment"] == "abra" else "none"
    if group_by == "plate":
        return data.plate, len(data.memmaps)
    if group_by == "batch":
        names, codes = np.unique(data.batch, return_inverse=True)
        return codes, len(names)
    return np.zeros(len(data.plate), dtype=np.int64), 1


def _holdout_scores(
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
    diffs = [
        f"{k}: {old.get(k)!r} -> {params[k]!r}"
        for k in sorted(params)
        if k not in RESUMABLE_DIFFERENCES and old.get(k) != params[k]
    ]
    if diffs:
        return "params differ (" + "; ".join(diffs) + ")"
    if checkpoint["data_key"] != data_key:
        return "input plates differ"
    if checkpoint["epoch"] > params["epochs"]:
        return f"checkpoint is at epoch {checkpoint['epoch']}, past epochs={params['epochs']}"
    return None


@dataclass
class Split:
    """Which cells train, which held-out cells are scored, their labels and ABRA groups."""

    train_idx: np.ndarray
    holdout_idx: np.ndarray
    classes: list[str]
    labels: np.ndarray
    groups: np.ndarray
    n_groups: int

    def data_key(self, data: CropSet) -> dict:
        """What a checkpoint must have been trained on to be resumed."""
        return {
            "plate_sizes": data.sizes,
            "crop_shape": list(data.crop_shape),
            "classes": self.classes,
            "n_train": int(len(self.train_idx)),
        }


def split_cells(data: CropSet, p: dict) -> Split:
    """Training cells (not in ``holdout_batches``) and a fixed subset of held-out cells whose
    treatment is among the training classes; errors name the setting that leaves none."""
    held = np.isin(data.batch, p["holdout_batches"])
    unknown_batches = sorted(set(p["holdout_batches"]) - set(data.batch))
    if unknown_batches:
        raise ValueError(
            f"holdout_batches {unknown_batches} not found in Metadata_Batch "
            f"(present: {sorted(set(data.batch))})"
        )
    train_idx = np.flatnonzero(~held)
    if len(train_idx) < 2:
        raise ValueError(
            f"no training cells: {len(train_idx)} cells remain after removing "
            f"holdout_batches {p['holdout_batches']}"
        )
    classes = sorted(set(data.treatment[train_idx]))
    if len(classes) < 2:
        raise ValueError(f"need at least 2 treatments among training cells, found {classes}")
    labels = np.searchsorted(classes, data.treatment).astype(np.int64)
    known = np.isin(data.treatment, classes)
    holdout_idx = np.flatnonzero(held & known)
    if p["max_holdout_cells"] is not None and len(holdout_idx) > p["max_holdout_cells"]:
        holdout_idx = np.sort(
            np.random.default_rng([p["seed"], 1 << 31]).choice(
                holdout_idx, p["max_holdout_cells"], replace=False
            )
        )
    if (held & ~known).any():
        log.info(
            "%d held-out cells have treatments absent from training and are not scored",
            int((held & ~known).sum()),
        )
    groups, n_groups = group_codes(data, p)
    return Split(train_idx, holdout_idx, classes, labels, groups, n_groups)


@contextlib.contextmanager
def torch_runtime(p: dict, device: torch.device):
    """torch threads and determinism for the run (cuDNN autotuning on a GPU, deterministic
    algorithms on CPU), restored afterwards so a caller's torch settings are left alone."""
    previous_threads = torch.get_num_threads()
    previous_deterministic = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    torch.set_num_threads(p["num_threads"])
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    else:
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.set_num_threads(previous_threads)
        torch.use_deterministic_algorithms(
            previous_deterministic[0], warn_only=previous_deterministic[1]
        )


@dataclass
class Run:
    """Everything that changes while training: network, optimiser state, epochs done."""

    arch: dict
    model: CellResNet
    step_loss: object
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    cells_per_epoch: int
    steps_per_epoch: int
    teacher: MeanTeacher | None = None
    epoch: int = 0
    history: list | None = None

    def state(self) -> dict:
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
        }
        if self.teacher is not None:
            state["teacher"] = self.teacher.state_dict()
        return state

    def load(self, checkpoint: dict) -> None:
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        self.scaler.load_state_dict(checkpoint["scaler"])
        if self.teacher is not None:
            self.teacher.load_state_dict(checkpoint["teacher"])
        self.epoch, self.history = checkpoint["epoch"], checkpoint["history"]

    @property
    def deployed(self) -> nn.Module:
        """The network that is scored and embedded: the teacher when there is one."""
        return self.model if self.teacher is None else self.teacher.net


def build_run(
    p: dict,
    data: CropSet,
    split: Split,
    device: torch.device,
    use_amp: bool,
    amp_dtype: torch.dtype,
) -> Run:
    """The network (initialised from ``seed``), the recipe's step loss and mean teacher, AdamW
    and its cosine schedule over ``lr_schedule_epochs`` (not ``epochs``: raising epochs extends
    a run)."""
    torch.manual_seed(p["seed"])
    recipe = p["recipe"]
    arch = methods.model_arch(
        recipe,
        in_channels=data.crop_shape[0],
        n_classes=len(split.classes),
        width=p["width"],
        depth=p["depth"],
        stages=p["stages"],
        embedding_dim=p["embedding_dim"],
    )
    model = CellResNet(**arch).to(device, memory_format=torch.channels_last)
    step_loss = methods.step_loss(recipe, split.n_groups)
    optimizer = torch.optim.AdamW(model.parameters(), lr=p["lr"], weight_decay=p["weight_decay"])
    n_train = len(split.train_idx)
    cells_per_epoch = (
        n_train if p["max_cells_per_epoch"] is None else min(n_train, p["max_cells_per_epoch"])
    )
    steps_per_epoch = max(1, cells_per_epoch // p["batch_size"])
    horizon = p["lr_schedule_epochs"] * steps_per_epoch

    def lr_factor(step: int) -> float:
        progress = min(step / horizon, 1.0)
        return LR_FLOOR + (1 - LR_FLOOR) * 0.5 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp and amp_dtype == torch.float16)
    teacher = MeanTeacher(model, recipe["mean_teacher"]) if recipe["teacher"] else None
    return Run(
        arch,
        model,
        step_loss,
        optimizer,
        scheduler,
        scaler,
        cells_per_epoch,
        steps_per_epoch,
        teacher,
        history=[],
    )


def resume(run: Run, checkpoint_path: Path, settings: dict, data_key: dict, epochs: int):
    """Load ``checkpoint_path`` into ``run`` when it was made with these settings and data;
    returns its global input statistics (None: fresh start or per-plate scaling)."""
    if not checkpoint_path.exists():
        return None
    try:
        checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
        problem = _resume_problem(checkpoint, settings, data_key)
    except Exception as exc:  # truncated or foreign file: never fatal, just retrain
        problem = f"unreadable checkpoint ({type(exc).__name__}: {exc})"
    if problem:
        log.info("starting fresh instead of resuming %s: %s", checkpoint_path, problem)
        return None
    run.load(checkpoint)
    log.info(
        "resuming from %s after epoch %d%s",
        checkpoint_path,
        run.epoch,
        " (training already finished)" if run.epoch == epochs else "",
    )
    return checkpoint["norm_stats"]


def _view(scaling, rows: np.ndarray, crops: np.ndarray, device, rng, flips: bool):
    """One noisy view of crops as network input: scaled (jittered), flipped/rotated."""
    x = scaling(rows, crops, device, rng)
    return augment_batch(x, rng) if flips else x


def _step(
    run: Run,
    p: dict,
    data: CropSet,
    split: Split,
    scaling,
    device,
    autocast,
    rng,
    batch: np.ndarray,
    step: int,
) -> tuple[torch.Tensor, torch.Tensor, dict, torch.Tensor]:
    """Loss of one mini-batch: the recipe's step loss, plus the mean teacher's weighted
    consistency on a second view of the batch (and of unlabeled cells, ``cells: all``).
    Returns (loss, logits without margin, loss parts, targets)."""
    rows, crops = data.gather(batch)
    x = _view(scaling, rows, crops, device, rng, p["augment"])
    target = torch.from_numpy(split.labels[rows]).to(device, non_blocking=True)
    groups = torch.from_numpy(split.groups[rows]).to(device, non_blocking=True)
    teacher = run.teacher
    if teacher is not None:
        views = [_view(scaling, rows, crops, device, rng, p["augment"])]
        if teacher.cells == "all":
            unlabeled, unlabeled_crops = data.gather(rng.choice(len(split.labels), len(rows)))
            extra = [
                _view(scaling, unlabeled, unlabeled_crops, device, rng, p["augment"])
                for _ in range(2)
            ]
            views.append(extra[1])
    with autocast():
        loss, logits, parts = run.step_loss(run.model, x, target, groups)
        if teacher is not None:
            student = (
                logits if teacher.cells == "training" else torch.cat([logits, run.model(extra[0])])
            )
            consistency = teacher.consistency(student, torch.cat(views))
            loss = loss + teacher.weight_at(run.epoch, step, run.steps_per_epoch) * consistency
            parts["loss_consistency"] = consistency
    return loss, logits.detach(), parts, target


def train_epoch(run: Run, p: dict, data: CropSet, split: Split, scaling, device, autocast) -> dict:
    """One pass over (a seeded draw of) the training cells; returns the epoch's loss parts,
    accuracy and throughput. Data order, augmentation and torch's RNG come from (seed, epoch),
    so a resumed run continues exactly like an uninterrupted one."""
    started = time.perf_counter()
    rng = np.random.default_rng([p["seed"], run.epoch])
    torch.manual_seed(int(rng.integers(2**62)))
    order = rng.permutation(split.train_idx)[: run.cells_per_epoch]
    if run.cells_per_epoch >= p["batch_size"]:  # drop the partial last batch; tiny sets: one batch
        order = order[: run.steps_per_epoch * p["batch_size"]]
    run.model.train()
    sums = torch.zeros(len(LOSS_PARTS) + 1, device=device)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    seen, parts_seen = 0, set()
    for step in range(run.steps_per_epoch):
        batch = order[step * p["batch_size"] : (step + 1) * p["batch_size"]]
        loss, logits, parts, target = _step(
            run, p, data, split, scaling, device, autocast, rng, batch, step
        )
        run.optimizer.zero_grad(set_to_none=True)
        run.scaler.scale(loss).backward()
        run.scaler.step(run.optimizer)
        run.scaler.update()
        run.scheduler.step()
        if run.teacher is not None:
            run.teacher.update(run.model)
        parts_seen.update(parts)
        values = [loss] + [parts.get(name, loss.new_zeros(())) for name in LOSS_PARTS]
        sums += torch.stack([v.detach().float() for v in values]) * len(batch)
        correct += (logits.argmax(1) == target).sum()
        seen += len(batch)
    means = (sums / seen).tolist()
    if not math.isfinite(means[0]):
        raise FloatingPointError(
            f"training loss is {means[0]} in epoch {run.epoch}; check training crops for NaN/inf"
        )
    return {
        "epoch": run.epoch,
        "loss": means[0],
        **{
            name: value if name in parts_seen else float("nan")
            for name, value in zip(LOSS_PARTS, means[1:])
        },
        "train_acc": int(correct) / seen,
        "crops_per_s": seen / (time.perf_counter() - started),
        "started": started,
    }


class Training:
    """One method's run: its settings, data split and device, and the steps of the loop."""

    def __init__(self, plates: list[tuple[str, str]], out_dir, params: dict):
        self.p = TRAIN.merge(params)
        self.settings = run_settings(self.p)
        self.out_dir = Path(out_dir)
        self.data = CropSet(plates)
        self.split = split_cells(self.data, self.p)
        self.device = resolve_device(self.p["device"], "train.device")
        self.use_amp, self.amp_dtype = amp_settings(self.device, self.p["amp"])

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.use_amp)

    def start(self) -> None:
        """Network and optimiser from the seed, resumed from the checkpoint when it fits."""
        self.run = build_run(
            self.p, self.data, self.split, self.device, self.use_amp, self.amp_dtype
        )
        stats = resume(
            self.run,
            self.out_dir / "checkpoints" / "last.pt",
            self.settings,
            self.split.data_key(self.data),
            self.p["epochs"],
        )
        self.resumed_from = self.run.epoch
        self.scaling = InputScaling(self.data, self.split.train_idx, self.p, self.device, stats)
        log.info(
            "training %s on %d cells (%d classes), %d held-out cells scored, on %s",
            self.p["method"],
            len(self.split.train_idx),
            len(self.split.classes),
            len(self.split.holdout_idx),
            self.device,
        )

    def next_epoch(self) -> None:
        """Train one epoch, score the held-out cells, checkpoint and log it."""
        self.run.epoch += 1
        row = train_epoch(
            self.run, self.p, self.data, self.split, self.scaling, self.device, self.autocast
        )
        row["holdout_acc"], row["holdout_well_acc"] = _holdout_scores(
            self.run.deployed,
            self.data,
            self.split.holdout_idx,
            self.split.labels,
            self.scaling,
            self.device,
            2 * self.p["batch_size"],
            self.autocast,
        )
        row["seconds"] = time.perf_counter() - row.pop("started")
        self.run.history.append(row)
        _save(
            {
                "format": CHECKPOINT_FORMAT,
                "epoch": self.run.epoch,
                "params": self.settings,
                "data_key": self.split.data_key(self.data),
                **self.run.state(),
                "history": self.run.history,
                "norm_stats": self.scaling.global_stats,
            },
            self.out_dir / "checkpoints" / "last.pt",
        )
        _write_log(self.run.history, self.out_dir / "training_log.tsv")
        log.info(
            "epoch %d/%d loss %.4f train_acc %.3f holdout_acc %.3f (wells %.3f) "
            "%.0f crops/s %.1f s",
            self.run.epoch,
            self.p["epochs"],
            row["loss"],
            row["train_acc"],
            row["holdout_acc"],
            row["holdout_well_acc"],
            row["crops_per_s"],
            row["seconds"],
        )

    def finish(self) -> None:
        """model.pt: everything embedding needs, rebuilt without this module's state."""
        _write_log(self.run.history, self.out_dir / "training_log.tsv")
        norm = self.scaling.global_stats or (None, None)
        state = {k: v.cpu() for k, v in self.run.deployed.state_dict().items()}
        _save(
            {
                "format": CHECKPOINT_FORMAT,
                "arch": self.run.arch,
                "params": self.settings,
                "classes": self.split.classes,
                "input_scaling": "plate" if self.scaling.per_plate else "global",
                "norm_mean": norm[0],
                "norm_std": norm[1],
                "crop_shape": list(self.data.crop_shape),
                "epoch": self.p["epochs"],
                "state_dict": state,
            },
            self.out_dir / "model.pt",
        )

    def summary(self) -> dict:
        last = self.run.history[-1]
        return {
            "train_acc": last["train_acc"],
            "holdout_acc": last["holdout_acc"],
            "holdout_well_acc": last["holdout_well_acc"],
            "epochs_run": self.p["epochs"] - self.resumed_from,
            "resumed_from": self.resumed_from,
            "epochs": self.p["epochs"],
            "n_train_cells": int(len(self.split.train_idx)),
            "n_holdout_cells": int(len(self.split.holdout_idx)),
            "classes": self.split.classes,
        }


def train_model(plates: list[tuple[str, str]], out_dir, params: dict) -> dict:
    """Train on non-held-out cells; write model.pt, checkpoints/last.pt and training_log.tsv.

    Resumes from ``out_dir/checkpoints/last.pt`` when its settings (apart from
    RESUMABLE_DIFFERENCES) and input plates match, otherwise starts fresh and logs why. Returns a
    summary dict: train_acc, holdout_acc, holdout_well_acc (last epoch), epochs_run (in this
    call), resumed_from (epochs already done by the checkpoint, 0 for a fresh start), epochs,
    n_train_cells, n_holdout_cells, classes.
    """
    training = Training(plates, out_dir, params)
    with torch_runtime(training.p, training.device):
        training.start()
        while training.run.epoch < training.p["epochs"]:
            training.next_epoch()
        training.finish()
    return training.summary()
