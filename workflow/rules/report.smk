rule report:
    """One self-contained HTML page comparing every method x correction, and its ranking table."""
    input:
        metrics=expand(
            res("diagnostics/{method}/{correction}/metrics.json"),
            method=METHODS,
            correction=CORRECTIONS,
        ),
        figures=expand(
            res("diagnostics/{method}/{correction}/pca.png"),
            method=METHODS,
            correction=CORRECTIONS,
        ),
        metric_bars=expand(res("diagnostics/{method}/metric_bars.png"), method=METHODS),
        cells_per_well=res("diagnostics/plate_qc.png"),
        training_logs=expand(res("models/{method}/training_log.tsv"), method=METHODS),
        illum=expand(res("illum/{plate}.png"), plate=PLATE_NAMES),
        qc_overlays=expand(res("qc/overlays/{plate}.png"), plate=PLATE_NAMES),
        qc_heatmaps=expand(res("qc/heatmaps/{plate}.png"), plate=PLATE_NAMES),
    output:
        html=report(res("report/index.html"), caption="../report/index.rst", category="Report"),
        ranking=report(
            res("report/ranking.tsv"), caption="../report/ranking.rst", category="Report"
        ),
    log:
        log_path("report", "report"),
    benchmark:
        benchmark_path("report", "report")
    conda:
        ENV
    resources:
        mem_mb=1000,
    params:
        report=stage_params("report"),
        methods=METHODS,
        plates=PLATE_NAMES,
    script:
        "../../scripts/report.py"
