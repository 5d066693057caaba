rule crops_shard:
    """Fixed-size illumination-corrected crops of the cells of one shard that pass QC (or the
    shard's whole sites that pass QC, area-averaged: crops.unit site)."""
    input:
        cells=res("cells/{plate}.parquet"),
        qc=res("qc/{plate}.parquet"),
        manifest=res("manifest/{plate}.parquet"),
        illum=res("illum/{plate}.npz"),
    output:
        crops=temp(res("crops/{plate}/shard{shard}.npy")),
        table=temp(res("crops/{plate}/shard{shard}.parquet")),
    log:
        log_path("crops", "{plate}/shard{shard}"),
    benchmark:
        benchmark_path("crops", "{plate}/shard{shard}")
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


rule crops:
    """The plate's memory-mappable crops/{plate}.npy and its index crops/{plate}.parquet."""
    input:
        crops=expand(res("crops/{{plate}}/shard{shard}.npy"), shard=SHARDS),
        tables=expand(res("crops/{{plate}}/shard{shard}.parquet"), shard=SHARDS),
        cells=res("cells/{plate}.parquet"),
        qc=res("qc/{plate}.parquet"),
    output:
        # crops first: with one shard it is a hard link of the shard file (see the segment rule)
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
