"""Reading raw images: every way a file can be wrong gives one line naming it."""

import numpy as np
import pytest
import tifffile

from debatch.core.images import ImageError, read_image, read_site


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
