"""Train the crop CNN for one method (debatch.cnn.methods) with resumable checkpoints.

Labels are Metadata_Treatment. Inputs are the crops stage's per-plate pairs ``crops/{plate}.npy``
(N x C x S x S, opened as a memmap) and ``crops/{plate}.parquet`` (N aligned metadata rows).
Minibatches are gathered straight from the memmaps (debatch.cnn.data), so memory holds only a
batch (plus the OS page cache). Which cells train and which are scored, and how crops are
scaled: debatch.cnn.inputs; the run's state, checkpoints and model.pt: debatch.cnn.checkpoint.

Reproducibility: the model is initialised from ``seed``; every epoch draws its data order,
augmentations and the global torch RNG (DSU, MixStyle, ABRA) from a generator seeded by
``(seed, epoch)``. A resumed run therefore continues exactly like an uninterrupted one without
storing RNG states, and on CPU the same seed gives bit-identical weights.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np
import torch

from debatch.cnn.checkpoint import (
    model_card,
    run_settings,
    save_checkpoint,
    save_model,
    start_run,
    torch_runtime,
)
from debatch.cnn.data import CropSet, random_tiles
from debatch.cnn.inputs import holdout_scores, split_cells
from debatch.cnn.methods import LOSS_PARTS
from debatch.core.device import amp_settings, resolve_device
from debatch.settings import TRAIN

log = logging.getLogger(__name__)


class Training:
    """One method's run: its settings, data split and device, and the steps of the loop."""

    def __init__(self, plates: list[tuple[str, str]], out_dir, params: dict):
        self.train = TRAIN.merge(params)
        self.settings = run_settings(self.train)
        self.out_dir = Path(out_dir)
        self.data = CropSet(plates)
        self.split = split_cells(self.data, self.train)
        self.device = resolve_device(self.train["device"], "train.device")
        self.use_amp, self.amp_dtype = amp_settings(self.device, self.train["amp"])

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.use_amp)

    def start(self) -> None:
        """Network and optimiser from the seed, resumed from the checkpoint when it fits."""
        self.run, self.scaling = start_run(
            self.train,
            self.data,
            self.split,
            self.device,
            (self.use_amp, self.amp_dtype),
            self.settings,
            self.out_dir,
        )
        log.info(
            "training %s on %d %ss (%d classes), %d held-out %ss scored, on %s",
            self.train["method"],
            len(self.split.train_idx),
            self.data.unit,
            len(self.split.classes),
            len(self.split.holdout_idx),
            self.data.unit,
            self.device,
        )

    def tiles(self, crops: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The crops a step trains on: whole, or a random square of each (train.tile)."""
        tile = self.train["tile"]
        return crops if tile is None else random_tiles(crops, tile, rng)

    def batch_loss(
        self, batch: np.ndarray, step: int, rng: np.random.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, dict, torch.Tensor]:
        """Loss of one mini-batch: the recipe's step loss, plus the mean teacher's weighted
        consistency on a second view of the batch (and of unlabeled cells, ``cells: all``).
        Returns (loss, logits without margin, loss parts, targets)."""
        run, split, device, flips = self.run, self.split, self.device, self.train["augment"]
        autocast = self.autocast()  # entered only around the forward passes below
        rows, crops = self.data.gather(batch)
        crops = self.tiles(crops, rng)
        x = self.scaling.view(rows, crops, device, rng, flips)
        target = torch.from_numpy(split.labels[rows]).to(device, non_blocking=True)
        groups = torch.from_numpy(split.groups[rows]).to(device, non_blocking=True)
        teacher = run.teacher
        if teacher is not None:
            views = [self.scaling.view(rows, crops, device, rng, flips)]
            if teacher.cells == "all":
                unlabeled, unlabeled_crops = self.data.gather(
                    rng.choice(len(split.labels), len(rows))
                )
                unlabeled_crops = self.tiles(unlabeled_crops, rng)
                extra = [
                    self.scaling.view(unlabeled, unlabeled_crops, device, rng, flips)
                    for _ in range(2)
                ]
                views.append(extra[1])
        with autocast:
            loss, logits, parts = run.step_loss(run.model, x, target, groups)
            if teacher is not None:
                student = (
                    logits
                    if teacher.cells == "training"
                    else torch.cat([logits, run.model(extra[0])])
                )
                consistency = teacher.consistency(student, torch.cat(views))
                loss = loss + teacher.weight_at(run.epoch, step, run.steps_per_epoch) * consistency
                parts["loss_consistency"] = consistency
        return loss, logits.detach(), parts, target

    def epoch(self) -> dict:
        """One pass over (a seeded draw of) the training cells; returns the epoch's loss parts,
        accuracy and throughput. Data order, augmentation and torch's RNG come from (seed,
        epoch), so a resumed run continues exactly like an uninterrupted one."""
        run, batch_size = self.run, self.train["batch_size"]
        started = time.perf_counter()
        rng = np.random.default_rng([self.train["seed"], run.epoch])
        torch.manual_seed(int(rng.integers(2**62)))
        order = rng.permutation(self.split.train_idx)[: run.cells_per_epoch]
        if run.cells_per_epoch >= batch_size:  # drop the partial last batch; tiny sets: one batch
            order = order[: run.steps_per_epoch * batch_size]
        run.model.train()
        sums = torch.zeros(len(LOSS_PARTS) + 1, device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.int64)
        seen, parts_seen = 0, set()
        for step in range(run.steps_per_epoch):
            batch = order[step * batch_size : (step + 1) * batch_size]
            loss, logits, parts, target = self.batch_loss(batch, step, rng)
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
                f"training loss is {means[0]} in epoch {run.epoch}; check training crops for "
                "NaN/inf"
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

    def next_epoch(self) -> None:
        """Train one epoch, score the held-out cells (held-out batches, validation batches,
        in-distribution sites), keep the epoch when it validates best, checkpoint and log it."""
        self.run.epoch += 1
        row = self.epoch()
        for prefix, idx in self.split.scored().items():
            row[f"{prefix}_acc"], row[f"{prefix}_well_acc"] = holdout_scores(
                self.run.deployed,
                self.data,
                idx,
                self.split.labels,
                self.scaling,
                self.device,
                2 * self.train["batch_size"],
                self.autocast,
            )
        if self.train["validation_batches"]:
            self.run.select(row["val_acc"])
        row["seconds"] = time.perf_counter() - row.pop("started")
        self.run.history.append(row)
        data_key = self.split.data_key(self.data)
        save_checkpoint(self.run, self.settings, data_key, self.scaling, self.out_dir)
        log.info(
            "epoch %d/%d loss %.4f train_acc %.3f holdout_acc %.3f (wells %.3f) "
            "val_acc %.3f id_acc %.3f %.0f crops/s %.1f s",
            self.run.epoch,
            self.train["epochs"],
            row["loss"],
            row["train_acc"],
            row["holdout_acc"],
            row["holdout_well_acc"],
            row["val_acc"],
            row["id_acc"],
            row["crops_per_s"],
            row["seconds"],
        )


def train_model(plates: list[tuple[str, str]], out_dir, params: dict, channels=None) -> dict:
    """Train on the cells not held out (docs/metrics.md: the WILDS protocol); write model.pt
    (+ its card model.json), checkpoints/last.pt and training_log.tsv. ``channels``: the crops'
    channel names in order, kept in the card so a run with other channels cannot embed with
    this model.

    Resumes from ``out_dir/checkpoints/last.pt`` when its settings (apart from
    checkpoint.RESUMABLE_DIFFERENCES) and input plates match, otherwise starts fresh and logs
    why. Returns a summary dict: train_acc, holdout_acc, holdout_well_acc, val_acc, id_acc
    (last epoch), selected_epoch (model.pt's: the last, or with validation_batches the best
    validated), epochs_run (in this call), resumed_from (epochs already done by the checkpoint,
    0 for a fresh start), epochs, n_train_cells, n_holdout_cells, n_val_cells, n_id_cells,
    classes.
    """
    training = Training(plates, out_dir, params)
    epochs = training.train["epochs"]
    with torch_runtime(training.train, training.device):
        training.start()
        while training.run.epoch < epochs:
            training.next_epoch()
        run = training.run
        card = model_card(
            training.settings,
            training.split,
            training.scaling,
            training.data,
            channels,
            training.out_dir,
        )
        save_model(run, card, epochs, training.out_dir)
    return run.summary(training.split, epochs)
