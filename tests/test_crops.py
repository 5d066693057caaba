"""Crops: right pixels at the right place, edge padding flagged, aligned with the cell table."""

import numpy as np
import pandas as pd
import pytest
import tifffile

from debatch.crops.cut import crop_site, write_plate_crops
from debatch.crops.eligible import check_some_left, left_out, select_cells
from debatch.settings import CROPS


def test_crop_is_centred_on_the_nucleus():
    stack = np.zeros((2, 50, 60), np.float32)
    stack[0, 20, 30] = 1.0
    stack[1, 20, 30] = 2.0
    crops, edge = crop_site(stack, np.array([[20.0, 30.0]]), 10)
    assert crops.shape == (1, 2, 10, 10)
    assert crops[0, 0, 5, 5] == 1.0 and crops[0, 1, 5, 5] == 2.0 and crops.sum() == 3.0
    assert not edge[0]


def test_edge_cells_are_zero_padded_and_flagged():
    stack = np.ones((1, 20, 20), np.float32)
    crops, edge = crop_site(stack, np.array([[1.0, 1.0], [10.0, 10.0]]), 8)
    assert edge.tolist() == [True, False]
    assert crops[0, 0, 0, 0] == 0.0 and crops[0, 0, 7, 7] == 1.0
    assert crops[1].min() == 1.0


def test_plate_crops_are_aligned_scaled_and_illumination_corrected(tmp_path):
    rng = np.random.default_rng(1)
    rows, cells = [], []
    for site in (1, 2):
        for channel in ("DNA", "AGP"):
            image = rng.integers(0, 60000, size=(40, 40)).astype(np.uint16)
            tifffile.imwrite(tmp_path / f"s{site}_{channel}.tif", image)
        rows.append(
            {
                "Metadata_Well": "A01",
                "Metadata_Site": site,
                "Path_DNA": str(tmp_path / f"s{site}_DNA.tif"),
                "Path_AGP": str(tmp_path / f"s{site}_AGP.tif"),
            }
        )
        for y, x in [(10, 12), (25, 30)]:
            cells.append(
                {
                    "Metadata_Well": "A01",
                    "Metadata_Site": site,
                    "Nuclei_Location_Center_Y": y,
                    "Nuclei_Location_Center_X": x,
                }
            )
    illum = {"DNA": np.full((40, 40), 2.0, np.float32), "AGP": np.ones((40, 40), np.float32)}
    table = write_plate_crops(
        pd.DataFrame(cells),
        pd.DataFrame(rows),
        ["DNA", "AGP"],
        illum,
        tmp_path / "crops.npy",
        {"size": 8},
        threads=2,
    )
    crops = np.load(tmp_path / "crops.npy", mmap_mode="r")
    assert crops.shape == (4, 2, 8, 8) and crops.dtype == np.float16 and len(table) == 4
    raw = tifffile.imread(tmp_path / "s2_DNA.tif").astype(np.float32)
    expected = raw[21:29, 26:34] / 2.0 / 65535.0
    np.testing.assert_allclose(crops[3, 0], expected, rtol=1e-3)
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary file left behind


def test_unknown_parameter_is_named():
    with pytest.raises(ValueError, match=r"\['sizes'\]"):
        CROPS.merge({"sizes": 3})


def test_cells_of_failed_sites_and_border_cells_are_left_out_and_counted():
    cells = pd.DataFrame(
        {
            "Metadata_Well": ["A01", "A01", "A01", "B02", "B02"],
            "Metadata_Site": [1, 1, 2, 1, 1],
            "Metadata_ObjectNumber": [1, 2, 1, 1, 2],
            "Cells_Touching_Border": [False, True, False, False, True],
        }
    )
    qc = pd.DataFrame(
        {
            "Metadata_Well": ["A01", "A01", "B02"],
            "Metadata_Site": [1, 2, 1],
            "QC_Pass": [True, False, True],
        }
    )
    kept, counts = select_cells(cells, qc)
    assert kept[["Metadata_Well", "Metadata_Site", "Metadata_ObjectNumber"]].values.tolist() == [
        ["A01", 1, 1],
        ["A01", 1, 2],
        ["B02", 1, 1],
        ["B02", 1, 2],
    ]
    assert counts == {"cells": 5, "failed_qc": 1, "border": 0}
    kept, counts = select_cells(cells, qc, {"drop_border_cells": True})
    assert kept["Metadata_ObjectNumber"].tolist() == [1, 1] and counts["border"] == 2
    with pytest.raises(ValueError, match="QC table has no row for well B02 site 1"):
        select_cells(cells, qc.iloc[:2])
    failed = qc.assign(QC_Pass=False)
    _, counts = select_cells(cells, failed, {"drop_border_cells": True})
    check_some_left(len(kept), "P1", counts, "qc/P1.parquet")  # cells left: no error
    with pytest.raises(ValueError) as nothing:
        check_some_left(0, "P1", counts, "qc/P1.parquet")
    assert str(nothing.value) == (
        "plate P1: nothing left for crops (of 5 cells, 5 on sites that failed QC and 0 at the "
        "border left out); see qc/P1.parquet"
    )
    assert left_out({"sites": 3, "failed_qc": 1}) == "of 3 sites, 1 failed QC"


def reference_crops(raw, illum, centers, size, scale=65535.0):
    """The straightforward way: correct whole images, scale, zero-pad the stack, cut, float16."""
    images = np.stack([plane.astype(np.float32) / function for plane, function in zip(raw, illum)])
    images = images / scale
    pad = 64  # room for the centres outside the image below
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad)))
    top = np.rint(centers[:, 0]).astype(int) - size // 2 + pad
    left = np.rint(centers[:, 1]).astype(int) - size // 2 + pad
    return np.stack([padded[:, y : y + size, x : x + size] for y, x in zip(top, left)]).astype(
        np.float16
    )


# centres at every edge and corner, partly and wholly outside, and clear of the edges
EDGE_CENTERS = np.array(
    [
        [0, 0],
        [0, 20.4],
        [0, 49],
        [15, 0],
        [15, 49],
        [39, 0],
        [39, 25],
        [39, 49],
        [2.6, 47.5],
        [-3, 10],
        [12, 55],
        [45, 30],
        [20, 25],
        [10.5, 9.5],
        [30, 40],
        [-20, -20],
        [20, 10],
    ]
)


@pytest.mark.parametrize("size", [8, 9])
def test_fast_crops_equal_pad_then_crop_reference_at_every_edge(size):
    from debatch.crops.cut import corrected_crops

    rng = np.random.default_rng(size)
    raw = [rng.integers(0, 65535, size=(40, 50)).astype(np.uint16) for _ in range(3)]
    illum = [rng.uniform(0.2, 3.0, size=(40, 50)).astype(np.float32) for _ in range(3)]
    crops, edge = corrected_crops(raw, illum, EDGE_CENTERS, size, 65535.0)
    expected = reference_crops(raw, illum, EDGE_CENTERS, size)
    assert crops.dtype == np.float16 and crops.shape == (len(EDGE_CENTERS), 3, size, size)
    np.testing.assert_array_equal(crops.view(np.uint16), expected.view(np.uint16))  # bit for bit
    assert edge.tolist() == [True] * 12 + [False, False, False, True, False]
    no_illum, _ = corrected_crops(raw, None, EDGE_CENTERS, size, 1000.0)
    ones = [np.ones((40, 50), np.float32)] * 3
    np.testing.assert_array_equal(
        no_illum.view(np.uint16),
        reference_crops(raw, ones, EDGE_CENTERS, size, 1000.0).view(np.uint16),
    )


def test_crop_site_on_image_smaller_than_the_crop_and_with_a_fill():
    plane = np.arange(12, dtype=np.float32).reshape(3, 4) + 1
    crops, edge = crop_site([plane], np.array([[1.0, 1.0]]), 6, fill=-1)
    assert edge.tolist() == [True]
    expected = np.full((6, 6), -1, np.float32)
    expected[2:5, 2:6] = plane
    np.testing.assert_array_equal(crops[0, 0], expected)
    assert crop_site([plane], np.zeros((0, 2)), 6)[0].shape == (0, 1, 6, 6)


def test_float16_conversion_matches_numpy_bit_for_bit():
    from debatch.crops.cut import to_float16

    rng = np.random.default_rng(0)
    values = np.concatenate(
        [
            rng.uniform(0, 2, 5000),
            rng.uniform(0, 1e-4, 5000),  # normal, subnormal
            [0.0, -0.0, 1e-8, 2.98e-8, 3e-8, 65504, 65519, 65520, 1e6, np.inf, -np.inf],
            1 + np.arange(-64, 64) * 2.0**-11,
        ]
    )  # float16 rounding ties
    values = values.astype(np.float32).reshape(1, -1)
    with np.errstate(over="ignore"):
        expected = values.astype(np.float16)
    np.testing.assert_array_equal(to_float16(values).view(np.uint16), expected.view(np.uint16))


def test_plate_crops_match_the_reference_with_edge_cells_and_interleaved_sites(tmp_path):
    rng = np.random.default_rng(3)
    rows, cells, raw = [], [], {}
    for site in (1, 2, 3):
        raw[site] = [rng.integers(0, 65535, size=(40, 50)).astype(np.uint16) for _ in range(2)]
        for channel, image in zip(("DNA", "AGP"), raw[site]):
            tifffile.imwrite(tmp_path / f"s{site}_{channel}.tif", image)
        rows.append(
            {
                "Metadata_Well": "A01",
                "Metadata_Site": site,
                "Path_DNA": str(tmp_path / f"s{site}_DNA.tif"),
                "Path_AGP": str(tmp_path / f"s{site}_AGP.tif"),
            }
        )
    for i, (y, x) in enumerate(EDGE_CENTERS):  # sites interleaved: a site's rows are not adjacent
        cells.append(
            {
                "Metadata_Well": "A01",
                "Metadata_Site": 1 + i % 3,
                "Nuclei_Location_Center_Y": y,
                "Nuclei_Location_Center_X": x,
            }
        )
    cells = pd.DataFrame(cells)
    illum = {
        "DNA": rng.uniform(0.5, 2, (40, 50)).astype(np.float32),
        "AGP": rng.uniform(0.5, 2, (40, 50)).astype(np.float32),
    }
    for threads in (1, 2):
        table = write_plate_crops(
            cells,
            pd.DataFrame(rows),
            ["DNA", "AGP"],
            illum,
            tmp_path / "crops.npy",
            {"size": 10},
            threads=threads,
        )
        crops = np.load(tmp_path / "crops.npy")
        for site in (1, 2, 3):
            mine = (cells["Metadata_Site"] == site).to_numpy()
            expected = reference_crops(
                raw[site], [illum["DNA"], illum["AGP"]], EDGE_CENTERS[mine], 10
            )
            np.testing.assert_array_equal(crops[mine].view(np.uint16), expected.view(np.uint16))
        assert table["Crops_TouchingEdge"].tolist() == [True] * 12 + [
            False,
            False,
            False,
            True,
            False,
        ]


def test_illumination_function_of_another_shape_stops_the_crops(tmp_path):
    from debatch.core.images import ImageError

    tifffile.imwrite(tmp_path / "dna.tif", np.ones((20, 20), np.uint16))
    manifest = pd.DataFrame(
        [{"Metadata_Well": "A01", "Metadata_Site": 1, "Path_DNA": str(tmp_path / "dna.tif")}]
    )
    cells = pd.DataFrame(
        {
            "Metadata_Well": ["A01"],
            "Metadata_Site": [1],
            "Nuclei_Location_Center_Y": [10.0],
            "Nuclei_Location_Center_X": [10.0],
        }
    )
    with pytest.raises(ImageError, match="dna.tif has shape .* illumination function for DNA"):
        write_plate_crops(
            cells,
            manifest,
            ["DNA"],
            {"DNA": np.ones((10, 10), np.float32)},
            tmp_path / "crops.npy",
            {"size": 4},
        )
    assert not list(tmp_path.glob("*.npy")) and not list(tmp_path.glob(".*tmp*"))
