"""Comparing rows across seeds: means and sds, and paired held-out intervals that find a known
difference and do not invent one."""

import numpy as np
import pytest

from debatch.evaluate.compare import below_chance, paired_difference, ranking
from debatch.evaluate.verdict import first_row

from builders import WELLS
from builders import metrics_entry as metrics


def entries(spec, seeds=(0, 1, 2), seed=0):
    rng = np.random.default_rng(seed)
    return [
        {
            "correction": "none",
            "metrics": metrics(method, k, "none", accuracy, ap, overall + 0.01 * (k or 0), rng),
        }
        for method, (accuracy, ap, overall) in spec.items()
        for k in seeds
    ]


def test_a_real_difference_is_found_and_its_interval_holds_the_truth():
    rows = entries({"good": (0.9, 0.8, 0.7), "erm": (0.5, 0.5, 0.5)})
    good = [e["metrics"] for e in rows if e["metrics"]["method"] == "good"]
    erm = [e["metrics"] for e in rows if e["metrics"]["method"] == "erm"]
    result = paired_difference(good, erm, n_boot=1000)
    # generalisation = (chance-corrected kNN accuracy + mAP) / 2, chance 0.1
    truth = ((0.8 / 0.9 + 0.8) - (0.4 / 0.9 + 0.5)) / 2
    assert result["real"] and result["pairs"] == 3 and result["units"] == len(WELLS)
    assert result["low"] < truth < result["high"] and result["low"] > 0


def test_no_difference_is_not_called_real():
    real = 0
    for seed in range(20):
        rows = entries({"twin": (0.7, 0.6, 0.6), "erm": (0.7, 0.6, 0.6)}, seed=seed)
        twin = [e["metrics"] for e in rows if e["metrics"]["method"] == "twin"]
        erm = [e["metrics"] for e in rows if e["metrics"]["method"] == "erm"]
        result = paired_difference(twin, erm, n_boot=500, seed=seed)
        assert result["low"] < 0.15 and result["high"] > -0.15
        real += result["real"]
    assert real <= 3  # a 95 % interval excludes a zero difference about 1 time in 20


def test_ranking_averages_seeds_and_a_single_seed_source_pairs_with_every_seed():
    rows = entries({"good": (0.9, 0.8, 0.7), "erm": (0.5, 0.5, 0.5)})
    rows += entries({"cellprofiler": (0.6, 0.6, 0.6)}, seeds=(None,), seed=3)
    table = ranking(rows, n_boot=300)
    assert table["method"].tolist() == ["good", "cellprofiler", "erm"]
    good = table.iloc[0]
    assert good["seeds"] == 3 and good["overall"] == pytest.approx(0.71)
    assert good["overall sd"] == pytest.approx(0.01)
    assert good["vs erm real"] and good["vs erm low"] > 0
    assert table.iloc[1]["seeds"] == 1 and table.iloc[1]["vs erm real"]  # paired per erm seed
    assert np.isnan(table.iloc[2]["held-out vs erm"]) or table.iloc[2]["held-out vs erm"] is None
    sentence = first_row(table, rows, n_boot=300, seed=0)
    assert sentence.startswith("Use good + none: overall 0.71 ± 0.01, first of 3 rows over 3 seeds")
    assert "cellprofiler + none" in sentence and "a real difference" in sentence


def test_below_chance_batch_accuracy_is_an_over_correction_not_a_success():
    assert below_chance(0.10, 0.25, 192)  # far below what guessing the largest batch gets
    assert not below_chance(0.23, 0.25, 192)  # within two binomial standard errors of chance
    assert not below_chance(0.70, 0.25, 192)


def test_flags_name_over_correction_and_harmony_is_marked_transductive():
    """A correction that reads batches below chance, pulls replicates apart and loses held-out
    retrieval against its own uncorrected row is flagged on all three; the same method without
    correction is not; Harmony rows say they were fitted with the held-out wells."""
    rng = np.random.default_rng(0)
    rows = [
        {
            "correction": correction,
            "metrics": metrics(
                "erm", k, correction, accuracy, ap, 0.5, rng, batch_acc=acc, replicating=rep
            ),
        }
        for k in (0, 1, 2)
        for correction, accuracy, ap, acc, rep in [
            ("none", 0.9, 0.8, 0.7, 0.6),
            ("harmony", 0.4, 0.4, 0.1, 0.3),
            ("sphering", 0.9, 0.8, 0.3, 0.6),
        ]
    ]
    table = ranking(rows, n_boot=300).set_index("correction")
    assert set(table.loc["harmony", "flags"].split("; ")) == {
        "batch acc below chance",
        "replicates pulled apart",
        "held-out below uncorrected",
    }
    assert table.loc["none", "flags"] == "" and table.loc["sphering", "flags"] == ""
    assert table["transductive"].to_dict() == {"none": False, "harmony": True, "sphering": False}


def fold_entries(spec, folds=("b1", "b2", "b3"), seed=0):
    """One seed of each method with every batch held out in turn (train.rotate_holdout): spec
    is method -> per fold (kNN accuracy, mAP); each fold's held-out wells are its own batch's."""
    rng = np.random.default_rng(seed)
    rows = []
    for method, per_fold in spec.items():
        for fold, (accuracy, ap) in zip(folds, per_fold):
            entry = metrics(method, 0, "none", accuracy, ap, accuracy, rng)
            for well in entry["holdout"]["per_well"]:
                well["Metadata_Plate"] = f"{fold}-{well['Metadata_Plate']}"
            entry.update(fold=fold, source=f"{method}-{fold}_seed0")
            rows.append({"correction": "none", "metrics": entry})
    return rows


def test_rotated_runs_pair_by_batch_and_average_over_batches():
    """Each fold's held-out wells are another batch's: runs pair by (seed, fold), the row
    counts every fold as a run, its held-out scores are the means over folds."""
    rows = fold_entries({"good": [(0.9, 0.8)] * 3, "erm": [(0.5, 0.5), (0.6, 0.5), (0.4, 0.5)]})
    table = ranking(rows, n_boot=300).set_index("method")
    assert table.loc["good", "seeds"] == 3 and table.loc["erm", "seeds"] == 3
    assert table.loc["erm", "held-out kNN acc"] == pytest.approx(0.5)
    assert table.loc["good", "vs erm real"] and table.loc["good", "vs erm low"] > 0
    good = [e["metrics"] for e in rows if e["metrics"]["method"] == "good"]
    erm = [e["metrics"] for e in rows if e["metrics"]["method"] == "erm"]
    result = paired_difference(good, erm, n_boot=300)
    assert result["folds"] == 3 and result["pairs"] == 3 and result["units"] == 3 * len(WELLS)


def test_a_difference_in_one_batch_only_is_not_real_over_batches():
    """The interval resamples the batches held out in turn: a lead in one batch of three is
    not a lead over batches, however many wells that batch has."""
    same = (0.6, 0.5)
    rows = fold_entries({"lucky": [(0.95, 0.9), same, same], "erm": [(0.4, 0.3), same, same]})
    lucky = [e["metrics"] for e in rows if e["metrics"]["method"] == "lucky"]
    erm = [e["metrics"] for e in rows if e["metrics"]["method"] == "erm"]
    result = paired_difference(lucky, erm, n_boot=1000)
    assert result["difference"] > 0.1 and result["low"] <= 0.01 and not result["real"]
