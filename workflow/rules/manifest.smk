rule manifest:
    """Find every image of a plate and join it to its well's platemap row."""
    input:
        unpack(manifest_inputs),
    output:
        f"{RESULTS}/manifest/{{plate}}.parquet",
    params:
        batch=lambda wildcards: plate_row(wildcards)["batch"],
        pattern=lambda wildcards: plate_row(wildcards)["pattern"],
        channels=config["channels"],
        patterns=config.get("patterns", {}),
    log:
        log_path("manifest"),
    benchmark:
        benchmark_path("manifest")
    resources:
        mem_mb=500,
    script:
        "../../scripts/manifest.py"
