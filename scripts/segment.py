"""Snakemake script: segment every site of one plate."""

import numpy as np
import pandas as pd

from debatch.io import save_npz, write_parquet
from debatch.runlog import setup_logging
from debatch.segment import segment_plate

log = setup_logging(snakemake.log[0])
params = snakemake.params.segment
manifest = pd.read_parquet(snakemake.input.manifest)
with np.load(snakemake.input.illum) as stored:
    illum = {channel: stored[channel] for channel in snakemake.params.channels}
cells, masks = segment_plate(manifest, snakemake.params.channels, illum,
                             snakemake.params.nuclei_channel, snakemake.params.cell_channel,
                             params.get("propagate", {}), threads=snakemake.threads, log=log.info)
write_parquet(cells, snakemake.output.cells)
save_npz(snakemake.output.masks, **(masks if params.get("save_masks", True) else {}))
