rule embed:
    """Per-cell embeddings of every plate with one model, trained here or frozen (one job:
    torch starts once)."""
    input:
        model=lambda wildcards: model_path(wildcards.source, "model.pt"),
        crops=expand(res("crops/{plate}.npy"), plate=PLATE_NAMES),
        tables=expand(res("crops/{plate}.parquet"), plate=PLATE_NAMES),
    output:
        expand(res("embeddings/{{source}}/{plate}.parquet"), plate=PLATE_NAMES),
    log:
        log_path("embed", "{source}"),
    benchmark:
        benchmark_path("embed", "{source}")
    conda:
        ENV
    threads: config["threads"]["train"]
    resources:
        mem_mb=4000,
        gpu=rule_params.gpu_jobs(config["embed"]["device"]),
    params:
        # which models embed (embed.models, models_from) is not how: it never reruns a job
        embed=stage_params("embed", drop=settings.FROZEN_KEYS),
        channels=list(config["channels"]),
    script:
        "../scripts/embed.py"
