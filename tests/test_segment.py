"""Classical segmentation: declumping, one-to-one cells, measurements, plate runs, real images."""

import glob

import numpy as np
import pandas as pd
import pytest
import tifffile
from scipy import ndimage

from debatch.segment import measure_site, merge_params, segment_cells, segment_nuclei, segment_plate

PARAMS = {"nucleus_diameter": 12.0}


def disc(shape, centre, radius):
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def two_touching_nuclei(shape=(64, 64)):
    image = np.full(shape, 100.0, np.float32)
    image[disc(shape, (32, 24), 7) | disc(shape, (32, 36), 7)] = 1000.0
    return image


def test_touching_nuclei_are_split():
    nuclei = segment_nuclei(two_touching_nuclei(), PARAMS)
    assert nuclei.max() == 2
    assert nuclei[32, 22] != nuclei[32, 38] and nuclei[32, 22] > 0 and nuclei[32, 38] > 0


def test_cells_are_one_to_one_with_nuclei_and_contain_them():
    nuclei = segment_nuclei(two_touching_nuclei(), PARAMS)
    cell_image = np.full(nuclei.shape, 100.0, np.float32)
    cell_image[disc(nuclei.shape, (32, 30), 20)] = 500.0
    cells = segment_cells(nuclei, cell_image, PARAMS)
    assert set(np.unique(cells)) == {0, 1, 2}
    inside = nuclei > 0
    np.testing.assert_array_equal(cells[inside], nuclei[inside])
    assert (cells > 0).sum() > 2 * inside.sum()  # cells grew beyond their nuclei
    for label in (1, 2):  # each cell is one connected piece
        assert ndimage.label(cells == label)[1] == 1


def test_empty_image_gives_no_objects():
    flat = np.full((40, 40), 50.0, np.float32)
    nuclei = segment_nuclei(flat, PARAMS)
    assert nuclei.max() == 0 and segment_cells(nuclei, flat, PARAMS).max() == 0
    assert len(measure_site(nuclei, nuclei, {"DNA": flat})) == 0


def test_measurements_of_a_known_disc():
    nuclei = disc((50, 60), (20, 30), 5).astype(np.int32)
    cells = disc((50, 60), (20, 30), 10).astype(np.int32)
    table = measure_site(nuclei, cells, {"DNA": np.full((50, 60), 7.0, np.float32)})
    row = table.iloc[0]
    assert row["Nuclei_AreaShape_Area"] == nuclei.sum() and row["Cells_AreaShape_Area"] == cells.sum()
    assert row["Nuclei_Location_Center_X"] == pytest.approx(30) and row["Nuclei_Location_Center_Y"] == pytest.approx(20)
    assert row["Cells_Intensity_MeanIntensity_DNA"] == pytest.approx(7.0)
    assert row["Cells_AreaShape_BoundingBoxMinimum_Y"] == 10 and not row["Cells_Touching_Border"]


def test_unknown_parameter_is_named():
    with pytest.raises(ValueError, match=r"\['diameter'\]"):
        merge_params({"diameter": 3})


def test_plate_is_identical_whatever_the_thread_count(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for site in (1, 2, 3):
        dna = two_touching_nuclei() + rng.normal(0, 5, (64, 64)).astype(np.float32)
        tifffile.imwrite(tmp_path / f"dna{site}.tif", dna.astype(np.uint16))
        tifffile.imwrite(tmp_path / f"agp{site}.tif", (dna * 0.5 + 200).astype(np.uint16))
        rows.append({"Metadata_Plate": "P1", "Metadata_Well": "A01", "Metadata_Site": site,
                     "Metadata_Treatment": "DMSO", "Path_DNA": str(tmp_path / f"dna{site}.tif"),
                     "Path_AGP": str(tmp_path / f"agp{site}.tif")})
    manifest = pd.DataFrame(rows)
    one, masks_one = segment_plate(manifest, ["DNA", "AGP"], None, "DNA", "AGP", PARAMS, threads=1)
    two, masks_two = segment_plate(manifest, ["DNA", "AGP"], None, "DNA", "AGP", PARAMS, threads=2)
    pd.testing.assert_frame_equal(one, two)
    assert list(one.columns[:4]) == ["Metadata_Plate", "Metadata_Well", "Metadata_Site", "Metadata_Treatment"]
    assert len(one) == 6 and sorted(masks_one) == sorted(masks_two)
    assert sorted(masks_one)[0] == "A01_1_cells"


def test_nf1_nuclei_counts_match_cellprofiler(real_data):
    """Real Schwann-cell images: nuclei not touching the border within 25 % of CellProfiler's."""
    folder = real_data / "nf1_plate2"
    for dna_path in sorted(glob.glob(str(folder / "Plate_2_images" / "*_01_1_*_DAPI_001.tif"))):
        name = dna_path.rsplit("/", 1)[1].removesuffix(".tif")
        reference = tifffile.imread(folder / "Plate_2_masks" / f"{name}_MaskNuclei.tiff") > 0
        expected = ndimage.label(reference)[1]
        nuclei = segment_nuclei(tifffile.imread(dna_path).astype(np.float32), {"nucleus_diameter": 50})
        border = np.unique(np.concatenate([nuclei[0], nuclei[-1], nuclei[:, 0], nuclei[:, -1]]))
        found = len(set(np.unique(nuclei)) - set(border) - {0})
        assert abs(found - expected) <= 0.25 * expected, f"{name}: {found} nuclei vs CellProfiler {expected}"


def test_site_without_cells_is_logged_and_the_plate_goes_on(tmp_path):
    rows = []
    for site, image in ((1, two_touching_nuclei()), (2, np.full((64, 64), 100.0, np.float32))):
        tifffile.imwrite(tmp_path / f"dna{site}.tif", image.astype(np.uint16))
        rows.append({"Metadata_Well": "A01", "Metadata_Site": site, "Path_DNA": str(tmp_path / f"dna{site}.tif")})
    messages = []
    cells, masks = segment_plate(pd.DataFrame(rows), ["DNA"], None, "DNA", "DNA", PARAMS, log=messages.append)
    assert set(cells["Metadata_Site"]) == {1} and masks["A01_2_nuclei"].max() == 0
    assert any("well A01 site 2: no cells found" in message for message in messages)
