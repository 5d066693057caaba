"""Snakemake script: the self-contained HTML report."""

import json

from debatch.io import write_text
from debatch.report import render
from debatch.runlog import setup_logging

log = setup_logging(snakemake.log[0])
entries = []
for metrics_path, figure in zip(snakemake.input.metrics, snakemake.input.figures):
    with open(metrics_path) as handle:
        metrics = json.load(handle)
    entries.append({"method": metrics["method"], "correction": metrics["correction"],
                    "metrics": metrics, "figure": figure})
qc = [(f"Illumination functions, {path.rsplit('/', 1)[-1].removesuffix('.png')}", path)
      for path in snakemake.input.illum]
html = render(entries, snakemake.params.report.get("title", "debatch report"), qc,
              training_logs=dict(zip(snakemake.params.methods, snakemake.input.training_logs)))
write_text(html, snakemake.output[0])
log.info("report written: %s", snakemake.output[0])
