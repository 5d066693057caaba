"""Snakemake script: CellProfiler features of the cells of a plate, or of one shard of its sites."""

import pandas as pd

from debatch.core.images import read_illum
from debatch.core.logs import setup_logging
from debatch.core.provenance import job_provenance
from debatch.features.plate import measure_shard

log = setup_logging(snakemake.log[0])
PROVENANCE = job_provenance(snakemake.rule, snakemake.params, snakemake.input)
params = snakemake.params
shape = measure_shard(
    pd.read_parquet(snakemake.input.cells),
    pd.read_parquet(snakemake.input.manifest),
    params.shards,
    int(snakemake.wildcards.get("shard", 0)),  # no shard wildcard: the job is the whole plate
    params.channels,
    read_illum(snakemake.input.illum, params.channels),
    snakemake.input.masks,
    snakemake.output[0],
    params.features,
    threads=snakemake.threads,
    provenance=PROVENANCE,
)
if params.shards == 1:
    log.info("plate %s: features of %d cells, %d columns", snakemake.wildcards.plate, *shape)
