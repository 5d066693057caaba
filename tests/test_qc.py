"""Image QC: focus and saturation measures move the right way; failing sites are flagged."""

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage
from skimage.filters import threshold_otsu

from debatch.segment.propagate import segment_nuclei
from debatch.segment.qc import (
    COUNT,
    check_negcon,
    failure_concentration,
    fault_warnings,
    flag_sites,
    qc_warnings,
    summary,
)
from debatch.segment.quality import (
    edge_measures,
    image_quality,
    percent_maximal,
    power_log_log_slope,
)
from debatch.segment.score import median_area
from debatch.settings import (
    FOCUS,
    HALF_MAXIMUM_AREA,
    MEAN_INTENSITY,
    QC,
    QC_FAILED,
    QC_PASS,
    SATURATION,
    SHARPNESS,
    SITE_SPECKS,
    STD_INTENSITY,
)


def blobs(seed=0, size=256, n=40):
    """Nucleus-like bright discs on a noisy background (uint16), like a DNA channel."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    image = np.zeros((size, size))
    for y, x in rng.uniform(10, size - 10, (n, 2)):
        image[(yy - y) ** 2 + (xx - x) ** 2 < 36] += 1.0
    image = ndimage.gaussian_filter(image, 0.7) * 20000 + 1000 + rng.normal(0, 100, (size, size))
    return np.clip(image, 0, 65535).astype(np.uint16)


def test_blur_makes_the_focus_slope_steeper():
    sharp = blobs()
    slopes = [
        power_log_log_slope(ndimage.gaussian_filter(sharp.astype(float), sigma) if sigma else sharp)
        for sigma in (0, 1, 2, 3)
    ]
    assert all(later < earlier - 0.1 for earlier, later in zip(slopes, slopes[1:])), slopes
    assert np.isnan(power_log_log_slope(np.full((64, 64), 7, np.uint16)))  # blank: not judged


def full_spectrum_slope(image):
    """CellProfiler's definition, straight: rings of the full complex FFT's power."""
    pixels = np.asarray(image, np.float64)
    height, width = pixels.shape
    top = int(min(height, width) / 8)
    power = np.abs(np.fft.fft2(pixels - pixels.mean())) ** 2
    fy = np.minimum(np.arange(height), height - np.arange(height))[:, None]
    fx = np.minimum(np.arange(width), width - np.arange(width))[None, :]
    radius = np.floor(np.sqrt(fy**2 + fx**2)).astype(int) + 1
    radii = np.arange(2, top)
    rings = np.bincount(radius.ravel(), power.ravel(), minlength=top)[radii]
    return np.polyfit(np.log(radii), np.log(rings), 1)[0]


@pytest.mark.parametrize("shape", [(256, 256), (97, 130), (130, 97), (75, 81)])
def test_focus_slope_from_the_low_half_spectrum_equals_the_full_spectrums(shape):
    image = np.random.default_rng(3).gamma(2.0, 100.0, shape)
    image = ndimage.gaussian_filter(image, 1.5)
    assert power_log_log_slope(image) == pytest.approx(full_spectrum_slope(image), rel=1e-12)


def edge_sharpness(image):
    return edge_measures(image)[0]


def test_edge_sharpness_gradient_is_sobels_at_the_contour_border_included():
    image = blobs(seed=4, size=64, n=12).astype(np.float64)
    image[:8, :10] += 30000  # an object cut by the image's corner: its contour touches the edge
    otsu = threshold_otsu(image)
    high, low = np.median(image[image > otsu]), np.median(image[image <= otsu])
    inside = image > (high + low) / 2
    contour = inside & ~ndimage.binary_erosion(inside, border_value=1)
    sobel = np.hypot(ndimage.sobel(image, 0), ndimage.sobel(image, 1)) / 8
    expected = np.median(sobel[contour]) / (high - low)
    assert edge_sharpness(image) == pytest.approx(expected, rel=1e-12)


def assert_counted_path_equals_the_float_path(image):
    """8- and 16-bit images are counted once and Otsu and the medians read off the counts: the
    same numbers as the float64 path (skimage's Otsu, numpy's medians) gives."""
    assert image.dtype.kind == "u"
    assert edge_measures(image) == edge_measures(image.astype(np.float64))


@pytest.mark.parametrize("size", [64, 65])  # an even and an odd pixel count
def test_edge_measures_of_8_and_16_bit_images_equal_those_of_their_float_pixels(size):
    assert_counted_path_equals_the_float_path(blobs(seed=5, size=size, n=12))
    few_levels = (blobs(seed=6, size=size, n=12) >> 7).astype(np.uint8)  # many ties
    assert_counted_path_equals_the_float_path(few_levels)


def test_edge_measures_of_real_8_and_16_bit_fields_equal_those_of_their_float_pixels(real_data):
    import tifffile

    dna = tifffile.imread(next((real_data / "bbbc022_hoechst").glob("*.tif*")))
    assert_counted_path_equals_the_float_path(dna)
    assert_counted_path_equals_the_float_path((dna >> 4).astype(np.uint8))


def test_edge_sharpness_measures_the_blur_not_the_objects():
    """Discs blurred by sigma: sharpness ~ 1 / (sigma sqrt(2 pi)) whatever their count (within
    5 %), moved less by their size (within 20 % from 4 to 10 px radius) than by doubling the
    blur (-30 % or more); blank images are not judged."""
    yy, xx = np.mgrid[:256, :256]

    def discs(radius, n, sigma, seed=0):
        rng = np.random.default_rng(seed)
        image = np.zeros((256, 256))
        for y, x in rng.uniform(20, 236, (n, 2)):
            image[(yy - y) ** 2 + (xx - x) ** 2 < radius**2] = 1.0
        return ndimage.gaussian_filter(image, sigma) * 10000 + 500

    reference = edge_sharpness(discs(6, 30, 1.5))
    assert reference == pytest.approx(1 / (1.5 * np.sqrt(2 * np.pi)), rel=0.15)
    assert edge_sharpness(discs(6, 60, 1.5)) == pytest.approx(reference, rel=0.05)
    for radius, n in ((10, 15), (4, 30)):
        assert edge_sharpness(discs(radius, n, 1.5)) == pytest.approx(reference, rel=0.2)
    assert edge_sharpness(discs(6, 30, 3.0)) < 0.7 * reference
    assert np.isnan(edge_sharpness(np.full((64, 64), 7.0)))


def test_object_area_at_half_maximum_moves_less_under_blur_than_the_nuclei():
    """The size the focus fit adjusts for: discs of 113 px measure so in focus, and grow less
    (< 15 %) when blurred twice as much than the segmented nuclei, whose low threshold's
    outline moves out with the blur (> 20 %): a blurred site must not pass for big nuclei."""
    yy, xx = np.mgrid[:256, :256]
    image = np.zeros((256, 256))
    for y, x in np.random.default_rng(0).uniform(20, 236, (20, 2)):
        image[(yy - y) ** 2 + (xx - x) ** 2 < 36] = 1.0
    noise = np.random.default_rng(1).normal(0, 50, image.shape)
    half, nuclei = [], []
    for sigma in (1.0, 2.0):
        blurred = ndimage.gaussian_filter(image, sigma) * 1e4 + 500 + noise
        half.append(edge_measures(blurred)[1])
        nuclei.append(median_area(segment_nuclei(blurred, {"nucleus_diameter": 12.0})))
    assert half[0] == pytest.approx(113, rel=0.05)
    assert half[1] / half[0] < 1.15 and nuclei[1] / nuclei[0] > 1.2, (half, nuclei)


def test_focus_qc_catches_defocus_but_not_phenotypes():
    """Demo sites of treatments that change nucleus size or density, some defocused by 2 px:
    the default focus test fails no in-focus site and catches most defocused ones."""
    from debatch.validate.focus_qc import focus_rates, focus_table

    params = {"seed": 0, "image_size": 256}
    table = focus_table(params, ["batch1", "batch2"], 4, 0.25, {"nucleus_diameter": 12.0})
    rates = focus_rates(flag_sites(table, "DNA"))
    assert rates["false fails"].sum() == 0, rates
    assert rates["caught"].sum() >= 0.75 * rates["defocused"].sum(), rates


def test_failures_concentrated_in_one_treatment_are_named():
    """A treatment holding most failed sites, failing far more often than the rest, gets a
    warning naming it; failures spread evenly get none."""
    flagged = pd.DataFrame(
        {
            "Metadata_Treatment": ["DMSO"] * 20 + ["cpd01"] * 6 + ["cpd02"] * 6,
            "QC_Pass": [True] * 19 + [False] + [False] * 4 + [True] * 2 + [True] * 6,
        }
    )
    (warning,) = failure_concentration(flagged)
    assert "4 of the 6 sites of treatment cpd01" in warning and "phenotype" in warning
    even = flagged.assign(QC_Pass=[i % 4 != 0 for i in range(len(flagged))])
    assert failure_concentration(even) == []
    assert failure_concentration(flagged, {"concentration_share": None}) == []


def test_percent_maximal_counts_pixels_at_the_maximum():
    image = blobs()
    assert percent_maximal(image) < 0.01
    image[:32, :64] = 65535  # 2048 of 65536 pixels clipped at the detector maximum
    assert percent_maximal(image) == pytest.approx(100 * 2048 / 65536)
    assert percent_maximal(np.zeros((8, 8), np.uint16)) == 0.0
    measures = image_quality({"DNA": image, "AGP": blobs(1)}, "DNA")
    assert set(measures) == {f"{SHARPNESS}_DNA", f"{HALF_MAXIMUM_AREA}_DNA"} | {
        f"{kind}_{channel}"
        for kind in (FOCUS, SATURATION, MEAN_INTENSITY, STD_INTENSITY)
        for channel in ("DNA", "AGP")
    }
    assert measures[f"{MEAN_INTENSITY}_DNA"] == pytest.approx(image.mean())
    assert measures[f"{HALF_MAXIMUM_AREA}_DNA"] == edge_measures(image)[1]


def eight_bit(image: np.ndarray, top: float) -> np.ndarray:
    """A 16-bit site exported to 8 bit as RxRx1's are: scaled so ``top`` is 255, clipped."""
    return np.clip(np.round(image.astype(float) * 255 / top), 0, 255).astype(np.uint8)


def test_percent_maximal_of_8_bit_counts_pixels_at_255_only():
    dim = np.ones((64, 64), np.uint8)  # a dim channel: its cells' pixels share one level, 5
    dim[8:24, 8:40] = 5
    assert percent_maximal(dim) == 0.0
    assert percent_maximal(dim.astype(np.uint16)) == 12.5  # 16 bit: at the image's maximum
    clipped = eight_bit(blobs(), 12000)  # bright nuclei clipped at 255
    assert percent_maximal(clipped) == pytest.approx(100 * np.mean(clipped == 255))
    assert percent_maximal(clipped) > QC.defaults["max_saturated_percent"]


def test_a_plate_of_8_bit_sites_passes_saturation_and_scale():
    rows = []
    for seed in range(12):
        dim = np.where(blobs(seed + 50) > 10000, 5, 1).astype(np.uint8)  # cells at one level
        raw = {"DNA": eight_bit(blobs(seed), 40000), "AGP": dim}
        rows.append(
            {"Metadata_Plate": "P1", COUNT: 40, **image_quality(raw, "DNA")}
            | {"Metadata_Well": f"A{seed + 1:02d}", "Metadata_Site": 1}
        )
    flagged = flag_sites(pd.DataFrame(rows), "DNA")
    assert flagged[QC_PASS].all(), flagged[QC_FAILED].tolist()


def sites_table():
    """Two plates of 10 sites with different typical focus; one bad site of each kind on P1."""
    rng = np.random.default_rng(3)
    rows = []
    for plate, centre in (("P1", 0.35), ("P2", 0.25)):
        for site in range(10):
            rows.append(
                {
                    "Metadata_Plate": plate,
                    "Metadata_Well": f"A{site + 1:02d}",
                    "Metadata_Site": 1,
                    f"{SHARPNESS}_DNA": centre * np.exp(rng.normal(0, 0.02)),
                    f"{SATURATION}_DNA": 0.01,
                    f"{SATURATION}_AGP": 0.02,
                    COUNT: 30,
                }
            )
    table = pd.DataFrame(rows)
    table.loc[1, f"{SHARPNESS}_DNA"] = 0.25  # blurred (P2's typical value, but P1's outlier)
    table.loc[2, f"{SATURATION}_AGP"] = 4.0  # saturated cell channel
    table.loc[3, COUNT] = 0  # empty field
    return table


def test_failing_sites_are_flagged_with_their_reasons():
    flagged = flag_sites(sites_table(), "DNA")
    assert flagged.loc[~flagged["QC_Pass"]].index.tolist() == [1, 2, 3]
    assert flagged.loc[[1, 2, 3], "QC_Failed"].tolist() == ["focus", "saturation", "cell count"]
    assert (flagged.loc[flagged["QC_Pass"], "QC_Failed"] == "").all()
    line = summary(flagged)
    assert "3 of 20 sites failed" in line and "focus: 1 site;" in line and "60 of 570 cells" in line


def test_constant_and_rescaled_channels_fail_their_site_naming_the_channel():
    """A blank channel, and a site exported at 8 bit into 16-bit files (values >> 8): each
    fails with the channel named; the other sites of the plate pass."""
    table = sites_table()
    table[f"{MEAN_INTENSITY}_DNA"], table[f"{STD_INTENSITY}_DNA"] = 1000.0, 200.0
    table[f"{MEAN_INTENSITY}_AGP"], table[f"{STD_INTENSITY}_AGP"] = 800.0, 100.0
    table.loc[5, [f"{MEAN_INTENSITY}_AGP", f"{STD_INTENSITY}_AGP"]] = [0.0, 0.0]  # blank
    eight_bit = [f"{MEAN_INTENSITY}_DNA", f"{MEAN_INTENSITY}_AGP"]  # an 8-bit export
    table.loc[6, eight_bit] = [1000 / 256, 800 / 256]
    flagged = flag_sites(table, "DNA")
    assert flagged.loc[5, "QC_Failed"] == "constant AGP"
    assert flagged.loc[6, "QC_Failed"] == "scale DNA x0.00391;scale AGP x0.00391"
    assert flagged.loc[~flagged["QC_Pass"]].index.tolist() == [1, 2, 3, 5, 6]
    line = summary(flagged)
    assert "constant (AGP): 1 site;" in line and "scale (AGP, DNA): 1 site)" in line, line
    assert flag_sites(table, "DNA", {"max_scale_ratio": None}).loc[6, "QC_Pass"]
    faults = fault_warnings(flagged)
    assert faults == [
        "plate P1: 1 site(s) failed QC for a blank (constant) channel: well A06 site 1 "
        "(constant AGP); their cells are not analysed",
        "plate P1: 1 site(s) failed QC for a channel on another intensity scale than the "
        "plate's (256x dimmer than the plate's median: 8-bit data in 16-bit files?): "
        "well A07 site 1 (scale DNA x0.00391, scale AGP x0.00391); their cells are not analysed",
    ]
    assert qc_warnings(flagged) == faults  # no treatment column: no concentration warning


def test_qc_warnings_take_plates_tables_concatenated():
    """The report concatenates every plate's qc table (row labels repeat): same warnings."""
    table = sites_table()
    table[f"{MEAN_INTENSITY}_DNA"], table[f"{STD_INTENSITY}_DNA"] = 1000.0, 200.0
    table.loc[6, f"{MEAN_INTENSITY}_DNA"] = 1000 / 256
    flagged = flag_sites(table, "DNA")
    plates = [flagged[flagged["Metadata_Plate"] == p].reset_index(drop=True) for p in ("P1", "P2")]
    assert qc_warnings(pd.concat(plates)) == qc_warnings(flagged) != []


def test_a_scale_fault_is_worded_from_its_ratio_and_direction():
    """Only ~256x dimmer reads as 8-bit data in 16-bit files: a channel 20x brighter (another
    exposure) or 256x brighter (the 16-bit site on an 8-bit plate) says so."""
    for factor, meaning in (
        (20.0, "(20x brighter than the plate's median: another exposure, gain or bit depth)"),
        (256.0, "(256x brighter than the plate's median: 16-bit data beside a plate of 8-bit"),
        (1 / 40, "(40x dimmer than the plate's median: another exposure, gain or bit depth)"),
    ):
        table = sites_table()
        table[f"{MEAN_INTENSITY}_DNA"], table[f"{STD_INTENSITY}_DNA"] = 1000.0, 200.0
        table.loc[6, f"{MEAN_INTENSITY}_DNA"] *= factor
        (warning,) = fault_warnings(flag_sites(table, "DNA"))
        assert meaning in warning and "8-bit data in 16-bit files" not in warning, warning


def test_a_site_of_mostly_specks_fails_and_is_named():
    """Segmentation left specks out of the cells; a site made mostly of them fails QC with the
    counts, and the report's QC warnings name it. A few specks beside real cells do not, nor
    one on an empty field."""
    table = sites_table()
    table[SITE_SPECKS] = 1
    table.loc[4, [SITE_SPECKS, COUNT]] = [6, 0]
    table.loc[5, [SITE_SPECKS, COUNT]] = [4, 5]
    flagged = flag_sites(table, "DNA")
    assert flagged.loc[4, "QC_Failed"] == "cell count;specks 6 of 6 objects"
    assert flagged.loc[5, "QC_Pass"] and not flagged.loc[4, "QC_Pass"]
    assert flagged.loc[3, "QC_Failed"] == "cell count"
    assert "specks: 1 site" in summary(flagged)
    (warning,) = [w for w in qc_warnings(flagged) if "specks" in w]
    assert warning.startswith("plate P1: 1 site(s) failed QC for mostly specks") and (
        "well A05 site 1 (specks 6 of 6 objects)" in warning
    )
    assert flag_sites(table, "DNA", {"max_speck_share": None}).loc[4, "QC_Failed"] == "cell count"


def test_thresholds_come_from_the_parameters():
    table = sites_table()
    relaxed = flag_sites(
        table, "DNA", {"focus_mad": None, "max_saturated_percent": None, "min_cells": 0}
    )
    assert relaxed["QC_Pass"].all()
    strict = flag_sites(table, "DNA", {"min_focus": 0.3, "max_cells": 29, "focus_mad": None})
    assert not strict["QC_Pass"].any()  # P2 is below 0.3; everyone else has 30 > 29 cells


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match=r"unknown qc parameter\(s\) \['focus'\]"):
        QC.merge({"focus": 3})
    with pytest.raises(ValueError, match="qc.min_focus must be a number"):
        QC.merge({"min_focus": "low"})
    with pytest.raises(ValueError, match="no ImageQuality_EdgeSharpness_Hoechst"):
        flag_sites(sites_table(), "Hoechst")


def test_overlays_show_failed_sites_first_then_the_range_of_cell_counts(tmp_path):
    from debatch.segment.qc_figures import overlay_sites, plot_heatmaps

    flagged = flag_sites(sites_table(), "DNA")
    flagged[COUNT] = range(len(flagged))
    chosen = overlay_sites(flagged, 5)
    picked = chosen.index.tolist()  # failed sites, worst focus first; then fewest and most cells
    assert picked[0] == 1 and set(picked[:3]) == {1, 2, 3} and picked[3:] == [0, 19]
    assert len(overlay_sites(flagged, 2)) == 2 and len(overlay_sites(flagged, 0)) == 0
    plot_heatmaps(flagged[flagged["Metadata_Plate"] == "P1"], "DNA", "plate P1", tmp_path / "h.png")
    assert (tmp_path / "h.png").stat().st_size > 5000


def test_a_plate_whose_negcon_wells_lose_every_cell_is_caught_at_qc():
    table = sites_table()
    table["Metadata_Role"] = ["negcon" if i in (3, 4) else "treatment" for i in range(len(table))]
    table.loc[table["Metadata_Plate"] == "P2", "Metadata_Role"] = "negcon"
    table.loc[4, f"{SATURATION}_AGP"] = 5.0  # the other negcon site of P1 saturates
    flagged = flag_sites(table, "DNA")
    assert check_negcon(flagged[flagged["Metadata_Plate"] == "P2"], "P2") is None
    with pytest.raises(ValueError) as error:
        check_negcon(flagged[flagged["Metadata_Plate"] == "P1"], "P1")
    assert str(error.value).startswith(
        "plate P1: QC left no cell in its negcon wells ['A04', 'A05'] (cell count 1, saturation 1)"
    )
    assert "qc.plate_without_negcon: drop" in str(error.value)
    warning = check_negcon(
        flagged[flagged["Metadata_Plate"] == "P1"], "P1", {"plate_without_negcon": "drop"}
    )
    assert warning.endswith("left out of the profiles (qc.plate_without_negcon: drop)")


def test_focus_adjusted_for_nucleus_size_fails_only_the_blurred_site():
    """Focus falls with log nucleus area (a bigger nucleus has softer edges): the plain median
    fails the big-nucleus sites, the adjusted test fails only the one truly blurred site; a
    site without cells is not judged on focus."""
    from debatch.segment.qc import FOCUS_DEVIATION

    rng = np.random.default_rng(0)
    area = 100 * np.exp(rng.normal(0, 0.1, 40))
    area[32:] *= 3  # a treatment that triples nucleus area, on 8 of the 40 sites
    sharpness = 0.5 * area**-0.25 * np.exp(rng.normal(0, 0.005, 40))
    sharpness[7] *= 0.7  # the defocused site
    table = pd.DataFrame(
        {
            "Metadata_Plate": "P1",
            f"{SHARPNESS}_DNA": sharpness,
            f"{HALF_MAXIMUM_AREA}_DNA": area,
            COUNT: 30,
        }
    )
    table.loc[3, COUNT] = 0
    plain = flag_sites(table, "DNA", {"focus_adjust": False, "min_cells": 0})
    adjusted = flag_sites(table, "DNA", {"min_cells": 0})
    assert plain.loc[32:, "QC_Failed"].str.contains("focus").all()
    assert adjusted.index[adjusted["QC_Failed"] == "focus"].tolist() == [7]
    assert np.isnan(adjusted.loc[3, FOCUS_DEVIATION]) and adjusted.loc[3, "QC_Pass"]


def test_concentration_is_counted_per_site_across_plates():
    """Plates' QC tables concatenated (their row labels repeat) count each site once."""
    plates = []
    for plate in ("P1", "P2"):
        plates.append(
            pd.DataFrame(
                {
                    "Metadata_Plate": plate,
                    "Metadata_Treatment": ["DMSO"] * 10 + ["cpd01"] * 3,
                    "QC_Pass": [True] * 10 + [False, False, True],
                }
            )
        )
    (warning,) = failure_concentration(pd.concat(plates))
    assert "4 of the 6 sites of treatment cpd01" in warning and "other sites fail 0%" in warning
