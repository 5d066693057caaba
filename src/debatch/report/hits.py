"""The hit list: per treatment, is it active in the ranking's first method x correction? (its
table, hits.tsv, and its section of the page)

Activity is debatch.evaluate.metrics.map_activity's: the mAP of a treatment's replicate wells
against negcon wells, its permutation p-value Benjamini-Hochberg corrected over treatments, and
active = corrected p below ``diagnostics.map_threshold``. Over several seeds of a method the
list gives the mean mAP, the median corrected p and active when more than half the seeds call
it (with the count of seeds that do).
"""

from __future__ import annotations

import html

import pandas as pd

from debatch.report.tables import Contents, download_link, html_table
from debatch.settings import TREATMENT

COLUMNS = ["treatment", "mAP", "corrected p", "active"]
HITS_TSV = "hits.tsv"  # the hit list beside the page


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


def hits_table(table: pd.DataFrame, entries: list[dict]) -> pd.DataFrame:
    """The hit list of the ranking's first row (debatch.report.hits), as hits.tsv holds it."""
    first = table.iloc[0]
    return hit_list(entries, first["method"], first["correction"])


def _threshold(entries: list[dict]) -> float | None:
    retrieved = entries[0]["metrics"].get("bio", {}).get("fraction_retrieved", {})
    return retrieved.get("threshold")


def hits_section(contents: Contents, table: pd.DataFrame, entries: list[dict]) -> list[str]:
    """Per treatment of the first-ranked method x correction: mAP, corrected p, active."""
    first = table.iloc[0]
    hits = hits_table(table, entries)
    name = f"{first['method']} + {first['correction']}"
    parts = [contents.heading(2, f"Hit list: {name}", "hits")]
    if hits.empty:
        return parts + [
            "<p class='note'>No treatment has replicate wells to score against negcon wells: "
            "no hit list.</p>"
        ]
    threshold = _threshold(entries)
    rule = f" below {threshold:g}" if threshold is not None else ""
    seeds = (
        " Over seeds: mean mAP, median corrected p, active when more than half the seeds call it."
        if "seeds active" in hits
        else ""
    )
    shown = hits.copy()
    shown["corrected p"] = [f"{p:.3g}" for p in hits["corrected p"]]
    return parts + [
        f"<p class='note'>The ranking's first row ({html.escape(name)}): per treatment, the mAP "
        "of its replicate wells retrieving each other against negcon wells, its permutation "
        f"p-value Benjamini-Hochberg corrected over treatments, active = corrected p{rule} "
        f"(diagnostics.map_threshold).{html.escape(seeds)} {int((hits['active'] == 'yes').sum())} "
        f"of {len(hits)} treatments are active. Every row's per-treatment values are in its "
        "diagnostics/{source}/{correction}/metrics.json (per_treatment).</p>",
        download_link(HITS_TSV, "the hit list"),
        f"<div class='scroll'>{html_table(shown, 'hits', sortable=True)}</div>",
    ]
