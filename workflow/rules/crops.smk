rule crops:
    """Fixed-size illumination-corrected crops of the cells of one shard that pass QC."""
    input:
        cells=f"{RESULTS}/cells/{{plate}}.parquet",
        qc=f"{RESULTS}/qc/{{plate}}.parquet",
        manifest=f"{RESULTS}/manifest/{{plate}}.parquet",
        illum=f"{RESULTS}/illum/{{plate}}.npz",
    output:
        crops=temp(f"{RESULTS}/crops/{{plate}}/shard{{shard}}.npy"),
        table=temp(f"{RESULTS}/crops/{{plate}}/shard{{shard}}.parquet"),
    params:
        crops=stage_params("crops"),
        shards=len(SHARDS),
        channels=CHANNELS,
    threads: config["threads"]["images"]
    log:
        log_path("crops", "{plate}/shard{shard}"),
    benchmark:
        benchmark_path("crops", "{plate}/shard{shard}")
    resources:
        mem_mb=2000,
    script:
        "../../scripts/crops.py"


rule gather_crops:
    """The plate's memory-mappable crops/{plate}.npy and its index crops/{plate}.parquet."""
    input:
        crops=expand(f"{RESULTS}/crops/{{{{plate}}}}/shard{{shard}}.npy", shard=SHARDS),
        tables=expand(f"{RESULTS}/crops/{{{{plate}}}}/shard{{shard}}.parquet", shard=SHARDS),
        cells=f"{RESULTS}/cells/{{plate}}.parquet",
        qc=f"{RESULTS}/qc/{{plate}}.parquet",
    output:
        crops=f"{RESULTS}/crops/{{plate}}.npy",
        table=f"{RESULTS}/crops/{{plate}}.parquet",
    params:
        crops=stage_params("crops"),
    log:
        log_path("crops"),
    benchmark:
        benchmark_path("gather_crops")
    resources:
        mem_mb=2000,
    script:
        "../../scripts/gather_crops.py"
