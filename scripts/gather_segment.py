"""Snakemake script: a plate's cells, sites and masks from its segmentation shards."""

import numpy as np

from debatch.io import write_parquet
from debatch.runlog import setup_logging
from debatch.shards import gather_cells, gather_npz, gather_tables

log = setup_logging(snakemake.log[0])
sites = gather_tables(snakemake.input.sites)
cells = gather_cells(snakemake.input.cells, len(sites))
arrays = gather_npz(snakemake.input.masks, snakemake.output.masks)
write_parquet(sites, snakemake.output.sites)
write_parquet(cells, snakemake.output.cells)
counts = sites["Count_Cells"]
log.info("plate %s: %d shard(s), %d sites, %d cells (per site min %d, median %g, max %d), "
         "%d label images", snakemake.wildcards.plate, len(snakemake.input.cells), len(sites),
         len(cells), counts.min(), np.median(counts), counts.max(), arrays)
unpaired = sites[["Count_UnpairedNuclei", "Count_UnpairedCells"]].sum()
if unpaired.any():
    log.info("cellpose objects left out for want of a partner: %d nuclei, %d cells",
             unpaired["Count_UnpairedNuclei"], unpaired["Count_UnpairedCells"])
