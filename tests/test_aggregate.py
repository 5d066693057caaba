"""Well aggregation: exact pandas median/mean, any row order, streamed from Parquet, bad cells named."""

import numpy as np
import pandas as pd
import pytest

from debatch.aggregate import COUNT_COLUMN, aggregate_parquet, aggregate_wells


def random_cells(seed=0, n_cells=400, n_features=5):
    rng = np.random.default_rng(seed)
    wells = np.array(["A01", "A02", "B01", "B03"])
    plates = np.array(["P2", "P1"])
    cells = pd.DataFrame({
        "Metadata_Plate": plates[rng.integers(0, 2, n_cells)],
        "Metadata_Well": wells[rng.integers(0, 4, n_cells)],
        "Metadata_Site": rng.integers(1, 4, n_cells),
        **{f"f{i}": rng.normal(size=n_cells).astype(np.float32) for i in range(n_features)},
    })
    cells["Metadata_Treatment"] = cells["Metadata_Well"].map({"A01": "DMSO", "A02": "x", "B01": "y", "B03": "DMSO"})
    return cells


@pytest.mark.parametrize("method", ["median", "mean"])
def test_matches_pandas_groupby_in_any_row_order(method):
    cells = random_cells()
    expected = getattr(cells.groupby(["Metadata_Plate", "Metadata_Well"])[[f"f{i}" for i in range(5)]], method)()
    for table in (cells, cells.sort_values(["Metadata_Plate", "Metadata_Well"])):
        wells = aggregate_wells(table, method, columns_per_pass=2)
        assert wells[["Metadata_Plate", "Metadata_Well"]].values.tolist() == [list(k) for k in expected.index]
        np.testing.assert_allclose(wells[expected.columns].to_numpy(), expected.to_numpy(), rtol=1e-6, atol=1e-6)
        counts = table.groupby(["Metadata_Plate", "Metadata_Well"]).size().to_numpy()
        np.testing.assert_array_equal(wells[COUNT_COLUMN], counts)


def test_keeps_only_well_constant_metadata():
    wells = aggregate_wells(random_cells())
    assert "Metadata_Site" not in wells  # varies within a well
    assert wells.set_index("Metadata_Well")["Metadata_Treatment"].to_dict()["A02"] == "x"


def test_parquet_streaming_equals_in_memory(tmp_path):
    cells = random_cells(seed=1)
    cells.to_parquet(tmp_path / "cells.parquet", index=False)
    streamed = aggregate_parquet(tmp_path / "cells.parquet", columns_per_pass=1)
    pd.testing.assert_frame_equal(streamed, aggregate_wells(cells), check_dtype=False)


def test_nan_cell_is_rejected_naming_file_and_well(tmp_path):
    cells = random_cells()
    cells.loc[cells.index[cells["Metadata_Well"] == "B03"][0], "f3"] = np.inf
    cells.to_parquet(tmp_path / "plate.parquet", index=False)
    with pytest.raises(ValueError, match=r"plate.parquet: 1 cell\(s\) have NaN/inf features \(wells \['B03'\]\)"):
        aggregate_parquet(tmp_path / "plate.parquet")
