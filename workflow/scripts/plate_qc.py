"""Snakemake script: cells per well of every plate, from the crops tables (the cells analysed)."""

import pandas as pd

from debatch.core.io import atomic_path
from debatch.core.logs import setup_logging
from debatch.report.figures import plot_cells_per_well
from debatch.settings import BATCH, PLATE, WELL

setup_logging(snakemake.log[0])
cells = pd.concat(
    [pd.read_parquet(path, columns=[PLATE, BATCH, WELL]) for path in snakemake.input],
    ignore_index=True,
)
with atomic_path(snakemake.output[0]) as tmp:
    plot_cells_per_well(cells, tmp)
