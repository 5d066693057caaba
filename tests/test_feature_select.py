"""Feature selection keeps exactly the columns pycytominer.feature_select keeps."""

import numpy as np
import pandas as pd
import pytest

from debatch.profiles.feature_select import blocklist, select_features

# a test dependency (workflow/envs/dev-requirements.txt)
pycytominer = pytest.importorskip("pycytominer")


def cellprofiler_like_wells(seed=0, n_wells=96):
    """Well profiles with every kind of column a selection step drops: NaN-heavy, constant,
    two-valued, correlated pairs (both signs), blocklisted, and plain informative ones."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n_wells, 6))
    columns = {f"Cells_Intensity_MeanIntensity_C{i}": base[:, i] for i in range(6)}
    columns["Cells_Intensity_Copy_C0"] = base[:, 0] * 2 + rng.normal(0, 0.05, n_wells)
    columns["Nuclei_Texture_Anti_C1"] = -base[:, 1]  # perfectly anti-correlated: kept
    columns["Cytoplasm_Texture_Close_C2"] = base[:, 2] + rng.normal(0, 0.3, n_wells)
    columns["Cells_AreaShape_Constant"] = np.ones(n_wells)
    columns["Cells_AreaShape_TwoValued"] = np.where(np.arange(n_wells) < 2, 1.0, 0.0)
    sparse = rng.normal(size=n_wells)
    sparse[rng.choice(n_wells, 10, replace=False)] = np.nan
    columns["Nuclei_Granularity_Sparse"] = sparse
    for name in blocklist()[:3]:
        columns[name] = rng.normal(size=n_wells)
    wells = pd.DataFrame(columns)
    wells.insert(0, "Metadata_Well", [f"W{i}" for i in range(n_wells)])
    return wells


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kept_columns_equal_pycytominer(seed):
    wells = cellprofiler_like_wells(seed)
    ops = ["drop_na_columns", "frequency_threshold", "correlation_threshold", "blocklist"]
    expected = pycytominer.feature_select(wells, operation=ops)
    kept, dropped = select_features(wells)
    assert kept == [c for c in expected.columns if not c.startswith("Metadata_")]
    assert "Cells_AreaShape_Constant" in dropped["frequency_threshold"]
    assert "Nuclei_Granularity_Sparse" in dropped["drop_na_columns"]
    assert set(dropped["blocklist"]) == set(blocklist()[:3])
    correlated = set(dropped["correlation_threshold"])
    assert len(correlated & {"Cells_Intensity_MeanIntensity_C0", "Cells_Intensity_Copy_C0"}) == 1
    assert "Nuclei_Texture_Anti_C1" in kept  # signed: anti-correlation is not redundancy here


def test_operations_and_thresholds_come_from_the_settings():
    wells = cellprofiler_like_wells()
    kept, dropped = select_features(
        wells, {"operations": ["correlation_threshold"], "corr_threshold": 0.5}
    )
    expected = pycytominer.feature_select(
        wells, operation="correlation_threshold", corr_threshold=0.5
    )
    assert kept == [c for c in expected.columns if not c.startswith("Metadata_")]
    assert set(dropped) == {"correlation_threshold"}
    with pytest.raises(ValueError, match="unknown feature selection operation"):
        select_features(wells, {"operations": ["variance_threshold"]})


def plates_of_raw_wells(seed=0, n_plates=3):
    """Raw (unnormalised) well profiles of several plates, negcon and treated wells, with a
    zero-inflated feature whose negcon wells are all 0 on one plate (a granularity scale that
    small cells never reach): its negcon MAD is 0 there, so normalising blows it up."""
    rng = np.random.default_rng(seed)
    tables = []
    for plate in range(n_plates):
        wells = cellprofiler_like_wells(seed + plate, n_wells=48)
        wells["Metadata_Plate"] = f"P{plate}"
        wells["Metadata_Role"] = np.where(np.arange(48) < 16, "negcon", "treatment")
        feature = np.abs(rng.normal(0.5, 0.3, 48))
        if plate == 1:
            feature[:16] = 0.0
        wells["Cells_Granularity_6_DNA"] = feature
        tables.append(wells)
    return pd.concat(tables, ignore_index=True)


@pytest.mark.parametrize("seed", [0, 1])
def test_normalise_and_select_equal_pycytominer_with_drop_outliers(seed):
    """Per-plate mad_robustize against negcon, then every selection step including
    drop_outliers: the same numbers and the same kept features as pycytominer's normalize
    (samples = the plate's negcon wells, the same epsilon) and feature_select."""
    from debatch.profiles.normalise import normalise_plates
    from debatch.settings import FEATURE_SELECT

    raw = plates_of_raw_wells(seed)
    features = [c for c in raw.columns if not c.startswith("Metadata_")]
    ours = normalise_plates(raw, "mad_robustize", mad_epsilon=1e-18)
    theirs = pd.concat(
        [
            pycytominer.normalize(
                plate,
                features=features,
                meta_features=["Metadata_Well", "Metadata_Plate", "Metadata_Role"],
                samples="Metadata_Role == 'negcon'",
                method="mad_robustize",
                mad_robustize_epsilon=1e-18,
            )
            for _, plate in raw.groupby("Metadata_Plate", sort=False)
        ]
    )
    np.testing.assert_allclose(
        ours[features].to_numpy(np.float64),
        theirs[features].to_numpy(np.float64),
        rtol=1e-5,
        equal_nan=True,
    )
    assert ours["Cells_Granularity_6_DNA"].abs().max() > 1e10  # blown up, as pycytominer's

    operations = FEATURE_SELECT.defaults["operations"]
    assert "drop_outliers" in operations
    kept, dropped = select_features(ours)
    expected = pycytominer.feature_select(
        theirs, features=features, operation=operations, outlier_cutoff=500
    )
    assert kept == [c for c in expected.columns if c in features]
    assert "Cells_Granularity_6_DNA" in dropped["drop_outliers"]
    assert ours[kept].abs().max().max() <= 500


def test_pycytominer_runs_on_embedding_wells_with_the_features_tsv_list(tmp_path):
    """Embeddings' emb_ columns are not CellProfiler's compartments, so pycytominer cannot infer
    them: the features.tsv each source writes is the list it takes, and with it pycytominer's
    normalize gives our plate-normalised embedding wells."""
    from debatch.profiles.wells import well_profiles

    rng = np.random.default_rng(0)
    cells = pd.DataFrame(
        {
            "Metadata_Plate": "P1",
            "Metadata_Well": np.repeat([f"A{i:02d}" for i in range(1, 9)], 5),
            "Metadata_Role": np.repeat(["negcon"] * 4 + ["treatment"] * 4, 5),
            "Metadata_Treatment": np.repeat(["DMSO"] * 4 + ["cpd"] * 4, 5),
            **{f"emb_{i:03d}": rng.normal(size=40) for i in range(4)},
        }
    )
    cells.to_parquet(tmp_path / "P1.parquet", index=False)
    wells, report = well_profiles([tmp_path / "P1.parquet"])
    listed = report.loc[report["kept"], "feature"].tolist()
    with pytest.raises(ValueError, match="No features"):  # why the list is needed
        pycytominer.cyto_utils.infer_cp_features(wells)
    raw = pycytominer.aggregate(
        cells, strata=["Metadata_Plate", "Metadata_Well"], features=listed, operation="median"
    ).merge(wells.filter(like="Metadata_").drop(columns="Metadata_Object_Count"))
    theirs = pycytominer.normalize(
        raw,
        features=listed,
        meta_features=[c for c in raw if c.startswith("Metadata_")],
        samples="Metadata_Role == 'negcon'",
        method="mad_robustize",
        mad_robustize_epsilon=1e-18,
    )
    np.testing.assert_allclose(
        wells[listed].to_numpy(np.float64), theirs[listed].to_numpy(np.float64), rtol=1e-5
    )
