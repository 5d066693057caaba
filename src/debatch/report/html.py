"""The HTML report: one self-contained page comparing every method x correction over seeds.

Figures are embedded as base64 PNGs so the file can be mailed or opened from a cluster's
scratch folder without a server.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import pandas as pd

from debatch.evaluate import compare, verdict
from debatch.evaluate.diagnostics import BATCH_METRICS, BIO_METRICS
from debatch.settings import REPORT

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em;
box-sizing:border-box}table{border-collapse:collapse;margin:1em 0;font-size:85%}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}
th{background:#f0f0f0}td.text{text-align:left}img{max-width:100%}
figure{margin:1em 0}figcaption{color:#555;font-size:90%}p.note{color:#444;font-size:92%}
p.verdict{font-size:110%;background:#f4f7fb;border-left:4px solid #1f77b4;padding:.6em 1em}
p.warning{background:#fff4e5;border-left:4px solid #d9822b;padding:.6em 1em}
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


def embed_png(path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(Path(path).name)}">'


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


def training_table(training_logs: dict[str, str]) -> pd.DataFrame:
    """Last epoch of each source's training log (accuracy on training and held-out batches)."""
    rows = []
    for source, path in training_logs.items():
        last = pd.read_csv(path, sep="\t").iloc[-1]
        rows.append(
            {
                "source": source,
                "epochs": int(last["epoch"]),
                "train acc": float(last["train_acc"]),
                "held-out acc": None
                if pd.isna(last["holdout_acc"])
                else float(last["holdout_acc"]),
                "crops/s": float(last["crops_per_s"]),
            }
        )
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
    table: pd.DataFrame, table_id: str, shades: dict[str, list[str | None]] | None = None
) -> str:
    """An HTML table; ``shades`` colours the cells of some columns (column -> colour per row)."""
    shades = shades or {}
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)

    def cell(value, colour):
        style = f" style='background:{colour}'" if colour else ""
        kind = " class='text'" if isinstance(value, str) else ""
        return f"<td{kind}{style}>{_fmt(value)}</td>"

    rows = []
    for index, row in enumerate(table.itertuples(index=False)):
        colours = [shades.get(column, [None] * len(table))[index] for column in table.columns]
        rows.append("<tr>" + "".join(cell(v, c) for v, c in zip(row, colours)) + "</tr>")
    return f"<table id='{table_id}'><tr>{head}</tr>{''.join(rows)}</table>"


def _figure(path, caption: str) -> str:
    return f"<figure>{embed_png(path)}<figcaption>{html.escape(caption)}</figcaption></figure>"


RANKING_NOTE = (
    "Rows are method x correction, averaged over seeds (± sd over seeds). Overall = mean of the "
    "two jobs a screen is run for: activity (mean mAP of each treatment's wells against negcon: "
    "calling hits) and generalisation (each held-out well retrieving its treatment among the "
    "training batches' wells: mean of the chance-corrected 1-NN accuracy and the cross-batch "
    "mAP; kNN leave-one-batch-out without held-out batches). Batch and bio are the means of "
    "their metrics' [0, 1] scores (table below; docs/metrics.md), shown, not ranked on: on "
    "generated screens whose truth is known they did not follow it. A correction fitted with "
    "the held-out wells (Harmony) is marked; its held-out scores are not out of sample. The "
    "difference to each reference method (same correction) is paired by seed and held-out "
    "well; its 95 % interval is a bootstrap over the held-out wells, and it is real only when "
    "the interval excludes 0. Over-correction flags: batch prediction below chance, replicate "
    "wells pulled apart, held-out retrieval below the uncorrected row."
)

GALLERY_NOTE = (
    "Per treatment (negative controls first): random cells, then the cells nearest the "
    "treatment's median cell by the segmentation's own measurements (the same cells for every "
    "method); one contrast per channel over every cell shown."
)

GENERALISATION_NOTE = (
    "Held-out: wells of batches never seen in training, each retrieved among the training "
    "batches' wells (1-NN accuracy, cross-batch mAP); wells of a treatment the training batches "
    "lack are left out and counted. Truth (generated screens only): sensitivity = truly active "
    "treatments called active (retrieved by mAP), specificity = truly inactive ones called "
    "inactive, AUC = mAP ranks active above inactive; hit rate = truly active treatments whose "
    "mAP beats all but 20 % of the truly inactive ones, matching = held-out wells of truly "
    "active treatments matched to their treatment (1-NN and AP), truth score = their mean "
    "(docs/metrics.md). The verdict above never uses the truth: these columns check it."
)


def _left_out(entries: list[dict], plates: list[str] | None) -> list[str]:
    """A warning naming the plates no profile holds (qc.plate_without_negcon: drop)."""
    profiled = {p for entry in entries for p in entry["metrics"].get("plates", [])}
    missing = sorted(set(plates or []) - profiled) if profiled else []
    if not missing:
        return []
    text = (
        f"Left out of every profile: plate(s) {', '.join(missing)}. Their negcon wells kept no "
        "cell after QC, so they could not be normalised (qc.plate_without_negcon: drop); see "
        "the QC log of each plate."
    )
    return [f"<p class='warning'><b>{html.escape(text)}</b></p>"]


def headline(table: pd.DataFrame, entries: list[dict], params: dict | None = None) -> list[str]:
    """The report's first paragraph, from the ranking's numbers: what to use and how sure
    that is, how much batch it leaves, how many treatments it retrieves."""
    report = REPORT.merge(params)
    return verdict.headline(table, entries, report["bootstrap"], report["seed"])


def _ranking_section(
    entries: list[dict], training_logs: dict[str, str] | None, params: dict | None
) -> list[str]:
    """The verdict, the ranking, every metric's score, held-out / truth and training."""
    report = REPORT.merge(params)
    table = ranking_table(entries, report)
    parts = [
        f"<p class='verdict'>{html.escape(' '.join(headline(table, entries, report)))}</p>",
        "<h2>Ranking: method x correction</h2>",
        f"<p class='note'>{html.escape(RANKING_NOTE)} Colours run from the worst (orange) to "
        "the best (blue) value of each column; ⚠ marks a value an over-correction flag "
        "discredits (shown as the worst).</p>",
        html_table(ranking_display(table), "ranking", score_shades(table)),
        "<h3>Every metric's score, per seed</h3>",
        html_table(scores_table(entries), "scores"),
        "<h3>Raw values</h3><p class='note'>Batch acc: cross-validated accuracy of "
        "predicting the batch (lower is better); LISI values are effective numbers of "
        "batches / treatments around a well.</p>",
        html_table(values_table(entries), "values"),
    ]
    generalisation = generalisation_table(entries)
    if generalisation.shape[1] > 2:
        parts += [
            "<h3>Held-out batches and ground truth</h3>",
            f"<p class='note'>{html.escape(GENERALISATION_NOTE)}</p>",
            html_table(generalisation, "generalisation"),
        ]
    if training_logs:
        parts += [
            "<h2>Training</h2><p class='note'>Cell-level treatment accuracy at the last "
            "epoch; held-out batches were never seen in training.</p>",
            html_table(training_table(training_logs), "training"),
        ]
    return parts


def _source_sections(entries: list[dict], source_figures: dict[str, str] | None) -> list[str]:
    """Per source: its metric bars, then per correction its PCA and metrics.json. Figures are
    shown for each method's first seed only (further seeds' figures look alike and would
    multiply the page's size); their metrics are all here, their PNGs beside their metrics."""
    first_seed = {}
    for entry in entries:
        method, seed = entry["metrics"]["method"], entry["metrics"].get("seed")
        if seed is not None:
            first_seed[method] = min(seed, first_seed.get(method, seed))
    parts = []
    for source in dict.fromkeys(entry["metrics"]["source"] for entry in entries):
        mine = [e for e in entries if e["metrics"]["source"] == source]
        method, seed = mine[0]["metrics"]["method"], mine[0]["metrics"].get("seed")
        shown = seed is None or seed == first_seed[method]
        parts.append(f"<h2>{html.escape(source)}</h2>")
        if not shown:
            parts.append(
                f"<p class='note'>Figures of {html.escape(method)} are shown for seed "
                f"{first_seed[method]}; this seed's are in diagnostics/{html.escape(source)}/.</p>"
            )
        if shown and source_figures and source in source_figures:
            caption = f"Metric scores of {source} per correction (1 = best)."
            parts.append(_figure(source_figures[source], caption))
        for entry in mine:
            name = f"{source} / {entry['correction']}"
            caption = (
                f"PCA of well profiles ({name}), coloured by batch and by treatment (negcon grey)."
            )
            metrics = {k: v for k, v in entry["metrics"].items() if k != "holdout"}
            metrics["holdout"] = {
                k: v for k, v in entry["metrics"].get("holdout", {}).items() if k != "per_well"
            }
            text = html.escape(json.dumps(metrics, indent=2))
            parts += [
                f"<h3>{html.escape(name)}</h3>",
                *([_figure(entry["figure"], caption)] if shown else []),
                f"<details><summary>metrics.json</summary><pre>{text}</pre></details>",
            ]
    return parts


def render(
    entries: list[dict],
    params: dict | None = None,
    qc_figures: list[tuple[str, str]] = (),
    training_logs: dict[str, str] | None = None,
    source_figures: dict[str, str] | None = None,
    plates: list[str] | None = None,
    warnings: list[str] = (),
    gallery: str | None = None,
) -> str:
    """HTML text of the report.

    ``entries``: dicts with correction, metrics (metrics.json: source, method, seed, ...) and
    figure (PCA PNG path). ``params``: the ``report`` block (title, references, bootstrap, seed).
    ``qc_figures``: (caption, PNG path) pairs shown last (cell counts, illumination, ...).
    ``training_logs``: source -> training_log.tsv, summarised as a table.
    ``source_figures``: source -> metric-bars PNG, shown at the top of the source's section.
    ``plates``: every plate of the screen; those missing from the profiles are named first.
    ``warnings``: further lines shown first (e.g. QC failures concentrated in a treatment).
    ``gallery``: PNG of example cells per treatment (debatch.report.gallery), after the ranking.
    """
    title = REPORT.merge(params)["title"]
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
        *_left_out(entries, plates),
        *(f"<p class='warning'><b>{html.escape(text)}</b></p>" for text in warnings),
        *_ranking_section(entries, training_logs, params),
        *(["<h2>Cells per treatment</h2>", _figure(gallery, GALLERY_NOTE)] if gallery else []),
        *_source_sections(entries, source_figures),
    ]
    if qc_figures:
        parts.append("<h2>Quality control</h2>")
        parts += [_figure(path, caption) for caption, path in qc_figures]
    parts.append("</body></html>")
    return "\n".join(parts)
