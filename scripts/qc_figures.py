"""Snakemake script: segmentation overlays and plate heatmaps (cell count, focus) of one plate."""

import numpy as np
import pandas as pd

from debatch.io import atomic_path
from debatch.qc_figures import plot_heatmaps, plot_overlays
from debatch.runlog import setup_logging

setup_logging(snakemake.log[0])
params = snakemake.params
plate = snakemake.wildcards.plate
qc = pd.read_parquet(snakemake.input.qc)
with np.load(snakemake.input.illum) as stored:
    illum = {channel: stored[channel] for channel in params.channels}
with np.load(snakemake.input.masks) as masks, atomic_path(snakemake.output.overlays) as tmp:
    plot_overlays(qc, pd.read_parquet(snakemake.input.manifest), masks, params.channels, illum,
                  params.nuclei_channel, params.cell_channel, params.overlay_sites,
                  f"segmentation, plate {plate}", tmp)
with atomic_path(snakemake.output.heatmaps) as tmp:
    plot_heatmaps(qc, params.nuclei_channel, f"plate {plate}", tmp)
