rule report:
    """One self-contained HTML page comparing every method x correction, and its ranking table."""
    input:
        metrics=expand(f"{RESULTS}/diagnostics/{{method}}/{{correction}}/metrics.json",
                       method=METHODS, correction=CORRECTIONS),
        figures=expand(f"{RESULTS}/diagnostics/{{method}}/{{correction}}/pca.png",
                       method=METHODS, correction=CORRECTIONS),
        metric_bars=expand(f"{RESULTS}/diagnostics/{{method}}/metric_bars.png", method=METHODS),
        plate_qc=f"{RESULTS}/diagnostics/plate_qc.png",
        training_logs=expand(f"{RESULTS}/models/{{method}}/training_log.tsv", method=METHODS),
        illum=expand(f"{RESULTS}/illum/{{plate}}.png", plate=PLATE_NAMES),
        qc_overlays=expand(f"{RESULTS}/qc/overlays/{{plate}}.png", plate=PLATE_NAMES),
        qc_heatmaps=expand(f"{RESULTS}/qc/heatmaps/{{plate}}.png", plate=PLATE_NAMES),
    output:
        html=report(f"{RESULTS}/report/index.html", caption="../report/index.rst", category="Report"),
        ranking=report(f"{RESULTS}/report/ranking.tsv", caption="../report/ranking.rst", category="Report"),
    params:
        report=stage_params("report"),
        methods=METHODS,
        plates=PLATE_NAMES,
    log:
        log_path("report", "report"),
    benchmark:
        benchmark_path("report", "report")
    resources:
        mem_mb=1000,
    script:
        "../../scripts/report.py"
