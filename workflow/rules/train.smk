rule train:
    """Train one CNN per method on every plate's crops (held-out batches only evaluated)."""
    input:
        crops=expand(res("crops/{plate}.npy"), plate=PLATE_NAMES),
        tables=expand(res("crops/{plate}.parquet"), plate=PLATE_NAMES),
    output:
        model=res("models/{method}/model.pt"),
        log_table=res("models/{method}/training_log.tsv"),
    log:
        log_path("train", "{method}"),
    benchmark:
        benchmark_path("train", "{method}")
    conda:
        ENV
    threads: config["threads"]["train"]
    resources:
        mem_mb=8000,
        gpu=1,
        runtime=240,
    params:
        train=train_params,
    script:
        "../../scripts/train.py"
