"""Snakemake script: one source's UMAP of well profiles, one panel pair per correction."""

import pandas as pd

from debatch.core.io import atomic_path
from debatch.core.logs import setup_logging
from debatch.report.figures import plot_umap

setup_logging(snakemake.log[0])
profiles = {
    correction: pd.read_parquet(path)
    for correction, path in zip(snakemake.params.corrections, snakemake.input.wells)
}
with atomic_path(snakemake.output[0]) as tmp:
    plot_umap(
        profiles,
        f"UMAP of well profiles: {snakemake.wildcards.source}",
        tmp,
        snakemake.params.seed,
        snakemake.params.max_wells,
    )
