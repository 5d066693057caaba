"""Snakemake script: a source's well profiles, every correction beside them, as one AnnData."""

import pandas as pd

from debatch.core.logs import setup_logging
from debatch.core.provenance import job_provenance
from debatch.profiles.h5ad import write_h5ad

log = setup_logging(snakemake.log[0])
wells = pd.read_parquet(snakemake.input.wells)
corrections = {
    name: pd.read_parquet(path)
    for name, path in zip(snakemake.params.corrections, snakemake.input.corrections)
}
write_h5ad(
    wells,
    snakemake.output[0],
    job_provenance(snakemake.rule, snakemake.params, snakemake.input),
    corrections=corrections,
    channels=snakemake.params.channels,
)
log.info("%s: %d wells, corrections %s", snakemake.output[0], len(wells), list(corrections))
