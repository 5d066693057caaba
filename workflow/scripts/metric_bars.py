"""Snakemake script: bar chart of one method's metric scores, one bar per correction."""

import json

from debatch.core.io import atomic_path
from debatch.core.logs import setup_logging
from debatch.report.figures import plot_metric_bars

setup_logging(snakemake.log[0])
entries = []
for path in snakemake.input:
    with open(path) as handle:
        metrics = json.load(handle)
    entries.append({"correction": metrics["correction"], "metrics": metrics})
with atomic_path(snakemake.output[0]) as tmp:
    plot_metric_bars(entries, f"metric scores: {snakemake.wildcards.source}", tmp)
