rule diagnostics:
    """Batch-removal, biology and held-out metrics (+ ground truth on the demo) and PCA of one
    source x correction."""
    input:
        wells=res("profiles/{source}/{correction}/wells.parquet"),
        truth=DEMO_TRUTH,
    output:
        metrics=res("diagnostics/{source}/{correction}/metrics.json"),
        figure=report(
            res("diagnostics/{source}/{correction}/pca.png"),
            caption="../report/pca.rst",
            category="Diagnostics",
            subcategory="{source} / {correction}",
        ),
    log:
        log_path("diagnostics", "{source}/{correction}"),
    benchmark:
        benchmark_path("diagnostics", "{source}/{correction}")
    group:
        "profiles"
    conda:
        ENV
    resources:
        mem_mb=2000,
    params:
        **VALIDATION_PARAMS,
        **ROTATION_PARAMS,
        diagnostics=stage_params("diagnostics"),
        holdout_batches=holdout_batches,
    script:
        "../scripts/diagnostics.py"


rule metric_bars:
    """One source's metric scores as bars, one per correction."""
    input:
        expand(res("diagnostics/{{source}}/{correction}/metrics.json"), correction=CORRECTIONS),
    output:
        report(
            res("diagnostics/{source}/metric_bars.png"),
            caption="../report/metric_bars.rst",
            category="Diagnostics",
            subcategory="{source}",
        ),
    log:
        log_path("metric_bars", "{source}"),
    benchmark:
        benchmark_path("metric_bars", "{source}")
    group:
        "profiles"
    conda:
        ENV
    resources:
        mem_mb=1000,
    script:
        "../scripts/metric_bars.py"


rule umap:
    """One source's UMAP of well profiles per correction, coloured by batch and treatment."""
    input:
        wells=expand(res("profiles/{{source}}/{correction}/wells.parquet"), correction=CORRECTIONS),
    output:
        report(
            res("diagnostics/{source}/umap.png"),
            caption="../report/umap.rst",
            category="Diagnostics",
            subcategory="{source}",
        ),
    log:
        log_path("umap", "{source}"),
    benchmark:
        benchmark_path("umap", "{source}")
    group:
        "profiles"
    conda:
        ENV
    resources:
        mem_mb=2000,
    params:
        corrections=CORRECTIONS,
        seed=settings.REPORT.merge(config["report"])["umap_seed"],
        max_wells=settings.REPORT.merge(config["report"])["umap_wells"],
    script:
        "../scripts/umap.py"
