"""Snakemake script: segmentation overlays and plate heatmaps (cell count, focus) of one plate."""

import numpy as np
import pandas as pd

from debatch.core.images import read_illum
from debatch.core.io import atomic_path
from debatch.core.logs import setup_logging
from debatch.segment.qc_figures import plot_heatmaps, plot_overlays
from debatch.settings import Channels

setup_logging(snakemake.log[0])
params = snakemake.params
plate = snakemake.wildcards.plate
channels = Channels(**params.channels)
qc = pd.read_parquet(snakemake.input.qc)
illum = read_illum(snakemake.input.illum, channels.names)
with np.load(snakemake.input.masks) as masks, atomic_path(snakemake.output.overlays) as tmp:
    plot_overlays(
        qc,
        pd.read_parquet(snakemake.input.manifest),
        masks,
        channels,
        illum,
        params.overlay_sites,
        f"segmentation, plate {plate}",
        tmp,
    )
with atomic_path(snakemake.output.heatmaps) as tmp:
    plot_heatmaps(qc, channels.nuclei, f"plate {plate}", tmp)
