"""Scoring profiles against a generated screen's ground truth: did they find what is there?

A generated screen knows which compounds truly change cells (``truth/treatments.tsv``). Two jobs
a screening group gives its profiles can be scored against that, and their mean is the **truth
score** of a source x correction:

- *hit calling*: the share of truly active compounds called active at a fixed false-positive
  rate (``settings.TRUTH_FPR`` of the truly inactive ones may be called), compounds ranked by
  their phenotypic-activity mAP against negcon. The threshold comes from the truth, not from the
  p-values, so a profile that calls everything active gains nothing;
- *matching across batches*: each held-out well of a truly active compound retrieves its
  treatment among the training batches' wells (mean of its 1-NN being right and its AP). Wells
  of inactive compounds look like negcon by construction and are left out: they add only noise.

``truth_draws`` resamples compounds (active and inactive apart) and held-out wells, the same
draws for every row, so the panel benchmark can say whether one row's truth score is within
another's interval.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from debatch.evaluate.compare import group_entries, ranking
from debatch.settings import PLATE, TREATMENT, TRUTH_FPR, WELL


def read_truth(paths) -> pd.DataFrame:
    """Ground-truth activity per treatment from the demo's truth/treatments.tsv files."""
    tables = [pd.read_csv(path, sep="\t")[["treatment", "active"]] for path in paths]
    truth = pd.concat(tables).drop_duplicates()
    if truth["treatment"].duplicated().any():
        raise ValueError(f"ground truth files disagree on treatment activity: {list(paths)}")
    return truth


def hit_rate(active_map: np.ndarray, inactive_map: np.ndarray, fpr: float = TRUTH_FPR):
    """Share of active compounds whose mAP beats the threshold that calls at most ``fpr`` of
    the inactive ones (the floor(fpr x n)+1-th highest inactive mAP). Works on the last axis,
    so bootstrap draws can be scored at once."""
    allowed = int(np.floor(fpr * inactive_map.shape[-1]))
    threshold = -np.sort(-inactive_map, axis=-1)[..., allowed]
    return (active_map > threshold[..., None]).mean(axis=-1)


def _held_out_active(per_well: list[dict] | None, active: set[str]) -> pd.DataFrame:
    """Held-out wells of truly active compounds: (plate, well) -> matched (1-NN and AP mean)."""
    if not per_well:
        return pd.DataFrame(columns=["matched"])
    wells = pd.DataFrame(per_well)
    wells = wells[wells[TREATMENT].isin(active)]
    matched = (wells["correct"].astype(float) + wells["ap"].astype(float)) / 2
    return pd.DataFrame(
        {"matched": matched.to_numpy()}, index=pd.MultiIndex.from_frame(wells[[PLATE, WELL]])
    )


def truth_scores(per_treatment: pd.DataFrame | None, truth: pd.DataFrame, holdout=None) -> dict:
    """Calls (retrieved by mAP = active) and the truth score of one row's profiles.

    Sensitivity / specificity: truly active / inactive treatments called active / inactive at
    the pipeline's own threshold (corrected p); ``auc``: mAP ranks active above inactive;
    ``hit_rate``, ``matching`` and their mean ``score``: the module docstring.
    """
    if per_treatment is None or per_treatment.empty:
        return {"reason": "no treatment could be scored by mAP"}
    calls = per_treatment.merge(truth, left_on=TREATMENT, right_on="treatment", how="inner")
    active, called = (
        calls["active"].astype(bool).to_numpy(),
        calls["below_corrected_p"].to_numpy(bool),
    )
    scores = calls["mean_average_precision"].to_numpy(float)
    sensitivity = float(called[active].mean()) if active.any() else None
    specificity = float((~called[~active]).mean()) if (~active).any() else None
    auc = hits = None
    if active.any() and (~active).any():
        pairs = scores[active][:, None] - scores[~active][None, :]
        auc = float(((pairs > 0) + 0.5 * (pairs == 0)).mean())
        hits = float(hit_rate(scores[active], scores[~active]))
    held_out = _held_out_active((holdout or {}).get("per_well"), set(calls[TREATMENT][active]))
    matching = float(held_out["matched"].mean()) if len(held_out) else None
    parts = [part for part in (hits, matching) if part is not None]
    balanced = None if None in (sensitivity, specificity) else (sensitivity + specificity) / 2
    return {
        "sensitivity": sensitivity,
        "specificity": specificity,
        "balanced_accuracy": balanced,
        "auc": auc,
        "hit_rate": hits,
        "fpr": TRUTH_FPR,
        "matching": matching,
        "matching_wells": len(held_out),
        "score": float(np.mean(parts)) if parts else None,
        "n_active": int(active.sum()),
        "n_inactive": int((~active).sum()),
        "calls": {
            row[TREATMENT]: {
                "active": bool(row["active"]),
                "called_active": bool(row["below_corrected_p"]),
                "map": float(row["mean_average_precision"]),
            }
            for _, row in calls.iterrows()
        },
    }


def truth_draws(runs: dict, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Bootstrap draws of each row's truth score, mean over its seeds.

    ``runs``: row name -> list of per-seed metrics (each with ``truth`` and ``holdout``). Every
    row is scored on the same draws: active and inactive compounds resampled apart, held-out
    wells of active compounds resampled once. Returns draws x rows."""
    first = next(iter(runs.values()))[0]
    calls = first["truth"]["calls"]
    active = sorted(t for t, c in calls.items() if c["active"])
    inactive = sorted(t for t, c in calls.items() if not c["active"])
    wells = _held_out_active(first["holdout"].get("per_well"), set(active)).index
    rng = np.random.default_rng(seed)
    pick_active = rng.integers(0, len(active), (n_boot, len(active)))
    pick_inactive = rng.integers(0, len(inactive), (n_boot, len(inactive)))
    pick_wells = rng.integers(0, max(len(wells), 1), (n_boot, len(wells)))
    columns = {}
    for name, per_seed in runs.items():
        draws = []
        for metrics in per_seed:
            maps = metrics["truth"]["calls"]
            hits = hit_rate(
                np.array([maps[t]["map"] for t in active])[pick_active],
                np.array([maps[t]["map"] for t in inactive])[pick_inactive],
            )
            parts = [hits]
            if len(wells):
                held_out = _held_out_active(metrics["holdout"].get("per_well"), set(active))
                parts.append(held_out["matched"].reindex(wells).to_numpy()[pick_wells].mean(1))
            draws.append(np.mean(parts, axis=0))
        columns[name] = np.mean(draws, axis=0)
    return pd.DataFrame(columns)


def judge(entries: list[dict], n_boot: int = 2000, seed: int = 0) -> dict:
    """The ranking's first row (what the report recommends) against the truth on one screen:
    the truth-best row with its 95 % interval (``truth_draws``), whether the first row's truth
    score lies within it, Kendall's tau between the overall score and the truth score over
    every row (``rows``: row, overall, truth, in ranking order), and the truth's own tau
    (``ceiling``: median tau between two independent draws of the truth score, how well any
    score could follow a truth that noisy)."""
    from scipy.stats import kendalltau

    table = ranking(entries, references=(), n_boot=n_boot, seed=seed)
    groups = group_entries(entries)
    names = {key: f"{key[0]} + {key[1]}" for key in groups}
    draws = truth_draws({names[k]: runs for k, runs in groups.items()}, n_boot, seed)
    truth = {
        names[k]: float(np.mean([m["truth"]["score"] for m in runs])) for k, runs in groups.items()
    }
    rows = [names[(r.method, r.correction)] for r in table.itertuples()]
    best = max(truth, key=truth.get)
    low, high = np.percentile(draws[best], [2.5, 97.5])
    first = rows[0]
    half = len(draws) // 2
    ceiling = np.median(
        [kendalltau(draws.iloc[i], draws.iloc[i + half]).statistic for i in range(half)]
    )
    return {
        "best": best,
        "best_truth": truth[best],
        "low": float(low),
        "high": float(high),
        "first": first,
        "first_truth": truth[first],
        "within": bool(truth[first] >= low),
        "tau": float(kendalltau(table["overall"], [truth[r] for r in rows]).statistic),
        "ceiling": float(ceiling),
        "rows": pd.DataFrame(
            {"row": rows, "overall": table["overall"].to_numpy(), "truth": [truth[r] for r in rows]}
        ),
    }
