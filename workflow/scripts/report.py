"""Snakemake script: the self-contained HTML report and its ranking table."""

import json

import pandas as pd

from debatch.core.io import atomic_path, write_text
from debatch.core.logs import setup_logging
from debatch.report.html import ranking_table, render
from debatch.segment.qc import qc_warnings

log = setup_logging(snakemake.log[0])
entries = []
for metrics_path, figure in zip(snakemake.input.metrics, snakemake.input.figures):
    with open(metrics_path) as handle:
        metrics = json.load(handle)
    entries.append({"correction": metrics["correction"], "metrics": metrics, "figure": figure})
qc = [
    (
        "Cells per well on every plate (a QC value: density differs by batch).",
        snakemake.input.cells_per_well,
    )
]
for plate, heatmap, overlay, illum in zip(
    snakemake.params.plates,
    snakemake.input.qc_heatmaps,
    snakemake.input.qc_overlays,
    snakemake.input.illum,
):
    qc += [
        (f"{plate}: cell count and focus per site (failed QC sites marked).", heatmap),
        (f"{plate}: segmentation overlays (nuclei and cell outlines).", overlay),
        (f"{plate}: illumination functions.", illum),
    ]
sources = snakemake.params.sources
sites = pd.concat([pd.read_parquet(path) for path in snakemake.input.qc_tables])
warnings = qc_warnings(sites, {"concentration_share": snakemake.params.concentration_share})
for warning in warnings:
    log.warning(warning)
html = render(
    entries,
    snakemake.params.report,
    qc,
    training_logs=dict(zip(snakemake.params.models, snakemake.input.training_logs)),
    source_figures=dict(zip(sources, snakemake.input.metric_bars)),
    plates=snakemake.params.plates,
    warnings=warnings,
    gallery=snakemake.input.gallery,
)
with atomic_path(snakemake.output.ranking) as tmp:
    ranking_table(entries, snakemake.params.report).to_csv(
        tmp, sep="\t", index=False, float_format="%.4f"
    )
write_text(html, snakemake.output.html)
log.info("report written: %s", snakemake.output.html)
