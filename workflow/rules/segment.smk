rule segment:
    """Nuclei + cells of one shard of a plate's sites: cell table, per-site QC measures, label images."""
    input:
        manifest=f"{RESULTS}/manifest/{{plate}}.parquet",
        illum=f"{RESULTS}/illum/{{plate}}.npz",
    output:
        cells=temp(f"{RESULTS}/cells/{{plate}}/shard{{shard}}.parquet"),
        sites=temp(f"{RESULTS}/sites/{{plate}}/shard{{shard}}.parquet"),
        masks=temp(f"{RESULTS}/masks/{{plate}}/shard{{shard}}.npz"),
    params:
        segment=segment_settings(),
        shards=len(SHARDS),
        channels=CHANNELS,
        nuclei_channel=config["nuclei_channel"],
        cell_channel=config["cell_channel"],
    threads: config["threads"]["images"]
    log:
        log_path("segment", "{plate}/shard{shard}"),
    benchmark:
        benchmark_path("segment", "{plate}/shard{shard}")
    resources:
        mem_mb=4000,
        gpu=segment_gpu(),
    script:
        "../../scripts/segment.py"


rule gather_segment:
    """The plate's cells/{plate}.parquet, sites/{plate}.parquet and masks/{plate}.npz from its shards."""
    input:
        cells=expand(f"{RESULTS}/cells/{{{{plate}}}}/shard{{shard}}.parquet", shard=SHARDS),
        sites=expand(f"{RESULTS}/sites/{{{{plate}}}}/shard{{shard}}.parquet", shard=SHARDS),
        masks=expand(f"{RESULTS}/masks/{{{{plate}}}}/shard{{shard}}.npz", shard=SHARDS),
    output:
        cells=f"{RESULTS}/cells/{{plate}}.parquet",
        sites=f"{RESULTS}/sites/{{plate}}.parquet",
        masks=f"{RESULTS}/masks/{{plate}}.npz",
    log:
        log_path("segment"),
    benchmark:
        benchmark_path("gather_segment")
    resources:
        mem_mb=2000,
    script:
        "../../scripts/gather_segment.py"
