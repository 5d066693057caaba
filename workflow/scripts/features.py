"""Snakemake script: CellProfiler features of the cells of one shard of a plate."""

import pandas as pd

from debatch.core.images import read_illum
from debatch.core.io import write_parquet
from debatch.core.logs import setup_logging
from debatch.core.provenance import job_provenance
from debatch.features.plate import measure_shard

setup_logging(snakemake.log[0])
PROVENANCE = job_provenance(snakemake.rule, snakemake.params, snakemake.input)
params = snakemake.params
table = measure_shard(
    pd.read_parquet(snakemake.input.cells),
    pd.read_parquet(snakemake.input.manifest),
    params.shards,
    int(snakemake.wildcards.shard),
    params.channels,
    read_illum(snakemake.input.illum, params.channels),
    snakemake.input.masks,
    params.features,
    threads=snakemake.threads,
)
write_parquet(table, snakemake.output[0], PROVENANCE)
