rule demo_plate:
    """Generate one plate of the embedded synthetic screen (images, platemap, ground truth)."""
    output:
        images=directory(f"{DEMO_ROOT}/{{plate}}/images"),
        platemap=f"{DEMO_ROOT}/{{plate}}/platemap.tsv",
        truth=directory(f"{DEMO_ROOT}/{{plate}}/truth"),
    params:
        demo=config["demo"].get("params", {}),
        batch=lambda wildcards: plate_row(wildcards)["batch"],
        out_dir=lambda wildcards: f"{DEMO_ROOT}/{wildcards.plate}",
    log:
        log_path("demo"),
    benchmark:
        benchmark_path("demo")
    resources:
        mem_mb=1000,
    script:
        "../../scripts/demo_plate.py"
