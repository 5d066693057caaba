"""The features stage: CellProfiler's numbers on CellProfiler's own objects, the shared-work
modules equal to cp_measure's, names as CellProfiler's, and bad objects giving NaN, not errors."""

import itertools
import warnings

import numpy as np
import pandas as pd
import pytest
import tifffile
from cp_measure.core import measureobjectintensitydistribution as distribution
from cp_measure.core.measuregranularity import get_granularity
from cp_measure.core.measureobjectsizeshape import get_sizeshape, get_zernike
from cp_measure.core.numba import measureobjectintensity, measuretexture
from cp_measure.primitives._segment_numba import segment_quantiles
from scipy import stats
from skimage.morphology import disk
from skimage.morphology import reconstruction as skimage_reconstruction
from skimage.segmentation import relabel_sequential

from debatch.features import intensity, shape, texture
from debatch.features.colocalization import costes_thresholds
from debatch.features.granularity import (
    ObjectMeans,
    granular_spectrum,
    object_granularity,
    reconstruction,
)
from debatch.features.objects import cytoplasm, object_sets
from debatch.features.radial import RadialGeometry, ZernikeBasis, sector_cv, to_edges
from debatch.features.site import feature_names, measure_site, site_images
from debatch.settings import FEATURES
from debatch.validate.cellprofiler import (
    compare_objects,
    fill_outlines,
    label_mask,
    subtract_background,
)

NF1_CHANNELS = ("DAPI", "GFP", "RFP")


def nf1_field(folder, well):
    """One NF1 field as CellProfiler measured it: background-subtracted images, nuclei."""
    images = {
        channel: subtract_background(
            tifffile.imread(
                next((folder / "Plate_2_images").glob(f"{well}_01_*_{channel}_001.tif"))
            )
        )
        for channel in NF1_CHANNELS
    }
    nuclei = label_mask(
        tifffile.imread(next((folder / "Plate_2_masks").glob(f"{well}_*Nuclei.tiff")))
    )
    return images, nuclei


@pytest.fixture
def nf1(real_data):
    folder = real_data / "nf1_plate2"
    table = pd.read_parquet(folder / "Plate_2_with_image_data_shrunken.parquet")
    return folder, table


def test_nf1_measurements_match_cellprofiler(nf1):
    """CellProfiler's 2,070 measurements of five NF1 cells: where the saved mask holds exactly
    CellProfiler's object (the D7 nucleus; the others' components differ by a few pixels, and
    every cell's mask component merges touching neighbours) every module agrees within 1 % or
    1e-6 of CellProfiler, Costes and RWC included (whole-image thresholds, ranks over all
    objects), on images background-subtracted like the NF1 pipeline's."""
    folder, table = nf1
    compared, skipped = [], {}
    for _, row in table.iterrows():
        well = row["Image_Metadata_Well_x"]
        images, nuclei = nf1_field(folder, well)
        cells = label_mask(
            tifffile.imread(next((folder / "Plate_2_masks").glob(f"{well}_*Cells.tiff")))
        )
        agreement, why = compare_objects({"Nuclei": nuclei, "Cells": cells}, images, row)
        compared.append(agreement)
        skipped |= {f"{well} {name}": reason for name, reason in why.items()}
    agreement = pd.concat(compared)
    assert set(skipped) == {
        f"{w} {o}" for w in ("B7", "H12", "F7", "D6") for o in ("Nuclei", "Cells")
    } | {"D7 Cells"}
    by_module = agreement.groupby("module")["agrees"].agg(["mean", "size"])
    assert set(by_module.index) == {
        "AreaShape",
        "Intensity",
        "Correlation",
        "Texture",
        "Granularity",
        "RadialDistribution",
        "Location",
    }
    assert by_module["size"].sum() == 568  # every Nuclei_ column CellProfiler has, but Neighbors
    assert (by_module["mean"] == 1.0).all(), agreement[~agreement["agrees"]]


def test_atlas_shapes_match_cellprofiler_at_full_size(real_data):
    """The 1080 px Phenix field: objects filled from CellProfiler's outlines, Cytoplasm made by
    our IdentifyTertiaryObjects, and every AreaShape feature CellProfiler wrote agrees on each
    object whose fill is exactly CellProfiler's (area and bounding box)."""
    folder = real_data / "atlas_BR00143976"
    table = pd.read_parquet(folder / "BR00143976_shrunken.parquet")
    nuclei = fill_outlines(
        tifffile.imread(folder / "outlines/NucleiOutlines_BR00143976_C03_3.tiff")[..., 1]
    )
    cells = fill_outlines(
        tifffile.imread(folder / "outlines/CellsOutlines_BR00143976_C03_3.tiff")[..., 1]
    )
    images = {"DNA": tifffile.imread(folder / "images/r03c03f03p01-ch5sk1fk1fl1.tiff") / 65535}
    objects = {"Nuclei": nuclei, "Cells": cells, "Cytoplasm": cytoplasm(cells, nuclei)}
    compared, skipped = [], {}
    for _, row in table.iterrows():
        agreement, why = compare_objects(
            objects, images, row, {"measurements": ["areashape"]}, ("AreaShape",)
        )
        compared.append(agreement)
        skipped |= {f"{row['Metadata_Cells_Number_Object_Number']} {k}": v for k, v in why.items()}
    agreement = pd.concat(compared)
    # two touching nuclei share outline pixels, one cell's fill is a pixel off CellProfiler's
    assert len(skipped) <= 4, skipped
    assert len(agreement) >= 11 * 55 and agreement["agrees"].all(), agreement[~agreement["agrees"]]


def test_features_are_named_as_cellprofiler_names_them(nf1):
    """Every per-object measurement CellProfiler wrote for NF1 (but Location_Center, Neighbors,
    parents and children, made by other modules) is a column of ours, named the same."""
    _, table = nf1
    ours = set(feature_names(NF1_CHANNELS))
    theirs = {
        c
        for c in table.columns
        if c.split("_")[0] in ("Nuclei", "Cells", "Cytoplasm")
        and not any(
            k in c for k in ("Location_Center_", "Neighbors", "Children", "Parent", "Number_Object")
        )
    }
    assert theirs - ours == set()
    assert len(ours) == len(theirs)  # nothing extra either (advanced shape moments are off)


def demo_field():
    """A field of nine cells (discs) with three channels of structured intensity."""
    yy, xx = np.mgrid[:120, :150]
    nuclei = np.zeros((120, 150), np.int32)
    cells = np.zeros((120, 150), np.int32)
    rng = np.random.default_rng(1)
    for label, (cy, cx) in enumerate([(r, c) for r in (20, 60, 100) for c in (25, 75, 125)], 1):
        d = np.hypot(yy - cy, xx - cx)
        cells[d < 18] = label
        nuclei[d < 7 + label % 3] = label
    base = rng.random((120, 150))
    images = {
        "DNA": 0.2 + 0.6 * (nuclei > 0) * base,
        "ER": 0.1 + 0.3 * (cells > 0) * rng.random((120, 150)),
        "Mito": np.clip(0.5 - 0.4 * (nuclei > 0) * base, 0, 1),  # anti-correlated with DNA
    }
    return nuclei, cells, images


def test_granularity_spectrum_shared_across_objects_equals_cp_measure():
    nuclei, cells, images = demo_field()
    features = FEATURES.merge({})
    spectrum = granular_spectrum(images["ER"], features)
    for labels in object_sets(nuclei, cells).values():
        ours = object_granularity(spectrum, labels, ObjectMeans(labels, spectrum.small_shape), 16)
        theirs = get_granularity(labels, images["ER"])
        for key, values in theirs.items():
            np.testing.assert_allclose(ours[key], values, rtol=1e-9, atol=1e-12)


def test_intensity_quartiles_by_selection_equal_cp_measures_sorted_ones():
    """Every intensity feature equals cp_measure's bit for bit, in both quartile conventions:
    on the demo's objects (its channels, a blank and a saturated one) and on small random
    fields with ties, NaN pixels, one-pixel objects and no objects at all."""
    nuclei, cells, images = demo_field()
    cases = [
        (labels, image)
        for labels in object_sets(nuclei, cells).values()
        for image in [*images.values(), np.zeros(cells.shape), np.ones(cells.shape)]
        + [images["DNA"].astype(np.float32)]  # the segment stage's images are float32
    ]
    rng = np.random.default_rng(0)
    for i in range(200):
        shape = rng.integers(1, 16, 2)
        labels = rng.integers(0, rng.integers(1, 6), shape)
        labels = np.unique(labels, return_inverse=True)[1].reshape(shape).astype(np.int32)  # 1..N
        image = rng.integers(0, 4, shape) / 4 if i % 2 else rng.random(shape)
        image[rng.random(shape) < (0.2 if i % 5 == 0 else 0)] = np.nan
        cases.append((labels, image))
    for labels, image in cases:
        for legacy in (True, False):
            theirs = measureobjectintensity.get_intensity(labels, image, legacy=legacy)
            ours = intensity.get_intensity(labels, image, legacy=legacy)
            assert list(ours) == list(theirs)
            for key, values in theirs.items():
                np.testing.assert_array_equal(ours[key], values, err_msg=key)


def test_intensity_selection_reads_the_sorted_order_statistics_of_every_small_object():
    """Every object of up to 7 pixels of 3 levels, in every order: quartiles, median and MAD
    by selection equal cp_measure's, read from its sorted pixels."""
    for size in range(1, 8):
        pixels = np.array(list(itertools.product([0.0, 1.0, 2.0], repeat=size)))
        values = pixels.ravel()
        segment = np.repeat(np.arange(len(pixels)), size)
        counts = np.full(len(pixels), size)
        for legacy in (True, False):
            theirs = segment_quantiles(values, segment, counts, len(pixels), 0.5, legacy)
            ours = intensity._segment_quantiles(values, segment, counts, legacy)
            for mine, cp in zip(ours, theirs):
                np.testing.assert_array_equal(mine, cp)


def test_sizeshape_in_one_pass_equals_cp_measures_regionprops():
    """Every AreaShape feature equals cp_measure's bit for bit, with the radii read from the
    radial distribution's distances or computed alone: on the demo's objects (one cut by the
    image's edge) and on small random fields whose objects are broken in pieces, hold holes,
    are one pixel or one line wide; and on larger ones: scattered pixels (many pixel centres on
    hull edges), a tiling touching every edge, a large disc, one-row and one-column images."""
    nuclei, cells, _ = demo_field()
    cells[100:, 140:] = 10  # an object at the image's edge
    cases = [labels for labels in object_sets(nuclei, cells).values()]
    rng = np.random.default_rng(0)
    scattered = rng.integers(1, 4, (200, 200)) * (rng.random((200, 200)) < 0.01)
    yy, xx = np.mgrid[:320, :320]
    disc = ((yy - 160) ** 2 + (xx - 150) ** 2 < 150**2).astype(np.int32)
    seeds = rng.integers(0, 120, (6, 2))
    tiling = 1 + np.argmin(
        [(yy[:120, :120] - r) ** 2 + (xx[:120, :120] - c) ** 2 for r, c in seeds], axis=0
    ).astype(np.int32)
    line = relabel_sequential(rng.integers(0, 3, (1, 40)))[0].astype(np.int32)
    cases += [relabel_sequential(scattered)[0].astype(np.int32), disc, tiling, line, line.T]
    for _ in range(300):
        size = rng.integers(1, 14, 2)
        labels = rng.integers(0, rng.integers(2, 5), size) * (rng.random(size) < rng.random())
        labels = np.unique(labels, return_inverse=True)[1].reshape(size).astype(np.int32)
        if labels.max() > 0:  # 1..N (cp_measure's contract)
            cases.append(labels)
    for labels in cases:
        theirs = get_sizeshape(labels, None, calculate_advanced=False, new_features=False)
        for ours in (shape.get_sizeshape(labels), shape.get_sizeshape(labels, to_edges(labels))):
            assert sorted(ours) == sorted(theirs)
            for key, values in theirs.items():
                np.testing.assert_array_equal(ours[key], values, err_msg=key)


def test_texture_on_crops_cut_in_one_loop_equals_cp_measures():
    """Every Haralick feature equals cp_measure's numba get_texture bit for bit: on the demo's
    objects (its channels, a flat one) and on small random fields (one-pixel objects, whose
    features are NaN, objects in pieces, uint16 labels; float32, negative and NaN pixels), at
    scales up to larger than every object and two to 256 grey levels."""
    nuclei, cells, images = demo_field()
    cases = [
        (labels, image)
        for labels in object_sets(nuclei, cells).values()
        for image in [*images.values(), np.full(cells.shape, 0.5)]
    ]
    rng = np.random.default_rng(0)
    for i in range(100):
        size = rng.integers(1, 14, 2)
        labels = rng.integers(0, rng.integers(2, 5), size) * (rng.random(size) < rng.random())
        labels = np.unique(labels, return_inverse=True)[1].reshape(size)
        image = rng.uniform(-0.2 if i % 3 == 0 else 0, 1, size)
        image[rng.random(size) < (0.1 if i % 4 == 0 else 0)] = np.nan
        if labels.max() > 0:
            dtype = np.uint16 if i % 2 else np.int32
            cases.append((labels.astype(dtype), image.astype(np.float32 if i % 5 else float)))
    with warnings.catch_warnings():  # NaN pixels cast to 8 bits warn, in both
        warnings.simplefilter("ignore", RuntimeWarning)
        for labels, image in cases:
            for scale, levels in ((3, 256), (1, 8), (2, 2), (1, 255), (20, 256)):
                theirs = measuretexture.get_texture(labels, image, scale, levels)
                quantised = texture.grey_levels(image, levels)
                ours = texture.get_texture(labels, quantised, scale, levels)
                assert list(ours) == list(theirs)
                for key, values in theirs.items():
                    np.testing.assert_array_equal(ours[key], values, err_msg=key)


def test_reconstruction_equals_scikit_image():
    rng = np.random.default_rng(0)
    for _ in range(5):
        mask = rng.random((40, 50))
        marker = mask * rng.random((40, 50)) * (rng.random((40, 50)) < 0.05)
        np.testing.assert_array_equal(
            reconstruction(marker, mask), skimage_reconstruction(marker, mask, footprint=disk(1))
        )


def test_radial_geometry_shared_across_channels_equals_cp_measure():
    """Rings, sectors and Zernike moments made once per object set (the shape's moments in the
    same pass) equal cp_measure's per-channel functions and its shape Zernikes."""
    nuclei, cells, images = demo_field()
    cells[100:, 140:] = 10  # an object at the image's edge (the edge is no edge of it)
    texture = np.random.default_rng(2).uniform(0.5, 1.0, cells.shape)  # no moment is ~0
    images = {channel: image * texture for channel, image in images.items()}
    for labels in object_sets(nuclei, cells).values():
        geometry, basis = RadialGeometry(labels, 4), ZernikeBasis(labels, 9)
        shape, moments = basis.measure(images)
        for key, values in get_zernike(labels, None, 9).items():
            np.testing.assert_allclose(shape[key], values, rtol=1e-9, atol=1e-12)
        for channel, image in images.items():
            ours = geometry.measure(image)
            for key, values in distribution.get_radial_distribution(labels, image).items():
                np.testing.assert_array_equal(ours[key], values)
            for key, values in distribution.get_radial_zernikes(labels, image).items():
                np.testing.assert_allclose(moments[channel][key], values, rtol=1e-9, atol=1e-12)


def test_sector_cv_is_numpy_mas_std_over_mean_bit_for_bit():
    """RadialCV without numpy.ma equals CellProfiler's masked-array std / mean bit for bit:
    empty sectors, objects without any pixel in the ring, rings of zero intensity, and the
    quotients numpy.ma masks (a sum past float's range, NaN, inf, negative values)."""
    rng = np.random.default_rng(0)
    specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e308, -1e308, 5e-324, -1.0])
    for trial in range(400):
        counts = rng.integers(0, 6, (20, 8)) * (rng.random((20, 8)) < rng.random())
        totals = rng.random((20, 8)) * counts * 10.0 ** rng.integers(-30, 3)
        totals[rng.random((20, 8)) < trial % 3 * 0.3] = 0.0
        if trial % 4 == 3:
            odd = rng.random((20, 8)) < 0.2
            totals[odd] = rng.choice(specials, odd.sum())
        with np.errstate(all="ignore"):
            means = np.ma.MaskedArray(totals / counts, counts == 0)
            expected = np.std(means, 1) / np.mean(means, 1)
        expected[(counts > 0).sum(1) == 0] = 0
        assert sector_cv(totals, counts).tobytes() == np.asarray(expected, float).tobytes()


def cellprofiler_bisection(first, second, scale):
    """CellProfiler's MeasureColocalization.bisection_costes, written out plainly (a Pearson
    correlation of the below-threshold pixels per candidate) to check the fast search against."""
    nonzero = (first > 0) | (second > 0)
    x, y = first[nonzero], second[nonzero]
    xvar, yvar = np.var(x, ddof=1), np.var(y, ddof=1)
    covar = 0.5 * (np.var(x + y, ddof=1) - (xvar + yvar))
    a = ((yvar - xvar) + np.sqrt((yvar - xvar) ** 2 + 4 * covar**2)) / (2 * covar)
    b = np.mean(y) - a * np.mean(x)
    left, right, valid, last = 1, scale, 1, 0
    mid = ((right - left) // (6 / 5)) + left
    while last != mid:
        kept = (first < mid / scale) | (second < a * (mid / scale) + b)
        if np.count_nonzero(kept) <= 2:
            left = mid - 1
        else:
            r = stats.pearsonr(first[kept], second[kept])[0]
            if r < 0:
                left = mid - 1
            elif r >= 0:
                right, valid = mid + 1, mid
        last = mid
        mid = ((right - left) // (6 / 5 if right - left > 6 else 2)) + left
    return (valid - 1) / scale, a * (valid - 1) / scale + b


@pytest.mark.parametrize("pair", [("DNA", "ER"), ("DNA", "Mito"), ("ER", "Mito")])
def test_costes_thresholds_equal_cellprofilers_search(pair):
    _, _, images = demo_field()
    first, second = (np.round(images[c] * 65535) / 65535 for c in pair)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = cellprofiler_bisection(first.ravel(), second.ravel(), 65535)
    assert costes_thresholds(first, second, 65535) == pytest.approx(expected, rel=1e-12)


def test_bad_objects_give_nan_not_errors():
    """An object with no pixels, a cell whose nucleus was dropped, a one-pixel object, a
    constant channel and a site without cells: NaN (or no rows), never a crash."""
    nuclei, cells, images = demo_field()
    cells[cells == 2] = 0
    nuclei[nuclei == 2] = 0  # cell 2: no pixels at all
    nuclei[nuclei == 3] = 0  # cell 3: its nucleus was dropped
    cells[cells == 4] = 0
    nuclei[nuclei == 4] = 0
    cells[60, 75] = nuclei[60, 75] = 4  # cell 4: one pixel
    images["ER"] = np.full(cells.shape, 0.25)  # a constant channel
    table = measure_site(nuclei, cells, images)
    assert len(table) == 9 and table.shape[1] == len(feature_names(images))
    assert table.loc[1].isna().all()
    assert table.loc[2].filter(like="Nuclei_").isna().all()
    assert table.loc[2].filter(like="Cytoplasm_AreaShape_Area").iloc[0] == (cells == 3).sum()
    assert np.isnan(table.loc[3, "Cells_Texture_Contrast_DNA_3_00_256"])
    assert table.filter(like="Correlation_Correlation_DNA_ER").isna().all().all()
    assert table.loc[0].filter(like="_DNA").notna().mean() > 0.9
    empty = measure_site(np.zeros((64, 64), np.int32), np.zeros((64, 64), np.int32), images)
    assert empty.empty


def test_site_images_are_on_cellprofilers_scale():
    raw = {"DNA": np.array([[0, 32768, 65535]], np.uint16)}
    image = site_images(raw, {"DNA": np.array([[1.0, 0.5, 2.0]], np.float32)})["DNA"]
    np.testing.assert_allclose(image, [[0.0, 1.0, 0.5]], atol=1e-4)  # clipped at 1


def test_nf1_background_subtraction_is_the_pipelines(nf1):
    """The NF1 pipeline subtracted a fitted background before measuring: reproduced, the
    whole-image intensities CellProfiler wrote agree within 1e-6 (the raw images sit higher)."""
    folder, table = nf1
    for _, row in table.iterrows():
        images, _ = nf1_field(folder, row["Image_Metadata_Well_x"])
        for channel, image in images.items():
            for feature, value in (
                ("MeanIntensity", image.mean()),
                ("MedianIntensity", np.median(image)),
                ("StdIntensity", image.std()),
                ("MaxIntensity", image.max()),
                ("LowerQuartileIntensity", np.percentile(image, 25)),
            ):
                assert value == pytest.approx(row[f"Image_Intensity_{feature}_{channel}"], abs=1e-6)
