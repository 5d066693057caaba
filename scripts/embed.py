"""Snakemake script: embed one plate's crops with one method's model."""

from debatch.embed import embed_plate
from debatch.io import write_parquet
from debatch.runlog import setup_logging

log = setup_logging(snakemake.log[0])
params = snakemake.params.embed
embeddings = embed_plate(snakemake.input.model, snakemake.input.crops, snakemake.input.table,
                         batch_size=params.get("batch_size", 512), device=params.get("device", "auto"),
                         num_threads=snakemake.threads)
write_parquet(embeddings, snakemake.output[0])
log.info("embedded %d cells", len(embeddings))
