rule well_profiles:
    """Cells -> wells (aggregate), normalised per plate against negcon, then feature selection
    (embeddings: its guards only); shared by all corrections. features.tsv: each feature kept or
    why not.
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
        features=feature_kind,
        plate_without_negcon=config["qc"].get("plate_without_negcon", "fail"),
    script:
        "../scripts/well_profiles.py"


rule correct_profiles:
    """Post-hoc batch correction of well profiles (none | sphering | harmony), then consensus."""
    input:
        res("profiles/{source}/wells_normalised.parquet"),
    output:
        wells=res("profiles/{source}/{correction}/wells.parquet"),
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


rule source_h5ad:
    """A source's well profiles as one AnnData for scanpy / scverse: X the plate-normalised
    profiles, each correction beside them in obsm (X_sphering, X_harmony), and X_pca."""
    input:
        # X: the uncorrected wells (correction none, or the same table before corrections), so
        # on a cluster this job joins its source's "profiles" group
        wells=(
            res("profiles/{source}/none/wells.parquet")
            if "none" in CORRECTIONS
            else res("profiles/{source}/wells_normalised.parquet")
        ),
        corrections=expand(
            res("profiles/{{source}}/{correction}/wells.parquet"),
            correction=[c for c in CORRECTIONS if c != "none"],
        ),
    output:
        res("profiles/{source}/wells.h5ad"),
    log:
        log_path("source_h5ad", "{source}"),
    benchmark:
        benchmark_path("source_h5ad", "{source}")
    group:
        "profiles"
    conda:
        ENV
    resources:
        mem_mb=2000,
    params:
        corrections=[c for c in CORRECTIONS if c != "none"],
        channels=list(config["channels"]),
    script:
        "../scripts/source_h5ad.py"


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
    params:
        channels=list(config["channels"]),
    script:
        "../scripts/cells_h5ad.py"
