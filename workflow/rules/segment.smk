rule segment:
    """Nuclei + cells of every site of a plate: per-cell table and label images."""
    input:
        manifest=f"{RESULTS}/manifest/{{plate}}.parquet",
        illum=f"{RESULTS}/illum/{{plate}}.npz",
    output:
        cells=f"{RESULTS}/cells/{{plate}}.parquet",
        masks=f"{RESULTS}/masks/{{plate}}.npz",
    params:
        segment=stage_params("segment"),
        channels=CHANNELS,
        nuclei_channel=config["nuclei_channel"],
        cell_channel=config["cell_channel"],
    threads: config["threads"]["images"]
    log:
        log_path("segment"),
    benchmark:
        benchmark_path("segment")
    resources:
        mem_mb=4000,
    script:
        "../../scripts/segment.py"
