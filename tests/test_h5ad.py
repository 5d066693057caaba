"""Profiles as AnnData and provenance in every file: what a scverse user opens equals the
Parquet, and both say how they were made."""

import json

import anndata
import numpy as np
import pandas as pd

import debatch
from debatch.core.io import write_parquet
from debatch.core.provenance import job_provenance, read_parquet_provenance
from debatch.profiles.cells import cell_profiles
from debatch.profiles.h5ad import write_h5ad


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
    assert json.loads(adata.uns["debatch"]) == record


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
