"""Choosing the overall score's activity weight on the verdict's tuning panel, never on the
report panel that judges it.

overall = w x activity + (1 - w) x matching (debatch.evaluate.diagnostics.summary_scores). For
each w in 0, 0.1, ..., 1 this judges the tuning panel's kept runs (benchmarks/verdict.py
--panel tuning, scores recomputed from their metrics) and prints Kendall's tau between the
ranking and the truth per screen, its lowest value and how many screens' first row lies within
the truth-best interval. The chosen weight has the highest lowest tau (the goal is tau >= 0.6
on every screen), ties to the most screens within, then to the weight nearest 0.5; the goal
line says whether `diagnostics.activity_weight`'s default is that choice. Needs the tuning
panel's runs (benchmarks/out/verdict_tuning, or benchmarks/out/verdict where an older run
kept them); a screen not run to the end is left out and named.
"""

from __future__ import annotations

import numpy as np

from debatch.evaluate.truth import judge
from debatch.settings import DIAGNOSTICS
from verdict import HERE, read_entries, screen_params

WEIGHTS = np.round(np.linspace(0, 1, 11), 1)
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
    print(f"## Choosing the activity weight ({len(runs)} screens of the tuning panel)\n")
    if missing:
        print(f"Not run to the end, left out: {', '.join(missing)}.\n")
    print(f"| w | {' | '.join(runs)} | lowest tau | first row within |")
    print(f"|---:|{'---:|' * len(runs)}---:|---:|")
    results = []
    for weight in WEIGHTS:
        verdicts = [judge(read_entries(path, weight), n_boot=500) for path in runs.values()]
        taus = [v["tau"] for v in verdicts]
        within = sum(v["within"] for v in verdicts)
        results.append((min(taus), within, -abs(weight - 0.5), weight))
        print(
            f"| {weight:.1f} | {' | '.join(f'{t:.2f}' for t in taus)} | {min(taus):.2f} | "
            f"{within} of {len(verdicts)} |"
        )
    chosen = max(results)[-1]
    default = DIAGNOSTICS.merge({})["activity_weight"]
    print(
        f"\nGoal the default diagnostics.activity_weight is the tuning panel's choice: "
        f"chosen {chosen:.1f}, default {default:.1f}, {'met' if chosen == default else 'NOT met'}."
    )


if __name__ == "__main__":
    main()
