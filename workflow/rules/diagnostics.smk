rule diagnostics:
    """Batch-removal and biology metrics + PCA figure of one method x correction."""
    input:
        f"{RESULTS}/profiles/{{method}}/{{correction}}/wells.parquet",
    output:
        metrics=f"{RESULTS}/diagnostics/{{method}}/{{correction}}/metrics.json",
        figure=report(f"{RESULTS}/diagnostics/{{method}}/{{correction}}/pca.png",
                      caption="../report/pca.rst", category="Diagnostics",
                      subcategory="{method} / {correction}"),
    params:
        diagnostics=stage_params("diagnostics"),
    log:
        log_path("diagnostics", "{method}/{correction}"),
    benchmark:
        benchmark_path("diagnostics", "{method}/{correction}")
    resources:
        mem_mb=2000,
    script:
        "../../scripts/diagnostics.py"
