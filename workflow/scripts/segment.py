"""Snakemake script: segment the sites of one shard of a plate (cells, site QC measures, masks)."""

import pandas as pd

from debatch.core.images import read_illum
from debatch.core.io import write_parquet
from debatch.core.logs import setup_logging
from debatch.core.provenance import job_provenance
from debatch.segment.shards import segment_shard
from debatch.settings import Channels

setup_logging(snakemake.log[0])
PROVENANCE = job_provenance(snakemake.rule, snakemake.params, snakemake.input)
params = snakemake.params
channels = Channels(**params.channels)
cells, sites = segment_shard(
    pd.read_parquet(snakemake.input.manifest),
    params.shards,
    int(snakemake.wildcards.shard),
    channels,
    read_illum(snakemake.input.illum, channels.names),
    params.segment,
    snakemake.output.masks,
    threads=snakemake.threads,
)
write_parquet(cells, snakemake.output.cells, PROVENANCE)
write_parquet(sites, snakemake.output.sites, PROVENANCE)
