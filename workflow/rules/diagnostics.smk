# Ground truth exists only for plates the demo generates; a real screen has none.
DEMO_TRUTH = [demo_plate_paths(plate)["truth"] for plate in PLATE_NAMES if PLATES.loc[plate, "is_demo"]]


rule diagnostics:
    """Batch-removal and biology metrics (+ ground truth on the demo) and PCA of one method x correction."""
    input:
        wells=f"{RESULTS}/profiles/{{method}}/{{correction}}/wells.parquet",
        truth=DEMO_TRUTH,
    output:
        metrics=f"{RESULTS}/diagnostics/{{method}}/{{correction}}/metrics.json",
        figure=report(f"{RESULTS}/diagnostics/{{method}}/{{correction}}/pca.png",
                      caption="../report/pca.rst", category="Diagnostics",
                      subcategory="{method} / {correction}"),
    params:
        diagnostics=stage_params("diagnostics"),
        holdout_batches=config["train"].get("holdout_batches", []),
    log:
        log_path("diagnostics", "{method}/{correction}"),
    benchmark:
        benchmark_path("diagnostics", "{method}/{correction}")
    resources:
        mem_mb=2000,
    script:
        "../../scripts/diagnostics.py"


rule metric_bars:
    """One method's metric scores as bars, one per correction."""
    input:
        expand(f"{RESULTS}/diagnostics/{{{{method}}}}/{{correction}}/metrics.json", correction=CORRECTIONS),
    output:
        report(f"{RESULTS}/diagnostics/{{method}}/metric_bars.png", caption="../report/metric_bars.rst",
               category="Diagnostics", subcategory="{method}"),
    log:
        log_path("metric_bars", "{method}"),
    benchmark:
        benchmark_path("metric_bars", "{method}")
    resources:
        mem_mb=1000,
    script:
        "../../scripts/metric_bars.py"


rule plate_qc:
    """Per-plate heatmaps of cells per well (the same for every method: the first one's profiles)."""
    input:
        f"{RESULTS}/profiles/{METHODS[0]}/wells_normalised.parquet",
    output:
        report(f"{RESULTS}/diagnostics/plate_qc.png", caption="../report/plate_qc.rst",
               category="Quality control"),
    log:
        log_path("plate_qc", "plate_qc"),
    benchmark:
        benchmark_path("plate_qc", "plate_qc")
    resources:
        mem_mb=1000,
    script:
        "../../scripts/plate_qc.py"
