rule segment_shard:
    """Nuclei + cells of one shard of a plate's sites: cell table, per-site QC measures, label images."""
    input:
        manifest=res("manifest/{plate}.parquet"),
        illum=res("illum/{plate}.npz"),
    output:
        cells=temp(res("cells/{plate}/shard{shard}.parquet")),
        sites=temp(res("sites/{plate}/shard{shard}.parquet")),
        masks=temp(res("masks/{plate}/shard{shard}.npz")),
    log:
        log_path("segment", "{plate}/shard{shard}"),
    benchmark:
        benchmark_path("segment", "{plate}/shard{shard}")
    group:
        "plate"
    conda:
        ENV
    threads: config["threads"]["images"]
    resources:
        mem_mb=4000,
        gpu=segment_gpu(),
    params:
        segment=segment_settings(),
        shards=len(SHARDS),
        channels=CHANNELS.as_params(),
    script:
        "../scripts/segment.py"


rule segment:
    """The plate's cells/{plate}.parquet, sites/{plate}.parquet and masks/{plate}.npz from its shards."""
    input:
        cells=expand(res("cells/{{plate}}/shard{shard}.parquet"), shard=SHARDS),
        sites=expand(res("sites/{{plate}}/shard{shard}.parquet"), shard=SHARDS),
        masks=expand(res("masks/{{plate}}/shard{shard}.npz"), shard=SHARDS),
    output:
        # masks first: with one shard it is a hard link of the shard file, an input, and
        # Snakemake touches outputs in this order after the job (later ones stay newer)
        masks=res("masks/{plate}.npz"),
        cells=res("cells/{plate}.parquet"),
        sites=res("sites/{plate}.parquet"),
    log:
        log_path("segment"),
    benchmark:
        benchmark_path("gather_segment")
    group:
        "plate"
    conda:
        ENV
    resources:
        mem_mb=2000,
    script:
        "../scripts/gather_segment.py"
