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

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}
th{background:#f0f0f0}td:first-child,td:nth-child(2){text-align:left}img{max-width:100%}
figure{margin:1em 0}figcaption{color:#555;font-size:90%}
"""


def embed_png(path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(Path(path).name)}">'


def _fmt(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3f}"
    return html.escape(str(value))


def metrics_table(entries: list[dict]) -> pd.DataFrame:
    """One row per method x correction with the headline numbers, best batch removal first."""
    rows = []
    for entry in entries:
        metrics = entry["metrics"]
        classifier = metrics["batch_classifier"]
        rows.append({
            "method": entry["method"], "correction": entry["correction"],
            "batch classifier acc": classifier["accuracy"], "chance": classifier["chance"],
            "silhouette batch": metrics["silhouette_batch"],
            "silhouette treatment": metrics["silhouette_treatment"], "wells": metrics["n_wells"],
        })
    table = pd.DataFrame(rows)
    return table.sort_values(["batch classifier acc", "method"], na_position="last").reset_index(drop=True)


def training_table(training_logs: dict[str, str]) -> pd.DataFrame:
    """Last epoch of each method's training log (accuracy on training and held-out batches)."""
    rows = []
    for method, path in training_logs.items():
        last = pd.read_csv(path, sep="\t").iloc[-1]
        rows.append({"method": method, "epochs": int(last["epoch"]), "train acc": float(last["train_acc"]),
                     "held-out acc": None if pd.isna(last["holdout_acc"]) else float(last["holdout_acc"]),
                     "crops/s": float(last["crops_per_s"])})
    return pd.DataFrame(rows)


def html_table(table: pd.DataFrame, table_id: str) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>"
                   for row in table.itertuples(index=False))
    return f"<table id='{table_id}'><tr>{head}</tr>{body}</table>"


def render(entries: list[dict], title: str, qc_figures: list[tuple[str, str]] = (),
           training_logs: dict[str, str] | None = None) -> str:
    """HTML text of the report.

    ``entries``: dicts with method, correction, metrics (dict), figure (PCA PNG path).
    ``qc_figures``: (caption, PNG path) pairs shown after the comparison (illumination, ...).
    ``training_logs``: method -> training_log.tsv, summarised as a table.
    """
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
             "<h2>Method x correction</h2>",
             "<p>Batch classifier: cross-validated accuracy of predicting the batch from a well "
             "profile (lower is better; chance = majority-batch fraction). Silhouettes use cosine "
             "distance: by batch lower is better, by treatment (non-control wells) higher is better.</p>",
             html_table(metrics_table(entries), "ranking")]
    if training_logs:
        parts += ["<h2>Training</h2><p>Cell-level treatment accuracy at the last epoch; held-out "
                  "batches were never seen in training.</p>",
                  html_table(training_table(training_logs), "training")]
    for entry in entries:
        name = f"{entry['method']} / {entry['correction']}"
        parts.append(f"<h2>{html.escape(name)}</h2><figure>{embed_png(entry['figure'])}"
                     f"<figcaption>PCA of well profiles ({html.escape(name)}).</figcaption></figure>")
        parts.append(f"<details><summary>metrics.json</summary><pre>"
                     f"{html.escape(json.dumps(entry['metrics'], indent=2))}</pre></details>")
    if qc_figures:
        parts.append("<h2>Quality control</h2>")
        for caption, path in qc_figures:
            parts.append(f"<figure>{embed_png(path)}<figcaption>{html.escape(caption)}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts)
