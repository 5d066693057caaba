rule manifest:
    """Find every image of a plate and join it to its well's platemap row."""
    input:
        unpack(manifest_inputs),
    output:
        res("manifest/{plate}.parquet"),
    log:
        log_path("manifest"),
    benchmark:
        benchmark_path("manifest")
    group:
        "plate"
    conda:
        ENV
    resources:
        mem_mb=500,
    params:
        batch=lambda wildcards: plate_row(wildcards)["batch"],
        pattern=lambda wildcards: plate_row(wildcards)["pattern"],
        channels=config["channels"],
        patterns=config.get("patterns", {}),
    script:
        "../scripts/manifest.py"
