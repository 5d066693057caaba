"""Snakemake script: metrics + PCA figure of one method x correction."""

import pandas as pd

from debatch.diagnostics import compute_metrics, plot_pca
from debatch.io import atomic_path, write_json
from debatch.runlog import setup_logging

setup_logging(snakemake.log[0])
wells = pd.read_parquet(snakemake.input[0])
name = f"{snakemake.wildcards.method} / {snakemake.wildcards.correction}"
write_json({"method": snakemake.wildcards.method, "correction": snakemake.wildcards.correction,
            **compute_metrics(wells, snakemake.params.diagnostics)}, snakemake.output.metrics)
with atomic_path(snakemake.output.figure) as tmp:
    plot_pca(wells, f"well profiles: {name}", tmp)
