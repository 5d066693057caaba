"""Snakemake script: per-plate well aggregation + negcon normalisation of one method's embeddings."""

import pandas as pd

from debatch.io import write_parquet
from debatch.profiles import build_profiles
from debatch.runlog import setup_logging

setup_logging(snakemake.log[0])
plate_tables = (pd.read_parquet(path) for path in snakemake.input)  # one plate in memory at a time
write_parquet(build_profiles(plate_tables, snakemake.params.profiles), snakemake.output[0])
