"""Snakemake script: a plate's features from its shards, in the cells table's order."""

import pandas as pd

from debatch.core.logs import setup_logging
from debatch.core.provenance import job_provenance
from debatch.features.gather import gather_features
from debatch.settings import CELL_KEY

log = setup_logging(snakemake.log[0])
PROVENANCE = job_provenance(
    snakemake.rule, snakemake.params, snakemake.input, made_from=snakemake.input.shards[0]
)
shape = gather_features(
    snakemake.input.shards,
    pd.read_parquet(snakemake.input.cells, columns=CELL_KEY),
    snakemake.output[0],
    PROVENANCE,
)
log.info("plate %s: features of %d cells, %d columns", snakemake.wildcards.plate, *shape)
