rule qc:
    """Flag the sites of a plate that fail image QC; their cells get no crops."""
    input:
        res("sites/{plate}.parquet"),
    output:
        res("qc/{plate}.parquet"),
    log:
        log_path("qc"),
    benchmark:
        benchmark_path("qc")
    group:
        "plate"
    conda:
        ENV
    resources:
        mem_mb=1000,
    params:
        qc=stage_params("qc", drop=("overlay_sites",)),
        focus_channel=CHANNELS.nuclei,
    script:
        "../scripts/qc.py"


rule qc_figures:
    """Segmentation overlays and plate heatmaps (cells, focus) of a plate, for the report."""
    input:
        qc=res("qc/{plate}.parquet"),
        masks=res("masks/{plate}.npz"),
        manifest=res("manifest/{plate}.parquet"),
        illum=res("illum/{plate}.npz"),
    output:
        overlays=report(
            res("qc/overlays/{plate}.png"),
            caption="../report/qc_overlays.rst",
            category="Quality control",
            subcategory="Segmentation",
        ),
        heatmaps=report(
            res("qc/heatmaps/{plate}.png"),
            caption="../report/qc_heatmaps.rst",
            category="Quality control",
            subcategory="Cell count and focus",
        ),
    log:
        log_path("qc_figures"),
    benchmark:
        benchmark_path("qc_figures")
    group:
        "plate"
    conda:
        ENV
    resources:
        mem_mb=2000,
    params:
        overlay_sites=settings.QC.merge(config["qc"])["overlay_sites"],
        channels=CHANNELS.as_params(),
    script:
        "../scripts/qc_figures.py"


rule plate_qc:
    """Cells per well of every plate on one colour scale, from the crops tables (the cells analysed)."""
    input:
        expand(res("crops/{plate}.parquet"), plate=PLATE_NAMES),
    output:
        report(
            res("diagnostics/plate_qc.png"),
            caption="../report/plate_qc.rst",
            category="Quality control",
        ),
    log:
        log_path("plate_qc", "plate_qc"),
    benchmark:
        benchmark_path("plate_qc", "plate_qc")
    conda:
        ENV
    resources:
        mem_mb=1000,
    script:
        "../scripts/plate_qc.py"
