rule embed:
    """Per-cell embeddings of every plate with one model (one job: torch starts once)."""
    input:
        model=res("models/{method}/seed{seed}/model.pt"),
        crops=expand(res("crops/{plate}.npy"), plate=PLATE_NAMES),
        tables=expand(res("crops/{plate}.parquet"), plate=PLATE_NAMES),
    output:
        expand(res("embeddings/{{method}}/seed{{seed}}/{plate}.parquet"), plate=PLATE_NAMES),
    log:
        log_path("embed", "{method}/seed{seed}"),
    benchmark:
        benchmark_path("embed", "{method}/seed{seed}")
    conda:
        ENV
    threads: config["threads"]["train"]
    resources:
        mem_mb=4000,
        gpu=1,
    params:
        embed=stage_params("embed"),
    script:
        "../scripts/embed.py"
