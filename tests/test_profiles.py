"""Profiles: per-plate negcon normalisation, sphering, Harmony, consensus, plate files end to
end."""

import numpy as np
import pandas as pd
import pytest

from debatch.profiles.aggregate import aggregate_wells
from debatch.profiles.consensus import consensus
from debatch.profiles.correct import correct
from debatch.profiles.normalise import normalise_plates
from debatch.profiles.wells import well_profiles
from debatch.settings import PROFILES, feature_columns


def cells_table(plate="P1", batch="b1", shift=0.0, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for well, treatment, role, n in [
        ("A01", "DMSO", "negcon", 5),
        ("A02", "DMSO", "negcon", 4),
        ("A03", "cpd", "treatment", 6),
    ]:
        for i in range(n):
            effect = 3.0 if treatment == "cpd" else 0.0
            rows.append(
                {
                    "Metadata_Plate": plate,
                    "Metadata_Batch": batch,
                    "Metadata_Well": well,
                    "Metadata_Site": 1 + i % 2,
                    "Metadata_ObjectNumber": i,
                    "Metadata_Treatment": treatment,
                    "Metadata_Role": role,
                    "emb_000": rng.normal(effect + shift),
                    "emb_001": rng.normal(shift),
                }
            )
    return pd.DataFrame(rows)


def wells_table(n_batches=3, batch_shift=4.0, seed=0):
    """Normalised-looking wells: 3 treatments x 4 replicates per batch, a shift per batch."""
    rng = np.random.default_rng(seed)
    rows = []
    for batch in range(n_batches):
        for treatment, role in [("DMSO", "negcon"), ("a", "treatment"), ("b", "treatment")]:
            for replicate in range(4):
                values = rng.normal(size=6) * 0.3
                values[0] += {"DMSO": 0.0, "a": 3.0, "b": -3.0}[treatment]
                values[1:3] += batch_shift * batch
                rows.append(
                    {
                        "Metadata_Plate": f"P{batch}",
                        "Metadata_Batch": f"b{batch}",
                        "Metadata_Well": f"A{replicate + 1:02d}",
                        "Metadata_Treatment": treatment,
                        "Metadata_Role": role,
                        **{f"emb_{i:03d}": v for i, v in enumerate(values)},
                    }
                )
    return pd.DataFrame(rows)


def test_normalisation_removes_plate_shift_but_keeps_treatment_effect():
    wells = pd.concat(
        [
            aggregate_wells(cells_table("P1", shift=0.0)),
            aggregate_wells(cells_table("P2", shift=10.0)),
        ],
        ignore_index=True,
    )
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
    wells = pd.DataFrame(
        {
            "Metadata_Role": "negcon",
            "Metadata_Treatment": "DMSO",
            "emb_000": values[:, 0],
            "emb_001": values[:, 1],
        }
    )
    sphered = correct(wells, "sphering", {"sphering_epsilon": 1e-9})
    covariance = np.cov(sphered[["emb_000", "emb_001"]].to_numpy(), rowvar=False)
    np.testing.assert_allclose(covariance, np.eye(2), atol=1e-3)
    np.testing.assert_array_equal(correct(wells, "none")[["emb_000"]], wells[["emb_000"]])


def batch_spread(wells):
    """Distance between batch centres relative to the treatment effect (a vs b)."""
    features = wells.filter(regex="^(emb|harmony)").to_numpy()
    batches = wells["Metadata_Batch"].to_numpy()
    centres = np.array([features[batches == b].mean(axis=0) for b in np.unique(batches)])
    treatment = wells["Metadata_Treatment"].to_numpy()
    effect = np.linalg.norm(
        features[treatment == "a"].mean(axis=0) - features[treatment == "b"].mean(axis=0)
    )
    return np.linalg.norm(centres - centres.mean(axis=0), axis=1).mean() / effect


def test_harmony_removes_batch_shift_and_keeps_treatments():
    wells = wells_table()
    corrected = correct(wells, "harmony", {"harmony_components": 4})
    assert [c for c in corrected if not c.startswith("Metadata_")] == [
        f"harmony_pc_{i:03d}" for i in range(4)
    ]
    assert batch_spread(wells) > 0.5
    assert batch_spread(corrected) < 0.25 * batch_spread(wells)
    pd.testing.assert_frame_equal(
        corrected, correct(wells, "harmony", {"harmony_components": 4})
    )  # seeded


def test_harmony_on_a_single_batch_leaves_profiles_unchanged():
    wells = wells_table(n_batches=1)
    pd.testing.assert_frame_equal(correct(wells, "harmony"), wells)


def test_unknown_correction_and_bad_values_are_named():
    with pytest.raises(ValueError, match=r"unknown correction\(s\) \['combat'\]"):
        PROFILES.merge({"corrections": ["none", "combat"]})
    with pytest.raises(ValueError, match="profiles.aggregate must be one of"):
        PROFILES.merge({"aggregate": "max"})


def test_plate_files_to_consensus(tmp_path):
    paths = []
    for plate, seed in [("P1", 0), ("P2", 1)]:
        paths.append(tmp_path / f"{plate}.parquet")
        cells_table(plate, seed=seed).to_parquet(paths[-1], index=False)
    wells, report = well_profiles(paths)
    assert report["kept"].all() and list(report["feature"]) == feature_columns(wells.columns)
    assert len(wells) == 6 and wells["Metadata_Object_Count"].tolist() == [5, 4, 6] * 2
    result = consensus(wells)
    assert result["Metadata_Treatment"].tolist() == ["DMSO", "cpd"]
    assert result["Metadata_Count_Wells"].tolist() == [4, 2]
    assert "Metadata_Plate" not in result  # varies across wells, so not consensus metadata


def test_wells_have_no_per_cell_columns_even_with_one_site_per_well(tmp_path):
    """A site or object number never names a well: a one-site screen's wells have the same
    columns as a nine-site screen's."""
    path = tmp_path / "P1.parquet"
    cells_table().assign(Metadata_Site=1).to_parquet(path, index=False)
    wells, _ = well_profiles([path])
    assert "Metadata_Site" not in wells and "Metadata_ObjectNumber" not in wells
    assert "Metadata_Batch" in wells  # constant within a well: kept


def test_consensus_is_per_treatment_and_dose_when_the_platemap_has_doses():
    wells = wells_table(n_batches=1)
    doses = {"DMSO": np.nan, "a": 1.0, "b": 1.0}
    wells["Metadata_dose"] = [
        doses[t] * (10 if i % 2 else 1) for i, t in enumerate(wells["Metadata_Treatment"])
    ]
    result = consensus(wells)
    keys = list(zip(result["Metadata_Treatment"], result["Metadata_dose"].fillna(0)))
    assert keys == [("DMSO", 0), ("a", 1.0), ("a", 10.0), ("b", 1.0), ("b", 10.0)]
    assert result["Metadata_Count_Wells"].tolist() == [4, 2, 2, 2, 2]


def test_a_plate_without_negcon_cells_fails_or_is_left_out(tmp_path):
    """QC removed every negcon cell of P2: an error naming the plate and pointing at QC, or,
    with qc.plate_without_negcon: drop, the other plates' profiles without it."""
    good, bad = tmp_path / "P1.parquet", tmp_path / "P2.parquet"
    cells_table("P1").to_parquet(good, index=False)
    table = cells_table("P2", seed=1)
    table[table["Metadata_Role"] != "negcon"].to_parquet(bad, index=False)
    with pytest.raises(ValueError, match="P2.parquet: plate P2 has no negcon well.*QC may have"):
        well_profiles([good, bad])
    wells, _ = well_profiles([good, bad], drop_plates_without_negcon=True)
    assert set(wells["Metadata_Plate"]) == {"P1"}


def test_an_embedding_dimension_blown_up_by_a_zero_negcon_spread_is_dropped(tmp_path):
    """A dimension that is 0 in every negcon cell of a plate (a unit no control activates) has a
    negcon MAD of 0 there: its normalised wells explode, and drop_outliers removes it from the
    embeddings' profiles as from CellProfiler's, saying so in the features report."""
    paths = []
    for plate, seed in (("P1", 0), ("P2", 1)):
        table = cells_table(plate, seed=seed)
        table["emb_002"] = np.where(table["Metadata_Role"] == "negcon", 0.0, 1.0)
        paths.append(tmp_path / f"{plate}.parquet")
        table.to_parquet(paths[-1], index=False)
    wells, report = well_profiles(paths)
    assert feature_columns(wells.columns) == ["emb_000", "emb_001"]
    assert report.set_index("feature").loc["emb_002", "dropped_by"] == "drop_outliers"
    kept_only_guards, _ = well_profiles(
        paths, {"feature_select": {"operations": ["correlation_threshold"]}}
    )
    assert "emb_002" in kept_only_guards  # the guard is a setting: left out, nothing is dropped


def test_a_plate_whose_controls_do_not_vary_is_named(caplog):
    """One negcon well left on a plate: every feature's negcon spread is 0, and the warning
    names the plate before drop_outliers silently empties the screen."""
    wells = aggregate_wells(cells_table())
    wells = wells[wells["Metadata_Well"] != "A02"]  # A01 is the plate's only negcon well
    with caplog.at_level("WARNING", logger="debatch.profiles.normalise"):
        normalise_plates(wells)
    assert "plate P1: 2 of 2 features do not vary over its 1 negcon well(s)" in caplog.text


def test_cross_fitted_sphering_does_not_make_inactive_wells_look_active():
    """Fewer negcon wells than features: whitening fitted on all of them squeezes those very
    controls into their own span, so wells of a compound that does nothing land far from them
    and its replicates 'find each other' (a high mAP against negcon). Sphered by fits on the
    other plates' controls, the inactive compound stays at the level of chance."""
    from debatch.evaluate.metrics import map_activity

    rng = np.random.default_rng(0)
    rows = []
    for plate in range(4):
        for well in range(12):
            role = "negcon" if well < 6 else "treatment"
            rows.append(
                {
                    "Metadata_Plate": f"P{plate}",
                    "Metadata_Batch": f"b{plate}",
                    "Metadata_Well": f"A{well:02d}",
                    "Metadata_Treatment": "DMSO" if role == "negcon" else f"inactive{well % 3}",
                    "Metadata_Role": role,
                    **{f"emb_{i:03d}": v for i, v in enumerate(rng.normal(size=60))},
                }
            )
    wells = pd.DataFrame(rows)

    def called_active(folds):
        """Share of the inactive compounds called active (corrected p < 0.05)."""
        sphered = correct(wells, "sphering", {"sphering_folds": folds})
        values = sphered[feature_columns(sphered.columns)].to_numpy()
        return map_activity(sphered, values, null_size=500)[1]["value"]

    assert called_active(1) == 1.0  # every inactive compound 'active' against its own fit
    assert called_active(4) == 0.0
