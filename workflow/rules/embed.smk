rule embed:
    """Per-cell embeddings of one plate with one method's model."""
    input:
        model=f"{RESULTS}/models/{{method}}/model.pt",
        crops=f"{RESULTS}/crops/{{plate}}.npy",
        table=f"{RESULTS}/crops/{{plate}}.parquet",
    output:
        f"{RESULTS}/embeddings/{{method}}/{{plate}}.parquet",
    params:
        embed=stage_params("embed"),
    threads: config["threads"]["train"]
    log:
        log_path("embed", "{method}/{plate}"),
    benchmark:
        benchmark_path("embed", "{method}/{plate}")
    resources:
        mem_mb=4000,
        gpu=1,
    script:
        "../../scripts/embed.py"
