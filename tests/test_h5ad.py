"""Profiles as AnnData and provenance in every file: what a scverse user opens equals the
Parquet, and both say how they were made."""

import anndata
import numpy as np
import pandas as pd
import pytest

import debatch
from debatch.core.io import write_parquet
from debatch.core.provenance import job_provenance, read_parquet_provenance
from debatch.profiles.cells import cell_profiles
from debatch.profiles.h5ad import feature_annotation, obs_names, write_h5ad


def wells_table():
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "Metadata_Plate": ["P1", "P1", "P2"],
            "Metadata_Well": ["A01", "A02", "A01"],
            "Metadata_Cells": [120, 98, 101],
            "f1": rng.normal(size=3),
            "Cells_AreaShape_Area": rng.normal(size=3),
        }
    )


def test_h5ad_holds_the_parquets_rows_values_and_provenance(tmp_path):
    wells = wells_table()
    record = job_provenance("correct_profiles", {"method": "none"}, [])
    write_h5ad(wells, tmp_path / "wells.h5ad", record)
    adata = anndata.read_h5ad(tmp_path / "wells.h5ad")
    assert list(adata.var_names) == ["f1", "Cells_AreaShape_Area"]
    np.testing.assert_array_equal(
        adata.X, wells[["f1", "Cells_AreaShape_Area"]].to_numpy(np.float32)
    )
    obs = adata.obs.reset_index(drop=True)
    for column in ("Metadata_Plate", "Metadata_Well", "Metadata_Cells"):
        assert obs[column].astype(object).tolist() == wells[column].tolist()
    assert list(adata.obs_names) == ["P1_A01", "P1_A02", "P2_A01"]
    made = adata.uns["debatch"]
    assert made["step"] == record["step"] and made["code"] == record["code"]
    assert made["settings"] == {"method": "none"}


def test_cellprofiler_cells_are_the_crops_tables_cells_without_positions(tmp_path):
    key = {"Metadata_Well": ["A01", "A01", "A02"], "Metadata_Site": [1, 1, 1]}
    features = pd.DataFrame(
        {
            **key,
            "Metadata_ObjectNumber": [1, 2, 1],
            "Cells_AreaShape_Area": [10.0, np.nan, 30.0],
            "Cells_Location_Center_X": [1.0, 2.0, 3.0],
        }
    )
    features.to_parquet(tmp_path / "features.parquet")
    crops = pd.DataFrame({"Metadata_Well": ["A02", "A01"], "Metadata_Site": [1, 1]})
    crops.assign(Metadata_ObjectNumber=[1, 2]).to_parquet(tmp_path / "crops.parquet")
    cells, names = cell_profiles(tmp_path / "features.parquet", tmp_path / "crops.parquet")
    assert names == ["Cells_AreaShape_Area"]  # where a cell is is not what it is
    assert cells["Metadata_Well"].tolist() == ["A02", "A01"]  # the crops table's cells, in order
    write_h5ad(cells, tmp_path / "cells.h5ad", features=names)
    adata = anndata.read_h5ad(tmp_path / "cells.h5ad")
    np.testing.assert_array_equal(adata.X[:, 0], [30.0, np.nan])  # NaN: not measurable, kept
    assert list(adata.var_names) == names and "Cells_Location_Center_X" not in adata.obs


def test_parquet_says_how_it_was_made(tmp_path):
    source = tmp_path / "input.parquet"
    write_parquet(wells_table(), source)
    assert read_parquet_provenance(source) is None
    record = job_provenance("well_profiles", {"profiles": {"operation": "median"}}, [str(source)])
    write_parquet(wells_table(), tmp_path / "out.parquet", record)
    found = read_parquet_provenance(tmp_path / "out.parquet")
    assert (
        found["step"] == "well_profiles" and found["settings"]["profiles"]["operation"] == "median"
    )
    assert found["inputs"] == {str(source): source.stat().st_size}
    assert found["code"].startswith(debatch.__version__)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "out.parquet"), wells_table())


def test_rows_are_named_by_what_they_are():
    wells = wells_table()
    assert list(obs_names(wells)) == ["P1_A01", "P1_A02", "P2_A01"]
    cells = wells.assign(Metadata_Site=[1, 1, 1], Metadata_ObjectNumber=[4, 5, 4])
    assert list(obs_names(cells)) == ["P1_A01_1_4", "P1_A02_1_5", "P2_A01_1_4"]
    treatments = pd.DataFrame({"Metadata_Treatment": ["DMSO", "cpd01"]})
    assert list(obs_names(treatments)) == ["DMSO", "cpd01"]
    with pytest.raises(ValueError, match="P1_A01"):
        obs_names(wells.assign(Metadata_Well=["A01", "A01", "A01"]))


def test_cellprofiler_features_say_compartment_module_and_channels():
    var = feature_annotation(
        [
            "Cells_Intensity_MeanIntensity_DNA",
            "Cytoplasm_Correlation_Correlation_DNA_RNA",
            "Nuclei_AreaShape_Area",
            "emb_000",
        ],
        channels=["DNA", "RNA"],
    )
    assert var.to_dict("records") == [
        {"compartment": "Cells", "module": "Intensity", "channel": "DNA"},
        {"compartment": "Cytoplasm", "module": "Correlation", "channel": "DNA,RNA"},
        {"compartment": "Nuclei", "module": "AreaShape", "channel": ""},
        {"compartment": "", "module": "", "channel": ""},
    ]


def test_corrections_sit_beside_the_features_and_scanpy_runs_on_them(tmp_path):
    """One file per source: X uncorrected, each correction in obsm by row name (whatever the
    order of its table), X_pca ready; scanpy's neighbours and UMAP run on any of them."""
    import scanpy as sc

    rng = np.random.default_rng(1)
    wells = pd.DataFrame(
        {
            "Metadata_Plate": np.repeat(["P1", "P2"], 10),
            "Metadata_Well": [f"A{i:02d}" for i in range(1, 11)] * 2,
            "Metadata_Treatment": ["DMSO", "cpd"] * 10,
            **{f"f{i}": rng.normal(size=20) for i in range(6)},
        }
    )
    harmony = wells.iloc[::-1].drop(columns=[f"f{i}" for i in range(6)])
    harmony = harmony.assign(harmony_pc_000=np.arange(20.0)[::-1], harmony_pc_001=0.0)
    write_h5ad(wells, tmp_path / "wells.h5ad", corrections={"harmony": harmony})
    adata = sc.read_h5ad(tmp_path / "wells.h5ad")
    np.testing.assert_array_equal(adata.obsm["X_harmony"][:, 0], np.arange(20.0))
    assert adata.obsm["X_pca"].shape == (20, 6)
    sc.pp.neighbors(adata, n_neighbors=4, use_rep="X_harmony")
    sc.tl.umap(adata, random_state=0)
    assert adata.obsm["X_umap"].shape == (20, 2)
