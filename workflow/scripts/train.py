"""Snakemake script: train one method's model on every plate's crops."""

from pathlib import Path

from debatch.cnn.train import train_model
from debatch.core.logs import setup_logging

log = setup_logging(snakemake.log[0])
params = {**snakemake.params.train, "num_threads": snakemake.threads}
summary = train_model(
    list(zip(snakemake.input.crops, snakemake.input.tables)),
    Path(snakemake.output.model).parent,
    params,
    channels=snakemake.params.channels,
)
log.info("training finished: %s", summary)
