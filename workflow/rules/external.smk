rule external_cells:
    """An external source's table (config `external:`) as one table per plate, its plates and
    wells checked against the plate sheet and platemaps, which give every well's metadata."""
    input:
        tables=lambda wildcards: EXTERNAL[wildcards.source],
        platemaps=[PLATES.loc[plate, "platemap"] for plate in PLATE_NAMES],
    output:
        expand(res("external/{{source}}/{plate}.parquet"), plate=PLATE_NAMES),
    log:
        log_path("external_cells", "{source}"),
    benchmark:
        benchmark_path("external_cells", "{source}")
    conda:
        ENV
    resources:
        # Parquet is read a plate at a time, a CSV whole
        mem_mb=lambda wildcards, input: max(2000, int(3 * input.size_mb)),
    params:
        external=external_params,
        plates=PLATE_NAMES,
        batches=[PLATES.loc[plate, "batch"] for plate in PLATE_NAMES],
    script:
        "../scripts/external_cells.py"
