"""Snakemake script: crops of the cells that pass QC on a plate or one shard of its sites
(crops.unit cell), or its whole sites that pass QC (crops.unit site)."""

import pandas as pd

from debatch.core.images import read_illum
from debatch.core.io import write_parquet
from debatch.core.logs import setup_logging
from debatch.core.provenance import job_provenance
from debatch.core.shards import shard_sites
from debatch.crops.cut import write_plate_crops
from debatch.crops.eligible import check_some_left, left_out, select_cells, select_sites
from debatch.crops.sites import write_plate_sites
from debatch.settings import CROPS, SITE_KEY

log = setup_logging(snakemake.log[0])
PROVENANCE = job_provenance(snakemake.rule, snakemake.params, snakemake.input)
params = snakemake.params
plate = snakemake.wildcards.plate
illum = read_illum(snakemake.input.illum, params.channels)
shard = int(snakemake.wildcards.get("shard", 0))  # no shard wildcard: the job is the whole plate
manifest = shard_sites(pd.read_parquet(snakemake.input.manifest), params.shards, shard)
qc = pd.read_parquet(snakemake.input.qc)
unit = CROPS.merge(params.crops)["unit"]
if unit == "site":
    rows, counts = select_sites(manifest, qc)
    write = write_plate_sites
else:
    cells, counts = select_cells(pd.read_parquet(snakemake.input.cells), qc, params.crops)
    sites = pd.MultiIndex.from_frame(manifest[SITE_KEY])
    rows = cells[pd.MultiIndex.from_frame(cells[SITE_KEY]).isin(sites)].reset_index(drop=True)
    write = write_plate_crops
if params.shards == 1:
    check_some_left(len(rows), plate, counts, snakemake.input.qc)
where = (
    f"plate {plate}" if params.shards == 1 else f"plate {plate}, shard {shard + 1}/{params.shards}"
)
log.info("%s: %d sites, %d crops", where, len(manifest), len(rows))
# select_cells counts the plate's cells, select_sites the shard's sites
log.info("%s: %s", where if unit == "site" else f"plate {plate}", left_out(counts))
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
