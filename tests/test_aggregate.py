"""Well aggregation: exact pandas median/mean, any row order, streamed from Parquet, bad cells
named."""

import numpy as np
import pandas as pd
import pytest

from debatch.profiles.aggregate import aggregate_parquet, aggregate_wells
from debatch.settings import COUNT_CELLS as COUNT_COLUMN


def random_cells(seed=0, n_cells=400, n_features=5):
    rng = np.random.default_rng(seed)
    wells = np.array(["A01", "A02", "B01", "B03"])
    plates = np.array(["P2", "P1"])
    cells = pd.DataFrame(
        {
            "Metadata_Plate": plates[rng.integers(0, 2, n_cells)],
            "Metadata_Well": wells[rng.integers(0, 4, n_cells)],
            "Metadata_Site": rng.integers(1, 4, n_cells),
            **{f"f{i}": rng.normal(size=n_cells).astype(np.float32) for i in range(n_features)},
        }
    )
    cells["Metadata_Treatment"] = cells["Metadata_Well"].map(
        {"A01": "DMSO", "A02": "x", "B01": "y", "B03": "DMSO"}
    )
    return cells


@pytest.mark.parametrize("method", ["median", "mean"])
def test_matches_pandas_groupby_in_any_row_order(method):
    cells = random_cells()
    expected = getattr(
        cells.groupby(["Metadata_Plate", "Metadata_Well"])[[f"f{i}" for i in range(5)]], method
    )()
    for table in (cells, cells.sort_values(["Metadata_Plate", "Metadata_Well"])):
        wells = aggregate_wells(table, method, columns_per_pass=2)
        assert wells[["Metadata_Plate", "Metadata_Well"]].values.tolist() == [
            list(k) for k in expected.index
        ]
        np.testing.assert_allclose(
            wells[expected.columns].to_numpy(), expected.to_numpy(), rtol=1e-6, atol=1e-6
        )
        counts = table.groupby(["Metadata_Plate", "Metadata_Well"]).size().to_numpy()
        np.testing.assert_array_equal(wells[COUNT_COLUMN], counts)


@pytest.mark.parametrize("cells_per_read", [1, 400 * 2, 10**6])
def test_columns_read_one_or_several_per_call_give_the_same_wells(
    tmp_path, monkeypatch, cells_per_read
):
    """A large plate's columns are read one per Parquet call, a small one's several (here
    blocks of 3 columns read 2 and 1 at a time): the same wells, for a subset of rows too."""
    cells = random_cells(seed=2, n_features=7)
    cells.to_parquet(tmp_path / "cells.parquet", index=False)
    monkeypatch.setattr("debatch.profiles.aggregate._READ_CELLS", cells_per_read)
    rows = np.arange(0, len(cells), 3)
    for subset in (None, rows):
        streamed = aggregate_parquet(tmp_path / "cells.parquet", columns_per_pass=3, rows=subset)
        chosen = cells if subset is None else cells.iloc[subset].reset_index(drop=True)
        pd.testing.assert_frame_equal(streamed, aggregate_wells(chosen), check_dtype=False)


def test_a_feature_the_table_lacks_is_named(tmp_path):
    random_cells().to_parquet(tmp_path / "cells.parquet", index=False)
    with pytest.raises(ValueError, match=r"cells.parquet: no feature column\(s\) \['f9'\]"):
        aggregate_parquet(tmp_path / "cells.parquet", features=["f0", "f9"])


def test_a_median_of_zeros_is_plus_zero():
    """-0.0 and 0.0 are equal as floats; which one a partition leaves in the middle would
    depend on its path, so every zero is +0.0."""
    cells = random_cells(n_cells=40, n_features=1)
    cells["f0"] = np.where(np.arange(40) % 2, -0.0, 0.0).astype(np.float32)
    for table in (cells, cells.sort_values(["Metadata_Plate", "Metadata_Well"])):
        assert not np.signbit(aggregate_wells(table)["f0"]).any()


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
    with pytest.raises(
        ValueError, match=r"plate.parquet: 1 cell\(s\) have NaN/inf features \(wells \['B03'\]\)"
    ):
        aggregate_parquet(tmp_path / "plate.parquet")


def pandas_reference(cells, method):
    """pandas' well medians/means, in float64 (pandas sums float32 in float32, which overflows)."""
    features = [c for c in cells.columns if not c.startswith("Metadata_")]
    cells = cells.astype(dict.fromkeys(features, np.float64))
    return getattr(cells.groupby(["Metadata_Plate", "Metadata_Well"])[features], method)()


@pytest.mark.parametrize("method", ["median", "mean"])
@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("shuffle", [False, True])
def test_threads_odd_even_and_single_cell_wells_equal_pandas(tmp_path, method, threads, shuffle):
    # wells of 1, 2 (even), 3 (odd), 4 and 50 cells, ties included; 8 columns over passes of 2
    rng = np.random.default_rng(3)
    sizes = {"A01": 1, "A02": 2, "A03": 3, "A04": 4, "B01": 50}
    wells = np.repeat(list(sizes), list(sizes.values()))
    cells = pd.DataFrame(
        {
            "Metadata_Plate": "P1",
            "Metadata_Well": wells,
            **{f"f{i}": rng.normal(size=len(wells)).astype(np.float32) for i in range(6)},
        }
    )
    cells["f6"] = np.round(rng.normal(size=len(wells)), 1).astype(np.float32)  # ties
    # finite values at float32's edge (their sum overflows): finite cells, never rejected
    cells["f7"] = (rng.choice([-1, 1], len(wells)) * 3e38).astype(np.float32)
    if shuffle:
        cells = cells.sample(frac=1, random_state=0).reset_index(drop=True)
    expected = pandas_reference(cells, method)
    cells.to_parquet(tmp_path / "cells.parquet", index=False)
    for wells_out in (
        aggregate_wells(cells, method, columns_per_pass=2, threads=threads),
        aggregate_parquet(tmp_path / "cells.parquet", method, columns_per_pass=2, threads=threads),
    ):
        assert wells_out["Metadata_Well"].tolist() == list(sizes)
        assert wells_out[COUNT_COLUMN].tolist() == list(sizes.values())
        np.testing.assert_allclose(
            wells_out[expected.columns].to_numpy(np.float64),
            expected.to_numpy(),
            rtol=1e-6,
            atol=1e-7,
        )
    if method == "median":  # odd counts: exactly a cell's value
        assert wells_out.loc[0, "f0"] == cells.loc[cells["Metadata_Well"] == "A01", "f0"].iloc[0]


def test_streamed_wells_sort_by_name_whatever_the_dictionary_order(tmp_path):
    # Parquet string columns are read dictionary-encoded; their order of appearance must not leak
    cells = random_cells(seed=2, n_cells=300).sort_values(
        ["Metadata_Plate", "Metadata_Well"], ascending=False
    )
    assert cells["Metadata_Plate"].iloc[0] == "P2" and cells["Metadata_Well"].iloc[0] == "B03"
    cells.to_parquet(tmp_path / "cells.parquet", index=False)
    streamed = aggregate_parquet(tmp_path / "cells.parquet", threads=2)
    expected = pandas_reference(
        cells.drop(columns=["Metadata_Site", "Metadata_Treatment"]), "median"
    )
    assert streamed[["Metadata_Plate", "Metadata_Well"]].values.tolist() == [
        list(k) for k in expected.index
    ]
    np.testing.assert_allclose(
        streamed[expected.columns].to_numpy(), expected.to_numpy(), rtol=1e-6, atol=1e-6
    )
    assert streamed["Metadata_Treatment"].tolist() == ["DMSO", "x", "y", "DMSO"] * 2


@pytest.mark.parametrize("threads", [1, 2])
def test_nan_cells_counted_over_every_pass_in_any_order(threads):
    cells = random_cells(seed=4).sample(frac=1, random_state=1).reset_index(drop=True)
    a01 = cells.index[(cells["Metadata_Well"] == "A01")]
    b01 = cells.index[(cells["Metadata_Well"] == "B01")]
    cells.loc[a01[0], "f0"] = np.nan  # first pass
    cells.loc[b01[0], "f4"] = -np.inf  # last pass
    cells.loc[b01[0], "f3"] = np.nan  # same cell again: counted once
    with pytest.raises(
        ValueError, match=r"2 cell\(s\) have NaN/inf features \(wells \['A01', 'B01'\]\)"
    ):
        aggregate_wells(cells, columns_per_pass=2, threads=threads)


@pytest.mark.parametrize("method", ["median", "mean"])
def test_skip_nan_is_pandas_over_each_wells_finite_values(tmp_path, method):
    """CellProfiler's NaN means "not measurable": a well's value is over its finite cells (pandas'
    median exactly, odd and even counts alike), NaN where it has none."""
    cells = random_cells(seed=5, n_cells=600, n_features=6)
    rng = np.random.default_rng(5)
    features = [f"f{i}" for i in range(6)]
    values = cells[features].to_numpy().copy()
    some = values[:, 1:3]  # a few features not measurable, beside clean ones in each pass
    some[rng.random(some.shape) < 0.1] = np.nan
    some[rng.random(some.shape) < 0.03] = np.inf
    some[rng.random(some.shape) < 0.03] = -np.inf
    some[rng.random(some.shape) < 0.03] = np.copysign(np.nan, -1)  # x86's inf - inf
    values[:4, 4] = [0.0, -0.0, 0.0, -0.0]  # a tie of zeros of either sign
    cells[features] = values
    cells.loc[cells["Metadata_Well"] == "A02", "f2"] = np.nan  # never measured in one well
    cells.sample(frac=1, random_state=0).to_parquet(tmp_path / "cells.parquet", index=False)
    wells = aggregate_parquet(tmp_path / "cells.parquet", method, columns_per_pass=4, skip_nan=True)
    finite = cells.replace([np.inf, -np.inf], np.nan)
    expected = getattr(finite.groupby(["Metadata_Plate", "Metadata_Well"])[features], method)()
    exact = {"rtol": 0} if method == "median" else {"rtol": 1e-6}  # sums: another order
    np.testing.assert_allclose(wells[features].to_numpy(), expected.to_numpy(np.float32), **exact)
    assert wells.loc[wells["Metadata_Well"] == "A02", "f2"].isna().all()
