"""Snakemake script: train one method's model on every plate's crops."""

from debatch.runlog import setup_logging
from debatch.train import train_model

log = setup_logging(snakemake.log[0])
params = {**snakemake.params.train, "num_threads": snakemake.threads}
summary = train_model(list(zip(snakemake.input.crops, snakemake.input.tables)), snakemake.params.out_dir,
                      params, log=log.info)
log.info("training finished: %s", summary)
