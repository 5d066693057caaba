"""Snakemake script: a plate's cells, sites and masks from its segmentation shards."""

from debatch.core.io import write_parquet
from debatch.core.logs import setup_logging
from debatch.core.provenance import job_provenance
from debatch.core.shards import gather_npz, gather_tables
from debatch.segment.gather import check_plate

log = setup_logging(snakemake.log[0])
PROVENANCE = job_provenance(
    snakemake.rule, snakemake.params, snakemake.input, made_from=snakemake.input.cells[0]
)
sites = gather_tables(snakemake.input.sites)
cells = gather_tables(snakemake.input.cells)
check_plate(cells, sites, snakemake.wildcards.plate, log)
arrays = gather_npz(snakemake.input.masks, snakemake.output.masks)
write_parquet(sites, snakemake.output.sites, PROVENANCE)
write_parquet(cells, snakemake.output.cells, PROVENANCE)
log.info("%d shards gathered, %d label images", len(snakemake.input.cells), arrays)
