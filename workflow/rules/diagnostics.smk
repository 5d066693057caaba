rule diagnostics:
    """Batch-removal and biology metrics (+ ground truth on the demo) and PCA of one method x correction."""
    input:
        wells=res("profiles/{method}/{correction}/wells.parquet"),
        truth=DEMO_TRUTH,
    output:
        metrics=res("diagnostics/{method}/{correction}/metrics.json"),
        figure=report(
            res("diagnostics/{method}/{correction}/pca.png"),
            caption="../report/pca.rst",
            category="Diagnostics",
            subcategory="{method} / {correction}",
        ),
    log:
        log_path("diagnostics", "{method}/{correction}"),
    benchmark:
        benchmark_path("diagnostics", "{method}/{correction}")
    conda:
        ENV
    resources:
        mem_mb=2000,
    params:
        diagnostics=stage_params("diagnostics"),
        holdout_batches=config["train"].get("holdout_batches", []),
    script:
        "../../scripts/diagnostics.py"


rule metric_bars:
    """One method's metric scores as bars, one per correction."""
    input:
        expand(res("diagnostics/{{method}}/{correction}/metrics.json"), correction=CORRECTIONS),
    output:
        report(
            res("diagnostics/{method}/metric_bars.png"),
            caption="../report/metric_bars.rst",
            category="Diagnostics",
            subcategory="{method}",
        ),
    log:
        log_path("metric_bars", "{method}"),
    benchmark:
        benchmark_path("metric_bars", "{method}")
    conda:
        ENV
    resources:
        mem_mb=1000,
    script:
        "../../scripts/metric_bars.py"
