"""Whole-site crops (crops.unit: site): each QC-passed site, corrected then area-averaged, one
row of the crops table per site, and everything downstream that counts cells counting the
sites' cells."""

import numpy as np
import pandas as pd
import pytest
import tifffile

from debatch.cnn.data import random_tiles
from debatch.crops.eligible import select_sites
from debatch.crops.sites import area_resize, area_weights, write_plate_sites
from debatch.crops.store import crop_unit, open_crops
from debatch.profiles.aggregate import aggregate_parquet
from debatch.profiles.wells import profiled_rows
from debatch.report.gallery import pick_cells
from debatch.settings import COUNT_CELLS, SITE_CELLS_META

CHANNELS = ["DNA", "AGP"]


def block_mean(image: np.ndarray, factor: int) -> np.ndarray:
    height, width = image.shape
    return image.reshape(height // factor, factor, width // factor, factor).mean(axis=(1, 3))


def test_area_weights_average_blocks_and_split_pixels_by_overlap():
    np.testing.assert_allclose(area_weights(4, 2), [[0.5, 0.5, 0, 0], [0, 0, 0.5, 0.5]])
    # 3 pixels into 2: each output covers 1.5 pixels, the middle one shared half and half
    np.testing.assert_allclose(area_weights(3, 2), [[2 / 3, 1 / 3, 0], [0, 1 / 3, 2 / 3]])
    image = np.random.default_rng(0).random((12, 12), dtype=np.float32)
    (resized,) = area_resize([image], 5)
    assert resized.shape == (5, 5)
    assert resized.mean() == pytest.approx(image.mean(), rel=1e-5)  # no intensity lost


def manifest_and_qc(folder, sites=3, side=48):
    """A one-well plate's manifest (16-bit TIFFs) and QC table; site 2 failed QC."""
    rng = np.random.default_rng(3)
    rows = []
    for site in range(1, sites + 1):
        row = {
            "Metadata_Plate": "P1",
            "Metadata_Batch": "b1",
            "Metadata_Well": "A01",
            "Metadata_Site": site,
            "Metadata_Treatment": "DMSO",
        }
        for channel in CHANNELS:
            path = folder / f"s{site}_{channel}.tif"
            tifffile.imwrite(path, rng.integers(0, 60000, (side, side)).astype(np.uint16))
            row[f"Path_{channel}"] = str(path)
        rows.append(row)
    manifest = pd.DataFrame(rows)
    qc = manifest[["Metadata_Plate", "Metadata_Well", "Metadata_Site"]].assign(
        QC_Pass=[True, False, True][:sites], Count_Cells=[7, 3, 11][:sites]
    )
    return manifest, qc


def test_site_crops_are_the_area_downscaled_corrected_sites_of_passed_sites_only(tmp_path):
    manifest, qc = manifest_and_qc(tmp_path)
    sites, counts = select_sites(manifest, qc)
    assert counts == {"sites": 3, "failed_qc": 1}
    assert sites["Metadata_Site"].tolist() == [1, 3]  # site 2 failed QC: absent
    assert sites[SITE_CELLS_META].tolist() == [7, 11]
    assert not any(c.startswith("Path_") for c in sites)  # metadata only
    illum = {
        "DNA": np.linspace(0.5, 2.0, 48 * 48, dtype=np.float32).reshape(48, 48),
        "AGP": np.ones((48, 48), np.float32),
    }
    table = write_plate_sites(
        sites,
        manifest,
        CHANNELS,
        illum,
        tmp_path / "sites.npy",
        {"unit": "site", "site_size": 12, "scale": 1000.0},
        threads=2,
    )
    crops, opened = open_crops(tmp_path / "sites.npy", _saved(table, tmp_path))
    assert crops.shape == (2, 2, 12, 12) and crops.dtype == np.float16
    assert crop_unit(opened) == "site"
    for row, site in enumerate(opened["Metadata_Site"]):  # rows aligned with the table
        for c, channel in enumerate(CHANNELS):
            raw = tifffile.imread(tmp_path / f"s{site}_{channel}.tif").astype(np.float32)
            expected = block_mean(raw / illum[channel], 4) / 1000.0
            np.testing.assert_allclose(crops[row, c], expected, rtol=2e-3)


def _saved(table, folder):
    path = folder / "sites.parquet"
    table.to_parquet(path)
    return path


def test_a_site_missing_from_qc_is_an_error_naming_it(tmp_path):
    manifest, qc = manifest_and_qc(tmp_path, sites=3)
    with pytest.raises(ValueError, match="QC table has no row for well A01 site 3"):
        select_sites(manifest, qc.iloc[:2])


def test_wells_of_sites_count_their_cells_and_the_cellprofiler_source_their_cells(tmp_path):
    """A well of whole sites counts the cells on them (never sites as cells); the cellprofiler
    source, given a crops table of sites, profiles every cell of those sites."""
    sites = pd.DataFrame(
        {
            "Metadata_Plate": "P1",
            "Metadata_Well": ["A01", "A01", "A02"],
            "Metadata_Site": [1, 2, 1],
            SITE_CELLS_META: [7, 11, 4],
            "emb_0": [1.0, 3.0, 5.0],
        }
    )
    sites.to_parquet(tmp_path / "emb.parquet")
    wells = aggregate_parquet(tmp_path / "emb.parquet")
    assert wells[COUNT_CELLS].tolist() == [18, 4] and SITE_CELLS_META not in wells
    assert wells["emb_0"].tolist() == [2.0, 5.0]
    features = pd.DataFrame(
        {
            "Metadata_Well": ["A01", "A01", "A02", "A02"],
            "Metadata_Site": [1, 3, 1, 1],
            "Metadata_ObjectNumber": [1, 1, 1, 2],
            "Cells_AreaShape_Area": [1.0, 2.0, 3.0, 4.0],
        }
    )
    features.to_parquet(tmp_path / "features.parquet")
    rows = profiled_rows(tmp_path / "features.parquet", tmp_path / "emb.parquet")
    assert rows.tolist() == [0, 2, 3]  # site A01/3 has no crop: its cell is left out


def test_the_gallery_picks_sites_by_their_cell_count():
    table = pd.DataFrame(
        {
            "Metadata_Plate": "P1",
            "Metadata_Treatment": ["a"] * 5,
            "Metadata_Role": "treatment",
            SITE_CELLS_META: [1, 10, 11, 12, 100],
            "crop": range(5),
        }
    )
    picked = pick_cells(table, 1, seed=0)
    assert picked.loc[picked["kind"] == "typical", SITE_CELLS_META].tolist() == [11]


def test_training_tiles_are_random_squares_of_each_crop():
    crops = np.arange(2 * 1 * 6 * 6, dtype=np.float16).reshape(2, 1, 6, 6)
    tiles = random_tiles(crops, 4, np.random.default_rng(0))
    assert tiles.shape == (2, 1, 4, 4)
    for crop, tile in zip(crops, tiles):
        y, x = np.argwhere(crop[0] == tile[0, 0, 0])[0]
        np.testing.assert_array_equal(crop[:, y : y + 4, x : x + 4], tile)
    assert random_tiles(crops, 6, np.random.default_rng(0)) is crops
    with pytest.raises(ValueError, match="train.tile 8 is larger than the stored crops' side 6"):
        random_tiles(crops, 8, np.random.default_rng(0))
