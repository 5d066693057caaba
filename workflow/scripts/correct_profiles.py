"""Snakemake script: post-hoc correction + consensus of one method's well profiles."""

import pandas as pd

from debatch.core.io import write_parquet
from debatch.core.logs import setup_logging
from debatch.core.provenance import job_provenance
from debatch.profiles.consensus import consensus
from debatch.profiles.correct import correct
from debatch.settings import PROFILES, TREATMENT

log = setup_logging(snakemake.log[0])
PROVENANCE = job_provenance(snakemake.rule, snakemake.params, snakemake.input)
params = PROFILES.merge(snakemake.params.profiles)
wells = correct(pd.read_parquet(snakemake.input[0]), snakemake.wildcards.correction, params)
write_parquet(wells, snakemake.output.wells, PROVENANCE)
write_parquet(consensus(wells, params["consensus"]), snakemake.output.consensus, PROVENANCE)
log.info(
    "%s: %d wells, %d treatments",
    snakemake.wildcards.correction,
    len(wells),
    wells[TREATMENT].nunique(),
)
