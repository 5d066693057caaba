rule train:
    """Train one CNN per method and seed on every plate's crops (held-out batches only scored)."""
    input:
        crops=expand(res("crops/{plate}.npy"), plate=PLATE_NAMES),
        tables=expand(res("crops/{plate}.parquet"), plate=PLATE_NAMES),
    output:
        model=res("models/{method}/seed{seed}/model.pt"),
        log_table=res("models/{method}/seed{seed}/training_log.tsv"),
        card=res(f"models/{{method}}/seed{{seed}}/{settings.MODEL_CARD}"),
    log:
        log_path("train", "{method}/seed{seed}"),
    benchmark:
        benchmark_path("train", "{method}/seed{seed}")
    conda:
        ENV
    threads: config["threads"]["train"]
    resources:
        mem_mb=8000,
        gpu=rule_params.gpu_jobs(config["train"]["device"]),
        runtime=240,
    params:
        train=train_params,
        channels=list(config["channels"]),  # kept in the model's card (model.json)
    script:
        "../scripts/train.py"


# train.rotate_holdout: one model per method, seed and held-out batch (its train params hold
# out that batch alone)
use rule train as train_fold with:
    output:
        model=res("models/{method}-{fold}/seed{seed}/model.pt"),
        log_table=res("models/{method}-{fold}/seed{seed}/training_log.tsv"),
        card=res(f"models/{{method}}-{{fold}}/seed{{seed}}/{settings.MODEL_CARD}"),
    log:
        log_path("train", "{method}-{fold}/seed{seed}"),
    benchmark:
        benchmark_path("train", "{method}-{fold}/seed{seed}")
