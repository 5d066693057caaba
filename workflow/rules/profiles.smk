rule well_profiles:
    """Cells -> wells (aggregate), normalised per plate against negcon (CellProfiler features:
    then feature selection); shared by all corrections. features.tsv: each feature kept or why not.
    """
    input:
        unpack(source_cells),
    output:
        wells=res("profiles/{source}/wells_normalised.parquet"),
        features=res("profiles/{source}/features.tsv"),
    log:
        log_path("well_profiles", "{source}"),
    benchmark:
        benchmark_path("well_profiles", "{source}")
    conda:
        ENV
    threads: config["threads"]["images"]
    resources:
        mem_mb=4000,
    params:
        profiles=aggregation_params,
        plate_without_negcon=config["qc"].get("plate_without_negcon", "fail"),
    script:
        "../scripts/well_profiles.py"


rule correct_profiles:
    """Post-hoc batch correction of well profiles (none | sphering | harmony), then consensus;
    the wells also as AnnData (wells.h5ad) for scanpy / scverse."""
    input:
        res("profiles/{source}/wells_normalised.parquet"),
    output:
        wells=res("profiles/{source}/{correction}/wells.parquet"),
        h5ad=res("profiles/{source}/{correction}/wells.h5ad"),
        consensus=res("profiles/{source}/{correction}/consensus.parquet"),
    log:
        log_path("correct_profiles", "{source}/{correction}"),
    benchmark:
        benchmark_path("correct_profiles", "{source}/{correction}")
    group:
        "profiles"
    conda:
        ENV
    resources:
        mem_mb=2000,
    params:
        profiles=correction_params,
    script:
        "../scripts/correct_profiles.py"


rule cells_h5ad:
    """One plate's per-cell profiles of one source as AnnData (outputs.anndata_cells): the
    cells and features its well profiles are made from."""
    input:
        unpack(lambda wildcards: plate_cells(wildcards.source, wildcards.plate)),
    output:
        res("cells/{source}/{plate}.h5ad"),
    log:
        log_path("cells_h5ad", "{source}/{plate}"),
    benchmark:
        benchmark_path("cells_h5ad", "{source}/{plate}")
    conda:
        ENV
    resources:
        # the plate's whole table is held (read, selected, copied to float32, written)
        mem_mb=lambda wildcards, input: max(4000, int(10 * input.size_mb)),
    script:
        "../scripts/cells_h5ad.py"
