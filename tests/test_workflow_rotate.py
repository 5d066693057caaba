"""Leave-one-batch-out rotation on the tiny screen (3 plates, one batch each): one model per
held-out batch, each fold's diagnostics scoring its own batch as held out, and one ranking row
per method x correction averaging the folds, on a page that says batches were held out in turn."""

import json

import pandas as pd
import pytest

from workflow_helpers import TINY_OVERLAY, scheduled_rules, snakemake, tiny_workdir

pytestmark = pytest.mark.slow
BATCHES = {"batch1": "plate01", "batch2": "plate02", "batch3": "plate03"}
ROTATE = {"train": {"rotate_holdout": True, "holdout_batches": []}}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """(results folder, the dry run's rule counts) of the tiny screen with rotation."""
    workdir = tmp_path_factory.mktemp("rotate")
    config = tiny_workdir(workdir, ROTATE)
    planned = scheduled_rules(workdir, config)
    snakemake(workdir, config)
    return workdir / "results", planned


def test_every_batch_is_held_out_by_a_model_of_its_own(run):
    results, planned = run
    assert planned["train_fold"] == 3 and "train" not in planned
    for batch in BATCHES:
        card = json.loads(
            (results / "models" / f"erm-{batch}" / "seed0" / "model.json").read_text()
        )
        assert card["holdout_batches"] == [batch]
        assert card["training_batches"] == sorted(set(BATCHES) - {batch})


def fold_metrics(results, batch):
    correction = TINY_OVERLAY["profiles"]["corrections"][0]
    path = results / "diagnostics" / f"erm-{batch}_seed0" / correction / "metrics.json"
    return json.loads(path.read_text())


def test_each_fold_is_scored_on_its_own_held_out_batch(run):
    results, _ = run
    for batch, plate in BATCHES.items():
        metrics = fold_metrics(results, batch)
        assert (metrics["method"], metrics["seed"], metrics["fold"]) == ("erm", 0, batch)
        plates = {well["Metadata_Plate"] for well in metrics["holdout"]["per_well"]}
        assert plates == {plate}


def test_the_ranking_averages_the_folds_and_the_page_says_so(run):
    results, _ = run
    ranking = pd.read_csv(results / "report" / "ranking.tsv", sep="\t")
    erm = ranking[ranking["method"] == "erm"]
    assert len(erm) == len(TINY_OVERLAY["profiles"]["corrections"])
    row = erm.iloc[0]
    folds = [fold_metrics(results, batch) for batch in BATCHES]
    assert row["seeds"] == 3
    for column, key in (("held-out kNN acc", "knn_accuracy"), ("held-out mAP", "map")):
        mean = sum(m["holdout"][key] for m in folds) / len(folds)
        assert row[column] == pytest.approx(mean, abs=1e-4)
    page = (results / "report" / "index.html").read_text()
    assert "every batch was held out in turn" in page and "held out batch2" in page


def test_cellprofiler_is_held_out_batch_by_batch_as_the_models_are(run):
    """A source not trained in the run gets the rotated models' matching score: each batch
    held out in turn (its folds), not a different metric."""
    results, _ = run
    correction = TINY_OVERLAY["profiles"]["corrections"][0]
    path = results / "diagnostics" / "cellprofiler" / correction / "metrics.json"
    holdout = json.loads(path.read_text())["holdout"]
    assert sorted(holdout["folds"]) == sorted(BATCHES)
    plates = {well["Metadata_Plate"] for well in holdout["per_well"]}
    assert plates == set(BATCHES.values())
    ranking = pd.read_csv(results / "report" / "ranking.tsv", sep="\t")
    row = ranking[ranking["method"] == "cellprofiler"].iloc[0]
    assert row["generalisation"] == pytest.approx(holdout["score"], abs=1e-3)


def test_rotation_with_held_out_batches_is_refused_in_one_line(tmp_path):
    config = tiny_workdir(tmp_path, {"train": {"rotate_holdout": True}})
    result = snakemake(tmp_path, config, "--dry-run", check=False)
    output = (result.stdout + result.stderr).splitlines()
    (line,) = [line for line in output if "debatch config:" in line]
    assert "train.rotate_holdout holds out every batch in turn" in line
    assert "holdout_batches must then be [], not ['batch3']" in line
