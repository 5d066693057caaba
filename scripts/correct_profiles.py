"""Snakemake script: post-hoc correction + consensus of one method's well profiles."""

import pandas as pd

from debatch.io import write_parquet
from debatch.profiles import consensus, correct, merge_params
from debatch.runlog import setup_logging

log = setup_logging(snakemake.log[0])
params = merge_params(snakemake.params.profiles)
wells = correct(pd.read_parquet(snakemake.input[0]), snakemake.wildcards.correction, params)
write_parquet(wells, snakemake.output.wells)
write_parquet(consensus(wells, params["consensus"]), snakemake.output.consensus)
log.info("%s: %d wells, %d treatments", snakemake.wildcards.correction, len(wells),
         wells["Metadata_Treatment"].nunique())
