"""Snakemake script: a plate's crops (.npy) and crops table from its crops shards."""

import pandas as pd

from debatch.core.io import write_parquet
from debatch.core.logs import setup_logging
from debatch.core.provenance import job_provenance
from debatch.core.shards import gather_npy, gather_tables
from debatch.crops.eligible import check_some_left, left_out, select_cells
from debatch.settings import CROPS, QC_PASS

log = setup_logging(snakemake.log[0])
PROVENANCE = job_provenance(
    snakemake.rule, snakemake.params, snakemake.input, made_from=snakemake.input.tables[0]
)
plate = snakemake.wildcards.plate
table = gather_tables(snakemake.input.tables)
qc = pd.read_parquet(snakemake.input.qc)
if CROPS.merge(snakemake.params.crops)["unit"] == "site":
    counts = {"sites": len(qc), "failed_qc": int((~qc[QC_PASS].astype(bool)).sum())}
else:
    _, counts = select_cells(pd.read_parquet(snakemake.input.cells), qc, snakemake.params.crops)
check_some_left(len(table), plate, counts, snakemake.input.qc)
shape = gather_npy(snakemake.input.crops, snakemake.output.crops)
if shape[0] != len(table):
    raise AssertionError(f"crops rows {shape[0]} != crops table rows {len(table)}")
write_parquet(table, snakemake.output.table, PROVENANCE)
log.info(
    "plate %s: %d crops of shape %s from %d shards; %s",
    plate,
    shape[0],
    shape[1:],
    len(snakemake.input.crops),
    left_out(counts),
)
