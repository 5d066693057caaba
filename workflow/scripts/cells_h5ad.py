"""Snakemake script: one plate's per-cell profiles of one source as AnnData."""

from debatch.core.logs import setup_logging
from debatch.core.provenance import job_provenance
from debatch.profiles.cells import cell_profiles
from debatch.profiles.h5ad import write_h5ad

log = setup_logging(snakemake.log[0])
cells, features = cell_profiles(snakemake.input.cells, snakemake.input.get("crops"))
write_h5ad(
    cells,
    snakemake.output[0],
    job_provenance(snakemake.rule, snakemake.params, snakemake.input),
    features=features,
    channels=snakemake.params.channels,
)
log.info("%s: %d cells x %d features", snakemake.output[0], len(cells), len(features))
