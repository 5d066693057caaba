"""Snakemake script: crops of the cells that pass QC on one shard of a plate."""

import numpy as np
import pandas as pd

from debatch.crops import select_cells, write_plate_crops
from debatch.io import write_parquet
from debatch.runlog import setup_logging
from debatch.shards import SITE_ORDER, shard_sites

log = setup_logging(snakemake.log[0])
params = snakemake.params
with np.load(snakemake.input.illum) as stored:
    illum = {channel: stored[channel] for channel in params.channels}
manifest = shard_sites(pd.read_parquet(snakemake.input.manifest), params.shards,
                       int(snakemake.wildcards.shard))
cells, counts = select_cells(pd.read_parquet(snakemake.input.cells),
                             pd.read_parquet(snakemake.input.qc), params.crops)
sites = pd.MultiIndex.from_frame(manifest[SITE_ORDER])
mine = pd.MultiIndex.from_frame(cells[SITE_ORDER]).isin(sites)
log.info("plate: %d cells, %d left out on sites that failed QC, %d border cells left out; "
         "this shard: %d sites, %d cells", counts["cells"], counts["failed_qc"], counts["border"],
         len(manifest), int(mine.sum()))
table = write_plate_crops(cells[mine].reset_index(drop=True), manifest, params.channels, illum,
                          snakemake.output.crops, params.crops, threads=snakemake.threads)
write_parquet(table, snakemake.output.table)
