rule crops:
    """Fixed-size illumination-corrected crops of every cell (memory-mappable .npy)."""
    input:
        cells=f"{RESULTS}/cells/{{plate}}.parquet",
        manifest=f"{RESULTS}/manifest/{{plate}}.parquet",
        illum=f"{RESULTS}/illum/{{plate}}.npz",
    output:
        crops=f"{RESULTS}/crops/{{plate}}.npy",
        table=f"{RESULTS}/crops/{{plate}}.parquet",
    params:
        crops=stage_params("crops"),
        channels=CHANNELS,
    threads: config["threads"]["images"]
    log:
        log_path("crops"),
    benchmark:
        benchmark_path("crops")
    resources:
        mem_mb=2000,
    script:
        "../../scripts/crops.py"
