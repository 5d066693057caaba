"""Snakemake script: the self-contained HTML report, its ranking and hit list, plate figures."""

import json
from pathlib import Path

import pandas as pd

from debatch.core.logs import setup_logging
from debatch.report.html import PlateQC, write_report
from debatch.segment.qc import qc_warnings

log = setup_logging(snakemake.log[0])
entries = []
for metrics_path, figure in zip(snakemake.input.metrics, snakemake.input.figures):
    with open(metrics_path) as handle:
        metrics = json.load(handle)
    entries.append({"correction": metrics["correction"], "metrics": metrics, "figure": figure})
plates = snakemake.params.plates
sites = pd.concat([pd.read_parquet(path) for path in snakemake.input.qc_tables])
figures = zip(snakemake.input.qc_heatmaps, snakemake.input.qc_overlays, snakemake.input.illum)
plate_qc = PlateQC(
    sites,
    {
        plate: {"heatmaps": heatmaps, "overlays": overlays, "illum": illum}
        for plate, (heatmaps, overlays, illum) in zip(plates, figures)
    },
    snakemake.input.cells_per_well,
)
warnings = qc_warnings(sites, {"concentration_share": snakemake.params.concentration_share})
for warning in warnings:
    log.warning(warning)
sources = snakemake.params.sources
index = write_report(
    Path(snakemake.output.html).parent,
    entries,
    snakemake.params.report,
    plate_qc=plate_qc,
    training_logs=dict(zip(snakemake.params.logged, snakemake.input.training_logs)),
    model_cards=dict(zip(snakemake.params.carded, snakemake.input.model_cards)),
    frozen=snakemake.params.frozen,
    source_figures=dict(zip(sources, snakemake.input.metric_bars)),
    umap_figures=dict(zip(sources, snakemake.input.umap)),
    plates=plates,
    warnings=warnings,
    gallery=snakemake.input.gallery,
    config=snakemake.params.config,
)
log.info("report written: %s (%.1f MB)", index, index.stat().st_size / 1e6)
