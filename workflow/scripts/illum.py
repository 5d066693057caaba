"""Snakemake script: illumination functions of one plate."""

import pandas as pd

from debatch.core.io import atomic_path, save_npz
from debatch.core.logs import setup_logging
from debatch.illum.estimate import compute_plate_illum
from debatch.illum.plot import plot_functions

setup_logging(snakemake.log[0])
manifest = pd.read_parquet(snakemake.input[0])
functions = compute_plate_illum(
    manifest, snakemake.params.channels, snakemake.params.illum, threads=snakemake.threads
)
save_npz(snakemake.output.functions, **functions)
with atomic_path(snakemake.output.figure) as tmp:
    plot_functions(functions, f"illumination, plate {snakemake.wildcards.plate}", tmp)
