rule report:
    """One self-contained HTML page comparing every method x correction over seeds; beside it the
    ranking and hit list as TSV and every plate's QC figures, which the page links."""
    input:
        metrics=expand(
            res("diagnostics/{source}/{correction}/metrics.json"),
            source=SOURCES,
            correction=CORRECTIONS,
        ),
        figures=expand(
            res("diagnostics/{source}/{correction}/pca.png"),
            source=SOURCES,
            correction=CORRECTIONS,
        ),
        metric_bars=expand(res("diagnostics/{source}/metric_bars.png"), source=SOURCES),
        umap=expand(res("diagnostics/{source}/umap.png"), source=SOURCES),
        cells_per_well=res("diagnostics/plate_qc.png"),
        training_logs=list(TRAINING_LOGS.values()),
        model_cards=list(MODEL_CARDS.values()),
        illum=expand(res("illum/{plate}.png"), plate=PLATE_NAMES),
        qc_overlays=expand(res("qc/overlays/{plate}.png"), plate=PLATE_NAMES),
        qc_heatmaps=expand(res("qc/heatmaps/{plate}.png"), plate=PLATE_NAMES),
        qc_tables=expand(res("qc/{plate}.parquet"), plate=PLATE_NAMES),
        gallery=res("report/gallery.png"),
    output:
        **WILDS_TABLE,
        html=report(res("report/index.html"), caption="../report/index.rst", category="Report"),
        ranking=report(
            res("report/ranking.tsv"), caption="../report/ranking.rst", category="Report"
        ),
        hits=report(res("report/hits.tsv"), caption="../report/hits.rst", category="Report"),
        # names from debatch.report.plates (FIGURES, CELLS_PER_WELL)
        plate_figures=expand(
            res("report/plates/{plate}/{name}.png"),
            plate=PLATE_NAMES,
            name=["heatmaps", "overlays", "illum"],
        ),
        cells_per_well=res("report/plates/cells_per_well.png"),
    log:
        log_path("report", "report"),
    benchmark:
        benchmark_path("report", "report")
    conda:
        ENV
    resources:
        mem_mb=1000,
    params:
        report=stage_params("report"),
        concentration_share=settings.QC.merge(config["qc"])["concentration_share"],
        sources=SOURCES,
        logged=list(TRAINING_LOGS),
        carded=list(MODEL_CARDS),
        frozen=list(FROZEN),
        plates=PLATE_NAMES,
        config=config,  # shown on the page: the run's whole configuration
    script:
        "../scripts/report.py"


rule gallery:
    """Example cells (whole sites with crops.unit site) per treatment, for the report."""
    input:
        crops=expand(res("crops/{plate}.npy"), plate=PLATE_NAMES),
        tables=expand(res("crops/{plate}.parquet"), plate=PLATE_NAMES),
    output:
        res("report/gallery.png"),
    log:
        log_path("gallery", "gallery"),
    benchmark:
        benchmark_path("gallery", "gallery")
    conda:
        ENV
    resources:
        mem_mb=1000,
    params:
        cells=settings.REPORT.merge(config["report"])["gallery_cells"],
        seed=settings.REPORT.merge(config["report"])["seed"],
        channels=CHANNELS.names,
    script:
        "../scripts/gallery.py"
