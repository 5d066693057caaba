"""External sources (debatch.ingest.external) on real CellProfiler tables: CytoTable's exports of
the NF1 and pediatric cancer atlas screens, their plate and well columns found, every well's
metadata joined from a platemap, then aggregated, normalised and feature-selected as the
pipeline's own sources are; tables that do not match the plate sheet are refused in one line."""

import numpy as np
import pandas as pd
import pytest

from debatch import settings
from debatch.core.io import write_parquet
from debatch.ingest.external import external_cells
from debatch.ingest.manifest import read_platemap
from debatch.profiles.wells import well_profiles
from debatch.settings import feature_columns

NF1 = "nf1_plate2/Plate_2_with_image_data_shrunken.parquet"  # Plate_2, wells B7 D6 D7 F7 H12
ATLAS = "atlas_BR00143976/BR00143976_shrunken.parquet"  # BR00143976, five cells of well C03
NF1_PLATEMAP = {"B07": "DMSO", "D06": "DMSO", "D07": "cpdA", "F07": "cpdA", "H12": "cpdB"}


def platemap(tmp_path, wells: dict, name="platemap.tsv") -> pd.DataFrame:
    """A platemap of ``wells`` (well -> treatment; DMSO is negcon), with a moa column."""
    rows = [
        f"{w}\t{t}\t{'negcon' if t == 'DMSO' else 'treatment'}\tmoa_{t}" for w, t in wells.items()
    ]
    (tmp_path / name).write_text("well\ttreatment\trole\tmoa\n" + "\n".join(rows) + "\n")
    return read_platemap(tmp_path / name)


def spec(**block) -> dict:
    return settings.external_block("mine").merge({"path": "table.parquet", **block})


def tables(paths, plates, **block) -> dict[str, pd.DataFrame]:
    return dict(external_cells([str(p) for p in paths], spec(**block), plates))


def test_nf1_cytotable_cells_become_well_profiles_with_the_platemaps_metadata(real_data, tmp_path):
    """Image_Metadata_Plate_x / Image_Metadata_Well_x found (B7 is well B07), the platemap's
    treatment, role and moa joined, positional and bookkeeping columns left out; then the
    pipeline's aggregation, negcon normalisation and all of feature selection."""
    raw = pd.read_parquet(real_data / NF1)
    plates = {"Plate_2": ("batch1", platemap(tmp_path, NF1_PLATEMAP))}
    cells = tables([real_data / NF1], plates)["Plate_2"]
    assert list(cells.columns[:6]) == [
        "Metadata_Plate",
        "Metadata_Batch",
        "Metadata_Well",
        "Metadata_Treatment",
        "Metadata_Role",
        "Metadata_moa",
    ]
    assert cells["Metadata_Well"].tolist() == [
        f"{w[0]}{int(w[1:]):02d}" for w in raw["Image_Metadata_Well_x"]
    ]
    assert cells["Metadata_Treatment"].tolist() == [NF1_PLATEMAP[w] for w in cells["Metadata_Well"]]
    features = feature_columns(cells.columns)
    assert features and all(f.split("_")[0] in settings.OBJECTS for f in features)
    assert not [f for f in features if "_Location_" in f or "Number_Object_Number" in f]
    assert "Cells_AreaShape_Area" in features and not cells[features].dtypes.ne(np.float32).any()
    np.testing.assert_array_equal(
        cells["Cells_AreaShape_Area"], raw["Cells_AreaShape_Area"].astype(np.float32)
    )

    write_parquet(cells, tmp_path / "Plate_2.parquet")
    wells, report = well_profiles([tmp_path / "Plate_2.parquet"], cellprofiler=True)
    assert len(wells) == 5 and set(wells["Metadata_Batch"]) == {"batch1"}
    assert wells["Metadata_Object_Count"].tolist() == [1] * 5  # the shrunken table: a cell a well
    kept = report.loc[report["kept"], "feature"].tolist()
    assert feature_columns(wells.columns) == kept and 0 < len(kept) < len(features)
    assert {"correlation_threshold", "frequency_threshold"} <= set(report["dropped_by"])
    negcon = wells[wells["Metadata_Role"] == "negcon"]
    np.testing.assert_allclose(negcon[kept].median(), 0, atol=1e-5)  # normalised against them
    as_embedding, report = well_profiles([tmp_path / "Plate_2.parquet"], cellprofiler=False)
    assert set(report["dropped_by"]) <= {"", "drop_outliers"}  # embeddings: the guards only


def test_the_atlas_table_aggregates_to_its_cells_median_from_parquet_and_csv(real_data, tmp_path):
    """Image_Metadata_Plate / Image_Metadata_Well; the same table as CSV gives the same cells.
    One well of one plate is no screen: normalised against itself every feature is 0, and
    feature selection says it kept nothing and why."""
    raw = pd.read_parquet(real_data / ATLAS)
    raw.to_csv(tmp_path / "atlas.csv", index=False)
    plates = {"BR00143976": ("b1", platemap(tmp_path, {"C03": "DMSO", "C04": "cpdA"}))}
    cells = tables([real_data / ATLAS], plates)["BR00143976"]
    from_csv = tables([tmp_path / "atlas.csv"], plates)["BR00143976"]
    pd.testing.assert_frame_equal(from_csv, cells, check_dtype=False, rtol=1e-6)
    assert len(cells) == 5 and set(cells["Metadata_Well"]) == {"C03"}

    write_parquet(cells, tmp_path / "atlas.parquet")
    with pytest.raises(ValueError, match="kept none of .* frequency_threshold dropped"):
        well_profiles([tmp_path / "atlas.parquet"], cellprofiler=True)
    wells, _ = well_profiles(
        [tmp_path / "atlas.parquet"],
        {"normalise": "standardize", "feature_select": {"operations": []}},
        cellprofiler=True,
    )
    features = feature_columns(cells.columns)
    np.testing.assert_allclose(
        wells[features].to_numpy().ravel(), 0, atol=1e-6
    )  # standardised against its one negcon well
    from debatch.profiles.aggregate import aggregate_parquet

    aggregated = aggregate_parquet(tmp_path / "atlas.parquet", skip_nan=True)
    medians = raw[features].median().astype(np.float32)
    np.testing.assert_allclose(aggregated[features].iloc[0], medians, rtol=1e-6)


def test_a_per_well_embedding_table_keeps_its_columns_and_takes_the_platemaps_metadata(tmp_path):
    """DeepProfiler's well-level export: Metadata_Plate, Metadata_Well, its own (stale)
    treatment column, which is left out for the platemap's, and any numeric feature names."""
    rng = np.random.default_rng(0)
    wells = ["A01", "A02", "B01", "B02"]
    table = pd.DataFrame(
        {
            "Metadata_Plate": ["P1"] * 4 + ["P2"] * 4,
            "Metadata_Well": ["A1", "A2", "B1", "B2"] * 2,
            "Metadata_Treatment": ["old"] * 8,
            **{f"efficientnet_{k}": rng.normal(size=8) for k in range(5)},
        }
    )
    table.to_csv(tmp_path / "wells.csv", index=False)
    treatments = dict(zip(wells, ["DMSO", "DMSO", "a", "b"]))
    plates = {p: (f"batch{i}", platemap(tmp_path, treatments)) for i, p in enumerate(["P1", "P2"])}
    out = tables([tmp_path / "wells.csv"], plates, level="wells", features="embedding")
    assert list(out) == ["P1", "P2"]
    assert feature_columns(out["P2"].columns) == [f"efficientnet_{k}" for k in range(5)]
    assert out["P2"]["Metadata_Treatment"].tolist() == ["DMSO", "DMSO", "a", "b"]
    assert out["P2"]["Metadata_Batch"].unique().tolist() == ["batch1"]
    paths = []
    for plate, cells in out.items():
        paths.append(tmp_path / f"{plate}.parquet")
        write_parquet(cells, paths[-1])
    profiles, _ = well_profiles(paths)
    assert len(profiles) == 8 and profiles["Metadata_Object_Count"].eq(1).all()

    doubled = pd.concat([table, table.iloc[:1]])
    doubled.to_csv(tmp_path / "doubled.csv", index=False)
    with pytest.raises(ValueError, match=r"plate P1 has more than one row for well\(s\) \['A01'\]"):
        tables([tmp_path / "doubled.csv"], plates, level="wells", features="embedding")
    with pytest.raises(ValueError, match="wells.csv has no cellprofiler features"):
        tables([tmp_path / "wells.csv"], plates, level="wells")


@pytest.mark.parametrize(
    "sheet, message",
    [
        ({"Plate_3": NF1_PLATEMAP}, r"plate\(s\) \['Plate_2'\] are not on the plate sheet"),
        (
            {"Plate_2": NF1_PLATEMAP, "Plate_9": NF1_PLATEMAP},
            r"has no rows of plate\(s\) \['Plate_9'\] of the plate sheet",
        ),
        (
            {"Plate_2": {w: t for w, t in NF1_PLATEMAP.items() if w != "H12"}},
            r"plate Plate_2 well\(s\) \['H12'\] are not on its platemap",
        ),
    ],
)
def test_plates_and_wells_the_sheet_lacks_are_refused_in_one_line(
    real_data, tmp_path, sheet, message
):
    plates = {p: ("b", platemap(tmp_path, wells, f"{p}.tsv")) for p, wells in sheet.items()}
    with pytest.raises(ValueError, match=message) as error:
        tables([real_data / NF1], plates)
    assert "\n" not in str(error.value) and NF1 in str(error.value)


def test_columns_that_cannot_be_read_are_named(real_data, tmp_path):
    plates = {"Plate_2": ("b", platemap(tmp_path, NF1_PLATEMAP))}
    raw = pd.read_parquet(real_data / NF1)
    raw.drop(columns="Image_Metadata_Plate_x").to_parquet(tmp_path / "no_plate.parquet")
    with pytest.raises(ValueError, match=r"has none of the columns \['Metadata_Plate', 'Image_"):
        tables([tmp_path / "no_plate.parquet"], plates)
    assert list(
        tables([tmp_path / "no_plate.parquet"], plates, plate_column="Image_Metadata_Plate_y")
    )
    with pytest.raises(ValueError, match=r"has no column 'Plate' \(plate_column\)"):
        tables([real_data / NF1], plates, plate_column="Plate")
    with pytest.raises(ValueError, match=r"feature column\(s\) \['Image_Metadata_Site_x'"):
        tables([real_data / NF1], plates, features="embedding")
    raw.assign(Image_Metadata_Well_x="well 7").to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(ValueError, match=r"bad.parquet: well 'well 7' is not a plate position"):
        tables([tmp_path / "bad.parquet"], plates)
    raw.drop(columns="Cells_AreaShape_Area").to_parquet(tmp_path / "fewer.parquet")
    with pytest.raises(ValueError, match=r"differ in features: \['Cells_AreaShape_Area'\]"):
        tables([real_data / NF1, tmp_path / "fewer.parquet"], plates)
