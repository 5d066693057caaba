def train_params(wildcards):
    """This method's settings: the shared train keys plus only its own block (e.g. train.abra),
    so tuning one method, or adding one to train.methods, never retrains the others."""
    shared = stage_params("train", drop=("methods", *train_lib.METHOD_NAMES))
    own = config["train"].get(wildcards.method)
    return {**shared, "method": wildcards.method, **({wildcards.method: own} if own else {})}


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
