"""Snakemake script: write one plate of the synthetic demo screen."""

from debatch.runlog import setup_logging
from debatch.synth import generate_plate

log = setup_logging(snakemake.log[0])
plate = snakemake.wildcards.plate
log.info("generating demo plate %s (batch %s)", plate, snakemake.params.batch)
generate_plate(snakemake.params.out_dir, plate, snakemake.params.batch, snakemake.params.demo)
log.info("demo plate %s written to %s", plate, snakemake.params.out_dir)
