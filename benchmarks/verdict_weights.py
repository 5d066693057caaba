"""Choosing the overall score's activity metrics and weight on the verdict's tuning panel,
never on the report panel that judges them.

overall = w x activity + (1 - w) x matching (debatch.evaluate.diagnostics.summary_scores), where
activity is the mean score of some of the bio metrics that call treatments active against
negcon. For each candidate (``ACTIVITY_CHOICES``: mAP, the share of treatments called active,
or both; w in 0, 0.1, ..., 1) this judges the tuning panel's kept runs (benchmarks/verdict.py
--panel tuning, scores recomputed from their metrics) and prints Kendall's tau between the
ranking and the truth per screen, its lowest value and how many screens' first row lies within
the truth-best interval. The chosen candidate has the highest lowest tau (the goal is tau >=
0.6 on every screen), ties to the most screens within, then to the weight nearest 0.5, then to
the first choice listed; the goal line says whether the defaults (`diagnostics.activity_weight`,
diagnostics.ACTIVITY_METRICS) are that choice. Needs the tuning panel's runs
(benchmarks/out/verdict_tuning, or benchmarks/out/verdict where an older run kept them); a
screen not run to the end is left out and named.
"""

from __future__ import annotations

import numpy as np

from debatch.evaluate.diagnostics import ACTIVITY_METRICS
from debatch.evaluate.truth import judge
from debatch.settings import DIAGNOSTICS
from verdict import HERE, read_entries, screen_params

WEIGHTS = np.round(np.linspace(0, 1, 11), 1)
ACTIVITY_CHOICES = {
    "mAP": ("map",),
    "share called": ("fraction_retrieved",),
    "both": ("map", "fraction_retrieved"),
}
EXPECTED_ROWS = 30  # 3 methods x 3 seeds + CellProfiler, x 3 corrections


def tuning_runs() -> tuple[dict, list[str]]:
    """Screen name -> its kept results folder, for the screens run to the end; the others."""
    root = next(
        (p for p in (HERE / "out" / "verdict_tuning", HERE / "out" / "verdict") if p.is_dir()),
        None,
    )
    if root is None:
        raise SystemExit("no tuning panel runs: python benchmarks/verdict.py --panel tuning")
    runs, missing = {}, []
    for i, name in enumerate(screen_params("tuning")):
        results = root / f"screen{i + 1}" / "results"
        if len(list((results / "diagnostics").rglob("metrics.json"))) >= EXPECTED_ROWS:
            runs[name] = results
        else:
            missing.append(name)
    return runs, missing


def main() -> None:
    runs, missing = tuning_runs()
    print(
        f"## Choosing the activity metrics and weight ({len(runs)} screens of the tuning panel)\n"
    )
    if missing:
        print(f"Not run to the end, left out: {', '.join(missing)}.\n")
    print(f"| activity | w | {' | '.join(runs)} | lowest tau | first row within |")
    print(f"|---|---:|{'---:|' * len(runs)}---:|---:|")
    results = []
    for order, (choice, metrics) in enumerate(ACTIVITY_CHOICES.items()):
        for weight in WEIGHTS:
            verdicts = [
                judge(read_entries(path, weight, metrics), n_boot=500) for path in runs.values()
            ]
            taus = [v["tau"] for v in verdicts]
            within = sum(v["within"] for v in verdicts)
            results.append((min(taus), within, -abs(weight - 0.5), -order, weight, metrics))
            print(
                f"| {choice} | {weight:.1f} | {' | '.join(f'{t:.2f}' for t in taus)} | "
                f"{min(taus):.2f} | {within} of {len(verdicts)} |"
            )
    *_, weight, metrics = max(results)
    chosen = f"{' + '.join(metrics)}, w {weight:.1f}"
    default = f"{' + '.join(ACTIVITY_METRICS)}, w {DIAGNOSTICS.merge({})['activity_weight']:.1f}"
    print(
        f"\nGoal the defaults (diagnostics.ACTIVITY_METRICS, diagnostics.activity_weight) are the "
        f"tuning panel's choice: chosen {chosen}, default {default}, "
        f"{'met' if chosen == default else 'NOT met'}."
    )


if __name__ == "__main__":
    main()
