rule features:
    """CellProfiler's measurements (cp_measure) of every cell of a plate (or of one shard of its
    sites: segment.shards): Nuclei, Cells, Cytoplasm; one row per row of cells/{plate}.parquet,
    in order."""
    input:
        cells=res("cells/{plate}.parquet"),
        manifest=res("manifest/{plate}.parquet"),
        illum=res("illum/{plate}.npz"),
        masks=res("masks/{plate}.npz"),
    output:
        stage_output("features/{plate}.parquet"),
    log:
        log_path("features", STAGE_JOB),
    benchmark:
        benchmark_path("features", STAGE_JOB)
    group:
        "features"
    conda:
        ENV
    threads: config["threads"]["images"]
    resources:
        mem_mb=4000,
    params:
        features=stage_params("features", drop=("enabled",)),
        shards=len(SHARDS),
        channels=list(CHANNELS.names),
    script:
        "../scripts/features.py"


if not WHOLE_PLATES:

    rule gather_features:
        """The plate's features/{plate}.parquet from its shards, in the cells table's order."""
        input:
            shards=shard_parts("features/{plate}.parquet"),
            cells=res("cells/{plate}.parquet"),
        output:
            res("features/{plate}.parquet"),
        log:
            log_path("features"),
        benchmark:
            benchmark_path("gather_features")
        group:
            "features"
        conda:
            ENV
        resources:
            mem_mb=4000,
        script:
            "../scripts/gather_features.py"
