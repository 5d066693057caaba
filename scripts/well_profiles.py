"""Snakemake script: well aggregation + per-plate negcon normalisation of one method's cells."""

from debatch.core.io import write_parquet
from debatch.core.logs import setup_logging
from debatch.profiles.wells import well_profiles

setup_logging(snakemake.log[0])
# well_profiles reads one plate (and a block of feature columns) at a time
write_parquet(
    well_profiles(snakemake.input, snakemake.params.profiles, snakemake.threads),
    snakemake.output[0],
)
