"""debatch.train: outputs, learning, held-out batches, resume, determinism, errors (tiny crops),
for every method; plus all methods through the real Snakemake workflow (slow)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from debatch.cnn.data import augment_batch
from debatch.cnn.train import train_model
from debatch.settings import TRAIN_METHODS

from builders import TINY_TRAIN, write_plates
from workflow_helpers import scheduled_rules, snakemake, tiny_workdir


def weights(out_dir) -> dict:
    return torch.load(out_dir / "model.pt", weights_only=True)["state_dict"]


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("method", TRAIN_METHODS)
def test_training_writes_outputs_and_learns(tmp_path, method):
    """The pipeline needs model.pt, a checkpoint and the log; accuracy must beat chance (1/3)."""
    plates = write_plates(tmp_path)
    summary = train_model(
        plates,
        tmp_path / "run",
        {**TINY_TRAIN, "method": method, "epochs": 4, "holdout_batches": ["B3"]},
    )
    assert (tmp_path / "run" / "model.pt").is_file()
    assert (tmp_path / "run" / "checkpoints" / "last.pt").is_file()
    log = pd.read_csv(tmp_path / "run" / "training_log.tsv", sep="\t")
    assert list(log.columns) == [
        "epoch",
        "loss",
        "loss_ce",
        "loss_adv",
        "loss_align",
        "loss_consistency",
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
    assert log["epoch"].tolist() == [1, 2, 3, 4]
    assert summary["train_acc"] > 0.6 and summary["holdout_acc"] > 0.6
    assert summary["holdout_well_acc"] * 3 in (2, 3)  # 3 wells scored by their mean softmax
    assert log["holdout_acc"].iloc[-1] == summary["holdout_acc"]
    assert summary["n_train_cells"] == 160 and summary["n_holdout_cells"] == 80
    assert summary["classes"] == ["A", "B", "DMSO"]
    if method == "abra":
        assert np.isfinite(log[["loss_adv", "loss_align"]]).all().all()
        assert np.allclose(log["loss"], log["loss_ce"] + log["loss_adv"] + log["loss_align"])
    else:
        assert log[["loss_adv", "loss_align"]].isna().all().all()
        assert np.allclose(log["loss"], log["loss_ce"])
    assert log["loss_consistency"].isna().all()  # no preset has a mean teacher


# Recipes beyond the presets, each a combination of parts the presets do not have.
RECIPES = {
    "abra_plate": {
        "scaling": "plate",
        "jitter": 0.1,
        "augment": "abra",
        "head": "arcface",
        "abra": {"spread": "between"},
    },
    "abra_input": {"augment": "abra", "head": "arcface", "abra": {"level": -1}},
    "deepnoise_teacher": {"scaling": "plate", "jitter": 0.1, "head": "arcface", "teacher": True},
}


def recipe_params(name: str, **extra) -> dict:
    return {**TINY_TRAIN, "method": name, "recipe": RECIPES[name], **extra}


@pytest.mark.parametrize("name", RECIPES)
def test_recipes_train_learn_and_resume_exactly(tmp_path, name):
    """A recipe trains and learns (beats chance, 1/3: the input-level ABRA less, since the toy
    crops' treatment is their channel-1 brightness, the very statistic it perturbs); stopped
    after epoch 1 and resumed, it ends bit-identical to an uninterrupted run (the mean teacher's
    EMA included)."""
    plates = write_plates(tmp_path)
    summary = train_model(
        plates, tmp_path / "run", recipe_params(name, epochs=4, holdout_batches=["B3"])
    )
    assert summary["train_acc"] > 0.45 and summary["holdout_acc"] > 0.45
    log = pd.read_csv(tmp_path / "run" / "training_log.tsv", sep="\t")
    teacher = RECIPES[name].get("teacher", False)
    assert np.isfinite(log["loss_consistency"]).all() == teacher
    if teacher:  # consistency ramps in from 0, then weighs fully
        assert np.allclose(
            log["loss"],
            log["loss_ce"] + np.minimum(1, log["epoch"] - 0.5) * log["loss_consistency"],
            rtol=0.2,
        )
    train_model(plates, tmp_path / "a", recipe_params(name, epochs=1))
    resumed = train_model(plates, tmp_path / "a", recipe_params(name))
    train_model(plates, tmp_path / "b", recipe_params(name))
    assert resumed["resumed_from"] == 1
    assert same_weights(weights(tmp_path / "a"), weights(tmp_path / "b"))


def test_the_mean_teacher_is_what_gets_embedded(tmp_path):
    """model.pt holds the teacher (the EMA of the student), not the student."""
    plates = write_plates(tmp_path)
    train_model(plates, tmp_path / "run", recipe_params("deepnoise_teacher", epochs=2))
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    teacher = {k: v for k, v in checkpoint["teacher"].items() if k != "mean_teacher.steps"}
    assert same_weights(weights(tmp_path / "run"), teacher)
    assert not same_weights(weights(tmp_path / "run"), checkpoint["model"])


def test_teacher_cells_all_uses_held_out_crops_training_does_not(tmp_path):
    """cells: training never touches held-out crops (NaN ones leave the loss finite); cells:
    all is transductive, so NaN held-out crops reach the loss."""
    plates = write_plates(tmp_path, nan_batch="B2")
    held_out = {"holdout_batches": ["B2"], "epochs": 1}
    train_model(plates, tmp_path / "training", recipe_params("deepnoise_teacher", **held_out))
    everything = {**RECIPES["deepnoise_teacher"], "mean_teacher": {"cells": "all"}}
    with pytest.raises(FloatingPointError, match="NaN"):
        train_model(
            plates,
            tmp_path / "all",
            {**TINY_TRAIN, **held_out, "method": "deepnoise_teacher", "recipe": everything},
        )


@pytest.mark.parametrize("method", TRAIN_METHODS)
def test_held_out_cells_never_enter_training(tmp_path, method):
    """Held-out crops are NaN: any use in training (batches, normalisation, ABRA's group
    statistics) makes the loss NaN. DeepNoise's per-plate statistics of the held-out plate are
    NaN too, but only held-out inputs use them."""
    plates = write_plates(tmp_path, nan_batch="B2")
    summary = train_model(
        plates,
        tmp_path / "run",
        {**TINY_TRAIN, "method": method, "holdout_batches": ["B2"], "max_holdout_cells": 50},
    )
    log = pd.read_csv(tmp_path / "run" / "training_log.tsv", sep="\t")
    assert np.isfinite(log["loss"]).all()
    assert summary["n_holdout_cells"] == 50 and 0 <= summary["holdout_acc"] <= 1
    saved = torch.load(tmp_path / "run" / "model.pt", weights_only=True)
    if saved["input_scaling"] == "global":
        assert all(math.isfinite(v) for v in saved["norm_mean"] + saved["norm_std"])


def test_without_holdout_log_has_nan_holdout_acc(tmp_path):
    """No held-out batch -> holdout_acc is NaN (not 0), so it cannot be mistaken for a score."""
    summary = train_model(write_plates(tmp_path), tmp_path / "run", {**TINY_TRAIN, "epochs": 1})
    log = pd.read_csv(tmp_path / "run" / "training_log.tsv", sep="\t")
    assert math.isnan(summary["holdout_acc"]) and log["holdout_acc"].isna().all()


def test_augment_applies_a_random_dihedral_transform_per_crop():
    """Each crop must come out as one of its 8 flips/90-degree rotations, chosen per crop."""
    crops = torch.rand(64, 2, 5, 5)
    out = augment_batch(crops, np.random.default_rng(0))
    seen = set()
    for crop, result in zip(crops, out):
        variants = [torch.rot90(c, k, (-2, -1)) for c in (crop, crop.flip(-1)) for k in range(4)]
        matches = [i for i, v in enumerate(variants) if torch.equal(v, result)]
        assert len(matches) == 1
        seen.add(matches[0])
    assert len(seen) == 8


def test_resume_runs_only_new_epochs_and_finished_run_only_rewrites_model(tmp_path, caplog):
    """Raising epochs continues the checkpoint; a finished run only restores model.pt."""
    plates, run = write_plates(tmp_path), tmp_path / "run"
    train_model(plates, run, TINY_TRAIN)
    first_rows = pd.read_csv(run / "training_log.tsv", sep="\t")
    caplog.set_level("INFO", logger="debatch")
    caplog.clear()
    summary = train_model(plates, run, {**TINY_TRAIN, "epochs": 3})
    assert summary["resumed_from"] == 2 and summary["epochs_run"] == 1
    assert sum(m.startswith("epoch ") for m in caplog.messages) == 1
    log = pd.read_csv(run / "training_log.tsv", sep="\t")
    assert log["epoch"].tolist() == [1, 2, 3]
    pd.testing.assert_frame_equal(log.iloc[:2], first_rows)

    final = weights(run)
    (run / "model.pt").unlink()
    summary = train_model(plates, run, {**TINY_TRAIN, "epochs": 3})
    assert summary["epochs_run"] == 0 and summary["resumed_from"] == 3
    assert same_weights(weights(run), final)


@pytest.mark.parametrize("method", TRAIN_METHODS)
def test_interrupted_run_ends_bit_identical_to_uninterrupted(tmp_path, method):
    """Stopping after epoch 1 and resuming must give exactly the weights of one 2-epoch run."""
    plates, params = write_plates(tmp_path), {**TINY_TRAIN, "method": method}
    train_model(plates, tmp_path / "a", {**params, "epochs": 1})
    resumed = train_model(plates, tmp_path / "a", params)
    train_model(plates, tmp_path / "b", params)
    assert resumed["resumed_from"] == 1
    assert same_weights(weights(tmp_path / "a"), weights(tmp_path / "b"))


KILLED_AFTER_EPOCH_1 = """
import json, logging, sys, time
from debatch.cnn.train import train_model

class StopAfterEpoch1(logging.Handler):
    def emit(self, record):
        if record.getMessage().startswith("epoch 1/"):
            print("checkpointed", flush=True)
            time.sleep(600)  # killed here, in the middle of the run

logging.getLogger("debatch").addHandler(StopAfterEpoch1())
logging.getLogger("debatch").setLevel(logging.INFO)
train_model(json.loads(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3]))
"""


def test_run_killed_with_sigkill_resumes_after_its_last_epoch(tmp_path):
    """kill -9 after epoch 1's checkpoint; rerunning the same settings resumes after epoch 1 and
    ends bit-identical to an uninterrupted run (ABRA: the most random state per step)."""
    plates, params = write_plates(tmp_path), {**TINY_TRAIN, "method": "abra", "epochs": 3}
    with subprocess.Popen(
        [
            sys.executable,
            "-c",
            KILLED_AFTER_EPOCH_1,
            json.dumps(plates),
            str(tmp_path / "a"),
            json.dumps(params),
        ],
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        try:
            assert child.stdout.readline().strip() == "checkpointed"
        finally:
            child.kill()  # SIGKILL
    assert child.returncode == -9
    assert not (tmp_path / "a" / "model.pt").exists()
    resumed = train_model(plates, tmp_path / "a", params)
    train_model(plates, tmp_path / "b", params)
    assert resumed["resumed_from"] == 1 and resumed["epochs_run"] == 2
    assert same_weights(weights(tmp_path / "a"), weights(tmp_path / "b"))


def test_other_methods_settings_do_not_invalidate_a_checkpoint(tmp_path, caplog):
    """Only the active method's block defines a run: tuning abra must not restart erm."""
    plates, run = write_plates(tmp_path), tmp_path / "run"
    train_model(plates, run, {**TINY_TRAIN, "epochs": 1})
    summary = train_model(plates, run, {**TINY_TRAIN, "abra": {"steps": 3}})
    assert summary["resumed_from"] == 1 and summary["epochs_run"] == 1
    caplog.set_level("INFO", logger="debatch")
    caplog.clear()
    train_model(plates, run, {**TINY_TRAIN, "epochs": 3, "erm": {"head": "cosface"}})
    assert any("starting fresh" in m and "erm" in m for m in caplog.messages)


def test_changed_params_start_fresh_and_say_why(tmp_path, caplog):
    """A checkpoint trained with other params must not be continued silently."""
    plates, run = write_plates(tmp_path), tmp_path / "run"
    train_model(plates, run, {**TINY_TRAIN, "epochs": 1})
    caplog.set_level("INFO", logger="debatch")
    caplog.clear()
    summary = train_model(plates, run, {**TINY_TRAIN, "epochs": 1, "lr": 5e-3})
    assert summary["resumed_from"] == 0 and summary["epochs_run"] == 1
    assert any("starting fresh" in m and "lr" in m for m in caplog.messages)


def test_unreadable_checkpoint_starts_fresh(tmp_path, caplog):
    """A corrupt checkpoint (e.g. foreign file) must not crash the rule; it retrains and says so."""
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    (tmp_path / "run" / "checkpoints" / "last.pt").write_text("not a checkpoint")
    caplog.set_level("INFO", logger="debatch")
    caplog.clear()
    summary = train_model(write_plates(tmp_path), tmp_path / "run", {**TINY_TRAIN, "epochs": 1})
    assert summary["resumed_from"] == 0 and any(
        "unreadable checkpoint" in m for m in caplog.messages
    )


def test_max_cells_per_epoch_caps_steps(tmp_path):
    """64 of 240 cells per epoch at batch size 32 -> 2 optimiser steps per epoch."""
    train_model(write_plates(tmp_path), tmp_path / "run", {**TINY_TRAIN, "max_cells_per_epoch": 64})
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert checkpoint["scheduler"]["last_epoch"] == 2 * TINY_TRAIN["epochs"]


@pytest.mark.parametrize("method", TRAIN_METHODS)
def test_same_seed_is_bit_identical_and_other_seed_differs(tmp_path, method):
    """Reproducibility on CPU: the seed alone determines the trained weights (the random
    augmentations included)."""
    plates = write_plates(tmp_path)
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        train_model(
            plates, tmp_path / name, {**TINY_TRAIN, "method": method, "epochs": 1, "seed": seed}
        )
    assert same_weights(weights(tmp_path / "a"), weights(tmp_path / "b"))
    assert not same_weights(weights(tmp_path / "a"), weights(tmp_path / "c"))


@pytest.mark.parametrize(
    "params, match",
    [
        ({"holdout_batches": ["B1", "B2", "B3"]}, "holdout_batches"),
        ({"holdout_batches": ["B9"]}, "B9.*not found"),
        ({"nonsense": 1}, "unknown train parameter"),
        ({"method": "adabn"}, "train.method 'adabn' is neither a preset"),
        ({"dsu": {"p": 2.0}}, "train.dsu.p"),
        ({"method": "dsu", "dsu": {"levels": [7]}}, "level 7 is outside"),
        ({"method": "abra", "abra": {"level": 9}}, "train.abra.level 9"),
    ],
)
def test_clear_errors(tmp_path, params, match):
    """Misconfiguration fails fast with a message naming the offending setting."""
    with pytest.raises(ValueError, match=match):
        train_model(write_plates(tmp_path), tmp_path / "run", {**TINY_TRAIN, **params})


def test_single_treatment_is_an_error(tmp_path):
    """One class cannot train a classifier."""
    with pytest.raises(ValueError, match="at least 2 treatments"):
        train_model(write_plates(tmp_path, treatments=("DMSO",)), tmp_path / "run", TINY_TRAIN)


METHODS = [*TRAIN_METHODS, "abra_plate"]  # abra_plate: the recipe of config.yaml


@pytest.mark.slow
def test_every_method_trains_and_embeds_through_snakemake(tmp_path):
    """train.methods (presets and a recipe) -> one model, log and embeddings per method and
    seed; tuning one method's block reruns that method's training only; adding a seed only
    adds that seed's jobs."""
    train = {"methods": METHODS}
    config = tiny_workdir(tmp_path, {"train": train})
    results = tmp_path / "results"
    methods = METHODS
    snakemake(
        tmp_path,
        config,
        *[
            str(results / "embeddings" / f"{method}_seed0" / "plate03.parquet")
            for method in methods
        ],
    )
    for method in methods:
        saved = torch.load(results / "models" / method / "seed0" / "model.pt", weights_only=True)
        assert saved["params"]["method"] == method and saved["params"]["seed"] == 0
        assert (method in saved["params"]) == (method in TRAIN_METHODS)
        if method == "abra_plate":
            recipe = saved["params"]["recipe"]
            assert recipe["scaling"] == "plate" and recipe["abra"]["spread"] == "between"
            assert saved["input_scaling"] == "plate"
        log = pd.read_csv(results / "models" / method / "seed0" / "training_log.tsv", sep="\t")
        assert log["holdout_acc"].notna().all()
        embeddings = pd.read_parquet(results / "embeddings" / f"{method}_seed0" / "plate03.parquet")
        assert len(embeddings) > 0 and np.isfinite(embeddings.filter(like="emb_").to_numpy()).all()

    changed = tiny_workdir(tmp_path, {"train": {**train, "abra": {"steps": 2}}})
    models = {method: str(results / "models" / method / "seed0" / "model.pt") for method in methods}
    assert scheduled_rules(tmp_path, changed, models.pop("abra")) == {"train": 1}
    assert scheduled_rules(tmp_path, changed, *models.values()) == {}
    seeds = tiny_workdir(tmp_path, {"train": {**train, "seeds": [0, 1]}})
    both = [
        str(results / "models" / method / f"seed{k}" / "model.pt")
        for method in methods
        for k in (0, 1)
    ]
    assert scheduled_rules(tmp_path, seeds, *both) == {"train": len(methods)}


def test_a_narrow_network_trains_on_whole_sites_in_the_default_layout():
    """Channels-last crashes torch's CPU convolution backward below 16 channels on inputs of 64
    px and more (a segmentation fault on whole sites at width 8): such a network and its inputs
    stay in the default layout, in a subprocess so a crash fails this test, not the run."""
    script = (
        "import torch\n"
        "from debatch.cnn.models import CellResNet\n"
        "narrow, wide = CellResNet(6, 7, width=8), CellResNet(6, 7, width=16)\n"
        "assert narrow.memory_format == torch.contiguous_format\n"
        "assert wide.memory_format == torch.channels_last\n"
        "x = torch.randn(4, 6, 96, 96).contiguous(memory_format=torch.channels_last)\n"
        "narrow(x).sum().backward()\n"
        "print('trained')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0 and "trained" in result.stdout, result.stderr[-500:]
