"""Tests of the synthetic Cell Painting screen (debatch.demo): the demo's ground truth."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import tifffile
from skimage.measure import label as connected_components

from debatch.demo.batches import batch_effects
from debatch.demo.design import CHANNELS, KNOBS, plate_layout, treatment_effects
from debatch.demo.plate import generate_plate, write_plate_sheet
from debatch.settings import DEMO_BATCH

SMALL = {
    "rows": 2,
    "cols": 3,
    "sites": 2,
    "image_size": 128,
    "cells_per_site": 14,
    "n_treatments": 2,
    "replicates": 2,
    "n_inactive": 1,
}
NO_BATCH = dict.fromkeys(DEMO_BATCH.defaults, 0.0)


def _image(plate_dir, well="A01", site=1, channel=1) -> np.ndarray:
    row, col = "ABCDEFGHIJKLMNOP".index(well[0]) + 1, int(well[1:])
    name = f"r{row:02d}c{col:02d}f{site:02d}p01-ch{channel}sk1fk1fl1.tiff"
    return tifffile.imread(plate_dir / "images" / name)


def _channel_means(plate_dir) -> np.ndarray:
    """Mean intensity per channel over every image of a plate."""
    files = sorted((plate_dir / "images").glob("*.tiff"))
    return np.array(
        [
            np.mean([tifffile.imread(f).mean() for f in files if f"-ch{k}sk" in f.name])
            for k in range(1, len(CHANNELS) + 1)
        ]
    )


@pytest.fixture(scope="module")
def plate(tmp_path_factory):
    """One small plate generated once and shared by the read-only tests."""
    out = tmp_path_factory.mktemp("synth") / "P1"
    generate_plate(out, "P1", "B1", SMALL)
    return out


def test_plate_files_names_and_types(plate):
    """Downstream stages find images by Opera naming and read truth files by name."""
    names = sorted(p.name for p in (plate / "images").iterdir())
    assert len(names) == 2 * 3 * 2 * 5
    assert all(re.fullmatch(r"r0[12]c0[1-3]f0[12]p01-ch[1-5]sk1fk1fl1\.tiff", n) for n in names)
    image = _image(plate, "B03", 2, 5)
    assert image.dtype == np.uint16 and image.shape == (128, 128)
    assert 0 < image.min() and image.max() < 65535  # background above 0, nothing saturated
    for name in (
        "platemap.tsv",
        "truth/masks.npz",
        "truth/cells.parquet",
        "truth/treatments.tsv",
        "truth/batch_effects.json",
    ):
        assert (plate / name).is_file(), name
    assert not list(plate.parent.glob("P1.tmp-*")), "temporary folder left behind"
    assert list(pd.read_csv(plate / "platemap.tsv", sep="\t").columns) == [
        "well",
        "treatment",
        "role",
        "moa",
    ]
    pd.testing.assert_frame_equal(
        pd.read_csv(plate / "truth" / "treatments.tsv", sep="\t"), treatment_effects(SMALL)
    )
    assert json.loads((plate / "truth" / "batch_effects.json").read_text()) == batch_effects(
        "B1", SMALL
    )


def test_platemap_has_negcon_and_replicated_treatments():
    """The default layout is 8 compounds x 2 wells + 8 DMSO wells, the same on every call."""
    layout = plate_layout({})
    assert len(layout) == 24 and layout["well"].is_unique
    assert set(layout["well"]) == {f"{r}{c:02d}" for r in "ABCD" for c in range(1, 7)}
    counts = layout["treatment"].value_counts()
    assert counts["DMSO"] == 8
    assert all(counts[f"cpd{i:02d}"] == 2 for i in range(1, 9))
    assert (layout["role"] == np.where(layout["treatment"] == "DMSO", "negcon", "treatment")).all()
    assert (layout.loc[layout["treatment"] == "DMSO", "moa"] == "negcon").all()
    pd.testing.assert_frame_equal(layout, plate_layout({}))
    assert not layout.equals(plate_layout({"seed": 1}))  # the seed shuffles the wells


def test_truth_masks_match_cells_table(plate):
    """Segmentation scoring needs label i = cell of nucleus i, one connected piece each."""
    masks = np.load(plate / "truth" / "masks.npz")
    cells = pd.read_parquet(plate / "truth" / "cells.parquet")
    assert {
        f"{w}_{s}_{kind}"
        for w in ("A01", "A02", "A03", "B01", "B02", "B03")
        for s in (1, 2)
        for kind in ("nuclei", "cells")
    } == set(masks.files)
    for (well, site), table in cells.groupby(["Metadata_Well", "Metadata_Site"]):
        nuclei, cell = masks[f"{well}_{site}_nuclei"], masks[f"{well}_{site}_cells"]
        assert nuclei.dtype == cell.dtype == np.int32
        n = len(table)
        assert n > 0 and sorted(table["label"]) == list(range(1, n + 1))
        assert set(np.unique(nuclei)) == set(np.unique(cell)) == set(range(n + 1))
        inside = nuclei > 0
        assert (cell[inside] == nuclei[inside]).all(), "nucleus outside its own cell"
        assert (np.bincount(cell.ravel(), minlength=n + 1)[1:] == table["cell_area"]).all()
        assert (np.bincount(nuclei.ravel(), minlength=n + 1)[1:] == table["nucleus_area"]).all()
        assert (table["cell_area"] > table["nucleus_area"]).all()
        # one piece per label: 4-connected components of the label image = the labels
        assert connected_components(cell, background=0, connectivity=1).max() == n
    assert cells["Metadata_Site"].dtype.kind == "i"
    assert (cells["Metadata_Plate"] == "P1").all() and (cells["Metadata_Batch"] == "B1").all()


def test_same_params_same_bytes_different_plate_differs(plate, tmp_path):
    """Any process must regenerate a plate exactly; plates must not be copies of each other."""
    generate_plate(tmp_path / "again", "P1", "B1", SMALL)
    assert _image(plate).tobytes() == _image(tmp_path / "again").tobytes()
    pd.testing.assert_frame_equal(
        pd.read_parquet(plate / "truth" / "cells.parquet"),
        pd.read_parquet(tmp_path / "again" / "truth" / "cells.parquet"),
    )
    generate_plate(tmp_path / "P2", "P2", "B1", SMALL)
    assert not np.array_equal(_image(plate), _image(tmp_path / "P2"))


def test_zero_strengths_give_no_batch_effect(tmp_path):
    """With all batch strengths 0, a batch name alone must not change the images."""
    params = {**SMALL, "batch": NO_BATCH}
    one, two = batch_effects("B1", params), batch_effects("B2", params)
    assert {**one, "batch": ""} == {**two, "batch": ""}
    generate_plate(tmp_path / "B1" / "P1", "P1", "B1", params)
    generate_plate(tmp_path / "B2" / "P1", "P1", "B2", params)
    generate_plate(tmp_path / "B2" / "P2", "P2", "B2", params)
    assert _image(tmp_path / "B1" / "P1").tobytes() == _image(tmp_path / "B2" / "P1").tobytes()
    # different plates of different batches: channel means agree up to sampling noise
    np.testing.assert_allclose(
        _channel_means(tmp_path / "B1" / "P1"), _channel_means(tmp_path / "B2" / "P2"), rtol=0.1
    )


def test_gain_changes_channel_means_in_its_direction(tmp_path):
    """Batch gains must show up as channel brightness differences (what correction removes)."""
    params = {**SMALL, "batch": {**NO_BATCH, "gain": 0.25}}
    gains = [
        np.array([batch_effects(b, params)["gain"][c] for c in CHANNELS]) for b in ("B1", "B2")
    ]
    assert gains[0].tolist() == [
        batch_effects("B1", params)["gain"][c] for c in CHANNELS
    ]  # deterministic per batch name
    gain_ratio = gains[1] / gains[0]
    assert np.abs(np.log(gain_ratio)).max() > 0.1  # the batches really differ
    generate_plate(tmp_path / "a", "P1", "B1", params)
    generate_plate(tmp_path / "b", "P1", "B2", params)
    mean_ratio = _channel_means(tmp_path / "b") / _channel_means(tmp_path / "a")
    assert (np.sign(np.log(mean_ratio)) == np.sign(np.log(gain_ratio))).all()
    np.testing.assert_allclose(mean_ratio, gain_ratio, rtol=0.02)


def test_nucleus_size_effect_and_inactive_treatments(tmp_path):
    """Ground truth must be visible in the truth masks and absent for inactive compounds."""
    seed = next(
        s for s in range(200) if (treatment_effects({**SMALL, "seed": s})["nucleus_size"] > 1).any()
    )
    params = {**SMALL, "seed": seed, "sites": 3}
    effects = treatment_effects(params).set_index("treatment")
    knobs = effects[list(KNOBS)]
    assert (knobs[~effects["active"]] == 1).all(axis=None)
    assert not effects.loc["DMSO", "active"]
    changed = (knobs[effects["active"]] != 1).sum(axis=1)
    assert changed.between(1, 2).all()
    assert np.isclose(np.abs(knobs.to_numpy() - 1)[knobs.to_numpy() != 1], 0.35).all()

    generate_plate(tmp_path / "P", "P", "B", params)
    cells = pd.read_parquet(tmp_path / "P" / "truth" / "cells.parquet")
    treated = knobs.index[knobs["nucleus_size"] > 1][0]
    area = cells.groupby("Metadata_Treatment")["nucleus_area"].mean()
    assert area[treated] > 1.15 * area["DMSO"]
    untreated = cells["Metadata_Treatment"].isin(effects.index[~effects["active"]])
    assert (cells.loc[untreated, list(KNOBS)] == 1).all(axis=None)


def test_unknown_parameter_is_named():
    """A typo in the demo config must fail loudly instead of using a default."""
    with pytest.raises(ValueError, match="colour"):
        plate_layout({"colour": 1})
    with pytest.raises(ValueError, match=r"demo.params.batch parameter\(s\) \['gian'\]"):
        generate_plate("unused", "P", "B", {"batch": {"gian": 0.1}})


def test_regenerating_replaces_stale_plate_and_failure_keeps_old(tmp_path, monkeypatch):
    """A rerun replaces a stale plate wholesale; a failing run leaves no half plate behind."""
    out = tmp_path / "P1"
    (out / "images").mkdir(parents=True)
    (out / "images" / "stale.tiff").write_text("old")
    generate_plate(out, "P1", "B1", {**SMALL, "n_treatments": 1, "n_inactive": 0, "sites": 1})
    assert not (out / "images" / "stale.tiff").exists()
    before = sorted(p.name for p in (out / "images").iterdir())

    def broken(path, data):
        raise OSError("disk full")

    monkeypatch.setattr(tifffile, "imwrite", broken)
    with pytest.raises(OSError):
        generate_plate(out, "P1", "B1", SMALL)
    assert sorted(p.name for p in (out / "images").iterdir()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["P1"]


def test_plate_sheet(tmp_path):
    """The sheet must point the pipeline at each generated plate's images and platemap."""
    write_plate_sheet(tmp_path / "plates.tsv", [("P1", "B1"), ("P2", "B2")], "demo")
    sheet = pd.read_csv(tmp_path / "plates.tsv", sep="\t")
    assert sheet.to_dict("records") == [
        {
            "plate": "P1",
            "batch": "B1",
            "images": "demo/P1/images",
            "pattern": "opera_phenix",
            "platemap": "demo/P1/platemap.tsv",
        },
        {
            "plate": "P2",
            "batch": "B2",
            "images": "demo/P2/images",
            "pattern": "opera_phenix",
            "platemap": "demo/P2/platemap.tsv",
        },
    ]


PHYSICS = ("gamma", "crosstalk", "illumination_shape", "psf", "size")


@pytest.fixture(scope="module")
def physics(tmp_path_factory):
    """The same plate rendered with no batch effect and with each of the batch physics alone."""
    root = tmp_path_factory.mktemp("physics")
    base = {**SMALL, "sites": 1}
    plates = {}
    for effect in (None, *PHYSICS):
        strengths = {**NO_BATCH, **({effect: 0.5} if effect else {})}
        generate_plate(root / str(effect), "P1", "B7", {**base, "batch": strengths})
        plates[effect] = root / str(effect)
    return plates, base


def _stack(plate_dir, channel):
    files = sorted((plate_dir / "images").glob(f"*-ch{channel}sk*.tiff"))
    return np.stack([tifffile.imread(f).astype(np.float64) for f in files])


@pytest.mark.parametrize("effect", PHYSICS)
def test_each_batch_physics_is_off_at_zero(effect):
    """Strength 0 is exactly no effect: the identity response, no bleed-through, round centred
    illumination, an isotropic achromatic PSF, no size shift."""
    effects = batch_effects("B7", {**SMALL, "batch": NO_BATCH})
    assert set(effects["gamma"].values()) == {1.0} and set(effects["crosstalk"].values()) == {0.0}
    assert effects["illumination_gradient"] == 0.0 and effects["illumination_ellipse"] == 1.0
    assert effects["psf_elongation"] == 1.0 and effects["psf_chromatic"] == 0.0
    assert effects["cell_size"] == 1.0
    switched_on = batch_effects("B7", {**SMALL, "batch": {**NO_BATCH, effect: 0.5}})
    assert switched_on != effects


def test_gamma_bends_the_response_by_the_batchs_exponent(physics):
    plates, base = physics
    gamma = batch_effects("B7", {**base, "batch": {**NO_BATCH, "gamma": 0.5}})["gamma"]
    for k, channel in enumerate(CHANNELS, start=1):
        off, on = _stack(plates[None], k), _stack(plates["gamma"], k)
        bright = off > np.percentile(off, 90)  # signal well above the camera noise
        slope = np.polyfit(np.log(off[bright]), np.log(on[bright]), 1)[0]
        assert slope == pytest.approx(gamma[channel], rel=0.1), channel


def test_crosstalk_adds_the_bluer_stain_to_a_channel(physics):
    plates, _ = physics
    dna_off = _stack(plates[None], 1)
    added = _stack(plates["crosstalk"], 2) - _stack(plates[None], 2)  # ER gains some DNA
    assert np.corrcoef(added.ravel(), dna_off.ravel())[0, 1] > 0.8
    np.testing.assert_array_equal(_stack(plates["crosstalk"], 1), dna_off)  # DNA bleeds nowhere


def test_illumination_shape_adds_a_gradient_in_the_batchs_direction(physics):
    plates, base = physics
    fx = batch_effects("B7", {**base, "batch": {**NO_BATCH, "illumination_shape": 0.5}})
    ratio = _stack(plates["illumination_shape"], 1).mean(0) / _stack(plates[None], 1).mean(0)
    size = ratio.shape[0]
    y, x = np.mgrid[:size, :size] / (size - 1) - 0.5
    direction = np.cos(fx["illumination_angle"]) * x + np.sin(fx["illumination_angle"]) * y
    assert np.corrcoef(ratio.ravel(), direction.ravel())[0, 1] > 0.7


def test_psf_blurs_one_axis_more_and_the_red_channels_more(physics):
    plates, base = physics
    fx = batch_effects("B7", {**base, "batch": {**NO_BATCH, "psf": 0.5}})

    def sharpness(images, axis):
        return np.mean(np.abs(np.diff(images, axis=axis)))

    off, on = _stack(plates[None], 1), _stack(plates["psf"], 1)
    anisotropy_on = sharpness(on, 2) / sharpness(on, 1)  # x-gradients over y-gradients
    anisotropy_off = sharpness(off, 2) / sharpness(off, 1)
    assert (anisotropy_on > anisotropy_off) == (fx["psf_elongation"] > 1)
    assert abs(np.log(anisotropy_on / anisotropy_off)) > 0.02
    loss = [
        sharpness(_stack(plates["psf"], k), 1) / sharpness(_stack(plates[None], k), 1)
        for k in (1, 5)
    ]
    assert loss[1] < loss[0]  # Mito (reddest) loses more sharpness than DNA


def test_size_shifts_every_cell_of_the_batch(physics):
    plates, base = physics
    factor = batch_effects("B7", {**base, "batch": {**NO_BATCH, "size": 0.5}})["cell_size"]
    assert factor != 1.0
    areas = [
        pd.read_parquet(plates[effect] / "truth" / "cells.parquet")["cell_area"].mean()
        for effect in (None, "size")
    ]
    assert (areas[1] > areas[0]) == (factor > 1)
