"""Snakemake script: an external source's table as one table per plate."""

from debatch.core.io import write_parquet
from debatch.core.logs import setup_logging
from debatch.core.provenance import job_provenance
from debatch.ingest.external import external_cells
from debatch.ingest.manifest import read_platemap

log = setup_logging(snakemake.log[0])
PROVENANCE = job_provenance(snakemake.rule, snakemake.params, snakemake.input)
plates = {
    plate: (batch, read_platemap(platemap))
    for plate, batch, platemap in zip(
        snakemake.params.plates, snakemake.params.batches, snakemake.input.platemaps
    )
}
paths = dict(zip(snakemake.params.plates, snakemake.output))
for plate, table in external_cells(list(snakemake.input.tables), snakemake.params.external, plates):
    write_parquet(table, paths[plate], PROVENANCE)
    log.info("%s: %d rows", paths[plate], len(table))
