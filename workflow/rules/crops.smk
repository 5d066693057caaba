rule crops:
    """Fixed-size illumination-corrected crops of a plate's cells that pass QC (or of its whole
    sites that pass QC, area-averaged: crops.unit site), or of one shard's (segment.shards):
    the memory-mappable crops/{plate}.npy and its index crops/{plate}.parquet."""
    input:
        cells=res("cells/{plate}.parquet"),
        qc=res("qc/{plate}.parquet"),
        manifest=res("manifest/{plate}.parquet"),
        illum=res("illum/{plate}.npz"),
    output:
        crops=stage_output("crops/{plate}.npy"),
        table=stage_output("crops/{plate}.parquet"),
    log:
        log_path("crops", STAGE_JOB),
    benchmark:
        benchmark_path("crops", STAGE_JOB)
    group:
        "plate"
    conda:
        ENV
    threads: config["threads"]["images"]
    resources:
        mem_mb=2000,
    params:
        crops=stage_params("crops"),
        shards=len(SHARDS),
        channels=list(CHANNELS.names),
    script:
        "../scripts/crops.py"


if not WHOLE_PLATES:

    rule gather_crops:
        """The plate's crops/{plate}.npy and crops/{plate}.parquet from its shards."""
        input:
            crops=shard_parts("crops/{plate}.npy"),
            tables=shard_parts("crops/{plate}.parquet"),
            cells=res("cells/{plate}.parquet"),
            qc=res("qc/{plate}.parquet"),
        output:
            crops=res("crops/{plate}.npy"),
            table=res("crops/{plate}.parquet"),
        log:
            log_path("crops"),
        benchmark:
            benchmark_path("gather_crops")
        group:
            "plate"
        conda:
            ENV
        resources:
            mem_mb=2000,
        params:
            crops=stage_params("crops"),
        script:
            "../scripts/gather_crops.py"
