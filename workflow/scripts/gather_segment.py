"""Snakemake script: a plate's cells, sites and masks from its segmentation shards."""

from debatch.core.io import write_parquet
from debatch.core.logs import setup_logging
from debatch.core.provenance import job_provenance
from debatch.core.shards import gather_npz, gather_tables
from debatch.segment.gather import gather_cells, plate_summary, small_cells_warning

log = setup_logging(snakemake.log[0])
PROVENANCE = job_provenance(
    snakemake.rule, snakemake.params, snakemake.input, made_from=snakemake.input.cells[0]
)
sites = gather_tables(snakemake.input.sites)
cells = gather_cells(snakemake.input.cells, len(sites), snakemake.wildcards.plate)
arrays = gather_npz(snakemake.input.masks, snakemake.output.masks)
write_parquet(sites, snakemake.output.sites, PROVENANCE)
write_parquet(cells, snakemake.output.cells, PROVENANCE)
log.info(
    "plate %s, %d shard(s): %s; %d label images",
    snakemake.wildcards.plate,
    len(snakemake.input.cells),
    plate_summary(sites),
    arrays,
)
warning = small_cells_warning(cells, snakemake.wildcards.plate)
if warning:
    log.warning(warning)
unpaired = sites[["Count_UnpairedNuclei", "Count_UnpairedCells"]].sum()
if unpaired.any():
    log.info(
        "cellpose objects left out for want of a partner: %d nuclei, %d cells",
        unpaired["Count_UnpairedNuclei"],
        unpaired["Count_UnpairedCells"],
    )
