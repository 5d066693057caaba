"""Reading raw images: every way a file can be wrong gives one line naming it."""

import numpy as np
import pytest
import tifffile
from PIL import Image

from debatch.core.images import (
    ImageError,
    cellprofiler_scale,
    image_shape,
    read_illum,
    read_image,
    read_raw_site,
    read_site,
)


def site(tmp_path, dna, agp):
    tifffile.imwrite(tmp_path / "dna.tif", dna)
    tifffile.imwrite(tmp_path / "agp.tif", agp)
    return {
        "Metadata_Well": "B03",
        "Metadata_Site": 2,
        "Path_DNA": str(tmp_path / "dna.tif"),
        "Path_AGP": str(tmp_path / "agp.tif"),
    }


def test_truncated_tiff_is_named(tmp_path):
    path = tmp_path / "x.tif"
    tifffile.imwrite(path, np.ones((64, 64), np.uint16))
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ImageError, match=f"cannot read image {path}"):
        read_image(str(path))


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ImageError, match="image file missing: .*gone.tif"):
        read_image(str(tmp_path / "gone.tif"))


def test_channels_with_different_shapes_name_the_site(tmp_path):
    row = site(tmp_path, np.ones((8, 8), np.uint16), np.ones((8, 9), np.uint16))
    with pytest.raises(ImageError, match=r"channels of well B03 site 2 differ in shape"):
        read_site(row, ["DNA", "AGP"])


def test_channels_with_different_bit_depths_name_the_site(tmp_path):
    row = site(tmp_path, np.ones((8, 8), np.uint16), np.ones((8, 8), np.uint8))
    with pytest.raises(ImageError, match=r"well B03 site 2 differ in pixel type: .*uint16.*uint8"):
        read_site(row, ["DNA", "AGP"])


def test_illumination_function_is_applied(tmp_path):
    row = site(tmp_path, np.full((4, 4), 100, np.uint16), np.full((4, 4), 50, np.uint16))
    illum = {"DNA": np.full((4, 4), 2.0, np.float32), "AGP": np.full((4, 4), 0.5, np.float32)}
    images = read_site(row, ["DNA", "AGP"], illum)
    assert images["DNA"][0, 0] == 50.0 and images["AGP"][0, 0] == 100.0


def test_illumination_function_of_another_shape_names_the_file(tmp_path):
    row = site(tmp_path, np.ones((8, 8), np.uint16), np.ones((8, 8), np.uint16))
    illum = {"DNA": np.ones((8, 8), np.float32), "AGP": np.ones((4, 4), np.float32)}
    with pytest.raises(
        ImageError,
        match=r"agp.tif has shape \(8, 8\) but the plate's illumination "
        r"function for AGP has shape \(4, 4\)",
    ):
        read_site(row, ["DNA", "AGP"], illum)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_png_is_read_in_its_stored_bit_depth(tmp_path, dtype):
    pixels = (np.arange(48 * 64).reshape(48, 64) * 37 % np.iinfo(dtype).max).astype(dtype)
    Image.fromarray(pixels).save(tmp_path / "B02_s1_w1.png")
    row = {"Metadata_Well": "B02", "Metadata_Site": 1, "Path_DNA": str(tmp_path / "B02_s1_w1.png")}
    raw = read_raw_site(row, ["DNA"])["DNA"]
    assert raw.dtype == dtype and np.array_equal(raw, pixels)
    assert image_shape(str(tmp_path / "B02_s1_w1.png")) == (48, 64)
    assert cellprofiler_scale(raw.dtype) == 1 / np.iinfo(dtype).max


def test_colour_png_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "rgb.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path)
    with pytest.raises(ImageError, match=f"PNG {path} is mode RGB; expected one grayscale"):
        read_image(str(path))


def test_truncated_png_is_named(tmp_path):
    path = tmp_path / "x.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ImageError, match=f"cannot read image {path}"):
        read_image(str(path))


def test_illumination_functions_come_in_the_asked_order_and_a_missing_channel_is_named(tmp_path):
    path = tmp_path / "P1.npz"
    np.savez(path, DNA=np.full((2, 2), 0.5), AGP=np.ones((2, 2)))
    functions = read_illum(path, ["AGP", "DNA"])
    assert list(functions) == ["AGP", "DNA"] and functions["DNA"][0, 0] == 0.5
    with pytest.raises(ValueError, match=r"P1.npz has no illumination function .*'RNA'"):
        read_illum(path, ["DNA", "RNA"])
