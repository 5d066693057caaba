"""The HTML report: one self-contained page comparing every method x correction.

Figures are embedded as base64 PNGs so the file can be mailed or opened from a cluster's
scratch folder without a server.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import pandas as pd

from debatch.evaluate.diagnostics import BATCH_METRICS, BIO_METRICS

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em;
box-sizing:border-box}table{border-collapse:collapse;margin:1em 0;font-size:85%}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}
th{background:#f0f0f0}td.text{text-align:left}img{max-width:100%}
figure{margin:1em 0}figcaption{color:#555;font-size:90%}p.note{color:#444;font-size:92%}
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


def ranking_table(entries: list[dict]) -> pd.DataFrame:
    """One row per method x correction: overall, batch and bio scores, then every metric's [0, 1]
    score; best overall first (bio breaks ties and ranks single-batch screens)."""
    rows = []
    for entry in entries:
        metrics = entry["metrics"]
        scores = metrics["scores"]
        row = {
            "method": entry["method"],
            "correction": entry["correction"],
            "overall": scores["overall"],
            "batch": scores["batch"],
            "bio": scores["bio"],
        }
        for section, names in (("batch", BATCH_METRICS), ("bio", BIO_METRICS)):
            row.update({LABELS[name]: metrics[section][name]["score"] for name in names})
        rows.append(row)
    table = pd.DataFrame(rows).sort_values(
        ["overall", "bio", "method", "correction"],
        ascending=[False, False, True, True],
        na_position="last",
    )
    table.insert(0, "rank", range(1, len(table) + 1))
    return table.reset_index(drop=True)


def values_table(entries: list[dict]) -> pd.DataFrame:
    """The raw numbers behind the scores."""
    rows = []
    for entry in entries:
        batch, bio = entry["metrics"]["batch"], entry["metrics"]["bio"]
        rows.append(
            {
                "method": entry["method"],
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
                "method": entry["method"],
                "correction": entry["correction"],
                "held-out kNN acc": holdout.get("knn_accuracy"),
                "held-out mAP": holdout.get("map"),
                "truth sensitivity": truth.get("sensitivity"),
                "truth specificity": truth.get("specificity"),
                "truth AUC": truth.get("auc"),
            }
        )
    return pd.DataFrame(rows).dropna(axis=1, how="all")


def training_table(training_logs: dict[str, str]) -> pd.DataFrame:
    """Last epoch of each method's training log (accuracy on training and held-out batches)."""
    rows = []
    for method, path in training_logs.items():
        last = pd.read_csv(path, sep="\t").iloc[-1]
        rows.append(
            {
                "method": method,
                "epochs": int(last["epoch"]),
                "train acc": float(last["train_acc"]),
                "held-out acc": None
                if pd.isna(last["holdout_acc"])
                else float(last["holdout_acc"]),
                "crops/s": float(last["crops_per_s"]),
            }
        )
    return pd.DataFrame(rows)


def html_table(table: pd.DataFrame, table_id: str) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)

    def cell(value):
        return (
            f"<td class='text'>{_fmt(value)}</td>"
            if isinstance(value, str)
            else f"<td>{_fmt(value)}</td>"
        )

    body = "".join(
        "<tr>" + "".join(cell(v) for v in row) + "</tr>" for row in table.itertuples(index=False)
    )
    return f"<table id='{table_id}'><tr>{head}</tr>{body}</table>"


def _figure(path, caption: str) -> str:
    return f"<figure>{embed_png(path)}<figcaption>{html.escape(caption)}</figcaption></figure>"


RANKING_NOTE = (
    "Overall = 0.4 x batch + 0.6 x bio (Arevalo et al. 2024, Nat Commun); batch and bio are the "
    "means of their metrics' scores, each scaled to [0, 1] with 1 best: batch classifier "
    "1 - (acc - chance)/(1 - chance); silhouette batch = scib's 1 - |s| within treatments; "
    "iLISI (median - 1)/(batches - 1); PCR batch 1 - variance-weighted R² of PCs on batch; "
    "graph connectivity as is; mAP (replicates vs negcon, copairs) as is; retrieved = fraction of "
    "treatments with corrected p < threshold; cLISI (treatments - median)/(treatments - 1); "
    "silhouette treatment (s + 1)/2; kNN LOBO (acc - chance)/(1 - chance). n/a: not computable "
    "(e.g. one batch), left out of the means."
)


GENERALISATION_NOTE = (
    "Held-out: wells of batches never seen in training, predicted (kNN) from the other batches' "
    "wells, and their own replicate mAP. Truth (demo only): sensitivity = truly active "
    "treatments called active (retrieved by mAP), specificity = truly inactive ones called "
    "inactive, AUC = mAP ranks active above inactive. Not part of the overall score."
)


def _ranking_section(entries: list[dict], training_logs: dict[str, str] | None) -> list[str]:
    """The ranking, the raw values, held-out / truth scores and the training summary."""
    parts = [
        "<h2>Ranking: method x correction</h2>",
        f"<p class='note'>{html.escape(RANKING_NOTE)}</p>",
        html_table(ranking_table(entries), "ranking"),
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


def _method_sections(entries: list[dict], method_figures: dict[str, str] | None) -> list[str]:
    """Per method: its metric bars, then per correction its PCA and metrics.json."""
    parts = []
    for method in dict.fromkeys(entry["method"] for entry in entries):
        parts.append(f"<h2>Method {html.escape(method)}</h2>")
        if method_figures and method in method_figures:
            caption = f"Metric scores of {method} per correction (1 = best)."
            parts.append(_figure(method_figures[method], caption))
        for entry in (e for e in entries if e["method"] == method):
            name = f"{method} / {entry['correction']}"
            caption = (
                f"PCA of well profiles ({name}), coloured by batch and by treatment (negcon grey)."
            )
            metrics = html.escape(json.dumps(entry["metrics"], indent=2))
            parts += [
                f"<h3>{html.escape(name)}</h3>",
                _figure(entry["figure"], caption),
                f"<details><summary>metrics.json</summary><pre>{metrics}</pre></details>",
            ]
    return parts


def render(
    entries: list[dict],
    title: str,
    qc_figures: list[tuple[str, str]] = (),
    training_logs: dict[str, str] | None = None,
    method_figures: dict[str, str] | None = None,
) -> str:
    """HTML text of the report.

    ``entries``: dicts with method, correction, metrics (dict), figure (PCA PNG path).
    ``qc_figures``: (caption, PNG path) pairs shown last (cell counts, illumination, ...).
    ``training_logs``: method -> training_log.tsv, summarised as a table.
    ``method_figures``: method -> metric-bars PNG, shown at the top of the method's section.
    """
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
        *_ranking_section(entries, training_logs),
        *_method_sections(entries, method_figures),
    ]
    if qc_figures:
        parts.append("<h2>Quality control</h2>")
        parts += [_figure(path, caption) for caption, path in qc_figures]
    parts.append("</body></html>")
    return "\n".join(parts)
