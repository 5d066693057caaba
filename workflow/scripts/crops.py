"""Snakemake script: crops of the cells that pass QC on one shard of a plate (crops.unit cell),
or the shard's whole sites that pass QC (crops.unit site)."""

import pandas as pd

from debatch.core.images import read_illum
from debatch.core.io import write_parquet
from debatch.core.logs import setup_logging
from debatch.core.provenance import job_provenance
from debatch.core.shards import shard_sites
from debatch.crops.cut import write_plate_crops
from debatch.crops.eligible import select_cells, select_sites
from debatch.crops.sites import write_plate_sites
from debatch.settings import CROPS, SITE_KEY

log = setup_logging(snakemake.log[0])
PROVENANCE = job_provenance(snakemake.rule, snakemake.params, snakemake.input)
params = snakemake.params
illum = read_illum(snakemake.input.illum, params.channels)
manifest = shard_sites(
    pd.read_parquet(snakemake.input.manifest), params.shards, int(snakemake.wildcards.shard)
)
qc = pd.read_parquet(snakemake.input.qc)
if CROPS.merge(params.crops)["unit"] == "site":
    rows, counts = select_sites(manifest, qc)
    log.info("this shard: %d sites, %d failed QC", counts["sites"], counts["failed_qc"])
    write = write_plate_sites
else:
    cells, counts = select_cells(pd.read_parquet(snakemake.input.cells), qc, params.crops)
    sites = pd.MultiIndex.from_frame(manifest[SITE_KEY])
    mine = pd.MultiIndex.from_frame(cells[SITE_KEY]).isin(sites)
    log.info(
        "plate: %d cells, %d left out on sites that failed QC, %d border cells left out; "
        "this shard: %d sites, %d cells",
        counts["cells"],
        counts["failed_qc"],
        counts["border"],
        len(manifest),
        int(mine.sum()),
    )
    rows, write = cells[mine].reset_index(drop=True), write_plate_crops
table = write(
    rows,
    manifest,
    params.channels,
    illum,
    snakemake.output.crops,
    params.crops,
    threads=snakemake.threads,
)
write_parquet(table, snakemake.output.table, PROVENANCE)
