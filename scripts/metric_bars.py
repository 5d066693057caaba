"""Snakemake script: bar chart of one method's metric scores, one bar per correction."""

import json

from debatch.figures import plot_metric_bars
from debatch.io import atomic_path
from debatch.runlog import setup_logging

setup_logging(snakemake.log[0])
entries = []
for path in snakemake.input:
    with open(path) as handle:
        metrics = json.load(handle)
    entries.append({"correction": metrics["correction"], "metrics": metrics})
with atomic_path(snakemake.output[0]) as tmp:
    plot_metric_bars(entries, f"metric scores: {snakemake.wildcards.method}", tmp)
