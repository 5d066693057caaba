"""The WILDS protocol on the tiny screen (3 plates, one batch each, two sites per well): batch3
held out (OOD test), batch2 validates (selects each model's epoch), batch1's site 2 is the
in-distribution test; the report's WILDS table (index.html and wilds.tsv) equals the training
logs at the selected epochs. Plus the plate sheet's split column planning a run."""

import json

import pandas as pd
import pytest

from debatch.settings.columns import meaning

from workflow_helpers import snakemake, tiny_workdir

pytestmark = pytest.mark.slow
SEEDS = [0, 1]
WILDS = {
    "demo": {"params": {"sites": 2}},
    "features": {"enabled": False},  # the CNN's tables are what the protocol is about
    "train": {"seeds": SEEDS, "epochs": 3, "validation_batches": ["batch2"], "id_sites": [2]},
}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("wilds")
    snakemake(workdir, tiny_workdir(workdir, WILDS))
    return workdir / "results"


def at_selected(results, seed):
    folder = results / "models" / "erm" / f"seed{seed}"
    card = json.loads((folder / "model.json").read_text())
    log = pd.read_csv(folder / "training_log.tsv", sep="\t").set_index("epoch")
    return card, log.loc[card["selected_epoch"]], log


def test_each_model_is_selected_on_the_validation_batch(results):
    for seed in SEEDS:
        card, row, log = at_selected(results, seed)
        assert card["validation_batches"] == ["batch2"] and card["id_sites"] == [2]
        assert card["training_batches"] == ["batch1"] and card["holdout_batches"] == ["batch3"]
        assert row["val_acc"] == log["val_acc"].max()
        assert card["selected_epoch"] == log["val_acc"].idxmax()  # the first best epoch
        assert log[["holdout_acc", "val_acc", "id_acc"]].notna().all().all()


def test_the_wilds_table_is_the_training_logs_at_the_selected_epochs(results):
    table = pd.read_csv(results / "report" / "wilds.tsv", sep="\t")
    assert all(meaning("report/wilds.tsv", column) for column in table.columns)
    (row,) = table.itertuples(index=False)
    row = dict(zip(table.columns, row))
    assert (row["method"], row["unit"], row["seeds"]) == ("erm", "cell", len(SEEDS))
    runs = [at_selected(results, seed) for seed in SEEDS]
    for column, logged in (
        ("OOD test acc", "holdout_acc"),
        ("OOD test well acc", "holdout_well_acc"),
        ("validation acc", "val_acc"),
        ("ID test acc", "id_acc"),
        ("ID test well acc", "id_well_acc"),
    ):
        values = pd.Series([selected[logged] for _, selected, _ in runs])
        assert row[f"{column} mean"] == pytest.approx(values.mean(), abs=1e-4)
        assert row[f"{column} sd"] == pytest.approx(values.std(ddof=1), abs=1e-4, nan_ok=True)
    epochs = pd.Series([card["selected_epoch"] for card, _, _ in runs])
    assert row["selected epoch mean"] == pytest.approx(epochs.mean())
    page = (results / "report" / "index.html").read_text()
    assert "The WILDS protocol" in page and "wilds.tsv" in page


def test_the_held_out_profile_scores_leave_the_validation_batch_out(results):
    metrics = json.loads(
        (results / "diagnostics" / "erm_seed0" / "none" / "metrics.json").read_text()
    )
    assert metrics["holdout"]["batches"] == ["batch3"]


def test_splits_from_the_sheet_plan_the_run(tmp_path):
    """train.splits: sheet resolves at start-up: batch2 (a val plate) validates, so the report
    writes the WILDS table (its errors: tests/test_wilds.py)."""
    config = tiny_workdir(tmp_path, {"train": {"splits": "sheet", "holdout_batches": []}})
    sheet = pd.read_csv(tmp_path / "plates.tsv", sep="\t").assign(split=["train", "val", "test"])
    sheet.to_csv(tmp_path / "plates.tsv", sep="\t", index=False)
    result = snakemake(tmp_path, config, "--dry-run", "--printshellcmds", check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "report/wilds.tsv" in result.stdout + result.stderr
