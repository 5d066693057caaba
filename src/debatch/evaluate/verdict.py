"""The report's first paragraph: what to use, for which job, and how sure that is.

Built from the ranking's numbers (``debatch.evaluate.compare``) so it can never disagree with the
table below it, and worded to say only what the run supports:

- fewer than ``settings.VERDICT_SEEDS`` seeds of a trained method: the ranking is provisional
  (training noise alone moves a row by more than most differences between rows), so it names
  the first row without "use" and says how to run more seeds;
- two jobs, two answers when they differ: which profile best *calls active treatments* against
  negcon (activity, the hit-calling job) and which best *matches treatments across batches*
  (held-out retrieval, or leave-one-batch-out kNN without held-out batches; rows fitted with the
  held-out wells, ``settings.TRANSDUCTIVE``, are left out of this one);
- how much batch the first row leaves, and how many treatments it retrieves.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from debatch.evaluate.compare import group_entries, paired, paired_difference
from debatch.settings import NEGCON, TREATMENT, VERDICT_SEEDS

SEEDS_COMMAND = "`make demo-seeds` for the demo, or `train.seeds: [0, 1, 2]` in your config"


def _name(row) -> str:
    return f"{row['method']} + {row['correction']}"


def trained_seeds(entries: list[dict]) -> int | None:
    """The fewest runs of any trained method: its seeds, times its held-out batches when every
    batch was held out in turn (train.rotate_holdout: each fold is a training run of its own);
    None when no row comes from training."""
    counts = {}
    for entry in entries:
        metrics = entry["metrics"]
        if metrics.get("seed") is not None:
            run = (metrics["seed"], metrics.get("fold"))
            counts.setdefault(metrics["method"], set()).add(run)
    return min(len(runs) for runs in counts.values()) if counts else None


def rotated(entries: list[dict]) -> bool:
    """Whether every batch was held out in turn (train.rotate_holdout): runs have folds."""
    return any(entry["metrics"].get("fold") for entry in entries)


def _runs(entries: list[dict], seeds: int) -> str:
    """'3 seeds', or with rotation '4 runs (every batch held out in turn)'."""
    if rotated(entries):
        return f"{seeds} run{'s' if seeds > 1 else ''} (every batch held out in turn)"
    return f"{seeds} seed{'s' if seeds > 1 else ''}"


def first_row(table: pd.DataFrame, entries: list[dict], n_boot: int, seed: int) -> str:
    """The first row and its lead over the second on held-out batches; "use" only with enough
    seeds (runs, with every batch held out in turn)."""
    best = table.loc[0]
    seeds = trained_seeds(entries)
    spread = f" ± {best['overall sd']:.2f}" if best["seeds"] > 1 else ""
    score = f"overall {best['overall']:.2f}{spread}, first of {len(table)} rows"
    if seeds is not None and seeds < VERDICT_SEEDS:
        text = (
            f"Provisional: trained methods ran with {_runs(entries, seeds)}, "
            f"and fewer than {VERDICT_SEEDS} cannot say which profile to use (training noise "
            f"alone moves rows by more than most differences between them). Run more seeds "
            f"({SEEDS_COMMAND}) before acting on this ranking. With these seeds "
            f"{_name(best)} ranks first ({score})"
        )
    else:
        text = f"Use {_name(best)}: {score}" + (f" over {_runs(entries, seeds)}" if seeds else "")
    if len(table) < 2:
        return text + "."
    second = table.loc[1]
    groups = group_entries(entries)
    lead = paired_difference(
        groups[(best["method"], best["correction"])],
        groups[(second["method"], second["correction"])],
        n_boot,
        seed,
    )
    if lead is None:
        return text + f"; against the runner-up {_name(second)} there is no held-out interval."
    over = "batches" if rotated(entries) else "seeds"
    unsure = f"not distinguishable with these {over} and wells"
    sure = "a real difference" if lead["real"] else unsure
    return (
        text + f"; held-out score against the runner-up {_name(second)}: "
        f"{lead['difference']:+.3f} (95 % interval {lead['low']:+.3f} to {lead['high']:+.3f}), "
        f"{sure}."
    )


def per_treatment(metrics: dict) -> pd.DataFrame | None:
    """Treatments (not negcon) -> their activity against negcon: the mean of their mAP and
    whether they are called active (1 or 0), whose mean over treatments is the row's activity
    score (diagnostics.ACTIVITY_METRICS)."""
    table = pd.DataFrame(metrics.get("per_treatment") or [])
    if table.empty:
        return None
    called = table["below_corrected_p"].astype(float)
    table["activity"] = (table["mean_average_precision"] + called) / 2
    return table.set_index(TREATMENT)[["activity"]]


def _mean(values: np.ndarray) -> np.ndarray:
    return values[..., 0].mean(axis=-1)


def _job_sentence(job: str, what: str, table: pd.DataFrame, column: str, lead) -> str:
    """ "To {job}: {row} ({what} x.xx; lead over the runner-up with its interval)"."""
    ordered = table.dropna(subset=[column]).sort_values(column, ascending=False)
    if ordered.empty:
        return ""
    best = ordered.iloc[0]
    text = f"To {job}: {_name(best)} ({what} {best[column]:.3f}"
    if len(ordered) > 1:
        second = ordered.iloc[1]
        difference = lead(best, second)
        if difference is not None:
            sure = "real" if difference["real"] else "not distinguishable"
            text += (
                f"; ahead of {_name(second)} by {difference['difference']:+.3f}, 95 % interval "
                f"{difference['low']:+.3f} to {difference['high']:+.3f}: {sure}"
            )
    return text + ")."


def two_jobs(table: pd.DataFrame, entries: list[dict], n_boot: int, seed: int) -> list[str]:
    """One sentence per job (calling active treatments; matching treatments across batches),
    or one sentence when the same row is best at both."""
    groups = group_entries(entries)

    def runs(row):
        return groups[(row["method"], row["correction"])]

    def activity_lead(best, second):
        return paired(runs(best), runs(second), per_treatment, _mean, n_boot, seed)

    def matching_lead(best, second):
        return paired_difference(runs(best), runs(second), n_boot, seed)

    inductive = table[~table["transductive"].astype(bool)]
    held_out = inductive["generalisation"].notna().any()
    score = "held-out score" if held_out else "kNN leave-one-batch-out score"
    calls = table.sort_values("activity", ascending=False).iloc[0]
    matches = inductive.sort_values("matching", ascending=False).iloc[0]
    left_out = ", ".join(sorted(set(table.loc[table["transductive"].astype(bool), "correction"])))
    matching_job = "match treatments across batches" + (
        f" (rows with {left_out} left out: fitted with the held-out wells)" if left_out else ""
    )
    if _name(calls) == _name(matches):
        return [
            f"{_name(calls)} is best at both jobs: calling active treatments against {NEGCON} "
            f"(activity {calls['activity']:.3f}) and matching treatments across batches "
            f"({score} {matches['matching']:.3f})."
        ]
    return [
        _job_sentence(
            f"call active treatments against {NEGCON}",
            "activity",
            table,
            "activity",
            activity_lead,
        ),
        _job_sentence(
            matching_job,
            score,
            inductive,
            "matching",
            matching_lead if held_out else lambda best, second: None,
        ),
    ]


def batch_left(table: pd.DataFrame) -> str:
    """How much batch the first row leaves: the batch classifier's accuracy on its well
    profiles against chance, and on the same method without correction."""
    best = table.loc[0]
    if pd.isna(best["batch acc"]):
        return ""
    text = (
        f"Batch left: a classifier tells the batch from {_name(best)}'s well profiles "
        f"{best['batch acc']:.0%} of the time (chance {best['chance']:.0%})"
    )
    raw = table[(table["method"] == best["method"]) & (table["correction"] == "none")]
    if best["correction"] != "none" and len(raw) and not pd.isna(raw.iloc[0]["batch acc"]):
        text += f"; without correction, {raw.iloc[0]['batch acc']:.0%}"
    if best["flags"]:
        text += f". Over-correction: {best['flags']}"
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
        f"other, mAP corrected p < {retrieved[0]['threshold']}; mean over "
        f"{'runs' if rotated(entries) else 'seeds'})."
    )


def headline(table: pd.DataFrame, entries: list[dict], n_boot: int = 2000, seed: int = 0):
    """The report's first paragraph as sentences (module docstring)."""
    if table.empty or pd.isna(table.loc[0, "overall"]):
        return ["No source x correction could be scored overall on this screen."]
    sentences = [first_row(table, entries, n_boot, seed)]
    sentences += two_jobs(table, entries, n_boot, seed)
    sentences += [batch_left(table), treatments_retrieved(table, entries)]
    return [sentence for sentence in sentences if sentence]
