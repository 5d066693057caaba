rule report:
    """One self-contained HTML page comparing every method x correction."""
    input:
        metrics=expand(f"{RESULTS}/diagnostics/{{method}}/{{correction}}/metrics.json",
                       method=METHODS, correction=CORRECTIONS),
        figures=expand(f"{RESULTS}/diagnostics/{{method}}/{{correction}}/pca.png",
                       method=METHODS, correction=CORRECTIONS),
        training_logs=expand(f"{RESULTS}/models/{{method}}/training_log.tsv", method=METHODS),
        illum=expand(f"{RESULTS}/illum/{{plate}}.png", plate=PLATE_NAMES),
    output:
        f"{RESULTS}/report/index.html",
    params:
        report=stage_params("report"),
        methods=METHODS,
        corrections=CORRECTIONS,
    log:
        log_path("report", "report"),
    benchmark:
        benchmark_path("report", "report")
    resources:
        mem_mb=1000,
    script:
        "../../scripts/report.py"
