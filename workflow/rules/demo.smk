rule demo_plate:
    """Generate one plate of the embedded synthetic screen (images, platemap, ground truth)."""
    output:
        images=directory(f"{DEMO_ROOT}/{{plate}}/images"),
        platemap=f"{DEMO_ROOT}/{{plate}}/platemap.tsv",
        truth=directory(f"{DEMO_ROOT}/{{plate}}/truth"),
    log:
        log_path("demo"),
    benchmark:
        benchmark_path("demo")
    group:
        "plate"
    conda:
        ENV
    resources:
        mem_mb=1000,
    params:
        demo=config["demo"].get("params", {}),
        batch=lambda wildcards: plate_row(wildcards)["batch"],
    script:
        "../scripts/demo_plate.py"
