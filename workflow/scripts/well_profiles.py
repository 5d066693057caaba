"""Snakemake script: well aggregation + per-plate negcon normalisation of one source's cells,
then feature selection (the cellprofiler source: only the crops tables' cells)."""

from debatch.core.io import atomic_path, write_parquet
from debatch.core.logs import setup_logging
from debatch.core.provenance import job_provenance
from debatch.profiles.wells import well_profiles
from debatch.settings import CELLPROFILER

setup_logging(snakemake.log[0])
PROVENANCE = job_provenance(snakemake.rule, snakemake.params, snakemake.input)
# well_profiles reads one plate (and a block of feature columns) at a time
wells, features = well_profiles(
    snakemake.input.cells,
    snakemake.params.profiles,
    snakemake.threads,
    cell_tables=snakemake.input.get("crops"),
    drop_plates_without_negcon=snakemake.params.plate_without_negcon == "drop",
    reference=snakemake.input.get("reference"),
    cellprofiler=snakemake.params.features == CELLPROFILER,
)
write_parquet(wells, snakemake.output.wells, PROVENANCE)
with atomic_path(snakemake.output.features) as tmp:
    features.to_csv(tmp, sep="\t", index=False)
