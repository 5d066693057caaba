"""Snakemake script: metrics + PCA figure of one source x correction."""

from pathlib import Path

import pandas as pd

from debatch.core.io import atomic_path, write_json
from debatch.core.logs import setup_logging
from debatch.evaluate.diagnostics import compute_metrics
from debatch.evaluate.truth import read_truth
from debatch.report.figures import plot_pca
from debatch.settings import parse_source, source_fold

setup_logging(snakemake.log[0])
wells = pd.read_parquet(snakemake.input.wells)
source, correction = snakemake.wildcards.source, snakemake.wildcards.correction
method, seed = parse_source(source)
truth_files = [Path(folder) / "treatments.tsv" for folder in snakemake.input.truth]
truth = read_truth(truth_files) if truth_files else None
# the WILDS protocol's validation batches (only there when set): out of the reference set
validation = snakemake.params.get("validation_batches", [])
# with train.rotate_holdout, a source not trained here holds out every batch in turn
rotate = snakemake.params.get("rotate_holdout", False)
metrics = compute_metrics(
    wells, snakemake.params.diagnostics, snakemake.params.holdout_batches, truth, validation, rotate
)
fold = source_fold(source)  # a rotated model's held-out batch: a run of its method, as a seed
run = {"source": source, "method": method, "seed": seed, **({"fold": fold} if fold else {})}
write_json(
    {**run, "correction": correction, **metrics},
    snakemake.output.metrics,
)
with atomic_path(snakemake.output.figure) as tmp:
    plot_pca(wells, f"well profiles: {source} / {correction}", tmp)
