"""Manifest: patterns, CSV manifests, platemap checks and the errors a user would hit."""

import numpy as np
import pandas as pd
import pytest
import tifffile
from PIL import Image

from debatch.ingest.manifest import (
    ManifestError,
    build_manifest,
    find_images,
    read_platemap,
)

CHANNELS = {"DNA": "1", "AGP": "2"}


def write_platemap(path, rows):
    pd.DataFrame(rows, columns=["well", "treatment", "role", "moa"]).to_csv(
        path, sep="\t", index=False
    )
    return path


def opera_plate(folder, wells=((1, 1), (1, 2)), sites=2, channels=(1, 2)):
    folder.mkdir()
    for row, col in wells:
        for site in range(1, sites + 1):
            for channel in channels:
                name = f"r{row:02d}c{col:02d}f{site:02d}p01-ch{channel}sk1fk1fl1.tiff"
                tifffile.imwrite(folder / name, np.zeros((4, 4), np.uint16))
    (folder / "Index.idx.xml").write_text("<xml/>")  # instrument files must be ignored
    return folder


@pytest.fixture
def platemap(tmp_path):
    return read_platemap(
        write_platemap(
            tmp_path / "map.tsv",
            [["A01", "DMSO", "negcon", ""], ["A02", "cpd1", "treatment", "kinase"]],
        )
    )


def test_platemap_wells_in_common_spellings_are_one_name(tmp_path):
    path = tmp_path / "platemap.tsv"
    write_platemap(path, [("b7", "DMSO", "negcon", ""), ("A01", "x", "treatment", "")])
    assert read_platemap(path)["well"].tolist() == ["B07", "A01"]
    write_platemap(path, [("7B", "DMSO", "negcon", "")])
    with pytest.raises(ManifestError, match="well .7B. is not a plate position"):
        read_platemap(path)


def test_opera_manifest_one_row_per_site_with_metadata(tmp_path, platemap):
    images = opera_plate(tmp_path / "images")
    manifest = build_manifest("P1", "b1", images, "opera_phenix", platemap, CHANNELS)
    assert len(manifest) == 4
    assert manifest["Metadata_Well"].tolist() == ["A01", "A01", "A02", "A02"]
    assert manifest["Metadata_Site"].tolist() == [1, 2, 1, 2]
    assert set(manifest["Metadata_Plate"]) == {"P1"} and set(manifest["Metadata_Batch"]) == {"b1"}
    a02 = manifest[manifest["Metadata_Well"] == "A02"].iloc[0]
    assert a02["Metadata_Treatment"] == "cpd1" and a02["Metadata_moa"] == "kinase"
    assert a02["Path_AGP"].endswith("r01c02f01p01-ch2sk1fk1fl1.tiff")
    assert list(manifest.columns[-2:]) == ["Path_DNA", "Path_AGP"]


def test_rxrx1_pattern_reads_a_plate_folder_of_rxrx1_names(tmp_path, platemap):
    folder = tmp_path / "Plate1"
    folder.mkdir()
    for well in ("A01", "A02"):
        for site in (1, 2):
            for channel in range(1, 7):
                Image.fromarray(np.zeros((4, 4), np.uint8)).save(
                    folder / f"{well}_s{site}_w{channel}.png"
                )
    (folder / "A01_s1_w1.tif").write_bytes(b"")  # not a PNG of the layout: ignored
    found, unmatched = find_images(folder, "rxrx1")
    assert (len(found), unmatched) == (24, 1)
    channels = {name: str(i) for i, name in enumerate("DNA ER Actin RNA Mito Golgi".split(), 1)}
    manifest = build_manifest("E-1_1", "E-1", folder, "rxrx1", platemap, channels)
    assert manifest["Metadata_Well"].tolist() == ["A01", "A01", "A02", "A02"]
    assert manifest["Path_Golgi"].iloc[1].endswith("Plate1/A01_s2_w6.png")


def test_metaxpress_pattern_matches_real_bbbc022_names(real_data):
    found, _ = find_images(real_data / "bbbc022_hoechst", "metaxpress")
    assert len(found) == 7
    assert set(found["well"]) == {"A01", "E05", "E07", "E08"}
    assert set(found["channel"]) == {"1"}


def test_csv_manifest_relative_paths_and_logical_channel_names(tmp_path, platemap):
    images = opera_plate(tmp_path / "images", wells=((1, 1), (1, 2)), sites=1)
    csv = tmp_path / "load.csv"
    pd.DataFrame(
        {
            "well": ["A1", "A1", "A2", "A2"],
            "site": [1, 1, 1, 1],
            "channel": ["DNA", "AGP", "1", "2"],
            "path": [f"r01c0{c}f01p01-ch{k}sk1fk1fl1.tiff" for c in (1, 2) for k in (1, 2)],
        }
    ).to_csv(csv, index=False)
    manifest = build_manifest("P1", "b1", images, str(csv), platemap, CHANNELS)
    assert len(manifest) == 2
    assert manifest.loc[0, "Path_DNA"] == str(images / "r01c01f01p01-ch1sk1fk1fl1.tiff")


def test_missing_channel_is_named(tmp_path, platemap):
    images = opera_plate(tmp_path / "images")
    (images / "r01c02f02p01-ch2sk1fk1fl1.tiff").unlink()
    with pytest.raises(ManifestError, match=r"well A02 site 2 lacks channel\(s\) \['AGP'\]"):
        build_manifest("P1", "b1", images, "opera_phenix", platemap, CHANNELS)


def test_platemap_well_without_images_is_an_error(tmp_path, platemap):
    images = opera_plate(tmp_path / "images", wells=((1, 1),))
    with pytest.raises(ManifestError, match=r"platemap well\(s\) \['A02'\] have no images"):
        build_manifest("P1", "b1", images, "opera_phenix", platemap, CHANNELS)


def test_wells_outside_platemap_are_dropped_not_silently(tmp_path, platemap, caplog):
    images = opera_plate(tmp_path / "images", wells=((1, 1), (1, 2), (2, 1)))
    manifest = build_manifest("P1", "b1", images, "opera_phenix", platemap, CHANNELS)
    assert set(manifest["Metadata_Well"]) == {"A01", "A02"}
    assert "B01" in caplog.text


def test_missing_csv_file_is_named(tmp_path, platemap):
    images = opera_plate(tmp_path / "images", wells=((1, 1), (1, 2)), sites=1)
    csv = tmp_path / "load.csv"
    pd.DataFrame(
        {
            "well": ["A1", "A1", "A2", "A2"],
            "site": 1,
            "channel": ["1", "2", "1", "2"],
            "path": [
                "r01c01f01p01-ch1sk1fk1fl1.tiff",
                "gone.tiff",
                "r01c02f01p01-ch1sk1fk1fl1.tiff",
                "r01c02f01p01-ch2sk1fk1fl1.tiff",
            ],
        }
    ).to_csv(csv, index=False)
    with pytest.raises(ManifestError, match="image file missing: .*gone.tiff"):
        build_manifest("P1", "b1", images, str(csv), platemap, CHANNELS)


@pytest.mark.parametrize(
    "rows, message",
    [
        (
            [["A01", "DMSO", "negcon", ""], ["A1", "x", "treatment", ""]],
            r"well\(s\) \['A01'\] more than once",
        ),
        ([["A01", "x", "treatment", ""]], "no negcon well"),
        ([["A01", "DMSO", "control", ""]], r"role\(s\) \['control'\]"),
    ],
)
def test_bad_platemaps_are_rejected_with_the_reason(tmp_path, rows, message):
    with pytest.raises(ManifestError, match=message):
        read_platemap(write_platemap(tmp_path / "map.tsv", rows))


def test_unknown_pattern_lists_known_ones(tmp_path, platemap):
    images = opera_plate(tmp_path / "images")
    with pytest.raises(ManifestError, match="unknown pattern 'phenix2'.*opera_phenix"):
        build_manifest("P1", "b1", images, "phenix2", platemap, CHANNELS)
