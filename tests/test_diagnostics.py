"""Diagnostics: on constructed profiles with a known answer every metric moves the right way."""

import numpy as np
import pandas as pd
import pytest

from debatch.evaluate import metrics
from debatch.evaluate.diagnostics import (
    BATCH_METRICS,
    BIO_METRICS,
    compute_metrics,
    summary_scores,
)
from debatch.evaluate.truth import truth_scores
from debatch.settings import DIAGNOSTICS

from builders import wells_table

FAST = {"map_null_size": 2000}


@pytest.fixture(scope="module")
def known_cases():
    return {
        name: compute_metrics(wells_table(**kwargs), FAST)
        for name, kwargs in {
            "mixed": {"batch_shift": 0.0},
            "separated": {"batch_shift": 6.0},
            "no_biology": {"batch_shift": 0.0, "effect": 0.0},
        }.items()
    }


@pytest.mark.parametrize("name", BATCH_METRICS)
def test_batch_metric_prefers_mixed_batches(known_cases, name):
    mixed, separated = known_cases["mixed"]["batch"][name], known_cases["separated"]["batch"][name]
    assert 0 <= separated["score"] < mixed["score"] <= 1
    assert mixed["score"] - separated["score"] > 0.25


@pytest.mark.parametrize("name", BIO_METRICS)
def test_bio_metric_prefers_separated_treatments(known_cases, name):
    biology, none = known_cases["mixed"]["bio"][name], known_cases["no_biology"]["bio"][name]
    assert 0 <= none["score"] < biology["score"] <= 1
    assert biology["score"] - none["score"] > 0.25


def test_known_extremes(known_cases):
    separated, mixed = known_cases["separated"], known_cases["mixed"]
    assert separated["batch"]["batch_classifier"]["value"] == 1.0
    assert separated["batch"]["batch_classifier"]["chance"] == pytest.approx(1 / 3)
    assert separated["batch"]["ilisi"]["value"] == pytest.approx(
        1.0, abs=0.15
    )  # one batch around each well
    assert separated["batch"]["graph_connectivity"]["value"] == pytest.approx(
        1 / 3
    )  # 3 islands per treatment
    assert mixed["bio"]["fraction_retrieved"]["value"] == 1.0  # every compound differs from DMSO
    assert known_cases["no_biology"]["bio"]["fraction_retrieved"]["value"] < 0.5


def test_overall_weighs_the_two_jobs(known_cases):
    """Overall = activity_weight x activity (mean of the mAP against negcon and the share of
    treatments called active) + the rest x matching across batches (kNN leave-one-batch-out
    without held-out batches); batch and bio are shown, not ranked on."""
    mixed = known_cases["mixed"]
    scores = mixed["scores"]
    batch = np.mean([mixed["batch"][n]["score"] for n in BATCH_METRICS])
    bio = np.mean([mixed["bio"][n]["score"] for n in BIO_METRICS])
    assert scores["batch"] == pytest.approx(batch) and scores["bio"] == pytest.approx(bio)
    activity = np.mean([mixed["bio"][n]["score"] for n in ("map", "fraction_retrieved")])
    matching = mixed["bio"]["knn_lobo"]["score"]
    assert scores["activity"] == pytest.approx(activity) and scores["matching"] == matching
    weight = DIAGNOSTICS.merge(FAST)["activity_weight"]
    assert scores["overall"] == pytest.approx(weight * activity + (1 - weight) * matching)
    assert scores["weights"] == {"activity": weight, "knn_lobo": pytest.approx(1 - weight)}
    even = summary_scores(mixed["batch"], mixed["bio"], None, activity_weight=0.5)
    assert even["overall"] == pytest.approx((activity + matching) / 2)
    assert scores["overall"] > known_cases["separated"]["scores"]["overall"]


def test_single_batch_reports_null_with_reason_instead_of_crashing():
    result = compute_metrics(wells_table(n_batches=1), FAST, holdout_batches=["b0"])
    for name in BATCH_METRICS:
        assert (
            result["batch"][name]["score"] is None
            and "2 batches" in result["batch"][name]["reason"]
        )
    assert result["bio"]["knn_lobo"]["score"] is None
    assert result["bio"]["map"]["score"] > 0.5
    assert result["scores"]["overall"] is None and "one batch" in result["scores"]["reason"]
    assert result["holdout"] == {"reason": "every batch is held out"}


def test_held_out_batch_is_scored_from_the_other_batches():
    """Each held-out treated well (5 compounds x 4) retrieves its treatment among the other
    batches' wells; per-well results are kept for paired intervals."""
    result = compute_metrics(wells_table(batch_shift=0.0), FAST, holdout_batches=["b2"])
    holdout = result["holdout"]
    assert holdout["batches"] == ["b2"] and holdout["wells"] == 20
    assert holdout["knn_accuracy"] > 0.8 and holdout["map"] > 0.8 and holdout["score"] > 0.8
    assert len(holdout["per_well"]) == 20 and {"correct", "ap"} <= set(holdout["per_well"][0])
    assert holdout["unseen_treatment_wells"] == 0
    assert "reason" in compute_metrics(wells_table(), FAST)["holdout"]


def test_a_source_not_trained_in_a_rotated_run_holds_out_each_batch_in_turn():
    """With train.rotate_holdout, CellProfiler (or any source that learnt nothing from a batch)
    gets the rotated models' matching score: each batch held out in turn, scored as
    holdout_scores scores it, averaged over the folds, every fold's wells kept for pairing."""
    wells = wells_table(batch_shift=1.0)
    batches = ["b0", "b1", "b2"]
    rotated = compute_metrics(wells, FAST, holdout_batches=batches, rotate_holdout=True)
    holdout = rotated["holdout"]
    folds = {b: compute_metrics(wells, FAST, holdout_batches=[b])["holdout"] for b in batches}
    assert holdout["batches"] == batches and sorted(holdout["folds"]) == batches
    for key in ("knn_accuracy", "map", "score"):
        assert holdout["folds"]["b2"][key] == folds["b2"][key]
        assert holdout[key] == pytest.approx(np.mean([fold[key] for fold in folds.values()]))
    assert holdout["wells"] == sum(fold["wells"] for fold in folds.values()) == 60
    assert len({(w["Metadata_Plate"], w["Metadata_Well"]) for w in holdout["per_well"]}) == 60
    assert rotated["scores"]["generalisation"] == holdout["score"]
    assert rotated["scores"]["weights"].keys() == {"activity", "generalisation"}


def test_held_out_wells_of_a_treatment_never_trained_on_are_left_out_and_counted():
    wells = wells_table(batch_shift=0.0)
    wells.loc[wells["Metadata_Batch"] == "b2", "Metadata_Treatment"] = wells[
        "Metadata_Treatment"
    ].where(wells["Metadata_Treatment"] != "t1", "t_new")
    holdout = compute_metrics(wells, FAST, holdout_batches=["b2"])["holdout"]
    assert holdout["unseen_treatment_wells"] == 4 and holdout["wells"] == 16
    assert holdout["knn_accuracy"] > 0.8  # not counted as misses
    lobo = compute_metrics(wells, FAST)["bio"]["knn_lobo"]
    assert lobo["unseen"] == 4 and lobo["value"] > 0.7


def test_an_over_correction_that_erases_unseen_biology_ranks_below_doing_nothing():
    """The failure the held-out term exists for: batches mixed perfectly, but the held-out
    batch's wells no longer look like their treatments (as Harmony did to collapsed embeddings)
    must score below profiles that keep a batch shift but the biology."""
    kept = wells_table(batch_shift=3.0)
    erased = wells_table(batch_shift=0.0)
    features = [c for c in erased if c.startswith("emb_")]
    held = erased["Metadata_Batch"] == "b2"
    erased.loc[held, features] = np.random.default_rng(5).normal(size=(held.sum(), len(features)))
    scores = {
        name: compute_metrics(table, FAST, holdout_batches=["b2"])["scores"]
        for name, table in (("kept", kept), ("erased", erased))
    }
    assert scores["erased"]["batch"] > scores["kept"]["batch"]  # mixes batches better ...
    assert scores["erased"]["generalisation"] < 0.3 < scores["kept"]["generalisation"]
    assert scores["erased"]["overall"] < scores["kept"]["overall"]  # ... and still ranks lower
    weight = DIAGNOSTICS.merge(FAST)["activity_weight"]
    assert scores["kept"]["weights"] == {
        "activity": weight,
        "generalisation": pytest.approx(1 - weight),
    }


def test_ground_truth_calls():
    per_treatment = pd.DataFrame(
        {
            "Metadata_Treatment": ["a", "b", "c", "d"],
            "mean_average_precision": [0.9, 0.5, 0.7, 0.2],
            "below_corrected_p": [True, False, True, False],
        }
    )
    truth = pd.DataFrame(
        {"treatment": ["DMSO", "a", "b", "c", "d"], "active": [False, True, True, False, False]}
    )
    scores = truth_scores(per_treatment, truth)
    assert scores["sensitivity"] == 0.5 and scores["specificity"] == 0.5
    assert scores["auc"] == pytest.approx(3 / 4)  # a outranks c and d, b only d
    assert scores["calls"]["c"] == {"active": False, "called_active": True, "map": 0.7}


def test_pcr_batch_is_variance_weighted_r2():
    rng = np.random.default_rng(0)
    batches = np.repeat(["x", "y"], 50)
    values = np.column_stack([np.where(batches == "x", -1.0, 1.0), rng.normal(size=100) * 0.1])
    result = metrics.pcr_batch(
        values, batches
    )  # PC1 is the batch (R² 1), carrying ~99 % of variance
    assert result["value"] == pytest.approx(0.99, abs=0.01)


def test_bad_parameter_is_named():
    with pytest.raises(ValueError, match="diagnostics.map_threshold"):
        DIAGNOSTICS.merge({"map_threshold": 1.5})
