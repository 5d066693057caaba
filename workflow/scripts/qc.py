"""Snakemake script: flag a plate's sites that fail image QC (focus, saturation, cell count)."""

import pandas as pd

from debatch.core.io import write_parquet
from debatch.core.logs import setup_logging
from debatch.core.provenance import job_provenance
from debatch.segment.qc import (
    check_negcon,
    failure_concentration,
    fault_warnings,
    flag_sites,
    summary,
)

log = setup_logging(snakemake.log[0])
PROVENANCE = job_provenance(snakemake.rule, snakemake.params, snakemake.input)
flagged = flag_sites(
    pd.read_parquet(snakemake.input[0]), snakemake.params.focus_channel, snakemake.params.qc
)
warning = check_negcon(flagged, snakemake.wildcards.plate, snakemake.params.qc)
write_parquet(flagged, snakemake.output[0], PROVENANCE)
log.info("plate %s %s", snakemake.wildcards.plate, summary(flagged))
if warning:
    log.warning(warning)
for fault in fault_warnings(flagged):  # wrong data, named again in the report
    log.warning(fault)
for concentrated in failure_concentration(flagged, snakemake.params.qc):
    log.warning("plate %s: %s", snakemake.wildcards.plate, concentrated)
for row in flagged[~flagged["QC_Pass"]].itertuples():
    log.info(
        "failed QC: well %s site %s (%s), %d cells",
        row.Metadata_Well,
        row.Metadata_Site,
        row.QC_Failed,
        row.Count_Cells,
    )
