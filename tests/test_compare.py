"""Comparing rows across seeds: means and sds, and paired held-out intervals that find a known
difference and do not invent one."""

import numpy as np
import pytest

from debatch.evaluate.compare import paired_difference, ranking, verdict

WELLS = [(f"P{p}", f"A{w:02d}") for p in (7, 8) for w in range(1, 41)]


def metrics(method, seed, correction, accuracy, ap, overall, rng):
    """A metrics entry whose held-out wells have the given kNN accuracy and mean AP."""
    correct = rng.random(len(WELLS)) < accuracy
    aps = np.clip(rng.normal(ap, 0.1, len(WELLS)), 0, 1)
    per_well = [
        {
            "Metadata_Plate": p,
            "Metadata_Well": w,
            "Metadata_Treatment": "t",
            "correct": bool(c),
            "ap": float(a),
        }
        for (p, w), c, a in zip(WELLS, correct, aps)
    ]
    return {
        "method": method,
        "seed": seed,
        "correction": correction,
        "source": f"{method}/seed{seed}",
        "scores": {"overall": overall, "batch": 0.5, "bio": 0.5, "generalisation": 0.5},
        "batch": {"batch_classifier": {"value": 0.5, "chance": 0.25}},
        "holdout": {"per_well": per_well, "knn_chance": 0.1, "knn_accuracy": accuracy, "map": ap},
    }


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
    assert result["real"] and result["pairs"] == 3 and result["wells"] == len(WELLS)
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
    sentence = verdict(table, rows, n_boot=300)
    assert sentence.startswith("Use good + none: overall 0.71 ± 0.01 over 3 seeds")
    assert "cellprofiler + none" in sentence and "a real difference" in sentence
