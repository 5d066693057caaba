"""Snakemake script: per-plate well aggregation + negcon normalisation of one method's embeddings."""

from debatch.io import write_parquet
from debatch.profiles import build_profiles
from debatch.runlog import setup_logging

setup_logging(snakemake.log[0])
# build_profiles reads one plate (and a block of feature columns) at a time
write_parquet(build_profiles(snakemake.input, snakemake.params.profiles, snakemake.threads), snakemake.output[0])
