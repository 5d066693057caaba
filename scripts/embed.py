"""Snakemake script: embed one plate's crops with one method's model."""

from debatch.cnn.embed import embed_plate
from debatch.core.io import write_parquet
from debatch.core.logs import setup_logging

log = setup_logging(snakemake.log[0])
embeddings = embed_plate(
    snakemake.input.model,
    snakemake.input.crops,
    snakemake.input.table,
    snakemake.params.embed,
    num_threads=snakemake.threads,
)
write_parquet(embeddings, snakemake.output[0])
log.info("embedded %d cells", len(embeddings))
