"""Snakemake script: metrics + PCA figure of one method x correction."""

from pathlib import Path

import pandas as pd

from debatch.diagnostics import compute_metrics, read_truth
from debatch.figures import plot_pca
from debatch.io import atomic_path, write_json
from debatch.runlog import setup_logging

setup_logging(snakemake.log[0])
wells = pd.read_parquet(snakemake.input.wells)
method, correction = snakemake.wildcards.method, snakemake.wildcards.correction
truth = read_truth([Path(d) / "treatments.tsv" for d in snakemake.input.truth]) if snakemake.input.truth else None
metrics = compute_metrics(wells, snakemake.params.diagnostics, snakemake.params.holdout_batches, truth)
write_json({"method": method, "correction": correction, **metrics}, snakemake.output.metrics)
with atomic_path(snakemake.output.figure) as tmp:
    plot_pca(wells, f"well profiles: {method} / {correction}", tmp)
