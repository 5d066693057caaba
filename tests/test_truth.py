"""Truth scores of generated screens: hit calling at a fixed false-positive rate, held-out
wells of active compounds matched, and bootstrap draws shared by every row."""

import numpy as np
import pandas as pd
import pytest

from debatch.evaluate.truth import hit_rate, truth_draws, truth_scores

TRUTH = pd.DataFrame(
    {
        "treatment": ["DMSO", "a1", "a2", "a3", "a4", "i1", "i2", "i3", "i4", "i5"],
        "active": [False, True, True, True, True, False, False, False, False, False],
    }
)


def test_hit_rate_lets_a_fixed_share_of_inactive_compounds_through():
    inactive = np.array([0.1, 0.2, 0.3, 0.4, 0.9])  # one inactive compound scores very high
    active = np.array([0.95, 0.8, 0.5, 0.35])
    # 20 % of 5 inactive: one may be called, so the threshold is the second highest (0.4)
    assert hit_rate(active, inactive, fpr=0.2) == pytest.approx(0.75)
    assert hit_rate(active, inactive, fpr=0.0) == pytest.approx(0.25)  # beat the 0.9
    draws = np.stack([active, active[::-1]])  # the last axis is scored, draws at once
    assert hit_rate(draws, np.stack([inactive, inactive])).tolist() == [0.75, 0.75]


def per_treatment(maps: dict) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "Metadata_Treatment": list(maps),
            "mean_average_precision": list(maps.values()),
            "below_corrected_p": [v > 0.5 for v in maps.values()],
        }
    )


def held_out(correct: dict) -> dict:
    """Held-out wells: two per treatment, whose 1-NN is right as given (AP equal to it)."""
    wells = [
        {
            "Metadata_Plate": "P7",
            "Metadata_Well": f"{t}_{k}",
            "Metadata_Treatment": t,
            "correct": ok,
            "ap": float(ok),
        }
        for t, ok in correct.items()
        for k in (1, 2)
    ]
    return {"per_well": wells}


MAPS = {"a1": 0.9, "a2": 0.8, "a3": 0.7, "a4": 0.3, "i1": 0.2, "i2": 0.1, "i3": 0.4, "i4": 0.25}
MAPS["i5"] = 0.35


def test_truth_score_is_hits_and_matching_of_active_compounds_only():
    """a4 (0.3) is below the second-best inactive compound (0.35): 3 of 4 hits. Held-out
    wells of inactive compounds do not count, however they match."""
    matched = {"a1": True, "a2": True, "a3": False, "a4": True, "i1": False, "i2": True}
    scores = truth_scores(per_treatment(MAPS), TRUTH, held_out(matched))
    assert scores["hit_rate"] == pytest.approx(0.75)
    assert scores["matching"] == pytest.approx(0.75) and scores["matching_wells"] == 8
    assert scores["score"] == pytest.approx(0.75)
    assert scores["sensitivity"] == 0.75 and scores["specificity"] == 1.0
    without_held_out = truth_scores(per_treatment(MAPS), TRUTH)
    assert without_held_out["matching"] is None and without_held_out["score"] == 0.75


def test_draws_score_every_row_on_the_same_resamples():
    """A row better on every compound and well is better on every draw; the observed score
    lies inside each row's draws."""
    good = {"truth": truth_scores(per_treatment(MAPS), TRUTH, held_out(dict.fromkeys(MAPS, True)))}
    worse_maps = {t: v - 0.3 if t.startswith("a") else v for t, v in MAPS.items()}
    matched = {t: t in ("a1", "i1") for t in MAPS}
    worse = {"truth": truth_scores(per_treatment(worse_maps), TRUTH, held_out(matched))}
    for row, per_well in ((good, dict.fromkeys(MAPS, True)), (worse, matched)):
        row["holdout"] = held_out(per_well)
    draws = truth_draws({"good": [good], "worse": [worse]}, n_boot=500)
    assert draws.shape == (500, 2) and (draws["good"] >= draws["worse"]).all()
    for row, name in ((good, "good"), (worse, "worse")):
        low, high = np.percentile(draws[name], [2.5, 97.5])
        assert low <= row["truth"]["score"] <= high
