"""Snakemake script: CellProfiler features of the cells of a plate, or of one shard of its sites."""

import pandas as pd

from debatch.core.images import read_illum
from debatch.core.io import write_parquet
from debatch.core.logs import setup_logging
from debatch.core.provenance import job_provenance
from debatch.features.gather import check_cells_order
from debatch.features.plate import measure_shard

log = setup_logging(snakemake.log[0])
PROVENANCE = job_provenance(snakemake.rule, snakemake.params, snakemake.input)
params = snakemake.params
cells = pd.read_parquet(snakemake.input.cells)
table = measure_shard(
    cells,
    pd.read_parquet(snakemake.input.manifest),
    params.shards,
    int(snakemake.wildcards.get("shard", 0)),  # no shard wildcard: the job is the whole plate
    params.channels,
    read_illum(snakemake.input.illum, params.channels),
    snakemake.input.masks,
    params.features,
    threads=snakemake.threads,
)
if params.shards == 1:
    check_cells_order(table, cells)
    log.info("plate %s: features of %d cells, %d columns", snakemake.wildcards.plate, *table.shape)
write_parquet(table, snakemake.output[0], PROVENANCE)
