"""Snakemake script: a plate's crops (.npy) and crops table from its crops shards."""

import pandas as pd

from debatch.core.io import write_parquet
from debatch.core.logs import setup_logging
from debatch.core.provenance import job_provenance
from debatch.core.shards import gather_npy, gather_tables
from debatch.crops.eligible import select_cells

log = setup_logging(snakemake.log[0])
PROVENANCE = job_provenance(
    snakemake.rule, snakemake.params, snakemake.input, made_from=snakemake.input.tables[0]
)
plate = snakemake.wildcards.plate
table = gather_tables(snakemake.input.tables)
_, counts = select_cells(
    pd.read_parquet(snakemake.input.cells),
    pd.read_parquet(snakemake.input.qc),
    snakemake.params.crops,
)
if not len(table):
    raise ValueError(
        f"plate {plate}: no cell left for crops ({counts['cells']} cells, "
        f"{counts['failed_qc']} on sites that failed QC, {counts['border']} at the "
        f"border); see {snakemake.input.qc}"
    )
shape = gather_npy(snakemake.input.crops, snakemake.output.crops)
if shape[0] != len(table):
    raise AssertionError(f"crops rows {shape[0]} != crops table rows {len(table)}")
write_parquet(table, snakemake.output.table, PROVENANCE)
log.info(
    "plate %s: %d crops of shape %s from %d shard(s); of %d cells, %d left out on sites "
    "that failed QC and %d border cells left out",
    plate,
    shape[0],
    shape[1:],
    len(snakemake.input.crops),
    counts["cells"],
    counts["failed_qc"],
    counts["border"],
)
