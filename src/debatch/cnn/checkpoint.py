"""A training run's state and its files: the network, optimiser and schedule built from the
settings (``_build_run``), resumed from ``checkpoints/last.pt`` when that was made with the same
settings and data, checkpointed after every epoch, and ``model.pt`` with everything embedding
needs. The learning-rate schedule depends only on ``lr_schedule_epochs``, not on ``epochs``, so
raising ``epochs`` later extends the same trajectory instead of invalidating it.

With ``validation_batches`` (the WILDS protocol, docs/metrics.md) model.pt holds the epoch of
best validation accuracy (ties: the earlier epoch), not the last: the run keeps that epoch's
network (``Run.best``) and checkpoints it beside the last epoch's, so a resumed run selects as
an uninterrupted one does.
"""

from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from debatch.cnn import methods
from debatch.cnn.data import CropSet
from debatch.cnn.inputs import InputScaling, Split
from debatch.cnn.methods import LOSS_PARTS
from debatch.cnn.models import CellResNet
from debatch.cnn.teacher import MeanTeacher
from debatch.core.io import atomic_path, write_json, write_text
from debatch.core.provenance import code_version
from debatch.settings import MODEL_CARD, TRAIN_METHODS, TRAIN_START_UP, TRAIN_WILDS

log = logging.getLogger(__name__)

# Parameters that change how fast a run goes, not where it ends: a checkpoint that differs from
# the current call only in these is resumed.
RESUMABLE_DIFFERENCES = ("epochs", "num_threads", "device", "amp")
_LR_FLOOR = 0.01  # final fraction of lr reached by the cosine schedule
_LOG_COLUMNS = [
    "epoch",
    "loss",
    *LOSS_PARTS,
    "train_acc",
    "holdout_acc",
    "holdout_well_acc",
    "val_acc",
    "val_well_acc",
    "id_acc",
    "id_well_acc",
    "crops_per_s",
    "seconds",
]
_CHECKPOINT_FORMAT = 3


def run_settings(train: dict) -> dict:
    """The params that define a run: shared keys plus the active method's block and recipe
    (the WILDS keys only when set: a run made before they existed still resumes)."""
    return {
        k: v
        for k, v in train.items()
        if (k not in TRAIN_METHODS or k == train["method"])
        and k not in TRAIN_START_UP
        and not (k in TRAIN_WILDS and not v)
    }


def _write_log(history: list[dict], path: Path) -> None:
    frame = pd.DataFrame(history, columns=_LOG_COLUMNS)
    write_text(frame.to_csv(sep="\t", index=False, na_rep="NaN"), path)


def _save(obj: dict, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _resume_problem(checkpoint: dict, params: dict, data_key: dict) -> str | None:
    """Why ``checkpoint`` cannot be continued with these run settings and data (None if it can)."""
    if checkpoint.get("format") != _CHECKPOINT_FORMAT:
        return f"checkpoint format {checkpoint.get('format')} != {_CHECKPOINT_FORMAT}"
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


@contextlib.contextmanager
def torch_runtime(train: dict, device: torch.device):
    """torch threads and determinism for the run (cuDNN autotuning on a GPU, deterministic
    algorithms on CPU), restored afterwards so a caller's torch settings are left alone."""
    previous_threads = torch.get_num_threads()
    previous_deterministic = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    torch.set_num_threads(train["num_threads"])
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
    resumed_from: int = 0  # epochs the checkpoint had done when this call started
    # validation_batches: the epoch of best validation accuracy so far, {epoch, val_acc,
    # state_dict (the deployed network's, on the CPU)}; None before the first or without them
    best: dict | None = None

    def select(self, val_acc: float) -> None:
        """Keep this epoch's network when its validation accuracy beats the best so far
        (strictly: a tie keeps the earlier epoch)."""
        if self.best is None or val_acc > self.best["val_acc"]:
            state = {k: v.detach().cpu().clone() for k, v in self.deployed.state_dict().items()}
            self.best = {"epoch": self.epoch, "val_acc": val_acc, "state_dict": state}

    def state(self) -> dict:
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
        }
        if self.teacher is not None:
            state["teacher"] = self.teacher.state_dict()
        if self.best is not None:
            state["best"] = self.best
        return state

    def load(self, checkpoint: dict) -> None:
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        self.scaler.load_state_dict(checkpoint["scaler"])
        if self.teacher is not None:
            self.teacher.load_state_dict(checkpoint["teacher"])
        self.epoch, self.history = checkpoint["epoch"], checkpoint["history"]
        self.best = checkpoint.get("best")

    @property
    def deployed(self) -> nn.Module:
        """The network that is scored and embedded: the teacher when there is one."""
        return self.model if self.teacher is None else self.teacher.net

    def summary(self, split: Split, epochs: int) -> dict:
        """What train_model returns: the last epoch's accuracies and what this call did."""
        last = self.history[-1]
        return {
            "train_acc": last["train_acc"],
            "holdout_acc": last["holdout_acc"],
            "holdout_well_acc": last["holdout_well_acc"],
            "val_acc": last.get("val_acc", float("nan")),
            "id_acc": last.get("id_acc", float("nan")),
            "selected_epoch": epochs if self.best is None else self.best["epoch"],
            "epochs_run": epochs - self.resumed_from,
            "resumed_from": self.resumed_from,
            "epochs": epochs,
            "n_train_cells": int(len(split.train_idx)),
            "n_holdout_cells": int(len(split.holdout_idx)),
            "n_val_cells": int(len(split.val_idx)),
            "n_id_cells": int(len(split.id_idx)),
            "classes": split.classes,
        }


def _build_run(
    train: dict,
    data: CropSet,
    split: Split,
    device: torch.device,
    use_amp: bool,
    amp_dtype: torch.dtype,
) -> Run:
    """The network (initialised from ``seed``), the recipe's step loss and mean teacher, AdamW
    and its cosine schedule over ``lr_schedule_epochs`` (not ``epochs``: raising epochs extends
    a run)."""
    torch.manual_seed(train["seed"])
    recipe = train["recipe"]
    arch = methods.model_arch(
        recipe,
        in_channels=data.crop_shape[0],
        n_classes=len(split.classes),
        width=train["width"],
        depth=train["depth"],
        stages=train["stages"],
        embedding_dim=train["embedding_dim"],
    )
    model = CellResNet(**arch)
    model = model.to(device, memory_format=model.memory_format)
    step_loss = methods.step_loss(recipe, split.n_groups)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=train["lr"], weight_decay=train["weight_decay"]
    )
    n_train = len(split.train_idx)
    cells_per_epoch = (
        n_train
        if train["max_cells_per_epoch"] is None
        else min(n_train, train["max_cells_per_epoch"])
    )
    steps_per_epoch = max(1, cells_per_epoch // train["batch_size"])
    horizon = train["lr_schedule_epochs"] * steps_per_epoch

    def lr_factor(step: int) -> float:
        progress = min(step / horizon, 1.0)
        return _LR_FLOOR + (1 - _LR_FLOOR) * 0.5 * (1 + math.cos(math.pi * progress))

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


def _resume(run: Run, checkpoint_path: Path, settings: dict, data_key: dict, epochs: int):
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


def start_run(
    train: dict,
    data: CropSet,
    split: Split,
    device: torch.device,
    amp: tuple[bool, torch.dtype],
    settings: dict,
    out_dir: Path,
) -> tuple[Run, InputScaling]:
    """The run from the seed, resumed from ``out_dir``'s checkpoint when it fits, and the input
    scaling (a resumed run keeps the global statistics it was trained with)."""
    run = _build_run(train, data, split, device, *amp)
    stats = _resume(
        run, out_dir / "checkpoints" / "last.pt", settings, split.data_key(data), train["epochs"]
    )
    run.resumed_from = run.epoch
    return run, InputScaling(data, split.train_idx, train, device, stats)


def save_checkpoint(
    run: Run, settings: dict, data_key: dict, scaling: InputScaling, out_dir: Path
) -> None:
    """checkpoints/last.pt and training_log.tsv after an epoch: what resuming needs."""
    _save(
        {
            "format": _CHECKPOINT_FORMAT,
            "epoch": run.epoch,
            "params": settings,
            "data_key": data_key,
            **run.state(),
            "history": run.history,
            "norm_stats": scaling.global_stats,
        },
        out_dir / "checkpoints" / "last.pt",
    )
    _write_log(run.history, out_dir / "training_log.tsv")


def model_card(
    settings: dict, split: Split, scaling: InputScaling, data: CropSet, channels, out_dir: Path
) -> dict:
    """What a model needs to be used correctly elsewhere, and to refuse misuse: its input
    (channels in order, unit: cell or site, crop shape, input scaling), the recipe and
    settings, the plates and batches it learnt from and those held out, where it was trained
    and with which code."""
    trained = split.train_idx
    return {
        "method": settings["method"],
        "seed": settings["seed"],
        "recipe": settings["recipe"],
        "settings": settings,
        "channels": None if channels is None else list(channels),
        # what one input is (crops.unit: a cell's crop or a whole site) and its shape [C, S, S]
        "unit": data.unit,
        "crop_shape": list(scaling.crop_shape),
        "input_scaling": "plate" if scaling.per_plate else "global",
        # global scaling: the training crops' channel mean and std (per-plate: each plate's own)
        "norm_mean": None if scaling.per_plate else [float(v) for v in scaling.global_stats[0]],
        "norm_std": None if scaling.per_plate else [float(v) for v in scaling.global_stats[1]],
        "training_plates": sorted(set(data.plate_name[trained])),
        "training_batches": sorted(set(data.batch[trained])),
        "holdout_batches": list(settings["holdout_batches"]),
        # the WILDS protocol: batches that selected the epoch of model.pt, the training
        # batches' sites scored as in-distribution test
        "validation_batches": list(settings.get("validation_batches", [])),
        "id_sites": list(settings.get("id_sites", [])),
        "classes": split.classes,
        "trained_in": str(Path(out_dir).resolve()),
        "code": code_version(),
    }


def save_model(run: Run, card: dict, epochs: int, out_dir: Path) -> None:
    """model.pt: everything embedding needs, rebuilt without the training code's state; and its
    card beside it as model.json (readable without torch: the workflow checks it at start-up).
    The network is the last epoch's, or with validation batches the selected one's
    (``Run.best``); the card says which (``selected_epoch``)."""
    _write_log(run.history, out_dir / "training_log.tsv")
    if card["validation_batches"]:
        selected, state = run.best["epoch"], run.best["state_dict"]
    else:
        selected = epochs
        state = {k: v.cpu() for k, v in run.deployed.state_dict().items()}
    _save(
        {
            "format": _CHECKPOINT_FORMAT,
            "arch": run.arch,
            "params": card["settings"],
            "classes": card["classes"],
            "input_scaling": card["input_scaling"],
            "norm_mean": card["norm_mean"],
            "norm_std": card["norm_std"],
            "crop_shape": card["crop_shape"],
            "epoch": selected,
            "card": {**card, "selected_epoch": selected},
            "state_dict": state,
        },
        out_dir / "model.pt",
    )
    write_json({**card, "epochs": epochs, "selected_epoch": selected}, out_dir / MODEL_CARD)
