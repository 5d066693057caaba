rule features_shard:
    """CellProfiler's measurements (cp_measure) of every cell of one shard: Nuclei, Cells, Cytoplasm."""
    input:
        cells=res("cells/{plate}.parquet"),
        manifest=res("manifest/{plate}.parquet"),
        illum=res("illum/{plate}.npz"),
        masks=res("masks/{plate}.npz"),
    output:
        temp(res("features/{plate}/shard{shard}.parquet")),
    log:
        log_path("features", "{plate}/shard{shard}"),
    benchmark:
        benchmark_path("features", "{plate}/shard{shard}")
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


rule features:
    """The plate's features/{plate}.parquet: one row per row of cells/{plate}.parquet, in order."""
    input:
        shards=expand(res("features/{{plate}}/shard{shard}.parquet"), shard=SHARDS),
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
