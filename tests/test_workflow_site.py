"""Whole sites (crops.unit: site) on the tiny screen, through to the report: one crop and one
embedding per QC-passed site, wells of sites counting their cells, a model card saying site,
the cellprofiler source still per cell, and a page that shows sites, never calling them cells."""

import json

import pandas as pd
import pytest

from workflow_helpers import snakemake, tiny_workdir

pytestmark = pytest.mark.slow
SITES = {
    "crops": {"unit": "site", "site_size": 32},
    "features": {"measurements": ["intensity"]},  # the cellprofiler source, kept short
    "outputs": {"anndata_cells": True},
}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("site")
    snakemake(workdir, tiny_workdir(workdir, SITES))
    return workdir / "results"


def plates(results):
    return sorted(path.stem for path in (results / "qc").glob("*.parquet"))


def test_one_embedding_per_qc_passed_site_and_wells_from_them(results):
    from debatch.settings.columns import OUTPUT_COLUMNS, meaning

    for plate in plates(results):
        qc = pd.read_parquet(results / "qc" / f"{plate}.parquet")
        passed = qc[qc["QC_Pass"]].reset_index(drop=True)
        crops = pd.read_parquet(results / "crops" / f"{plate}.parquet")
        key = ["Metadata_Well", "Metadata_Site"]
        pd.testing.assert_frame_equal(crops[key], passed[key])
        assert crops["Metadata_Cells"].tolist() == passed["Count_Cells"].tolist()
        embedded = pd.read_parquet(results / "embeddings" / "erm_seed0" / f"{plate}.parquet")
        pd.testing.assert_frame_equal(embedded[key], passed[key])
        for output, table in (
            ("crops/{plate}.parquet", crops),
            ("embeddings/{source}/{plate}.parquet", embedded),
        ):
            assert all(meaning(output, c) for c in table.columns), output
        assert OUTPUT_COLUMNS  # the documented columns cover a run of sites
    wells = pd.read_parquet(results / "profiles" / "erm_seed0" / "none" / "wells.parquet")
    crops = pd.concat(pd.read_parquet(results / "crops" / f"{p}.parquet") for p in plates(results))
    cells = crops.groupby(["Metadata_Plate", "Metadata_Well"])["Metadata_Cells"].sum()
    counted = wells.set_index(["Metadata_Plate", "Metadata_Well"])["Metadata_Object_Count"]
    assert counted.to_dict() == cells.loc[counted.index].to_dict()  # cells, not sites
    card = json.loads((results / "models" / "erm" / "seed0" / "model.json").read_text())
    assert card["unit"] == "site" and card["crop_shape"][1:] == [32, 32]


def test_cellprofiler_stays_per_cell_and_only_cells_get_per_cell_anndata(results):
    import anndata

    for plate in plates(results):
        measured = anndata.read_h5ad(results / "cells" / "cellprofiler" / f"{plate}.h5ad")
        features = pd.read_parquet(
            results / "features" / f"{plate}.parquet", columns=["Metadata_Well"]
        )
        qc = pd.read_parquet(results / "qc" / f"{plate}.parquet")
        expected = qc.loc[qc["QC_Pass"], "Count_Cells"].sum()
        assert measured.n_obs == expected <= len(features)
        assert "Metadata_ObjectNumber" in measured.obs
    assert not (results / "cells" / "erm_seed0").exists()  # a model's rows are sites


def test_the_report_shows_sites(results):
    html = (results / "report" / "index.html").read_text()
    assert "Sites per treatment" in html and "Cells per treatment" not in html
    assert (results / "report" / "gallery.png").stat().st_size > 1000
    ranking = pd.read_csv(results / "report" / "ranking.tsv", sep="\t")
    assert set(ranking["method"]) == {"erm", "cellprofiler"}
