rule well_profiles:
    """Cells -> wells (aggregate), normalised per plate against negcon; shared by all corrections."""
    input:
        expand(res("embeddings/{{method}}/{plate}.parquet"), plate=PLATE_NAMES),
    output:
        res("profiles/{method}/wells_normalised.parquet"),
    log:
        log_path("well_profiles", "{method}"),
    benchmark:
        benchmark_path("well_profiles", "{method}")
    conda:
        ENV
    threads: config["threads"]["images"]
    resources:
        mem_mb=4000,
    params:
        profiles=aggregation_params(),
    script:
        "../../scripts/well_profiles.py"


rule correct_profiles:
    """Post-hoc batch correction of well profiles (none | sphering | harmony), then consensus."""
    input:
        res("profiles/{method}/wells_normalised.parquet"),
    output:
        wells=res("profiles/{method}/{correction}/wells.parquet"),
        consensus=res("profiles/{method}/{correction}/consensus.parquet"),
    log:
        log_path("correct_profiles", "{method}/{correction}"),
    benchmark:
        benchmark_path("correct_profiles", "{method}/{correction}")
    conda:
        ENV
    resources:
        mem_mb=2000,
    params:
        profiles=correction_params,
    script:
        "../../scripts/correct_profiles.py"
