"""Illumination correction: recovers a known vignetting field and flattens real images."""

import numpy as np
import pandas as pd
import pytest
import tifffile

from debatch.illum.estimate import _upsample, compute_plate_illum, illumination_function
from debatch.settings import ILLUM


def vignetting(shape, amplitude=0.5):
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    r2 = ((yy - shape[0] / 2) ** 2 + (xx - shape[1] / 2) ** 2) / (max(shape) / 2) ** 2
    return 1 - amplitude * r2


def test_recovers_known_field_from_noisy_sites(tmp_path):
    rng = np.random.default_rng(0)
    field = vignetting((64, 80))
    rows = []
    for i in range(30):
        cells = rng.gamma(2.0, 500.0, size=field.shape)  # speckle standing in for cells
        path = tmp_path / f"s{i}.tif"
        tifffile.imwrite(path, (cells * field + 100).astype(np.uint16))
        rows.append({"Path_DNA": str(path)})
    function = compute_plate_illum(pd.DataFrame(rows), ["DNA"], {"smoothing": 0.1}, threads=2)[
        "DNA"
    ]
    assert function.dtype == np.float32 and function.shape == field.shape
    assert function.mean() == pytest.approx(1.0, abs=1e-4)
    expected = field / field.mean()
    assert np.corrcoef(function.ravel(), expected.ravel())[0, 1] > 0.95
    assert function[32, 40] > 1.2 * function[2, 2]  # brighter centre than corner


def test_floor_prevents_division_by_near_zero():
    mean_image = np.ones((40, 40))
    mean_image[:10, :10] = 1e-9
    function = illumination_function(mean_image, {"smoothing": 0.01, "downsample": 1})
    assert function.min() > 0.05


@pytest.mark.parametrize(
    ("small", "full"), [((135, 135), (1080, 1080)), ((27, 33), (216, 270)), ((10, 7), (83, 61))]
)
def test_upsampling_is_skimage_resize_bit_for_bit(small, full):
    """The functions were made with skimage's resize; the same call without its import."""
    from skimage.transform import resize

    smooth = np.random.default_rng(1).random(small) + 0.1
    expected = resize(smooth, full, order=1, mode="edge", anti_aliasing=False)
    np.testing.assert_array_equal(_upsample(smooth, full), expected)


def test_unknown_parameter_is_named():
    with pytest.raises(ValueError, match=r"unknown illum parameter\(s\) \['sigma'\]"):
        ILLUM.merge({"sigma": 3})


def test_flattens_real_vignetting(real_data):
    """Transfluor example plate: corrected per-position means vary less than raw ones."""
    paths = sorted((real_data / "transfluor_illum").glob("*.TIF"))
    assert len(paths) >= 24
    manifest = pd.DataFrame({"Path_GFP": [str(p) for p in paths]})
    function = compute_plate_illum(manifest, ["GFP"], {}, threads=2)["GFP"]
    raw = np.mean([tifffile.imread(p).astype(np.float64) for p in paths], axis=0)

    def grid_cv(image, cells=8):
        h, w = (s // cells * cells for s in image.shape)
        blocks = image[:h, :w].reshape(cells, h // cells, cells, w // cells).mean(axis=(1, 3))
        return blocks.std() / blocks.mean()

    assert grid_cv(raw / function) < 0.6 * grid_cv(raw)


def test_an_odd_shaped_image_is_named_even_on_the_first_site(tmp_path):
    """The minority is blamed, not whichever image came first."""
    paths = []
    for i, shape in enumerate([(20, 30), (24, 24), (24, 24), (24, 24)]):
        paths.append(str(tmp_path / f"site{i}.tif"))
        tifffile.imwrite(paths[-1], np.ones(shape, np.uint16))
    with pytest.raises(ValueError) as error:
        compute_plate_illum(pd.DataFrame({"Path_DNA": paths}), ["DNA"])
    assert str(error.value) == (
        f"1 DNA image(s) differ in shape from the plate's other 3 (24, 24): {paths[0]} (20, 30)"
    )
