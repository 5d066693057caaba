rule illum:
    """One illumination function per channel of a plate (+ a QC picture)."""
    input:
        res("manifest/{plate}.parquet"),
    output:
        functions=res("illum/{plate}.npz"),
        figure=report(
            res("illum/{plate}.png"),
            caption="../report/illum.rst",
            category="Quality control",
            subcategory="Illumination",
        ),
    log:
        log_path("illum"),
    benchmark:
        benchmark_path("illum")
    group:
        "plate"
    conda:
        ENV
    threads: config["threads"]["images"]
    resources:
        mem_mb=2000,
    params:
        illum=stage_params("illum"),
        channels=list(CHANNELS.names),
    script:
        "../scripts/illum.py"
