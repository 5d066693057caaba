rule qc:
    """Flag the sites of a plate that fail image QC; their cells get no crops."""
    input:
        f"{RESULTS}/sites/{{plate}}.parquet",
    output:
        f"{RESULTS}/qc/{{plate}}.parquet",
    params:
        qc=stage_params("qc", drop=("overlay_sites",)),
        focus_channel=config["nuclei_channel"],
    log:
        log_path("qc"),
    benchmark:
        benchmark_path("qc")
    resources:
        mem_mb=1000,
    script:
        "../../scripts/qc.py"


rule qc_figures:
    """Segmentation overlays and plate heatmaps (cells, focus) of a plate, for the report."""
    input:
        qc=f"{RESULTS}/qc/{{plate}}.parquet",
        masks=f"{RESULTS}/masks/{{plate}}.npz",
        manifest=f"{RESULTS}/manifest/{{plate}}.parquet",
        illum=f"{RESULTS}/illum/{{plate}}.npz",
    output:
        overlays=report(f"{RESULTS}/qc/overlays/{{plate}}.png", caption="../report/qc_overlays.rst",
                        category="Quality control", subcategory="Segmentation"),
        heatmaps=report(f"{RESULTS}/qc/heatmaps/{{plate}}.png", caption="../report/qc_heatmaps.rst",
                        category="Quality control", subcategory="Cell count and focus"),
    params:
        overlay_sites=qc_lib.merge_params(config["qc"])["overlay_sites"],
        channels=CHANNELS,
        nuclei_channel=config["nuclei_channel"],
        cell_channel=config["cell_channel"],
    log:
        log_path("qc_figures"),
    benchmark:
        benchmark_path("qc_figures")
    resources:
        mem_mb=2000,
    script:
        "../../scripts/qc_figures.py"
