# debatch: raw Cell Painting plates -> batch-robust profiles -> diagnostics report.
# Stages and file contracts: docs/architecture.md. Run: `make demo` or `snakemake --cores N`.

from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/manifest.smk"
include: "workflow/rules/illum.smk"
include: "workflow/rules/segment.smk"
include: "workflow/rules/qc.smk"
include: "workflow/rules/crops.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/embed.smk"
include: "workflow/rules/profiles.smk"
include: "workflow/rules/diagnostics.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        res("report/index.html"),
        expand(res("qc/{kind}/{plate}.png"), kind=["overlays", "heatmaps"], plate=PLATE_NAMES),
        expand(
            res("cells/{source}/{plate}.h5ad"),
            source=SOURCES if OUTPUTS["anndata_cells"] else [],
            plate=PLATE_NAMES,
        ),
