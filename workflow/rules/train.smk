rule train:
    """Train one CNN per method on every plate's crops (held-out batches only evaluated)."""
    input:
        crops=expand(f"{RESULTS}/crops/{{plate}}.npy", plate=PLATE_NAMES),
        tables=expand(f"{RESULTS}/crops/{{plate}}.parquet", plate=PLATE_NAMES),
    output:
        model=f"{RESULTS}/models/{{method}}/model.pt",
        log_table=f"{RESULTS}/models/{{method}}/training_log.tsv",
    params:
        train=train_params,
        out_dir=lambda wildcards: f"{RESULTS}/models/{wildcards.method}",
    threads: config["threads"]["train"]
    log:
        log_path("train", "{method}"),
    benchmark:
        benchmark_path("train", "{method}")
    resources:
        mem_mb=8000,
        gpu=1,
        runtime=240,
    script:
        "../../scripts/train.py"
