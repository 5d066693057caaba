"""The WILDS protocol's table (docs/metrics.md, "The WILDS protocol"): per method, the OOD test,
validation and in-distribution test accuracy of its models at the epoch each selected on its
validation batches, mean and sd over seeds, read from every model's training_log.tsv at that
epoch and its card (model.json). Only models trained with validation batches or ID sites
(train.validation_batches, train.id_sites) have a row.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import pandas as pd

from debatch.report.tables import Contents, download_link, html_table

WILDS_TSV = "wilds.tsv"
# column of the table -> training_log.tsv column at the selected epoch ("selected epoch": the
# card's); the accuracy of a crops row (a cell, or a site with crops.unit: site; the card's
# `unit`, default cell) and of a well (its rows' mean softmax)
MEASURES = {
    "OOD test acc": "holdout_acc",
    "OOD test well acc": "holdout_well_acc",
    "validation acc": "val_acc",
    "validation well acc": "val_well_acc",
    "ID test acc": "id_acc",
    "ID test well acc": "id_well_acc",
    "selected epoch": None,
}
WILDS_NOTE = (
    "The WILDS protocol (docs/metrics.md): each model was trained on the training batches "
    "without their ID sites, its epoch selected on the validation batches alone (best "
    "validation accuracy; model.pt is that epoch's network), and scored at that epoch on the "
    "held-out batches (OOD test) and on the training batches' ID sites (in-distribution "
    "test). acc: per crops row (the unit column: a cell, or a whole site); well acc: per well, "
    "the argmax of its rows' mean softmax. Mean ± sd over seeds."
)


def wilds_runs(training_logs: dict[str, str], cards: dict[str, str]) -> pd.DataFrame:
    """One row per model trained under the WILDS protocol: method, seed, unit and each of
    MEASURES at its selected epoch (the card's selected_epoch; the last epoch for a card made
    before selection existed)."""
    rows = []
    for source, card_path in cards.items():
        card = json.loads(Path(card_path).read_text())
        if source not in training_logs or not (
            card.get("validation_batches") or card.get("id_sites")
        ):
            continue
        epoch = int(card.get("selected_epoch", card["epochs"]))
        log = pd.read_csv(training_logs[source], sep="\t").set_index("epoch")
        if epoch not in log.index:
            raise ValueError(
                f"{training_logs[source]} has no row for epoch {epoch}, the epoch {card_path} "
                "selected"
            )
        at = log.loc[epoch]
        row = {"method": card["method"], "seed": card["seed"], "unit": card.get("unit", "cell")}
        for name, column in MEASURES.items():
            row[name] = float(epoch if column is None else at.get(column, float("nan")))
        rows.append(row)
    return pd.DataFrame(rows)


def wilds_table(training_logs: dict[str, str], cards: dict[str, str]) -> pd.DataFrame:
    """Per method (and unit): seeds, then each measure's mean and sd over seeds (sd NaN with one
    seed); empty without models trained under the WILDS protocol. What wilds.tsv holds."""
    runs = wilds_runs(training_logs, cards)
    if runs.empty:
        return runs
    rows = []
    for (method, unit), mine in runs.groupby(["method", "unit"], sort=False):
        row = {"method": method, "unit": unit, "seeds": len(mine)}
        for name in MEASURES:
            row[f"{name} mean"] = mine[name].mean()
            row[f"{name} sd"] = mine[name].std(ddof=1) if len(mine) > 1 else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def _shown(mean: float, sd: float) -> str:
    if pd.isna(mean):
        return "n/a"
    return f"{mean:.3f}" if pd.isna(sd) else f"{mean:.3f} ± {sd:.3f}"


def wilds_display(table: pd.DataFrame) -> pd.DataFrame:
    """The table as the page shows it: each measure as mean ± sd."""
    shown = table[["method", "unit", "seeds"]].copy()
    for name in MEASURES:
        shown[name] = [
            _shown(mean, sd) for mean, sd in zip(table[f"{name} mean"], table[f"{name} sd"])
        ]
    return shown


def wilds_section(contents: Contents, table: pd.DataFrame | None) -> list[str]:
    """The report's WILDS section (:func:`wilds_table`), nothing when ``table`` is None or
    empty."""
    if table is None or table.empty:
        return []
    return [
        contents.heading(2, "The WILDS protocol", "wilds"),
        f"<p class='note'>{html.escape(WILDS_NOTE)}</p>",
        download_link(WILDS_TSV, "the WILDS table, means and sds as numbers"),
        html_table(wilds_display(table), "wilds", sortable=True),
    ]
