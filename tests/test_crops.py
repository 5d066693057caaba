"""Crops: right pixels at the right place, edge padding flagged, aligned with the cell table."""

import numpy as np
import pandas as pd
import pytest
import tifffile

from debatch.crops import crop_site, merge_params, select_cells, write_plate_crops


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
        rows.append({"Metadata_Well": "A01", "Metadata_Site": site,
                     "Path_DNA": str(tmp_path / f"s{site}_DNA.tif"), "Path_AGP": str(tmp_path / f"s{site}_AGP.tif")})
        for y, x in [(10, 12), (25, 30)]:
            cells.append({"Metadata_Well": "A01", "Metadata_Site": site,
                          "Nuclei_Location_Center_Y": y, "Nuclei_Location_Center_X": x})
    illum = {"DNA": np.full((40, 40), 2.0, np.float32), "AGP": np.ones((40, 40), np.float32)}
    table = write_plate_crops(pd.DataFrame(cells), pd.DataFrame(rows), ["DNA", "AGP"], illum,
                              tmp_path / "crops.npy", {"size": 8}, threads=2)
    crops = np.load(tmp_path / "crops.npy", mmap_mode="r")
    assert crops.shape == (4, 2, 8, 8) and crops.dtype == np.float16 and len(table) == 4
    raw = tifffile.imread(tmp_path / "s2_DNA.tif").astype(np.float32)
    expected = raw[21:29, 26:34] / 2.0 / 65535.0
    np.testing.assert_allclose(crops[3, 0], expected, rtol=1e-3)
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary file left behind


def test_unknown_parameter_is_named():
    with pytest.raises(ValueError, match=r"\['sizes'\]"):
        merge_params({"sizes": 3})


def test_cells_of_failed_sites_and_border_cells_are_left_out_and_counted():
    cells = pd.DataFrame({"Metadata_Well": ["A01", "A01", "A01", "B02", "B02"], "Metadata_Site": [1, 1, 2, 1, 1],
                          "Metadata_ObjectNumber": [1, 2, 1, 1, 2],
                          "Cells_Touching_Border": [False, True, False, False, True]})
    qc = pd.DataFrame({"Metadata_Well": ["A01", "A01", "B02"], "Metadata_Site": [1, 2, 1],
                       "QC_Pass": [True, False, True]})
    kept, counts = select_cells(cells, qc)
    assert kept[["Metadata_Well", "Metadata_Site", "Metadata_ObjectNumber"]].values.tolist() == \
        [["A01", 1, 1], ["A01", 1, 2], ["B02", 1, 1], ["B02", 1, 2]]
    assert counts == {"cells": 5, "failed_qc": 1, "border": 0}
    kept, counts = select_cells(cells, qc, {"drop_border_cells": True})
    assert kept["Metadata_ObjectNumber"].tolist() == [1, 1] and counts["border"] == 2
    with pytest.raises(ValueError, match="QC table has no row for well B02 site 1"):
        select_cells(cells, qc.iloc[:2])
