"""Demo screen generator: file contract, ground truth consistency, determinism, batch effects."""

import hashlib

import numpy as np
import pandas as pd
import pytest
import tifffile

from debatch.synth import (CHANNELS, batch_effects, generate_plate, plate_layout, resolve_params,
                           treatment_effects, write_plate_sheet)

SMALL = {"rows": 2, "cols": 3, "sites": 2, "image_size": 96, "cells_per_site": 10,
         "n_treatments": 2, "replicates": 2, "n_inactive": 1}


@pytest.fixture(scope="module")
def plate(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "P1"
    generate_plate(out, "P1", "b1", SMALL)
    return out


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_opera_files_for_every_well_site_channel(plate):
    names = sorted(p.name for p in (plate / "images").iterdir())
    assert len(names) == 6 * 2 * len(CHANNELS)
    assert "r02c03f02p01-ch5sk1fk1fl1.tiff" in names
    image = tifffile.imread(plate / "images" / names[0])
    assert image.dtype == np.uint16 and image.shape == (96, 96) and image.max() > 1000


def test_platemap_has_negcon_and_replicated_treatments(plate):
    platemap = pd.read_csv(plate / "platemap.tsv", sep="\t")
    assert list(platemap.columns) == ["well", "treatment", "role", "moa"]
    counts = platemap["treatment"].value_counts()
    assert counts["cpd01"] == counts["cpd02"] == 2 and counts["DMSO"] == 2
    assert set(platemap.loc[platemap["treatment"] == "DMSO", "role"]) == {"negcon"}
    pd.testing.assert_frame_equal(platemap, plate_layout(SMALL))


def test_truth_masks_pair_cells_with_nuclei(plate):
    masks = np.load(plate / "truth" / "masks.npz")
    truth = pd.read_parquet(plate / "truth" / "cells.parquet")
    total = 0
    for well in plate_layout(SMALL)["well"]:
        for site in (1, 2):
            nuclei, cells = masks[f"{well}_{site}_nuclei"], masks[f"{well}_{site}_cells"]
            inside = nuclei > 0
            np.testing.assert_array_equal(cells[inside], nuclei[inside])  # nucleus i inside cell i
            assert set(np.unique(nuclei)) == set(np.unique(cells))
            on_site = truth[(truth["Metadata_Well"] == well) & (truth["Metadata_Site"] == site)]
            assert sorted(on_site["label"]) == sorted(set(np.unique(nuclei)) - {0})
            total += nuclei.max()
    assert len(truth) == total > 0


def test_same_params_same_bytes_other_plate_other_pixels(plate, tmp_path):
    generate_plate(tmp_path / "again", "P1", "b1", SMALL)
    generate_plate(tmp_path / "other", "P2", "b1", SMALL)
    name = "r01c01f01p01-ch1sk1fk1fl1.tiff"
    assert digest(tmp_path / "again" / "images" / name) == digest(plate / "images" / name)
    assert digest(tmp_path / "other" / "images" / name) != digest(plate / "images" / name)
    assert not list(tmp_path.glob("*.tmp-*"))


def mean_intensity(folder, channel):
    return np.mean([tifffile.imread(p).mean() for p in (folder / "images").glob(f"*-ch{channel}sk*")])


def test_batch_gain_moves_channel_means_the_way_it_says(tmp_path):
    params = {**SMALL, "batch": {"gain": 0.5, "offset": 0, "vignetting": 0, "blur": 0, "background": 0,
                                 "noise": 0, "density": 0}}
    gains = {b: batch_effects(b, params)["gain"]["DNA"] for b in ("b1", "b2")}
    for b in gains:
        generate_plate(tmp_path / b, "P1", b, params)  # same plate name: same cells, other batch
    ratio = mean_intensity(tmp_path / "b2", 1) / mean_intensity(tmp_path / "b1", 1)
    assert ratio == pytest.approx(gains["b2"] / gains["b1"], rel=0.1)
    assert abs(np.log(ratio)) > 0.05


def test_zero_strengths_mean_no_batch_effect():
    zero = {"batch": dict.fromkeys(resolve_params({})["batch"], 0.0)}
    effects = batch_effects("any", zero)
    assert set(effects["gain"].values()) == {1.0} and effects["vignetting_amplitude"] == 0.0
    assert effects["density"] == 1.0 and effects["blur_sigma"] == 0.0


def test_treatment_truth_inactive_are_identity_and_nucleus_size_acts(tmp_path):
    # seed 1 gives cpd02 a larger nucleus (x1.35 area)
    params = {**SMALL, "seed": 1, "n_treatments": 6, "n_inactive": 2, "rows": 4, "cols": 6, "replicates": 3}
    effects = treatment_effects(params).set_index("treatment")
    knobs = effects.drop(columns="active")
    assert (knobs[~effects["active"]] == 1.0).all().all()
    assert effects["active"].sum() == 4
    assert knobs.loc["cpd02", "nucleus_size"] > 1
    generate_plate(tmp_path / "P", "P", "b1", params)
    truth = pd.read_parquet(tmp_path / "P" / "truth" / "cells.parquet")
    by_treatment = truth.groupby("Metadata_Treatment")["nucleus_area"].mean()
    assert by_treatment["cpd02"] > 1.15 * by_treatment["DMSO"]


def test_unknown_parameter_is_named():
    with pytest.raises(ValueError, match="cell_count"):
        resolve_params({"cell_count": 3})


def test_plate_sheet_points_at_generated_plates(tmp_path):
    write_plate_sheet(tmp_path / "plates.tsv", [("P1", "b1")], "res/demo")
    sheet = pd.read_csv(tmp_path / "plates.tsv", sep="\t")
    assert sheet.iloc[0].to_dict() == {"plate": "P1", "batch": "b1", "images": "res/demo/P1/images",
                                       "pattern": "opera_phenix", "platemap": "res/demo/P1/platemap.tsv"}
