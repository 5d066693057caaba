"""Snakemake script: crops of every cell of one plate."""

import numpy as np
import pandas as pd

from debatch.crops import write_plate_crops
from debatch.io import write_parquet
from debatch.runlog import setup_logging

setup_logging(snakemake.log[0])
channels = snakemake.params.channels
with np.load(snakemake.input.illum) as stored:
    illum = {channel: stored[channel] for channel in channels}
table = write_plate_crops(pd.read_parquet(snakemake.input.cells), pd.read_parquet(snakemake.input.manifest),
                          channels, illum, snakemake.output.crops, snakemake.params.crops,
                          threads=snakemake.threads)
write_parquet(table, snakemake.output.table)
