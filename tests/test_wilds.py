"""The WILDS protocol (docs/metrics.md): validation batches select model.pt's epoch, ID sites
never train and are scored, resuming selects as an uninterrupted run does; splits from the plate
sheet, its start-up checks; RxRx1's split column; the report's table (tiny crops, real
training)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from debatch.cnn.train import train_model
from debatch.demo.plate import write_plate_sheet
from debatch.evaluate.diagnostics import holdout_scores
from debatch.ingest.rxrx1 import WILDS_VALIDATION, wilds_split
from debatch.pipeline import ConfigError, checks, plates
from debatch.pipeline import params as rule_params
from debatch.report.wilds import wilds_table
from debatch.settings import DIAGNOSTICS, TRAIN_WILDS

from builders import TINY_TRAIN, wells_table, write_plates
from conftest import REPO

WILDS = {**TINY_TRAIN, "epochs": 4, "holdout_batches": ["B3"], "validation_batches": ["B2"]}


def state(path, key="state_dict") -> dict:
    return torch.load(path, weights_only=True)[key]


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_model_pt_is_the_epoch_of_best_validation_accuracy(tmp_path):
    """model.pt is the first epoch of highest val_acc (here not the last), exactly the network
    a run stopped at that epoch ends with; the card and the summary name it."""
    plates_ = write_plates(tmp_path)
    summary = train_model(plates_, tmp_path / "run", WILDS)
    log = pd.read_csv(tmp_path / "run" / "training_log.tsv", sep="\t")
    best = int(log["epoch"][log["val_acc"].idxmax()])  # idxmax: the first of equal maxima
    assert best < 4, "the tiny run should validate best before its last epoch"
    card = json.loads((tmp_path / "run" / "model.json").read_text())
    assert card["selected_epoch"] == summary["selected_epoch"] == best
    assert card["validation_batches"] == ["B2"] and card["training_batches"] == ["B1"]
    assert log["val_well_acc"].notna().all() and log["id_acc"].isna().all()
    train_model(plates_, tmp_path / "short", {**WILDS, "epochs": best})
    at_best = state(tmp_path / "short" / "checkpoints" / "last.pt", "model")
    assert same(state(tmp_path / "run" / "model.pt"), at_best)
    last = state(tmp_path / "run" / "checkpoints" / "last.pt", "model")
    assert not same(state(tmp_path / "run" / "model.pt"), last)


def test_an_interrupted_run_selects_as_an_uninterrupted_one(tmp_path):
    """Stopped after epoch 2 and resumed to 4: the same selected network as one 4-epoch run
    (the best epoch so far travels in checkpoints/last.pt)."""
    plates_ = write_plates(tmp_path)
    train_model(plates_, tmp_path / "a", {**WILDS, "epochs": 2})
    resumed = train_model(plates_, tmp_path / "a", WILDS)
    whole = train_model(plates_, tmp_path / "b", WILDS)
    assert resumed["resumed_from"] == 2
    assert resumed["selected_epoch"] == whole["selected_epoch"]
    assert same(state(tmp_path / "a" / "model.pt"), state(tmp_path / "b" / "model.pt"))


def test_without_validation_model_pt_is_the_last_epoch_and_settings_are_as_before(tmp_path):
    """No WILDS key set: the last epoch, and a checkpoint's params without the WILDS keys (a
    run made before they existed still resumes)."""
    summary = train_model(write_plates(tmp_path), tmp_path / "run", TINY_TRAIN)
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert same(state(tmp_path / "run" / "model.pt"), checkpoint["model"])
    assert summary["selected_epoch"] == 2 and "best" not in checkpoint
    assert not {*TRAIN_WILDS, "splits"} & set(checkpoint["params"])


def test_id_sites_never_train_and_are_scored(tmp_path):
    """Site 2 of the training batches is NaN: any use in training (batches, input statistics)
    makes the loss NaN. Held-out batches' site 2 stays OOD test."""
    plates_ = write_plates(tmp_path)
    for npy, parquet in plates_:
        table = pd.read_parquet(parquet)
        table["Metadata_Site"] = np.where(np.arange(len(table)) % 2, 2, 1)
        table.to_parquet(parquet)
        if table["Metadata_Batch"].iloc[0] != "B3":
            crops = np.load(npy)
            crops[table["Metadata_Site"].to_numpy() == 2] = np.nan
            np.save(npy, crops)
    summary = train_model(
        plates_, tmp_path / "run", {**TINY_TRAIN, "holdout_batches": ["B3"], "id_sites": [2]}
    )
    log = pd.read_csv(tmp_path / "run" / "training_log.tsv", sep="\t")
    assert np.isfinite(log["loss"]).all() and log["id_acc"].between(0, 1).all()
    assert summary["n_train_cells"] == 80 and summary["n_id_cells"] == 80
    assert summary["n_holdout_cells"] == 80 and summary["selected_epoch"] == 2
    card = json.loads((tmp_path / "run" / "model.json").read_text())
    assert card["id_sites"] == [2] and card["validation_batches"] == []


@pytest.mark.parametrize(
    "params, match",
    [
        ({"validation_batches": ["B9"]}, r"validation_batches \['B9'\] not found"),
        ({"validation_batches": ["B3"]}, "validation_batches .'B3'. are also holdout_batches"),
        ({"id_sites": [7]}, r"id_sites \[7\] match no cell of the training batches"),
        ({"id_sites": ["2"]}, "train.id_sites must be a list of site numbers"),
        ({"splits": "plates"}, "train.splits"),
    ],
)
def test_clear_errors(tmp_path, params, match):
    with pytest.raises(ValueError, match=match):
        train_model(
            write_plates(tmp_path),
            tmp_path / "run",
            {**TINY_TRAIN, "holdout_batches": ["B3"], **params},
        )


def test_validation_batches_without_a_training_treatment_are_an_error(tmp_path):
    plates_ = write_plates(tmp_path)
    table = pd.read_parquet(plates_[1][1]).assign(Metadata_Treatment="C")
    table.to_parquet(plates_[1][1])
    with pytest.raises(ValueError, match="have no cell of a training treatment"):
        train_model(plates_, tmp_path / "run", {**TINY_TRAIN, "validation_batches": ["B2"]})


def sheet_with_splits(tmp_path, splits: list[str]):
    path = tmp_path / "plates.tsv"
    rows = [(f"p{i}", f"b{i // 2}") for i in range(len(splits))]  # two plates per batch
    write_plate_sheet(path, rows, str(tmp_path / "demo"))
    table = pd.read_csv(path, sep="\t").assign(split=splits)
    table.to_csv(path, sep="\t", index=False)
    config = {"demo": {"enabled": True, "root": str(tmp_path / "demo")}, "patterns": {}}
    return str(path), plates.load_plates(str(path), config, lambda sheet: None)


def test_splits_from_the_plate_sheet(tmp_path):
    path, sheet = sheet_with_splits(tmp_path, ["train", "train", "val", "val", "test", "test"])
    train = {"splits": "sheet", "holdout_batches": [], "validation_batches": []}
    split = plates.sheet_splits(train, sheet, path)
    assert split["holdout_batches"] == ["b2"] and split["validation_batches"] == ["b1"]
    configured = {"splits": "config", "holdout_batches": ["b2"]}
    assert plates.sheet_splits(configured, sheet, path) == configured
    with pytest.raises(ConfigError, match="train.holdout_batches must be \\[\\], not \\['b2'\\]"):
        plates.sheet_splits({**train, "holdout_batches": ["b2"]}, sheet, path)


def test_sheet_splits_errors_name_file_plate_batch_or_value(tmp_path):
    with pytest.raises(ConfigError, match=r"plates.tsv: plate p1 has split 'validation'"):
        sheet_with_splits(tmp_path, ["train", "validation"])
    path, sheet = sheet_with_splits(tmp_path, ["train", "test", "val", "val"])
    train = {"splits": "sheet"}
    with pytest.raises(ConfigError, match=r"batch b0 has plates of splits \['test', 'train'\]"):
        plates.sheet_splits(train, sheet, path)
    with pytest.raises(ConfigError, match="has no split column"):
        plates.sheet_splits(train, sheet.drop(columns="split"), path)


@pytest.mark.parametrize(
    "train, message",
    [
        ({"validation_batches": ["b9"]}, r"validation_batches \['b9'\] are not batches"),
        (
            {"validation_batches": ["b1"], "holdout_batches": ["b2"]},
            "leave no batch of the plate sheet to train on",
        ),
        ({"validation_batches": ["b1"], "holdout_batches": ["b1"]}, "are also"),
    ],
)
def test_validation_batches_are_checked_at_start_up(train, message):
    with pytest.raises(ConfigError, match=message):
        checks.check_methods({"methods": ["erm"], **train}, ["b1", "b2"])


@pytest.mark.parametrize("train", [{"validation_batches": ["b1"]}, {"splits": "sheet"}])
def test_rotation_refuses_the_wilds_protocol_in_one_line(train):
    with pytest.raises(ConfigError, match="cannot be combined with the WILDS protocol"):
        checks.check_rotation({"rotate_holdout": True, **train}, ["b1", "b2"])


def test_empty_wilds_keys_leave_a_job_params_as_before():
    """Snakemake reruns a job whose params changed: with the WILDS keys empty (the default)
    neither the train nor the diagnostics params change."""
    train = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["train"]
    params = rule_params.train_params(train, "erm", 0)
    assert not {*TRAIN_WILDS, "splits"} & set(params)
    assert rule_params.validation_params(train) == {}
    wilds = {**train, "validation_batches": ["batch2"], "id_sites": [2]}
    params = rule_params.train_params(wilds, "erm", 0)
    assert params["validation_batches"] == ["batch2"] and params["id_sites"] == [2]
    assert "splits" not in params
    assert rule_params.validation_params(wilds) == {"validation_batches": ["batch2"]}


def test_validation_wells_are_left_out_of_the_held_out_reference():
    """The held-out wells' neighbours come from training batches only: validation wells
    selected the model, so they are no reference. Here the validation batch b1 copies the
    held-out b2 exactly: as a reference it would retrieve every held-out well."""
    wells = wells_table(effect=0.5)
    features = [c for c in wells if c.startswith("emb_")]
    wells.loc[wells["Metadata_Batch"] == "b1", features] = wells.loc[
        wells["Metadata_Batch"] == "b2", features
    ].to_numpy()
    params = DIAGNOSTICS.merge(None)

    def scores(table, **extra):
        return holdout_scores(table, table[features].to_numpy(np.float64), ["b2"], params, **extra)

    copied = scores(wells)
    apart = scores(wells, validation_batches=["b1"])
    without = scores(wells[wells["Metadata_Batch"] != "b1"].reset_index(drop=True))
    assert copied["knn_accuracy"] == 1.0 and apart["knn_accuracy"] < 1.0
    assert (apart["knn_accuracy"], apart["map"]) == (without["knn_accuracy"], without["map"])
    assert apart["batches"] == ["b2"] and apart["wells"] == without["wells"]


def test_rxrx1_wilds_split():
    """WILDS' rule: dataset train -> train, test -> test except the four validation
    experiments (RxRx1's own metadata calls them test), val -> val; other datasets: none."""
    assert wilds_split("train", "HEPG2-01") == "train"
    assert wilds_split("test", "HEPG2-09") == "test"
    assert all(wilds_split("test", e) == "val" for e in WILDS_VALIDATION)
    assert wilds_split("val", "HUVEC-17") == "val"
    assert wilds_split("mydata", "HEPG2-01") is None


def write_run(folder, method, seed, log_rows, card):
    folder.mkdir(parents=True)
    pd.DataFrame(log_rows).to_csv(folder / "training_log.tsv", sep="\t", index=False)
    (folder / "model.json").write_text(json.dumps({"method": method, "seed": seed, **card}))
    return str(folder / "training_log.tsv"), str(folder / "model.json")


def test_the_wilds_table_reads_each_log_at_its_selected_epoch(tmp_path):
    logs, cards = {}, {}
    for seed, (selected, ood) in enumerate([(1, 0.5), (2, 0.7)]):
        rows = [
            {
                "epoch": e,
                "holdout_acc": ood if e == selected else 0.0,
                "holdout_well_acc": 1.0,
                "val_acc": 0.6,
                "val_well_acc": 0.6,
                "id_acc": 0.9,
                "id_well_acc": 1.0,
            }
            for e in (1, 2, 3)
        ]
        card = {"epochs": 3, "selected_epoch": selected, "validation_batches": ["b1"]}
        source = f"erm_seed{seed}"
        logs[source], cards[source] = write_run(tmp_path / source, "erm", seed, rows, card)
    plain = {"epochs": 3, "validation_batches": [], "id_sites": []}  # not under the protocol
    logs["dsu_seed0"], cards["dsu_seed0"] = write_run(tmp_path / "dsu", "dsu", 0, rows, plain)
    table = wilds_table(logs, cards)
    assert table["method"].tolist() == ["erm"] and table["seeds"].tolist() == [2]
    row = table.iloc[0]
    assert row["unit"] == "cell" and row["OOD test acc mean"] == pytest.approx(0.6)
    assert row["OOD test acc sd"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert row["selected epoch mean"] == 1.5 and row["ID test acc mean"] == pytest.approx(0.9)
