"""The report's building blocks: its tables (the ranking as shown, scores, raw values,
held-out and truth scores, training), their colours, and the HTML they are written in (tables
that sort on a click, links to the TSV files beside the page, embedded figures, the contents)."""

from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd

from debatch.evaluate import compare
from debatch.evaluate.diagnostics import BATCH_METRICS, BIO_METRICS
from debatch.settings import REPORT

SORT_SCRIPT = """
document.querySelectorAll('table.sortable').forEach(function(table){
  var number=/^[^0-9a-z+\\-.]*([-+]?[0-9]*\\.?[0-9]+(e[-+]?[0-9]+)?)/i;
  table.querySelectorAll('thead th').forEach(function(th,column){
    th.addEventListener('click',function(){
      var body=table.tBodies[0],up=th.getAttribute('aria-sort')!=='ascending';
      table.querySelectorAll('thead th').forEach(function(h){h.removeAttribute('aria-sort');});
      th.setAttribute('aria-sort',up?'ascending':'descending');
      var key=function(row){var text=row.cells[column].textContent.trim(),m=text.match(number);
        return m?[0,parseFloat(m[1])]:[1,text.toLowerCase()];};
      Array.prototype.slice.call(body.rows).map(function(row){return [key(row),row];})
        .sort(function(a,b){if(a[0][0]!==b[0][0])return a[0][0]-b[0][0];
          var d=a[0][1]<b[0][1]?-1:a[0][1]>b[0][1]?1:0;return up?d:-d;})
        .forEach(function(pair){body.appendChild(pair[1]);});
    });
  });
});
"""

LABELS = {
    "batch_classifier": "batch classifier",
    "silhouette_batch": "silhouette batch",
    "ilisi": "iLISI",
    "pcr_batch": "PCR batch",
    "graph_connectivity": "graph conn.",
    "map": "mAP",
    "fraction_retrieved": "retrieved",
    "clisi": "cLISI",
    "silhouette_treatment": "silhouette trt",
    "knn_lobo": "kNN LOBO",
}


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3f}"
    return html.escape(str(value))


def ranking_table(entries: list[dict], params: dict | None = None) -> pd.DataFrame:
    """One row per method x correction, mean over seeds, best overall first, with the paired
    held-out difference to each reference method and its interval (debatch.evaluate.compare)."""
    report = REPORT.merge(params)
    return compare.ranking(entries, report["references"], report["bootstrap"], report["seed"])


def reference_columns(table: pd.DataFrame) -> list[str]:
    """The references a ranking table compares with (its ``held-out vs X`` columns)."""
    return [c.removeprefix("held-out vs ") for c in table if c.startswith("held-out vs ")]


def ranking_display(table: pd.DataFrame) -> pd.DataFrame:
    """The ranking as the page shows it: mean ± sd, each difference with its interval."""

    def spread(row, score):
        sd = row[f"{score} sd"]
        return _fmt(row[score]) + ("" if pd.isna(sd) else f" ± {sd:.3f}")

    def difference(row, reference):
        value = row[f"held-out vs {reference}"]
        if value is None or pd.isna(value):
            return "n/a"
        real = "real" if row[f"vs {reference} real"] else "not real"
        return (
            f"{value:+.3f} [{row[f'vs {reference} low']:+.3f}, "
            f"{row[f'vs {reference} high']:+.3f}] {real}"
        )

    shown = table[["rank", "method", "correction", "seeds"]].copy()
    for score in compare.SCORES:
        shown[score] = [spread(row, score) for _, row in table.iterrows()]
    for column in ("held-out kNN acc", "held-out mAP", "batch acc", "chance"):
        shown[column] = table[column]
    for column, flag in FLAGGED.items():
        shown[column] = [
            f"⚠ {_fmt(value)}" if flag in flags else value
            for value, flags in zip(shown[column], table["flags"])
        ]
    shown["fitted with held-out wells"] = ["yes" if t else "no" for t in table["transductive"]]
    shown["over-correction"] = table["flags"]
    for reference in reference_columns(table):
        shown[f"held-out vs {reference} (95 % interval)"] = [
            difference(row, reference) for _, row in table.iterrows()
        ]
    return shown


def scores_table(entries: list[dict]) -> pd.DataFrame:
    """Every metric's [0, 1] score per source (method and seed) x correction."""
    rows = []
    for entry in entries:
        metrics = entry["metrics"]
        row = {"source": metrics["source"], "correction": metrics["correction"]}
        for section, names in (("batch", BATCH_METRICS), ("bio", BIO_METRICS)):
            row.update({LABELS[name]: metrics[section][name]["score"] for name in names})
        rows.append(row)
    return pd.DataFrame(rows)


def values_table(entries: list[dict]) -> pd.DataFrame:
    """The raw numbers behind the scores."""
    rows = []
    for entry in entries:
        batch, bio = entry["metrics"]["batch"], entry["metrics"]["bio"]
        rows.append(
            {
                "source": entry["metrics"]["source"],
                "correction": entry["correction"],
                "batch acc": batch["batch_classifier"]["value"],
                "chance": batch["batch_classifier"].get("chance"),
                "silhouette batch (global)": batch["silhouette_batch"].get("global_silhouette"),
                "iLISI": batch["ilisi"]["value"],
                "PCR R²": batch["pcr_batch"]["value"],
                "mAP": bio["map"]["value"],
                "retrieved": bio["fraction_retrieved"]["value"],
                "cLISI": bio["clisi"]["value"],
                "silhouette trt": bio["silhouette_treatment"]["value"],
                "kNN LOBO acc": bio["knn_lobo"]["value"],
            }
        )
    return pd.DataFrame(rows)


def generalisation_table(entries: list[dict]) -> pd.DataFrame:
    """Held-out batches (never trained on) and, on the demo, calls against the ground truth;
    columns that no entry has are dropped."""
    rows = []
    for entry in entries:
        holdout, truth = entry["metrics"].get("holdout", {}), entry["metrics"].get("truth", {})
        rows.append(
            {
                "source": entry["metrics"]["source"],
                "correction": entry["correction"],
                "held-out wells": holdout.get("wells"),
                "unseen-treatment wells left out": holdout.get("unseen_treatment_wells"),
                "held-out kNN acc": holdout.get("knn_accuracy"),
                "held-out mAP": holdout.get("map"),
                "truth sensitivity": truth.get("sensitivity"),
                "truth specificity": truth.get("specificity"),
                "truth AUC": truth.get("auc"),
                "truth hit rate": truth.get("hit_rate"),
                "truth matching": truth.get("matching"),
                "truth score": truth.get("score"),
            }
        )
    return pd.DataFrame(rows).dropna(axis=1, how="all")


ROTATION_NOTE = (
    "Leave-one-batch-out rotation (train.rotate_holdout): every batch was held out in turn, one "
    "model per method, seed and held-out batch, each scored on the batch it never saw. A "
    "trained row of the ranking averages its runs (its seeds column counts seeds x held-out "
    "batches), its ± sd is over them, and each held-out difference's interval resamples the "
    "held-out batches as well as their wells: an interval over batches. Below, per row: the "
    "generalisation score on each held-out batch (mean over seeds), its mean ± sd over batches "
    "and the 95 % t-interval of that mean over batches. A source not trained here "
    "(CellProfiler, a frozen model, an external table) is scored the same way: each batch "
    "held out in turn, its wells retrieved from the other batches'."
)


def _mean_sd(values: pd.Series) -> str:
    values = values.dropna()
    sd = f" ± {values.std(ddof=1):.3f}" if len(values) > 1 else ""
    return f"{values.mean():.3f}{sd}" if len(values) else "n/a"


def _interval(values: pd.Series) -> str:
    """The 95 % t-interval of the mean of ``values`` (one per held-out batch)."""
    values = values.dropna()
    if len(values) < 2:
        return "n/a"
    from scipy import stats  # here: importing it was most of every report job's start-up

    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return f"[{values.mean() - half:.3f}, {values.mean() + half:.3f}]"


def _fold_runs(metrics: dict) -> list[dict]:
    """One row per held-out batch of a run: a rotated model's run is one; a source not trained
    here, scored with every batch held out in turn, has one per batch (its holdout's folds)."""
    row = {"method": metrics["method"], "correction": metrics["correction"]}
    holdout = metrics.get("holdout", {})
    if metrics.get("fold"):
        folds = {metrics["fold"]: {**holdout, "score": metrics["scores"].get("generalisation")}}
    else:
        folds = holdout.get("folds", {})
    return [
        {
            **row,
            "fold": batch,
            "generalisation": fold.get("score"),
            "held-out kNN acc": fold.get("knn_accuracy"),
            "held-out mAP": fold.get("map"),
        }
        for batch, fold in folds.items()
    ]


def rotation_table(entries: list[dict]) -> pd.DataFrame:
    """Per method x correction scored with every batch held out in turn: its generalisation
    score on each held-out batch (mean over seeds), mean ± sd and 95 % interval over batches,
    held-out kNN accuracy and mAP as mean ± sd over batches; best first; empty without
    rotation."""
    runs = pd.DataFrame([run for entry in entries for run in _fold_runs(entry["metrics"])])
    if runs.empty:
        return runs
    rows = []
    for (method, correction), mine in runs.groupby(["method", "correction"], sort=False):
        batches = mine.groupby("fold", sort=True).mean(numeric_only=True).astype(float)
        score = batches["generalisation"]
        rows.append(
            {
                "method": method,
                "correction": correction,
                "runs": len(mine),
                **{f"held out {batch}": value for batch, value in score.items()},
                "generalisation": _mean_sd(score),
                "95 % interval over batches": _interval(score),
                "held-out kNN acc": _mean_sd(batches["held-out kNN acc"]),
                "held-out mAP": _mean_sd(batches["held-out mAP"]),
                "mean": score.mean(),
            }
        )
    table = pd.DataFrame(rows).sort_values("mean", ascending=False, na_position="last")
    return table.drop(columns="mean").reset_index(drop=True)


def rotation_section(entries: list[dict]) -> list[str]:
    """The report's statement that batches were held out in turn, and their table (nothing
    without rotation)."""
    table = rotation_table(entries)
    if table.empty:
        return []
    return [
        "<h3>Every batch held out in turn</h3>",
        f"<p class='note'>{html.escape(ROTATION_NOTE)}</p>",
        html_table(table, "rotation", sortable=True),
    ]


def training_table(
    training_logs: dict[str, str], cards: dict[str, str] | None = None, frozen=()
) -> pd.DataFrame:
    """Per model: last epoch of its training log (accuracy on training and held-out batches)
    and, from its card (model.json), what it was trained on and where; ``frozen``: the sources
    whose model was trained in another run."""
    cards = cards or {}
    rows = []
    for source in dict.fromkeys([*training_logs, *cards]):
        row = {"source": source, "model": "frozen" if source in frozen else "trained here"}
        if source in training_logs:
            last = pd.read_csv(training_logs[source], sep="\t").iloc[-1]
            row.update(
                {
                    "epochs": int(last["epoch"]),
                    "train acc": float(last["train_acc"]),
                    "held-out acc": None
                    if pd.isna(last["holdout_acc"])
                    else float(last["holdout_acc"]),
                    "crops/s": float(last["crops_per_s"]),
                }
            )
        if source in cards:
            card = json.loads(Path(cards[source]).read_text())
            row.update(
                {
                    "trained on": f"{len(card['training_plates'])} plates of "
                    f"{', '.join(card['training_batches'])}",
                    "held out": ", ".join(card["holdout_batches"]) or "none",
                    "input scaling": card["input_scaling"],
                    "trained in": card["trained_in"],
                    "code": card["code"],
                }
            )
        rows.append(row)
    return pd.DataFrame(rows)


# worst -> middle -> best: light orange, white, light blue (a diverging scale that readers
# without red-green vision read the same way, light enough for black text)
WORST, MIDDLE, BEST = (253, 174, 97), (247, 247, 247), (146, 197, 222)
# ranking columns coloured from worst to best; True: higher is better
SHADED = {
    "overall": True,
    "generalisation": True,
    "batch": True,
    "bio": True,
    "activity": True,
    "held-out kNN acc": True,
    "held-out mAP": True,
    "batch acc": False,
}
# over-correction flag (debatch.evaluate.compare.overcorrection) -> the column it discredits:
# that cell is marked and coloured as the worst, never as good
FLAGGED = {
    "batch acc": "batch acc below chance",
    "bio": "replicates pulled apart",
    "generalisation": "held-out below uncorrected",
}


def shade(fraction: float) -> str:
    """CSS colour of a score placed at ``fraction`` between the worst (0) and the best (1)."""
    low, high, t = (
        (WORST, MIDDLE, 2 * fraction) if fraction < 0.5 else (MIDDLE, BEST, 2 * fraction - 1)
    )
    return "#" + "".join(f"{round(a + (b - a) * t):02x}" for a, b in zip(low, high))


def score_shades(table: pd.DataFrame) -> dict[str, list[str | None]]:
    """Per SHADED column of a ranking table, each row's colour, scaled within the column. Batch
    accuracy is best at chance (below chance is flagged); a flagged cell is the worst colour."""
    shades = {}
    for column, higher_is_better in SHADED.items():
        values = pd.to_numeric(table[column], errors="coerce")
        if column == "batch acc":
            values = values.clip(lower=pd.to_numeric(table["chance"], errors="coerce"))
        low, high = values.min(), values.max()
        if not high > low:
            continue
        fraction = (values - low) / (high - low)
        fraction = fraction if higher_is_better else 1 - fraction
        if column in FLAGGED:
            flagged = table["flags"].str.contains(FLAGGED[column], regex=False)
            fraction = fraction.where(~flagged, 0.0)
        shades[column] = [None if pd.isna(f) else shade(float(f)) for f in fraction]
    return shades


def html_table(
    table: pd.DataFrame,
    table_id: str,
    shades: dict[str, list[str | None]] | None = None,
    sortable: bool = False,
    markup: tuple[str, ...] = (),
) -> str:
    """An HTML table; ``shades`` colours the cells of some columns (column -> colour per row);
    ``sortable``: a click on a header sorts by its column (SORT_SCRIPT); ``markup``: columns
    whose cells are HTML written by this module (links), every other cell is escaped."""
    shades = shades or {}
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)

    def cell(value, colour, raw):
        style = f" style='background:{colour}'" if colour else ""
        kind = " class='text'" if isinstance(value, str) else ""
        return f"<td{kind}{style}>{value if raw else _fmt(value)}</td>"

    raw = [column in markup for column in table.columns]
    rows = []
    for index, row in enumerate(table.itertuples(index=False)):
        colours = [shades.get(column, [None] * len(table))[index] for column in table.columns]
        cells = "".join(cell(v, c, r) for v, c, r in zip(row, colours, raw))
        rows.append(f"<tr>{cells}</tr>")
    kind = " class='sortable'" if sortable else ""
    return (
        f"<table id='{table_id}'{kind}><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def embed_png(path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(Path(path).name)}">'


def download_link(name: str, what: str) -> str:
    """A link to a TSV written beside the page."""
    return (
        f"<p class='note'><a href='{quote(name)}' download>Download {html.escape(what)} "
        f"({html.escape(name)}, tab-separated)</a>; click a column header to sort.</p>"
    )


class Contents:
    """The page's sections: each ``heading`` gets a unique id and a line in the table of
    contents (level 2 only: sections, not their parts)."""

    def __init__(self):
        self.entries: list[tuple[str, str]] = []
        self.ids: set[str] = set()

    def heading(self, level: int, text: str, key: str | None = None) -> str:
        base = "section-" + (re.sub(r"[^a-z0-9]+", "-", (key or text).lower()).strip("-") or "x")
        anchor, n = base, 1
        while anchor in self.ids:
            n += 1
            anchor = f"{base}-{n}"
        self.ids.add(anchor)
        if level == 2:
            self.entries.append((anchor, text))
        return f"<h{level} id='{anchor}'>{html.escape(text)}</h{level}>"

    def html(self) -> str:
        items = "".join(
            f"<li><a href='#{anchor}'>{html.escape(text)}</a></li>" for anchor, text in self.entries
        )
        return f"<nav class='toc' id='contents'><b>Contents</b><ol>{items}</ol></nav>"


def figure(path, caption: str) -> str:
    return f"<figure>{embed_png(path)}<figcaption>{html.escape(caption)}</figcaption></figure>"
