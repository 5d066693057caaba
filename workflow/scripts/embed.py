"""Snakemake script: embed every plate's crops with one model (loaded once)."""

from debatch.cnn.embed import embed_plates
from debatch.core.io import write_parquet
from debatch.core.logs import setup_logging
from debatch.core.provenance import job_provenance

log = setup_logging(snakemake.log[0])
PROVENANCE = job_provenance(snakemake.rule, snakemake.params, snakemake.input)
plates = list(zip(snakemake.input.crops, snakemake.input.tables))
embedded = embed_plates(
    snakemake.input.model,
    plates,
    snakemake.params.embed,
    num_threads=snakemake.threads,
    channels=snakemake.params.channels,
)
for path, embeddings in zip(snakemake.output, embedded):
    write_parquet(embeddings, path, PROVENANCE)
    log.info("%s: %d cells", path, len(embeddings))
