"""The hit list: per treatment, is it active in the ranking's first method x correction?

Activity is debatch.evaluate.metrics.map_activity's: the mAP of a treatment's replicate wells
against negcon wells, its permutation p-value Benjamini-Hochberg corrected over treatments, and
active = corrected p below ``diagnostics.map_threshold``. Over several seeds of a method the
list gives the mean mAP, the median corrected p and active when more than half the seeds call
it (with the count of seeds that do).
"""

from __future__ import annotations

import pandas as pd

from debatch.settings import TREATMENT

COLUMNS = ["treatment", "mAP", "corrected p", "active"]


def hit_list(entries: list[dict], method: str, correction: str) -> pd.DataFrame:
    """One row per treatment of ``method`` x ``correction``'s entries (metrics.json
    ``per_treatment``), the most active first (corrected p, then mAP); empty without any."""
    mine = [
        e
        for e in entries
        if e["metrics"]["method"] == method and e["metrics"]["correction"] == correction
    ]
    tables = [
        pd.DataFrame(e["metrics"].get("per_treatment") or []).assign(seed=index)
        for index, e in enumerate(mine)
    ]
    tables = [t for t in tables if len(t)]
    if not tables:
        return pd.DataFrame(columns=COLUMNS)
    calls = pd.concat(tables, ignore_index=True)
    grouped = calls.groupby(TREATMENT, sort=True)
    seeds = len(tables)
    called = grouped["below_corrected_p"].sum().astype(int)
    table = pd.DataFrame(
        {
            "treatment": grouped.size().index.astype(str),
            "mAP": grouped["mean_average_precision"].mean().to_numpy(float),
            "corrected p": grouped["corrected_p_value"].median().to_numpy(float),
            "active": ["yes" if 2 * n > seeds else "no" for n in called],
        }
    )
    if seeds > 1:
        table["seeds active"] = [f"{n} of {seeds}" for n in called]
    return table.sort_values(
        ["corrected p", "mAP"], ascending=[True, False], kind="stable"
    ).reset_index(drop=True)
