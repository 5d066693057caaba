"""Snakemake script: build one plate's manifest."""

from debatch.core.io import write_parquet
from debatch.core.logs import setup_logging
from debatch.core.provenance import job_provenance
from debatch.ingest.manifest import build_manifest, read_platemap

setup_logging(snakemake.log[0])
PROVENANCE = job_provenance(snakemake.rule, snakemake.params, snakemake.input)
manifest = build_manifest(
    plate=snakemake.wildcards.plate,
    batch=snakemake.params.batch,
    images=snakemake.input.images,
    pattern=snakemake.params.pattern,
    platemap=read_platemap(snakemake.input.platemap),
    channels=snakemake.params.channels,
    patterns=snakemake.params.patterns,
)
write_parquet(manifest, snakemake.output[0], PROVENANCE)
