"""Snakemake script: metrics + PCA figure of one method x correction."""

from pathlib import Path

import pandas as pd

from debatch.core.io import atomic_path, write_json
from debatch.core.logs import setup_logging
from debatch.evaluate.diagnostics import compute_metrics, read_truth
from debatch.report.figures import plot_pca

setup_logging(snakemake.log[0])
wells = pd.read_parquet(snakemake.input.wells)
method, correction = snakemake.wildcards.method, snakemake.wildcards.correction
truth_files = [Path(folder) / "treatments.tsv" for folder in snakemake.input.truth]
truth = read_truth(truth_files) if truth_files else None
metrics = compute_metrics(
    wells, snakemake.params.diagnostics, snakemake.params.holdout_batches, truth
)
write_json({"method": method, "correction": correction, **metrics}, snakemake.output.metrics)
with atomic_path(snakemake.output.figure) as tmp:
    plot_pca(wells, f"well profiles: {method} / {correction}", tmp)
