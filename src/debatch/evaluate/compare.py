"""Comparing sources x corrections across seeds: mean ± sd of every score, and paired
differences on the held-out batches with bootstrap intervals.

A method trained with several seeds gives one metrics entry per seed. The ranking averages each
score over seeds; differences between two rows are *paired*: the same held-out wells, seed k
against seed k (a source without seeds, e.g. CellProfiler features, against every seed). The
interval of a difference in generalisation score comes from a bootstrap over the held-out wells
within seeds: each draw resamples the wells (the same draw for both rows and every seed pair),
recomputes both rows' scores on it, and averages the difference over seed pairs; the 2.5 and
97.5 percentiles of those differences are the 95 % interval. A difference counts as real only
when its interval excludes 0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SCORES = ("overall", "batch", "bio", "generalisation")


def seed_rows(entries: list[dict]) -> pd.DataFrame:
    """One row per metrics entry (source x correction): its method, seed and scores."""
    rows = []
    for entry in entries:
        metrics = entry["metrics"]
        holdout = metrics.get("holdout", {})
        rows.append(
            {
                "method": metrics["method"],
                "seed": metrics.get("seed"),
                "correction": metrics["correction"],
                **{score: metrics["scores"].get(score) for score in SCORES},
                "held-out kNN acc": holdout.get("knn_accuracy"),
                "held-out mAP": holdout.get("map"),
                "batch acc": metrics["batch"]["batch_classifier"]["value"],
                "chance": metrics["batch"]["batch_classifier"].get("chance"),
            }
        )
    table = pd.DataFrame(rows)
    numbers = [*SCORES, "held-out kNN acc", "held-out mAP", "batch acc", "chance"]
    table[numbers] = table[numbers].astype(float)  # None (not computable) -> NaN
    return table


def per_well(metrics: dict) -> pd.DataFrame | None:
    """Held-out wells (plate, well) -> correct (kNN) and AP, or None without held-out wells."""
    wells = metrics.get("holdout", {}).get("per_well")
    if not wells:
        return None
    return pd.DataFrame(wells).set_index(["Metadata_Plate", "Metadata_Well"])[["correct", "ap"]]


def _generalisation(correct: np.ndarray, ap: np.ndarray, chance: float) -> np.ndarray:
    """The held-out score per bootstrap row (..., wells): mean of chance-corrected kNN
    accuracy and mAP, as debatch.evaluate.diagnostics.holdout_scores computes it."""
    accuracy = correct.mean(axis=-1)
    knn = np.clip((accuracy - chance) / (1 - chance), 0, 1) if chance < 1 else 0 * accuracy
    return (knn + np.nanmean(ap, axis=-1)) / 2


def _seed_pairs(a: list[dict], b: list[dict]) -> list[tuple[dict, dict]]:
    """Seed k with seed k; a row without seeds (one entry) with every seed of the other."""
    if len(a) == 1 and a[0].get("seed") is None:
        return [(a[0], y) for y in b]
    if len(b) == 1 and b[0].get("seed") is None:
        return [(x, b[0]) for x in a]
    by_seed = {m.get("seed"): m for m in b}
    return [(x, by_seed[x.get("seed")]) for x in a if x.get("seed") in by_seed]


def paired_difference(
    a: list[dict], b: list[dict], n_boot: int = 2000, seed: int = 0
) -> dict | None:
    """Generalisation score of row ``a`` minus row ``b`` (each a list of per-seed metrics),
    paired by seed and held-out well: {"difference", "low", "high", "real", "pairs"}; None
    when either has no held-out wells or they share none."""
    pairs = _seed_pairs(a, b)
    tables = [(per_well(x), per_well(y)) for x, y in pairs]
    if not tables or any(x is None or y is None for x, y in tables):
        return None
    wells = tables[0][0].index
    for x, y in tables:
        wells = wells.intersection(x.index).intersection(y.index)
    if not len(wells):
        return None
    chance = pairs[0][0]["holdout"]["knn_chance"]
    draws = np.random.default_rng(seed).integers(0, len(wells), (n_boot, len(wells)))
    observed, boot = [], []
    for x, y in tables:
        x, y = x.loc[wells], y.loc[wells]
        arrays = [(t["correct"].to_numpy(float), t["ap"].to_numpy(float)) for t in (x, y)]
        observed.append(_generalisation(*arrays[0], chance) - _generalisation(*arrays[1], chance))
        boot.append(
            _generalisation(arrays[0][0][draws], arrays[0][1][draws], chance)
            - _generalisation(arrays[1][0][draws], arrays[1][1][draws], chance)
        )
    boot = np.mean(boot, axis=0)
    low, high = np.percentile(boot, [2.5, 97.5])
    return {
        "difference": float(np.mean(observed)),
        "low": float(low),
        "high": float(high),
        "real": bool(low > 0 or high < 0),
        "pairs": len(tables),
        "wells": len(wells),
    }


def group_entries(entries: list[dict]) -> dict[tuple[str, str], list[dict]]:
    """(method, correction) -> that row's per-seed metrics, seeds in order."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for entry in entries:
        metrics = entry["metrics"]
        groups.setdefault((metrics["method"], metrics["correction"]), []).append(metrics)
    return {
        key: sorted(value, key=lambda m: -1 if m.get("seed") is None else m["seed"])
        for key, value in groups.items()
    }


def ranking(
    entries: list[dict], references=("erm",), n_boot: int = 2000, seed: int = 0
) -> pd.DataFrame:
    """One row per method x correction, best mean overall first: seeds, mean and sd of every
    score, held-out and batch figures, and the paired held-out difference to each of
    ``references`` that was run (same correction) with its interval."""
    methods = {metrics["metrics"]["method"] for metrics in entries}
    references = [r for r in references if r in methods]
    rows = seed_rows(entries)
    groups = group_entries(entries)
    means = rows.groupby(["method", "correction"], sort=False).mean(numeric_only=True)
    sds = rows.groupby(["method", "correction"], sort=False)[list(SCORES)].std(ddof=1)
    table = []
    for (method, correction), per_seed in groups.items():
        row = {"method": method, "correction": correction, "seeds": len(per_seed)}
        for score in SCORES:
            row[score] = means.loc[(method, correction), score]
            row[f"{score} sd"] = sds.loc[(method, correction), score]
        for column in ("held-out kNN acc", "held-out mAP", "batch acc", "chance"):
            row[column] = means.loc[(method, correction), column]
        for reference in references:
            versus = groups.get((reference, correction))
            difference = (
                paired_difference(per_seed, versus, n_boot, seed)
                if versus is not None and method != reference
                else None
            )
            row.update(_difference_columns(difference, f"vs {reference}"))
        table.append(row)
    table = pd.DataFrame(table).sort_values(
        ["overall", "bio", "method", "correction"],
        ascending=[False, False, True, True],
        na_position="last",
    )
    table.insert(0, "rank", range(1, len(table) + 1))
    return table.reset_index(drop=True)


def _difference_columns(difference: dict | None, label: str) -> dict:
    if difference is None:
        return {
            f"held-out {label}": None,
            f"{label} low": None,
            f"{label} high": None,
            f"{label} real": None,
        }
    return {
        f"held-out {label}": difference["difference"],
        f"{label} low": difference["low"],
        f"{label} high": difference["high"],
        f"{label} real": difference["real"],
    }


def verdict(table: pd.DataFrame, entries: list[dict], n_boot: int = 2000, seed: int = 0) -> str:
    """One sentence: which row to use on this screen, and how sure that is (its held-out lead
    over the runner-up, paired, with the interval)."""
    if table.empty or pd.isna(table.loc[0, "overall"]):
        return "No source x correction could be scored overall on this screen."
    groups = group_entries(entries)
    best = table.loc[0]
    name = f"{best['method']} + {best['correction']}"
    spread = f" ± {best['overall sd']:.2f}" if best["seeds"] > 1 else ""
    text = (
        f"Use {name}: overall {best['overall']:.2f}{spread} over {best['seeds']} "
        f"seed{'s' if best['seeds'] > 1 else ''}, ranked first of {len(table)}"
    )
    if len(table) < 2:
        return text + "."
    second = table.loc[1]
    lead = paired_difference(
        groups[(best["method"], best["correction"])],
        groups[(second["method"], second["correction"])],
        n_boot,
        seed,
    )
    runner = f"{second['method']} + {second['correction']}"
    if lead is None:
        return text + f"; its lead over {runner} has no held-out interval (no held-out batch)."
    sure = (
        "a real difference"
        if lead["real"]
        else "not distinguishable from it with these seeds and wells"
    )
    return (
        text + f"; on held-out batches it leads {runner} by {lead['difference']:+.3f} "
        f"(95 % interval {lead['low']:+.3f} to {lead['high']:+.3f}): {sure}."
    )


def batch_left(table: pd.DataFrame) -> str:
    """How much batch the first row leaves: the batch classifier's accuracy on its well
    profiles against chance, and on the same method without correction."""
    best = table.loc[0]
    if pd.isna(best["batch acc"]):
        return ""
    text = (
        f"Batch left: a classifier tells the batch from {best['method']} + "
        f"{best['correction']}'s well profiles {best['batch acc']:.0%} of the time (chance "
        f"{best['chance']:.0%})"
    )
    raw = table[(table["method"] == best["method"]) & (table["correction"] == "none")]
    if best["correction"] != "none" and len(raw) and not pd.isna(raw.iloc[0]["batch acc"]):
        text += f"; without correction, {raw.iloc[0]['batch acc']:.0%}"
    return text + "."


def treatments_retrieved(table: pd.DataFrame, entries: list[dict]) -> str:
    """How many treatments the first row retrieves: replicate wells that find each other
    (mAP significant after multiple-testing correction, docs/metrics.md), mean over seeds."""
    best = table.loc[0]
    runs = group_entries(entries)[(best["method"], best["correction"])]
    retrieved = [
        m["bio"]["fraction_retrieved"]
        for m in runs
        if m["bio"].get("fraction_retrieved", {}).get("value") is not None
    ]
    if not retrieved:
        return ""
    treatments = retrieved[0]["treatments"]
    found = np.mean([r["value"] for r in retrieved]) * treatments
    return (
        f"Treatments retrieved: {found:.1f} of {treatments} (replicate wells that find each "
        f"other, mAP corrected p < {retrieved[0]['threshold']}; mean over seeds)."
    )
