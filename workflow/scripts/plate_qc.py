"""Snakemake script: cells per well of every plate, from the crops tables (the cells analysed;
a table of whole sites, crops.unit site, gives each site's cells)."""

import pandas as pd
import pyarrow.parquet as pq

from debatch.core.io import atomic_path
from debatch.core.logs import setup_logging
from debatch.report.figures import plot_cells_per_well
from debatch.settings import BATCH, PLATE, SITE_CELLS_META, WELL

setup_logging(snakemake.log[0])


def read_table(path):
    names = pq.ParquetFile(path).schema_arrow.names
    columns = [PLATE, BATCH, WELL, *([SITE_CELLS_META] if SITE_CELLS_META in names else [])]
    return pd.read_parquet(path, columns=columns)


cells = pd.concat([read_table(path) for path in snakemake.input], ignore_index=True)
with atomic_path(snakemake.output[0]) as tmp:
    plot_cells_per_well(cells, tmp)
