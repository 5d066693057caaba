rule embed:
    """Per-cell embeddings of one plate with one method's model."""
    input:
        model=res("models/{method}/model.pt"),
        crops=res("crops/{plate}.npy"),
        table=res("crops/{plate}.parquet"),
    output:
        res("embeddings/{method}/{plate}.parquet"),
    log:
        log_path("embed", "{method}/{plate}"),
    benchmark:
        benchmark_path("embed", "{method}/{plate}")
    conda:
        ENV
    threads: config["threads"]["train"]
    resources:
        mem_mb=4000,
        gpu=1,
    params:
        embed=stage_params("embed"),
    script:
        "../../scripts/embed.py"
