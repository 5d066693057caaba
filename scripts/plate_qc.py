"""Snakemake script: per-plate heatmaps of cells per well (from the well profiles' cell counts)."""

import pandas as pd

from debatch.figures import plot_plate_heatmaps
from debatch.io import atomic_path
from debatch.runlog import setup_logging

setup_logging(snakemake.log[0])
wells = pd.read_parquet(snakemake.input[0], columns=["Metadata_Plate", "Metadata_Batch", "Metadata_Well",
                                                     "Metadata_Count_Cells"])
with atomic_path(snakemake.output[0]) as tmp:
    plot_plate_heatmaps(wells, tmp)
