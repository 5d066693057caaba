"""Snakemake script: segment the sites of one shard of a plate (cells, site QC measures, masks)."""

import numpy as np
import pandas as pd

from debatch.io import write_parquet
from debatch.runlog import setup_logging
from debatch.shards import segment_shard

log = setup_logging(snakemake.log[0])
params = snakemake.params
manifest = pd.read_parquet(snakemake.input.manifest)
with np.load(snakemake.input.illum) as stored:
    illum = {channel: stored[channel] for channel in params.channels}
cells, sites = segment_shard(manifest, params.shards, int(snakemake.wildcards.shard),
                             params.channels, illum, params.nuclei_channel, params.cell_channel,
                             params.segment, snakemake.output.masks, threads=snakemake.threads,
                             log=log.info)
write_parquet(cells, snakemake.output.cells)
write_parquet(sites, snakemake.output.sites)
