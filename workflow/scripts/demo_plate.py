"""Snakemake script: write one plate of the synthetic demo screen."""

from pathlib import Path

from debatch.core.logs import setup_logging
from debatch.demo.plate import generate_plate

log = setup_logging(snakemake.log[0])
plate = snakemake.wildcards.plate
out_dir = Path(snakemake.output.platemap).parent
log.info("generating demo plate %s (batch %s)", plate, snakemake.params.batch)
generate_plate(out_dir, plate, snakemake.params.batch, snakemake.params.demo)
log.info("demo plate %s written to %s", plate, out_dir)
