rule illum:
    """One illumination function per channel of a plate (+ a QC picture)."""
    input:
        f"{RESULTS}/manifest/{{plate}}.parquet",
    output:
        functions=f"{RESULTS}/illum/{{plate}}.npz",
        figure=report(f"{RESULTS}/illum/{{plate}}.png", caption="../report/illum.rst",
                      category="Quality control", subcategory="Illumination"),
    params:
        illum=stage_params("illum"),
        channels=CHANNELS,
    threads: config["threads"]["images"]
    log:
        log_path("illum"),
    benchmark:
        benchmark_path("illum")
    resources:
        mem_mb=2000,
    script:
        "../../scripts/illum.py"
