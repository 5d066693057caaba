rule segment:
    """Nuclei + cells of a plate's sites (or of one shard of them: segment.shards): cell table,
    per-site QC measures, label images."""
    input:
        manifest=res("manifest/{plate}.parquet"),
        illum=res("illum/{plate}.npz"),
    output:
        cells=stage_output("cells/{plate}.parquet"),
        sites=stage_output("sites/{plate}.parquet"),
        masks=stage_output("masks/{plate}.npz"),
    log:
        log_path("segment", STAGE_JOB),
    benchmark:
        benchmark_path("segment", STAGE_JOB)
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


if not WHOLE_PLATES:

    rule gather_segment:
        """The plate's cells/{plate}.parquet, sites/{plate}.parquet and masks/{plate}.npz from
        its shards."""
        input:
            cells=shard_parts("cells/{plate}.parquet"),
            sites=shard_parts("sites/{plate}.parquet"),
            masks=shard_parts("masks/{plate}.npz"),
        output:
            cells=res("cells/{plate}.parquet"),
            sites=res("sites/{plate}.parquet"),
            masks=res("masks/{plate}.npz"),
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
