"""End to end: an external source (docs/running.md, "Compare your own features") through
profiles, diagnostics and the report, ranked beside the pipeline's own sources.

The external table is the run's own CellProfiler features written as CytoTable writes them
(Image_Metadata_Plate, Image_Metadata_Well as B7, Metadata_ImageNumber, object numbers, an image
measurement, float64, one file per plate): read as an external source its well profiles,
feature selection and scores must equal the `cellprofiler` source's. Beside it, a real
CellProfiler table (NF1, CytoTable's export with its merge-suffixed Image_Metadata_Plate_x /
_Well_x and 2,000 measurements) laid over the same wells goes the whole way to the ranking: no
multi-batch CellProfiler table is at hand, so its cells are placed on the tiny screen's wells
(its layout and values are real, its biology is not this screen's)."""

import re

import numpy as np
import pandas as pd
import pytest
import yaml

from debatch.profiles.wells import profiled_rows
from debatch.settings import feature_columns
from debatch.settings.columns import meaning

from conftest import REAL_DATA, REPO
from workflow_helpers import snakemake, tiny_workdir

pytestmark = pytest.mark.slow

PLATES = ["plate01", "plate02", "plate03"]
CORRECTIONS = ["none", "sphering"]


def recipe() -> dict:
    """The overlay docs/running.md gives under "Compare your own features"."""
    text = (REPO / "docs" / "running.md").read_text()
    section = text[text.index("## Compare your own features") :]
    block = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    return yaml.safe_load("\n".join(line[3:] for line in block.splitlines()))


def write_cytotable(results, plate: str, path) -> None:
    """The crops tables' cells of a plate (the cells the cellprofiler source profiles) with
    their features, in CytoTable's layout."""
    features_path = results / "features" / f"{plate}.parquet"
    cells = pd.read_parquet(features_path).iloc[
        profiled_rows(features_path, results / "crops" / f"{plate}.parquet")
    ]
    sites = cells.groupby(["Metadata_Well", "Metadata_Site"]).ngroup().to_numpy()
    table = pd.DataFrame(
        {
            "Metadata_ImageNumber": sites + 1,
            "Image_Metadata_Plate": cells["Metadata_Plate"].to_numpy(),
            "Image_Metadata_Well": [f"{w[0]}{int(w[1:])}" for w in cells["Metadata_Well"]],
            "Image_Metadata_Site": cells["Metadata_Site"].astype(str).to_numpy(),
            "Metadata_Cells_Number_Object_Number": cells["Metadata_ObjectNumber"].to_numpy(),
            "Image_Count_Cells": np.bincount(sites)[sites],
            **{c: cells[c].to_numpy(np.float64) for c in feature_columns(cells.columns)},
        }
    )
    table.to_parquet(path, index=False)


def write_nf1_over(results, path) -> None:
    """NF1's real CellProfiler cells, three per well, on every well the tiny screen profiles."""
    nf1 = pd.read_parquet(REAL_DATA / "nf1_plate2" / "Plate_2_with_image_data_shrunken.parquet")
    wells = pd.concat(
        pd.read_parquet(
            results / "crops" / f"{p}.parquet", columns=["Metadata_Plate", "Metadata_Well"]
        )
        for p in PLATES
    ).drop_duplicates()
    rows = np.arange(3 * len(wells)) % len(nf1)
    table = nf1.iloc[rows].reset_index(drop=True)
    table["Image_Metadata_Plate_x"] = np.repeat(wells["Metadata_Plate"].to_numpy(), 3)
    table["Image_Metadata_Well_x"] = np.repeat(wells["Metadata_Well"].to_numpy(), 3)
    table.to_parquet(path, index=False)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("external")
    config = tiny_workdir(workdir, {"profiles": {"corrections": CORRECTIONS}})
    results = workdir / "results"
    targets = [
        str(results / kind / f"{p}.parquet") for p in PLATES for kind in ("features", "crops")
    ]
    snakemake(workdir, config, *targets)
    (workdir / "cytotable").mkdir()
    for plate in PLATES:
        write_cytotable(results, plate, workdir / "cytotable" / f"{plate}.parquet")
    overlay = workdir / "my_features.yaml"
    sources = recipe()
    if REAL_DATA.is_dir():
        write_nf1_over(results, workdir / "nf1.parquet")
        sources["external"]["nf1_real"] = {"path": "nf1.parquet"}
    overlay.write_text(yaml.safe_dump(sources))
    snakemake(workdir, [config, overlay])
    return workdir, config


def test_the_external_tables_are_the_sheets_plates_with_the_platemaps_metadata(finished_run):
    results = finished_run[0] / "results"
    for plate in PLATES:
        table = pd.read_parquet(results / "external" / "cp_cytotable" / f"{plate}.parquet")
        features = pd.read_parquet(results / "features" / f"{plate}.parquet")
        assert set(table["Metadata_Well"]) <= set(features["Metadata_Well"])
        assert not [c for c in table if meaning("external/{source}/{plate}.parquet", c) is None]
        assert "Image_Count_Cells" not in table and "Nuclei_Location_Center_X" not in table


def test_the_external_source_profiles_equal_the_cellprofiler_sources(finished_run):
    profiles = finished_run[0] / "results" / "profiles"
    for name in ["wells_normalised.parquet", *(f"{c}/wells.parquet" for c in CORRECTIONS)]:
        pd.testing.assert_frame_equal(
            pd.read_parquet(profiles / "cp_cytotable" / name),
            pd.read_parquet(profiles / "cellprofiler" / name),
        )
    features = {
        s: pd.read_csv(profiles / s / "features.tsv", sep="\t")
        for s in ("cp_cytotable", "cellprofiler")
    }
    pd.testing.assert_frame_equal(features["cp_cytotable"], features["cellprofiler"])
    assert (profiles / "cp_cytotable" / "wells.h5ad").is_file()


def test_the_report_ranks_the_external_source_beside_the_pipelines(finished_run):
    results = finished_run[0] / "results"
    ranking = pd.read_csv(results / "report" / "ranking.tsv", sep="\t")
    assert {"erm", "cellprofiler", "cp_cytotable"} <= set(ranking["method"])
    by_method = ranking.set_index(["method", "correction"]).sort_index()
    for correction in CORRECTIONS:
        assert by_method.loc[("cp_cytotable", correction), "overall"] == pytest.approx(
            by_method.loc[("cellprofiler", correction), "overall"]
        )
    html = (results / "report" / "index.html").read_text()
    assert "cp_cytotable / none" in html
    assert (results / "diagnostics" / "cp_cytotable" / "umap.png").is_file()


def test_a_well_the_platemap_lacks_ends_the_job_in_one_line(finished_run):
    workdir, config = finished_run
    table = pd.concat([pd.read_parquet(workdir / "cytotable" / f"{p}.parquet") for p in PLATES])
    table.iloc[0, table.columns.get_loc("Image_Metadata_Well")] = "H12"  # a plate01 cell
    table.to_parquet(workdir / "stray.parquet", index=False)
    overlay = workdir / "stray.yaml"
    overlay.write_text(yaml.safe_dump({"external": {"stray": {"path": "stray.parquet"}}}))
    target = str(workdir / "results" / "external" / "stray" / "plate01.parquet")
    result = snakemake(workdir, [config, overlay], target, check=False)
    assert result.returncode != 0
    log = (workdir / "results" / "logs" / "external_cells" / "stray.log").read_text()
    errors = [line for line in log.splitlines() if "debatch error:" in line]
    assert len(errors) == 1 and "Traceback" not in log, log
    assert "plate plate01 well(s) ['H12'] are not on its platemap" in errors[0]
    assert "stray.parquet" in errors[0]


def test_a_real_cellprofiler_export_goes_the_whole_way_to_the_ranking(finished_run):
    """Found by its merge-suffixed plate and well columns, CellProfiler's bookkeeping columns
    left out, all of feature selection run on its real measurements, a row of the ranking."""
    if not REAL_DATA.is_dir():
        pytest.skip(f"real data not found at {REAL_DATA}")
    results = finished_run[0] / "results"
    table = pd.read_parquet(results / "external" / "nf1_real" / "plate01.parquet")
    assert "Cytoplasm_Number_Object_Number" not in table and "Image_Count_Cells" not in table
    features = pd.read_csv(results / "profiles" / "nf1_real" / "features.tsv", sep="\t")
    assert len(features) > 1000 and features["kept"].any()
    assert {"frequency_threshold", "correlation_threshold"} <= set(features["dropped_by"])
    ranking = pd.read_csv(results / "report" / "ranking.tsv", sep="\t")
    assert set(ranking.loc[ranking["method"] == "nf1_real", "correction"]) == set(CORRECTIONS)
