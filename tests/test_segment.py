"""Classical segmentation: declumping, propagation, measurements, shard runs, real NF1 nuclei."""

import logging

import numpy as np
import pandas as pd
import pytest
import tifffile
from scipy import ndimage
from skimage.segmentation import relabel_sequential

from debatch.segment.cell_table import measure_site
from debatch.segment.gather import check_plate, plate_summary
from debatch.segment.propagate import (
    distance_to_background,
    find_nuclei,
    object_medians,
    segment_cells,
    segment_nuclei,
)
from debatch.segment.shards import segment_shard
from debatch.settings import PROPAGATE, Channels

PARAMS = {"nucleus_diameter": 12.0}
# Sharp synthetic discs end where Otsu's half contrast puts them; the default (minimum
# cross-entropy, fitted to real, blurred nuclei) puts them a pixel out.
SHARP = {**PARAMS, "threshold_method": "otsu"}
EIGHT = np.ones((3, 3))


def disc(shape, centre, radius):
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def two_touching_nuclei(shape=(64, 64), noise=0.0, seed=0):
    """Two overlapping discs (radius 7, centres 12 px apart) on a dim background."""
    image = np.full(shape, 100.0, np.float32)
    image[disc(shape, (32, 24), 7) | disc(shape, (32, 36), 7)] = 1000.0
    return image + np.random.default_rng(seed).normal(0, noise, shape).astype(np.float32)


def test_touching_nuclei_are_split_with_their_outline():
    """Declumping: one blob of two discs becomes two nuclei, each close to its disc (IoU > 0.8)."""
    nuclei = segment_nuclei(two_touching_nuclei(noise=5.0), SHARP)
    assert nuclei.max() == 2 and nuclei.dtype == np.int32
    for centre in ((32, 24), (32, 36)):
        truth = disc(nuclei.shape, centre, 7)
        found = nuclei == nuclei[centre]
        assert (found & truth).sum() / (found | truth).sum() > 0.8


def test_small_nucleus_beside_a_large_one_keeps_its_own_seed():
    """A nucleus whose distance peak lies in a larger neighbour's declumping window is not lost."""
    shape = (80, 80)
    image = np.full(shape, 100.0, np.float32)
    image[disc(shape, (40, 30), 10) | disc(shape, (40, 46), 4)] = 1000.0  # 1 px apart
    nuclei = segment_nuclei(image, {**SHARP, "declump_distance": 1.0})
    assert nuclei.max() == 2 and nuclei[40, 46] > 0


def test_holes_in_a_nucleus_are_filled_but_not_the_space_inside_a_ring_of_nuclei():
    """Dark nucleoli do not punch holes; a ring of touching nuclei does not become one blob."""
    shape = (80, 80)
    image = np.full(shape, 100.0, np.float32)
    angles = np.linspace(0, 2 * np.pi, 10, endpoint=False)
    centres = [(40 + 20 * np.sin(a), 40 + 20 * np.cos(a)) for a in angles]
    for centre in centres:
        image[disc(shape, centre, 6.5)] = 1000.0
    image[disc(shape, centres[0], 2)] = 100.0  # a nucleolus
    nuclei = segment_nuclei(image, PARAMS)
    assert nuclei.max() == 10 and nuclei[40, 40] == 0
    first = nuclei == nuclei[40, 60]
    assert first[40, 60] and not ndimage.binary_fill_holes(first)[~first].any()


def test_debris_and_oversized_blobs_are_not_nuclei():
    """Objects outside [min_area, max_area] x the expected nucleus area are dropped."""
    shape = (128, 128)
    image = np.full(shape, 100.0, np.float32)
    image[disc(shape, (20, 20), 6)] = 1000.0  # a nucleus
    image[disc(shape, (20, 60), 1.5)] = 1000.0  # debris, 7 px
    image[50:120, 50:120] = 1000.0  # a 70 x 70 px artefact
    nuclei = segment_nuclei(image, PARAMS)
    assert nuclei.max() == 1 and nuclei[20, 20] == 1


@pytest.mark.parametrize("min_area", [0.0, PROPAGATE.defaults["min_area"]])
def test_nuclei_left_after_the_size_filter_are_numbered_1_to_n_in_order(min_area):
    """Debris dropped by the size filter between nuclei leaves no gap in the labels: 1..n,
    as skimage's relabel_sequential numbers them."""
    shape = (96, 96)
    image = np.full(shape, 100.0, np.float32)
    for row, col in [(15, 15), (15, 48), (15, 80), (60, 30), (60, 70)]:
        image[disc(shape, (row, col), 6)] = 1000.0
    for row, col in [(15, 31), (40, 60), (85, 85)]:  # debris among them, 13 px
        image[disc(shape, (row, col), 2)] = 1000.0
    nuclei = segment_nuclei(image, {**SHARP, "min_area": min_area})
    expected = 8 if min_area == 0 else 5
    assert np.array_equal(np.unique(nuclei), np.arange(expected + 1))
    np.testing.assert_array_equal(relabel_sequential(nuclei)[0], nuclei)


def test_specks_are_counted_but_small_solid_objects_are_not():
    """Hot pixels (a few bright pixels, blurred into blobs by the smoothing but background in
    most of their pixels) are left out and counted as specks. Small but solid objects (an
    apoptotic body, a pyknotic nucleus, a nucleus cut by the border) are real: below the size
    floor they are left out too, but not counted, so a sparse dying well is no data fault."""
    shape = (128, 128)
    truth = np.zeros(shape)
    for centre in ((30, 30), (30, 90), (90, 40)):
        truth[disc(shape, centre, 6)] = 900.0  # nuclei
    for centre in ((70, 100), (100, 90)):
        truth[disc(shape, centre, 1)] = 1500.0  # small and bright, blurred by the optics
    truth[disc(shape, (127, 10), 2)] = 900.0  # a nucleus cut by the image's edge
    image = ndimage.gaussian_filter(truth, 1.0) + 100 + np.random.default_rng(0).normal(0, 5, shape)
    for y, x in ((10, 60), (60, 10)):
        image[y : y + 2, x : x + 2] = 6000.0  # hot pixels: the camera's, not blurred
    params = {**PARAMS, "min_area": 0.3}  # a floor of 34 px: the small objects measure ~21
    nuclei, specks = find_nuclei(image.astype(np.float32), params)
    assert nuclei.max() == 3 and specks == 2
    assert all(nuclei[centre] > 0 for centre in ((30, 30), (30, 90), (90, 40)))
    assert np.array_equal(nuclei, segment_nuclei(image.astype(np.float32), params))


def test_object_medians_equal_ndimage_over_the_whole_image():
    """The speck test's medians over object pixels only are ndimage's over the whole image."""
    rng = np.random.default_rng(3)
    for dtype in (np.float32, np.float64, np.uint16):
        image = rng.integers(0, 4000, (96, 80)).astype(dtype)
        objects, n = ndimage.label(rng.random((96, 80)) > 0.7, EIGHT)
        index = np.arange(1, n + 1)
        expected = np.asarray(ndimage.median(image, objects, index))
        found = object_medians(image, objects, objects > 0, index)
        assert found.dtype == expected.dtype and np.array_equal(found, expected)


def test_flat_and_noise_only_images_give_no_objects():
    """An empty field (flat, or pure camera noise) yields no nuclei and cells, not noise blobs."""
    flat = np.full((40, 40), 50.0, np.float32)
    noise = 100 + np.random.default_rng(1).normal(0, 5, (128, 128)).astype(np.float32)
    for image in (flat, noise):
        nuclei = segment_nuclei(image, PARAMS)
        assert nuclei.max() == 0 and segment_cells(nuclei, image, PARAMS, 1e-3).max() == 0
    assert len(measure_site(nuclei, nuclei, {"DNA": noise})) == 0


def test_log_threshold_keeps_a_dim_nucleus_beside_bright_ones():
    """Otsu on intensity loses a nucleus at 1/4 of the others' brightness; log_threshold keeps it,
    and trims every outline back to the true disc despite the optical blur."""
    shape = (96, 96)
    image = np.full(shape, 100.0, np.float32)
    centres = ((20, 20), (20, 70), (70, 20), (70, 70))
    for centre, brightness in zip(centres, (2000.0, 2000.0, 2000.0, 600.0)):
        image[disc(shape, centre, 6)] = brightness
    image = ndimage.gaussian_filter(image, 2.0) + np.random.default_rng(2).normal(0, 5, shape)
    assert segment_nuclei(image, SHARP)[70, 70] == 0
    nuclei = segment_nuclei(image, {**PARAMS, "threshold_method": "log_otsu"})
    assert nuclei.max() == 4
    for centre in centres:
        truth, found = disc(shape, centre, 6), nuclei == nuclei[centre]
        assert nuclei[centre] > 0 and (found & truth).sum() / (found | truth).sum() > 0.7


def test_cells_are_one_to_one_connected_and_contain_their_nuclei():
    """Propagation: cell i holds all of nucleus i, is one 8-connected piece without small holes
    and grows past its nucleus."""
    nuclei = segment_nuclei(two_touching_nuclei(), PARAMS)
    cell_image = np.full(nuclei.shape, 100.0, np.float32)
    cell_image[disc(nuclei.shape, (32, 30), 20)] = 500.0
    cell_image[disc(nuclei.shape, (17, 24), 3)] = 100.0  # a dark pocket (vacuole) inside a cell
    cells = segment_cells(nuclei, cell_image, PARAMS, scale=1e-3)  # 0.1-0.5 of full scale
    assert set(np.unique(cells)) == {0, 1, 2} and cells[17, 24] > 0
    inside = nuclei > 0
    np.testing.assert_array_equal(cells[inside], nuclei[inside])
    assert (cells > 0).sum() > 2 * inside.sum()
    for label in (1, 2):
        assert ndimage.label(cells == label, EIGHT)[1] == 1


def test_cell_boundary_follows_the_cell_image_not_the_midpoint():
    """Two cells of different brightness meet at their intensity edge (x = 40), not half-way
    between the nuclei (x = 32): propagation uses the image, not only distance."""
    shape = (64, 80)
    nuclei = (disc(shape, (32, 20), 5) * 1 + disc(shape, (32, 44), 5) * 2).astype(np.int32)
    cell_image = np.full(shape, 50.0, np.float32)
    body = disc(shape, (32, 32), 26)
    cell_image[body & (np.arange(shape[1]) < 40)] = 900.0
    cell_image[body & (np.arange(shape[1]) >= 40)] = 300.0
    cells = segment_cells(nuclei, cell_image, {"nucleus_diameter": 10.0}, scale=1e-3)
    assert (cells[32, 22:39] == 1).all() and (cells[32, 41:50] == 2).all()


def test_cells_stop_at_max_cell_distance():
    """A nucleus in a large bright region grows at most max_cell_distance x diameter beyond it."""
    shape = (200, 200)
    nuclei = disc(shape, (100, 100), 6).astype(np.int32)
    cell_image = np.full(shape, 800.0, np.float32)
    cell_image[:, :20] = 50.0  # some background so the threshold has two classes
    params = {**PARAMS, "max_cell_distance": 2.0}
    cells = segment_cells(nuclei, cell_image, params, scale=1e-3)
    reach = ndimage.distance_transform_edt(nuclei == 0)[cells == 1].max()
    assert 2.0 * 12 - 1 <= reach <= 2.0 * 12


@pytest.mark.parametrize(
    "shape, share",
    [((150, 211), 0.3), ((150, 211), 0.9), ((150, 211), 1.0), ((1500, 3), 0.999),
     ((900, 18), 0.999), ((40, 1400), 0.999), ((1413, 1413), 0.999)],
)  # fmt: skip
def test_distance_to_background_is_ndimages_euclidean_transform_bit_for_bit(shape, share):
    """Objects cut by the edges, no background at all, long strips (where OpenCV errs) and a
    diagonal near the float32 limit."""
    rng = np.random.default_rng(5)
    field = ndimage.gaussian_filter(rng.random(shape), 3)
    foreground = field <= np.quantile(field, share)
    np.testing.assert_array_equal(
        distance_to_background(foreground), ndimage.distance_transform_edt(foreground)
    )


def test_measurements_of_a_known_disc():
    """Areas, centroid (x = column), bounding box, border flags, mean intensity per compartment."""
    shape = (50, 60)
    nuclei = disc(shape, (20, 30), 5).astype(np.int32)
    cells = disc(shape, (20, 30), 10).astype(np.int32)
    nuclei[45:50, 0:4] = 2  # a second cell cut by the image edge
    cells[44:50, 0:6] = 2
    dna = np.full(shape, 7.0, np.float32)
    dna[(cells == 1) & (nuclei == 0)] = 1.0  # dimmer cytoplasm
    table = measure_site(nuclei, cells, {"DNA": dna, "AGP": np.full(shape, 3.0, np.float32)})
    first, second = table.iloc[0], table.iloc[1]
    assert list(table["Metadata_ObjectNumber"]) == [1, 2]
    assert first["Nuclei_AreaShape_Area"] == disc(shape, (20, 30), 5).sum()
    assert first["Cells_AreaShape_Area"] == disc(shape, (20, 30), 10).sum()
    assert first["Nuclei_Location_Center_X"] == pytest.approx(30)
    assert first["Nuclei_Location_Center_Y"] == pytest.approx(20)
    box = [
        first[f"Cells_AreaShape_BoundingBox{end}_{axis}"]
        for end in ("Minimum", "Maximum")
        for axis in "XY"
    ]
    assert box == [20, 10, 41, 31]  # maximum exclusive, like skimage
    assert first["Nuclei_Intensity_MeanIntensity_DNA"] == pytest.approx(7.0)
    assert first["Cells_Intensity_MeanIntensity_DNA"] < 7.0
    assert first["Cells_Intensity_MeanIntensity_AGP"] == pytest.approx(3.0)
    assert not first["Cells_Touching_Border"] and second["Cells_Touching_Border"]
    assert second["Nuclei_Touching_Border"]


def test_measure_rejects_unpaired_labels():
    """A cell that does not contain its nucleus is an error, not a silently wrong table."""
    nuclei = disc((30, 30), (15, 15), 4).astype(np.int32)
    with pytest.raises(ValueError, match="one-to-one"):
        measure_site(nuclei, np.roll(nuclei, 10, axis=1), {"DNA": np.ones((30, 30))})


def test_parameters_are_checked_and_named():
    """A typo or an impossible value names the key instead of falling back to a default."""
    assert PROPAGATE.merge({"nucleus_diameter": 50})["nucleus_diameter"] == 50
    assert set(PROPAGATE.merge(None)) == set(PROPAGATE.defaults)
    with pytest.raises(ValueError, match=r"\['diameter'\]"):
        segment_nuclei(np.zeros((8, 8)), {"diameter": 3})
    with pytest.raises(ValueError, match="segment.propagate.nucleus_diameter must be > 0"):
        PROPAGATE.merge({"nucleus_diameter": 0.0})


def write_plate(tmp_path, images_by_site):
    """TIFFs + manifest for {(well, site): (dna, agp)}, rows deliberately out of order."""
    rows = []
    for (well, site), (dna, agp) in images_by_site.items():
        for name, image in (("DNA", dna), ("AGP", agp)):
            tifffile.imwrite(tmp_path / f"{well}_{site}_{name}.tif", image.astype(np.uint16))
        rows.append(
            {
                "Metadata_Plate": "P1",
                "Metadata_Batch": "B1",
                "Metadata_Well": well,
                "Metadata_Site": site,
                "Metadata_Treatment": f"t{well}",
                "Path_DNA": str(tmp_path / f"{well}_{site}_DNA.tif"),
                "Path_AGP": str(tmp_path / f"{well}_{site}_AGP.tif"),
            }
        )
    return pd.DataFrame(rows)


SETTINGS = {"propagate": PARAMS}


def segment_plate(manifest, channels, illum, folder, threads=1):
    """The segment stage on one shard: (cells table, sites table, label images)."""
    cells, sites = segment_shard(
        manifest,
        1,
        0,
        Channels(channels, "DNA", "AGP"),
        illum,
        SETTINGS,
        folder / f"masks{threads}.npz",
        threads=threads,
    )
    masks = np.load(folder / f"masks{threads}.npz")
    return cells, sites, {name: masks[name] for name in masks.files}


def test_plate_table_is_sorted_with_metadata_and_independent_of_threads(tmp_path):
    """Rows carry the site's Metadata_ columns first, are ordered by well/site/object, match the
    saved masks and illumination-corrected intensities, and do not depend on the thread count."""
    images = {}
    for i, key in enumerate([("B02", 2), ("A01", 2), ("B02", 1), ("A01", 1)]):
        dna = two_touching_nuclei(noise=5.0, seed=i)
        images[key] = (dna, dna * 0.5 + 200)
    manifest = write_plate(tmp_path, images)
    illum = {"DNA": np.full((64, 64), 2.0, np.float32), "AGP": np.ones((64, 64), np.float32)}
    one, _, masks_one = segment_plate(manifest, ["DNA", "AGP"], illum, tmp_path, threads=1)
    two, _, masks_two = segment_plate(manifest, ["DNA", "AGP"], illum, tmp_path, threads=2)
    pd.testing.assert_frame_equal(one, two)
    assert masks_one.keys() == masks_two.keys()
    for key in masks_one:
        np.testing.assert_array_equal(masks_one[key], masks_two[key])
    assert list(one.columns[:5]) == [
        "Metadata_Plate",
        "Metadata_Batch",
        "Metadata_Well",
        "Metadata_Site",
        "Metadata_Treatment",
    ]
    assert list(zip(one["Metadata_Well"], one["Metadata_Site"], one["Metadata_ObjectNumber"])) == [
        (well, site, obj) for well in ("A01", "B02") for site in (1, 2) for obj in (1, 2)
    ]
    assert (one["Metadata_Treatment"] == "t" + one["Metadata_Well"]).all()
    assert sorted(masks_one) == sorted(
        f"{well}_{site}_{kind}" for well, site in images for kind in ("nuclei", "cells")
    )
    assert masks_one["A01_1_nuclei"].dtype == np.uint16 and masks_one["A01_1_cells"].max() == 2
    # DNA intensities are divided by the illumination function (2.0): the nucleus mean is ~1000 / 2
    # (a little less: the outline takes in the discs' edge pixels).
    assert one["Nuclei_Intensity_MeanIntensity_DNA"].between(350, 520).all()


def test_site_without_cells_is_logged_and_the_plate_goes_on(tmp_path, caplog):
    """An empty site adds no rows but a log line; progress and a summary are logged too."""
    flat = np.full((64, 64), 100.0, np.float32)
    manifest = write_plate(
        tmp_path, {("A01", 1): (two_touching_nuclei(), flat), ("A01", 2): (flat, flat)}
    )
    with caplog.at_level("INFO", logger="debatch"):
        cells, sites, masks = segment_plate(manifest, ["DNA", "AGP"], None, tmp_path)
    assert set(cells["Metadata_Site"]) == {1} and masks["A01_2_nuclei"].max() == 0
    assert "well A01 site 2: no cells found" in caplog.messages
    assert "shard 1/1: segmented 2/2 sites, 2 cells" in caplog.messages
    assert plate_summary(sites) == "2 sites, 2 cells; cells per site min 0, median 1, max 2"


def test_plate_without_any_cell_is_an_error(tmp_path):
    """No cell on any site almost always means a wrong channel or diameter: fail loudly."""
    flat = np.full((64, 64), 100.0, np.float32)
    manifest = write_plate(tmp_path, {("A01", 1): (flat, flat)})
    cells, sites, _ = segment_plate(manifest, ["DNA", "AGP"], None, tmp_path)
    assert cells.empty
    with pytest.raises(ValueError, match="plate P1: no cells found on any of its 1 sites"):
        check_plate(cells, sites, "P1", logging.getLogger("debatch"))


def average_precision(found, reference):
    """Matched pairs at IoU > 0.5 over matched + unmatched objects (DSB 2018 definition)."""
    n, m = found.max(), reference.max()
    overlap = np.bincount(
        found.ravel().astype(np.int64) * (m + 1) + reference.ravel(), minlength=(n + 1) * (m + 1)
    ).reshape(n + 1, m + 1)
    union = overlap.sum(1)[:, None] + overlap.sum(0)[None, :] - overlap
    matched = int((overlap[1:, 1:] / union[1:, 1:] > 0.5).sum())
    return matched / (n + m - matched)


def test_nf1_nuclei_match_cellprofiler(real_data):
    """Real Schwann-cell DAPI fields: nuclei not touching the border number within 25 % of
    CellProfiler's mask components, and most outlines agree (AP@IoU0.5 >= 0.6)."""
    folder = real_data / "nf1_plate2"
    dna_paths = sorted((folder / "Plate_2_images").glob("*_01_1_*_DAPI_001.tif"))
    assert len(dna_paths) == 5
    for dna_path in dna_paths:
        reference = ndimage.label(
            tifffile.imread(folder / "Plate_2_masks" / f"{dna_path.stem}_MaskNuclei.tiff") > 0,
            EIGHT,
        )[0]
        nuclei = segment_nuclei(tifffile.imread(dna_path), {"nucleus_diameter": 50.0})
        border = np.unique(np.concatenate([nuclei[0], nuclei[-1], nuclei[:, 0], nuclei[:, -1]]))
        nuclei[np.isin(nuclei, border)] = 0
        nuclei = relabel_sequential(nuclei)[0]
        expected, found = reference.max(), nuclei.max()
        assert abs(found - expected) <= 0.25 * expected, (
            f"{dna_path.name}: {found} nuclei vs CellProfiler's {expected}"
        )
        assert average_precision(nuclei, reference) >= 0.6, dna_path.name
