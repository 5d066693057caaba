"""Profiles: aggregation, per-plate negcon normalisation, sphering and consensus."""

import numpy as np
import pandas as pd
import pytest

from debatch.profiles import (COUNT_COLUMN, aggregate_wells, build_profiles, consensus, correct,
                              normalise_plates)


def cells_table(plate="P1", batch="b1", shift=0.0, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for well, treatment, role, n in [("A01", "DMSO", "negcon", 5), ("A02", "DMSO", "negcon", 4),
                                     ("A03", "cpd", "treatment", 6)]:
        for i in range(n):
            effect = 3.0 if treatment == "cpd" else 0.0
            rows.append({"Metadata_Plate": plate, "Metadata_Batch": batch, "Metadata_Well": well,
                         "Metadata_Site": 1 + i % 2, "Metadata_ObjectNumber": i,
                         "Metadata_Treatment": treatment, "Metadata_Role": role,
                         "emb_000": rng.normal(effect + shift), "emb_001": rng.normal(shift)})
    return pd.DataFrame(rows)


def test_median_aggregation_keeps_well_metadata_and_counts():
    cells = cells_table()
    wells = aggregate_wells(cells)
    assert len(wells) == 3
    assert "Metadata_Site" not in wells and "Metadata_ObjectNumber" not in wells
    assert wells[COUNT_COLUMN].tolist() == [5, 4, 6]
    a03 = cells[cells["Metadata_Well"] == "A03"]
    assert wells.loc[2, "emb_000"] == pytest.approx(a03["emb_000"].median(), rel=1e-6)
    assert wells.loc[2, "Metadata_Treatment"] == "cpd"


def test_nan_features_are_rejected_naming_the_well():
    cells = cells_table()
    cells.loc[7, "emb_001"] = np.nan
    with pytest.raises(ValueError, match="NaN/inf features.*A02"):
        aggregate_wells(cells)


def test_normalisation_removes_plate_shift_but_keeps_treatment_effect():
    wells = pd.concat([aggregate_wells(cells_table("P1", shift=0.0)),
                       aggregate_wells(cells_table("P2", shift=10.0))], ignore_index=True)
    normalised = normalise_plates(wells, "standardize")
    negcon = normalised[normalised["Metadata_Role"] == "negcon"]
    np.testing.assert_allclose(negcon.groupby("Metadata_Plate")["emb_000"].mean(), 0.0, atol=1e-5)
    treated = normalised[normalised["Metadata_Role"] == "treatment"]["emb_000"]
    assert (treated > 1.0).all()


def test_plate_without_negcon_is_named():
    wells = aggregate_wells(cells_table())
    wells["Metadata_Role"] = "treatment"
    with pytest.raises(ValueError, match="plate P1 has no negcon"):
        normalise_plates(wells)


def test_sphering_whitens_negcon_wells():
    rng = np.random.default_rng(0)
    mixing = np.array([[3.0, 1.0], [0.0, 0.3]])
    values = rng.normal(size=(200, 2)) @ mixing
    wells = pd.DataFrame({"Metadata_Role": "negcon", "Metadata_Treatment": "DMSO",
                          "emb_000": values[:, 0], "emb_001": values[:, 1]})
    sphered = correct(wells, "sphering", {"sphering_epsilon": 1e-9})
    covariance = np.cov(sphered[["emb_000", "emb_001"]].to_numpy(), rowvar=False)
    np.testing.assert_allclose(covariance, np.eye(2), atol=1e-3)
    np.testing.assert_array_equal(correct(wells, "none")[["emb_000"]], wells[["emb_000"]])


def test_consensus_one_row_per_treatment():
    wells = build_profiles([cells_table("P1"), cells_table("P2", seed=1)])
    result = consensus(wells)
    assert result["Metadata_Treatment"].tolist() == ["DMSO", "cpd"]
    assert result["Metadata_Count_Wells"].tolist() == [4, 2]
    assert "Metadata_Plate" not in result  # varies across wells, so not consensus metadata
