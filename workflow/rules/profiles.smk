rule well_profiles:
    """Cells -> wells (aggregate), normalised per plate against negcon; shared by all corrections."""
    input:
        expand(f"{RESULTS}/embeddings/{{{{method}}}}/{{plate}}.parquet", plate=PLATE_NAMES),
    output:
        f"{RESULTS}/profiles/{{method}}/wells_normalised.parquet",
    params:
        profiles=aggregation_params(),
    threads: config["threads"]["images"]
    log:
        log_path("well_profiles", "{method}"),
    benchmark:
        benchmark_path("well_profiles", "{method}")
    resources:
        mem_mb=4000,
    script:
        "../../scripts/well_profiles.py"


rule correct_profiles:
    """Post-hoc batch correction of well profiles (none | sphering | harmony), then consensus."""
    input:
        f"{RESULTS}/profiles/{{method}}/wells_normalised.parquet",
    output:
        wells=f"{RESULTS}/profiles/{{method}}/{{correction}}/wells.parquet",
        consensus=f"{RESULTS}/profiles/{{method}}/{{correction}}/consensus.parquet",
    params:
        profiles=correction_params,
    log:
        log_path("correct_profiles", "{method}/{correction}"),
    benchmark:
        benchmark_path("correct_profiles", "{method}/{correction}")
    resources:
        mem_mb=2000,
    script:
        "../../scripts/correct_profiles.py"
