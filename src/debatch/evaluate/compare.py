"""Comparing sources x corrections across runs: mean ± sd of every score, and paired
differences on the held-out batches with bootstrap intervals.

A method trained with several seeds gives one metrics entry per seed, and with every batch held
out in turn (``train.rotate_holdout``) one per seed and held-out batch (its ``fold``): each is a
run of the method. The ranking averages each score over runs; differences between two rows are
*paired*: the same held-out wells, run (seed, fold) against the same run (a source without
seeds, e.g. CellProfiler features, against every run). The interval of a difference in
generalisation score comes from a bootstrap over the held-out wells within runs: each draw
resamples each fold's wells (the same draw for both rows and every seed pair), recomputes both
rows' scores on it, and averages the difference over seed pairs; with folds, each draw also
resamples the folds, so the interval is over batches as well as wells. The 2.5 and 97.5
percentiles of those differences are the 95 % interval. A difference counts as real only when
its interval excludes 0.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from debatch.settings import PLATE, REPLICATE_DROP, TRANSDUCTIVE, WELL

SCORES = ("overall", "activity", "generalisation", "batch", "bio")


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
                # the consistency job: generalisation, or kNN LOBO without held-out batches
                "matching": metrics["scores"].get("matching"),
                "held-out kNN acc": holdout.get("knn_accuracy"),
                "held-out mAP": holdout.get("map"),
                "batch acc": metrics["batch"]["batch_classifier"]["value"],
                "chance": metrics["batch"]["batch_classifier"].get("chance"),
                "replicating": metrics.get("replicates", {}).get("value"),
                "wells": metrics.get("n_wells"),
            }
        )
    table = pd.DataFrame(rows)
    numbers = [*SCORES, "matching", "held-out kNN acc", "held-out mAP", "batch acc", "chance"]
    numbers += ["replicating", "wells"]
    table[numbers] = table[numbers].astype(float)  # None (not computable) -> NaN
    return table


def per_well(metrics: dict) -> pd.DataFrame | None:
    """Held-out wells (plate, well) -> correct (kNN) and AP, or None without held-out wells."""
    wells = metrics.get("holdout", {}).get("per_well")
    if not wells:
        return None
    return pd.DataFrame(wells).set_index([PLATE, WELL])[["correct", "ap"]]


def _generalisation(chance: float):
    """The held-out score of an array (..., wells, [correct, ap]): mean of chance-corrected
    kNN accuracy and mAP, as debatch.evaluate.diagnostics.holdout_scores computes it."""

    def score(values: np.ndarray) -> np.ndarray:
        accuracy = values[..., 0].mean(axis=-1)
        knn = np.clip((accuracy - chance) / (1 - chance), 0, 1) if chance < 1 else 0 * accuracy
        return (knn + np.nanmean(values[..., 1], axis=-1)) / 2

    return score


def _run(metrics: dict) -> tuple:
    """A run's key: its seed and held-out batch (fold; "" without rotation)."""
    return metrics.get("seed"), metrics.get("fold", "")


def _seed_pairs(a: list[dict], b: list[dict]) -> list[tuple[dict, dict]]:
    """Run (seed, fold) with the same run; a row without seeds (one entry) with every run of
    the other."""
    if len(a) == 1 and a[0].get("seed") is None:
        return [(a[0], y) for y in b]
    if len(b) == 1 and b[0].get("seed") is None:
        return [(x, b[0]) for x in a]
    by_run = {_run(m): m for m in b}
    return [(x, by_run[_run(x)]) for x in a if _run(x) in by_run]


def _by_fold(pairs: list[tuple[dict, dict]], units: Callable) -> dict | None:
    """Fold -> its pairs' unit tables (both rows') and the units they share; None when a
    row lacks the units or a fold's pairs share none."""
    folds: dict = {}
    for x, y in pairs:
        fold = x.get("fold") or y.get("fold") or ""
        folds.setdefault(fold, []).append((units(x), units(y)))
    if not folds or any(x is None or y is None for f in folds.values() for x, y in f):
        return None
    shared = {}
    for fold, tables in folds.items():
        shared[fold] = tables[0][0].index
        for x, y in tables:
            shared[fold] = shared[fold].intersection(x.index).intersection(y.index)
        if not len(shared[fold]):
            return None
    return {fold: (tables, shared[fold]) for fold, tables in folds.items()}


def paired(
    a: list[dict], b: list[dict], units: Callable, score: Callable, n_boot: int, seed: int
) -> dict | None:
    """A score of row ``a`` minus row ``b`` (each a list of per-run metrics), paired by run
    and by unit (held-out well, treatment): ``units(metrics)`` is a table indexed by unit,
    ``score(values)`` maps an array (..., units, columns) to the score. Every bootstrap draw
    resamples each fold's shared units once, for both rows and every seed pair, averages the
    difference over seed pairs, and with several folds resamples the folds too:
    {"difference", "low", "high", "real", "pairs", "units", "folds"}; None when a row lacks
    the units or they share none."""
    pairs = _seed_pairs(a, b)
    folds = _by_fold(pairs, units)
    if folds is None:
        return None
    rng = np.random.default_rng(seed)
    observed, boot = [], []
    for tables, shared in folds.values():
        draws = rng.integers(0, len(shared), (n_boot, len(shared)))
        fold_observed, fold_boot = [], []
        for x, y in tables:
            x, y = x.loc[shared].to_numpy(float), y.loc[shared].to_numpy(float)
            fold_observed.append(score(x) - score(y))
            fold_boot.append(score(x[draws]) - score(y[draws]))
        observed.append(np.mean(fold_observed))
        boot.append(np.mean(fold_boot, axis=0))
    boot = np.asarray(boot)  # folds x draws
    if len(folds) > 1:  # each draw also resamples the batches held out in turn
        picks = rng.integers(0, len(folds), (n_boot, len(folds)))
        boot = boot[picks, np.arange(n_boot)[:, None]].mean(axis=1)[None]
    low, high = np.percentile(boot[0], [2.5, 97.5])
    return {
        "difference": float(np.mean(observed)),
        "low": float(low),
        "high": float(high),
        "real": bool(low > 0 or high < 0),
        "pairs": len(pairs),
        "units": sum(len(shared) for _, shared in folds.values()),
        "folds": len(folds),
    }


def paired_difference(
    a: list[dict], b: list[dict], n_boot: int = 2000, seed: int = 0
) -> dict | None:
    """Generalisation score of row ``a`` minus row ``b``, paired by seed and held-out well
    (``paired``); None without held-out wells."""
    if per_well(a[0]) is None:
        return None
    chance = a[0]["holdout"]["knn_chance"]
    return paired(a, b, per_well, _generalisation(chance), n_boot, seed)


def group_entries(entries: list[dict]) -> dict[tuple[str, str], list[dict]]:
    """(method, correction) -> that row's per-run metrics, runs (seed, fold) in order."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for entry in entries:
        metrics = entry["metrics"]
        groups.setdefault((metrics["method"], metrics["correction"]), []).append(metrics)
    return {
        key: sorted(
            value, key=lambda m: (-1 if m.get("seed") is None else m["seed"], m.get("fold", ""))
        )
        for key, value in groups.items()
    }


def below_chance(accuracy: float, chance: float, wells: float) -> bool:
    """A batch classifier reading the batch *worse* than guessing the largest batch (by two
    binomial standard errors): the correction has pushed batches apart in the other direction,
    an over-correction, not a success."""
    if pd.isna(accuracy) or pd.isna(chance) or not wells:
        return False
    return bool(accuracy < chance - 2 * np.sqrt(chance * (1 - chance) / wells))


def overcorrection(row: dict, uncorrected: dict | None, held_out_change: dict | None) -> list[str]:
    """What says a correction removed biology with the batch: batch prediction below chance,
    replicate wells pulled apart (``settings.REPLICATE_DROP`` fewer replicate pairs above the
    non-replicates' 95th percentile than without correction), or held-out retrieval really
    below the uncorrected row's (``held_out_change``: the paired difference to it)."""
    flags = []
    if below_chance(row["batch acc"], row["chance"], row["wells"]):
        flags.append("batch acc below chance")
    if uncorrected is not None and row["replicating"] < uncorrected["replicating"] - REPLICATE_DROP:
        flags.append("replicates pulled apart")
    if (
        held_out_change is not None
        and held_out_change["real"]
        and held_out_change["difference"] < 0
    ):
        flags.append("held-out below uncorrected")
    return flags


def ranking(
    entries: list[dict], references=("erm",), n_boot: int = 2000, seed: int = 0
) -> pd.DataFrame:
    """One row per method x correction, best mean overall first: seeds, mean and sd of every
    score, held-out and batch figures, the paired held-out difference to each of
    ``references`` that was run (same correction) with its interval, whether the correction
    saw the held-out wells (``transductive``) and its over-correction ``flags``."""
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
        for column in ("matching", "held-out kNN acc", "held-out mAP", "batch acc", "chance"):
            row[column] = means.loc[(method, correction), column]
        row["transductive"] = correction in TRANSDUCTIVE
        uncorrected = groups.get((method, "none")) if correction != "none" else None
        row["flags"] = "; ".join(
            overcorrection(
                means.loc[(method, correction)],
                None if uncorrected is None else means.loc[(method, "none")],
                None
                if uncorrected is None
                else paired_difference(per_seed, uncorrected, n_boot, seed),
            )
        )
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
