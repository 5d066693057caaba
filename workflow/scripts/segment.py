"""Snakemake script: segment a plate's sites, or one shard of them (cells, site QC measures,
masks)."""

import pandas as pd

from debatch.core.images import read_illum
from debatch.core.io import write_parquet
from debatch.core.logs import setup_logging
from debatch.core.provenance import job_provenance
from debatch.segment.gather import check_plate
from debatch.segment.shards import segment_shard
from debatch.settings import Channels

log = setup_logging(snakemake.log[0])
PROVENANCE = job_provenance(snakemake.rule, snakemake.params, snakemake.input)
params = snakemake.params
channels = Channels(**params.channels)
cells, sites = segment_shard(
    pd.read_parquet(snakemake.input.manifest),
    params.shards,
    int(snakemake.wildcards.get("shard", 0)),  # no shard wildcard: the job is the whole plate
    channels,
    read_illum(snakemake.input.illum, channels.names),
    params.segment,
    snakemake.output.masks,
    threads=snakemake.threads,
)
if params.shards == 1:
    check_plate(cells, sites, snakemake.wildcards.plate, log)
write_parquet(cells, snakemake.output.cells, PROVENANCE)
write_parquet(sites, snakemake.output.sites, PROVENANCE)
