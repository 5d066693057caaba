"""Sources from another run (debatch.pipeline.sources): frozen models found, named and checked
against their cards at start-up; a reference run's well profiles joining this run's
(debatch.profiles.wells) exactly as if every plate had been profiled in one run."""

import json

import pandas as pd
import pytest

from debatch import settings
from debatch.pipeline import ConfigError, checks, sources
from debatch.profiles.wells import well_profiles
from test_profiles import cells_table

CHANNELS = ["DNA", "RNA"]


def write_model(folder, channels=CHANNELS, size=32, unit=None):
    """A model.pt stand-in with its card: start-up checks read the card alone (a card without
    ``unit`` is one written before whole sites: of cells)."""
    folder.mkdir(parents=True)
    (folder / "model.pt").write_bytes(b"")
    card = {"channels": channels, "crop_shape": [len(channels), size, size]}
    if unit is not None:
        card["unit"] = unit
    (folder / settings.MODEL_CARD).write_text(json.dumps(card))
    return str(folder / "model.pt")


def test_a_finished_runs_models_keep_their_source_names(tmp_path):
    run = tmp_path / "results"
    write_model(run / "models" / "abra_plate" / "seed0")
    write_model(run / "models" / "abra_plate" / "seed2")
    single = write_model(tmp_path / "elsewhere")
    found = sources.frozen_models({"models": {"mine": single}, "models_from": str(run)})
    assert found == {
        "mine": single,
        "abra_plate_seed0": str(run / "models/abra_plate/seed0/model.pt"),
        "abra_plate_seed2": str(run / "models/abra_plate/seed2/model.pt"),
    }


@pytest.mark.parametrize(
    "embed, message",
    [
        ({"models": {"x": "missing/model.pt"}}, r"embed.models: x: missing/model.pt is not a file"),
        ({"models_from": "."}, r"embed.models_from: \. holds no models/"),
    ],
)
def test_missing_models_are_named(embed, message):
    with pytest.raises(ConfigError, match=message):
        sources.frozen_models(embed)


@pytest.mark.parametrize(
    "name, card, message",
    [
        ("ok", {"channels": ["RNA", "DNA"]}, r"channels \['RNA', 'DNA'\], .* are \['DNA', 'RNA'\]"),
        ("ok", {"size": 48}, r"trained on 48 px crops, this run's crops.size is 32"),
        ("erm_seed0", {}, r"'erm_seed0' would be ranked as a seed of this run's 'erm' models"),
        ("erm_seed5", {}, r"'erm_seed5' would be ranked as a seed of this run's 'erm' models"),
        ("cellprofiler", {}, r"'cellprofiler' cannot name a source"),
        ("a/b", {}, r"'a/b' cannot name a source"),
    ],
)
def test_a_frozen_model_that_does_not_fit_is_refused_in_one_line(tmp_path, name, card, message):
    model = write_model(tmp_path / "m", **card)
    with pytest.raises(ConfigError, match=message) as error:
        sources.check_frozen({name: model}, ["erm_seed0"], CHANNELS, {"size": 32})
    assert "\n" not in str(error.value)


def test_a_model_that_fits_passes(tmp_path):
    sources.check_frozen({"mine": write_model(tmp_path / "m")}, [], CHANNELS, {"size": 32})


@pytest.mark.parametrize(
    "card, crops, message",
    [
        ({"unit": "site", "size": 128}, {}, r"trained on sites, this run's crops.unit is cell"),
        ({}, {"unit": "site"}, r"trained on cells, this run's crops.unit is site"),
        (
            {"unit": "site", "size": 64},
            {"unit": "site", "site_size": 128},
            r"trained on 64 px crops, this run's crops.site_size is 128",
        ),
    ],
)
def test_a_frozen_model_of_the_other_unit_or_site_size_is_refused(tmp_path, card, crops, message):
    """Cells and whole sites (crops.unit) are different inputs: a model of one never embeds
    the other, and a site model must match crops.site_size, not crops.size."""
    model = write_model(tmp_path / "m", **card)
    with pytest.raises(ConfigError, match=message) as error:
        sources.check_frozen({"mine": model}, [], CHANNELS, crops)
    assert "\n" not in str(error.value)


def test_a_site_model_fits_a_site_run(tmp_path):
    model = write_model(tmp_path / "m", unit="site", size=128)
    sources.check_frozen({"mine": model}, [], CHANNELS, {"unit": "site", "size": 32})


def reference_run(tmp_path, plates):
    """A finished run's results folder holding one source's well profiles of ``plates``."""
    wells, _ = well_profiles(plates)
    path = tmp_path / "reference" / sources.REFERENCE_WELLS.format(source="erm_seed0")
    path.parent.mkdir(parents=True)
    wells.to_parquet(path)
    return tmp_path / "reference", wells


@pytest.fixture
def plates(tmp_path):
    paths = []
    for i, batch in enumerate(["b1", "b2", "b3"]):
        path = tmp_path / f"P{i}.parquet"
        cells_table(f"P{i}", batch, shift=i, seed=i).to_parquet(path)
        paths.append(path)
    return paths


def test_reference_wells_join_as_if_profiled_in_one_run(tmp_path, plates):
    """Plates 1-2 profiled in a first run, plate 3 in a second run that names the first as
    profiles.reference: the second run's wells equal the wells of one run over all three."""
    reference, _ = reference_run(tmp_path, plates[:2])
    found = sources.reference_wells(str(reference), ["erm_seed0", "cellprofiler"])
    assert list(found) == ["erm_seed0"]
    assert sources.reference_batches(found) == ["b1", "b2"]
    joined, _ = well_profiles(plates[2:], reference=found["erm_seed0"])
    together, _ = well_profiles(plates)
    pd.testing.assert_frame_equal(joined, together[joined.columns])
    # the reference's batches count as the run's: a new batch held out, nothing trained
    checks.check_methods({"methods": [], "holdout_batches": ["b3"]}, ["b3"], ["b1", "b2"])


def test_a_plate_in_both_runs_is_this_runs(tmp_path, plates):
    """The reference held plates 1-3, this run images plate 3 again: its wells replace the old."""
    reference, _ = reference_run(tmp_path, plates)
    wells = str(reference / sources.REFERENCE_WELLS.format(source="erm_seed0"))
    again = tmp_path / "again.parquet"
    cells_table("P2", "b3", shift=5.0, seed=9).to_parquet(again)
    joined, _ = well_profiles([again], reference=wells)
    alone, _ = well_profiles(plates[:2] + [again])
    assert (joined["Metadata_Plate"] == "P2").sum() == 3
    pd.testing.assert_frame_equal(joined, alone[joined.columns])


def test_a_reference_feature_this_run_lacks_is_refused(tmp_path, plates):
    reference, wells = reference_run(tmp_path, plates[:2])
    path = reference / sources.REFERENCE_WELLS.format(source="erm_seed0")
    wells.assign(emb_999=0.0).to_parquet(path)
    with pytest.raises(ValueError, match=r"lack 1 feature\(s\) .* \(first: emb_999\)"):
        well_profiles(plates[2:], reference=str(path))


def test_a_reference_without_profiles_is_named(tmp_path):
    with pytest.raises(ConfigError, match="profiles.reference: .* has no profiles/ folder"):
        sources.reference_wells(str(tmp_path), ["erm_seed0"])
