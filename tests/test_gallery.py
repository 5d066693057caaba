"""The report's cell gallery: which cells it shows, and that it shows their real pixels."""

import matplotlib.image
import numpy as np
import pandas as pd

from debatch.report.gallery import channel_limits, composite, pick_cells, plot_gallery

CHANNELS = ["DNA", "ER", "RNA", "AGP", "Mito"]


def crops_tables(seed=0):
    """Two plates x three treatments x 12 cells: 9 alike, 3 far off (never "typical")."""
    rng = np.random.default_rng(seed)
    rows = []
    for plate in ("P1", "P2"):
        for treatment, role in (("cpd02", "trt"), ("DMSO", "negcon"), ("cpd01", "trt")):
            for i in range(12):
                jitter = rng.normal(0, 0.01) if i < 9 else rng.choice([-2.0, 2.0])
                rows.append(
                    {
                        "Metadata_Plate": plate,
                        "Metadata_Treatment": treatment,
                        "Metadata_Role": role,
                        "Nuclei_AreaShape_Area": 100 * np.exp(jitter),
                        "Cells_AreaShape_Area": 400 * np.exp(jitter),
                        "Cells_Intensity_MeanIntensity_DNA": 50 * np.exp(-jitter),
                        "outlier": i >= 9,
                    }
                )
    return pd.DataFrame(rows)


def test_negcon_first_random_and_typical_cells_reproducibly():
    table = crops_tables()
    picked = pick_cells(table, 3, seed=1)
    assert list(dict.fromkeys(picked["Metadata_Treatment"])) == ["DMSO", "cpd01", "cpd02"]
    assert (picked.groupby(["Metadata_Treatment", "kind"]).size() == 3).all()
    assert not picked.loc[picked["kind"] == "typical", "outlier"].any()
    assert not picked.index.duplicated().any()
    pd.testing.assert_frame_equal(picked, pick_cells(table, 3, seed=1))
    assert not picked.equals(pick_cells(table, 3, seed=2))


def test_gallery_shows_the_crops_pixels_with_one_contrast_per_channel(tmp_path):
    rng = np.random.default_rng(2)
    crops = rng.gamma(2.0, 100.0, (8, 5, 16, 16)).astype(np.float16)
    crops[:, 0, 6:10, 6:10] += 2000  # a bright nucleus in every crop
    limits = channel_limits(crops)
    expected = np.percentile(crops[:, 0].astype(np.float32), [1, 99.5])
    np.testing.assert_allclose(limits[0], expected, rtol=1e-5)
    blue = composite(crops[:, :1], ["DNA"], limits[:1])[..., 2]
    dna = np.clip((crops[:, 0].astype(np.float32) - limits[0, 0]) / np.ptp(limits[0]), 0, 1)
    np.testing.assert_allclose(blue, dna, atol=1e-6)  # DNA is the blue, stretched, nothing else
    assert blue[:, 6:10, 6:10].mean() > 3 * blue[:, :4, :4].mean()
    picked = pd.DataFrame(
        {"Metadata_Treatment": ["DMSO"] * 4 + ["cpd01"] * 4, "kind": ["random", "typical"] * 4}
    )
    path = tmp_path / "gallery.png"
    plot_gallery(picked, crops, CHANNELS, path)
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 50 and image.shape[1] > 100 and image[..., 2].std() > 0.05


def test_random_and_typical_are_labelled_once_above_their_columns():
    """The kind of cell heads its column in the top row only: a label over every row sat on the
    images of the row above (issue 28)."""
    from debatch.core.plotting import pyplot
    from debatch.report.gallery import gallery_figure

    table = crops_tables()
    picked = pick_cells(table, 2, seed=0)
    crops = np.random.default_rng(0).gamma(2.0, 100.0, (len(picked), 5, 16, 16))
    fig = gallery_figure(picked, crops, CHANNELS)
    axes = np.array(fig.axes).reshape(3, 4)
    titles = [[ax.get_title(loc="left") for ax in row] for row in axes]
    assert titles[0] == ["random", "", "typical", ""]
    assert all(title == "" for row in titles[1:] for title in row)
    assert [ax.get_ylabel() for ax in axes[:, 0]] == ["DMSO", "cpd01", "cpd02"]
    pyplot().close(fig)
