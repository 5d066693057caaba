"""debatch.pipeline, the workflow's Python without Snakemake: start-up checks name the key or
plate, each rule's params hold exactly the keys its results depend on, and nothing of it
imports torch or Snakemake."""

import subprocess
import sys

import pandas as pd
import pytest
import yaml

from debatch import settings
from debatch.demo.plate import write_plate_sheet
from debatch.pipeline import ConfigError, checks, plates
from debatch.pipeline import params as rule_params

from conftest import REPO

DEFAULTS = yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def reads_as(text):
    return [yaml.safe_load(text)]


def test_names_stay_as_written_and_a_number_written_nowhere_fails():
    config = {"train": {"holdout_batches": [20210503]}, "channels": {"DNA": 1}}
    written = {"train": {"holdout_batches": ["2021_05_03"]}, "channels": {"DNA": "1"}}
    checks.keep_names_as_written(config, lambda: written, reads_as)
    assert config["train"]["holdout_batches"] == ["2021_05_03"]
    assert config["channels"] == {"DNA": "1"}
    with pytest.raises(ConfigError, match=r"train.holdout_batches: \[7\] is a list, not a name"):
        checks.keep_names_as_written({"train": {"holdout_batches": [7]}}, lambda: {}, reads_as)


def test_two_channels_on_one_raw_id_are_refused():
    with pytest.raises(ConfigError, match=r"channels: \['DNA', 'RNA'\] all map to raw .* '1'"):
        checks.check_channels({"DNA": "1", "RNA": "1", "AGP": "2"})


def test_a_block_typo_is_named_with_its_block():
    config = {**DEFAULTS, "qc": {**DEFAULTS["qc"], "min_cell": 3}}
    with pytest.raises(ConfigError, match=r"^qc: unknown qc parameter\(s\) \['min_cell'\]"):
        checks.check_blocks(config)
    checks.check_blocks(DEFAULTS)


@pytest.mark.parametrize(
    "crops, train, message",
    [
        ({"unit": "sites"}, {}, r"^crops: crops.unit must be one of \['cell', 'site'\]"),
        ({"site_size": 0}, {}, r"^crops: crops.site_size must be >= 1"),
        ({}, {"tile": 4}, r"^train: train.tile must be >= 8"),
        ({}, {"tile": 48}, r"^train.tile 48 px is larger than the stored crops \(crops.size 32\)"),
        ({"unit": "site", "site_size": 64}, {"tile": 96}, r"\(crops.site_size 64\)$"),
    ],
)
def test_whole_site_keys_and_the_training_tile_are_checked(crops, train, message):
    config = {
        **DEFAULTS,
        "crops": {**DEFAULTS["crops"], **crops},
        "train": {**DEFAULTS["train"], **train},
    }
    with pytest.raises(ConfigError, match=message):
        checks.check_blocks(config)
    fits = {**config, "train": {**config["train"], "tile": None}, "crops": DEFAULTS["crops"]}
    checks.check_blocks(fits)


@pytest.mark.parametrize(
    "train, message",
    [
        ({"methods": ["ermm"]}, "'ermm' is neither a preset"),
        ({"methods": ["x_seed1"], "recipes": {"x_seed1": {}}}, "cannot be named 'x_seed1'"),
        ({"methods": ["x"], "recipes": {"x": {"augment": "dsx"}}}, "train.recipes: .*augment"),
        ({"methods": ["erm"], "holdout_batches": ["b9"]}, r"\['b9'\] are not batches"),
        ({"methods": ["erm"], "holdout_batches": ["b1", "b2"]}, "nothing is left to train on"),
    ],
)
def test_methods_and_held_out_batches_are_checked(train, message):
    with pytest.raises(ConfigError, match=message):
        checks.check_methods(train, ["b1", "b2"])


@pytest.mark.parametrize(
    "train, batches, message",
    [
        ({"holdout_batches": ["b1"]}, ["b1", "b2"], r"holdout_batches must then be \[\], not"),
        ({}, ["b1"], "needs two batches on the plate sheet"),
        ({}, ["b1", "day 2"], "batch 'day 2' cannot name a model's folder"),
    ],
)
def test_rotation_holds_out_every_batch_and_nothing_else(train, batches, message):
    with pytest.raises(ConfigError, match=f"^train.rotate_holdout.*{message}"):
        checks.check_rotation({"rotate_holdout": True, **train}, batches)
    checks.check_rotation({"rotate_holdout": False, **train}, batches)


def test_a_rotated_model_is_a_run_of_its_method_named_after_its_held_out_batch():
    """{method}-{batch}_seed{k}: the first '-' ends the method whatever the batch is called;
    its train params hold that batch out, and its diagnostics score it as held out."""
    for batch in ("b1", "2021-05-03", "x_seed7"):
        source = settings.source_name("abra_plate", 2, batch)
        assert settings.parse_source(source) == ("abra_plate", 2)
        assert settings.source_fold(source) == batch
    assert (
        settings.source_fold("erm_seed0") is None and settings.source_fold("cellprofiler") is None
    )
    train = {**DEFAULTS["train"], "holdout_batches": [], "rotate_holdout": True}
    sources = rule_params.trained_sources({**train, "methods": ["erm"]}, ["b1", "b2"])
    assert sources == ["erm-b1_seed0", "erm-b2_seed0"]
    assert rule_params.train_params(train, "erm", 0, "b2")["holdout_batches"] == ["b2"]
    assert rule_params.holdout_batches(train, "erm-b2_seed0") == ["b2"]
    assert rule_params.holdout_batches(DEFAULTS["train"], "cellprofiler") == ["batch4"]
    # a source not trained here holds out every batch in turn, as the models do
    assert rule_params.holdout_batches(train, "cellprofiler", ["b1", "b2"]) == ["b1", "b2"]
    assert rule_params.rotates_holdout(train, "cellprofiler")
    assert not rule_params.rotates_holdout(train, "erm-b2_seed0")
    assert not rule_params.rotates_holdout(DEFAULTS["train"], "cellprofiler")
    assert rule_params.rotation_params(DEFAULTS["train"]) == {}


def test_a_run_without_rotation_keeps_its_sources_and_params():
    """rotate_holdout is a fan-out key like seeds: it never reaches a train job, so adding it
    (false) reruns nothing."""
    train = DEFAULTS["train"]
    assert rule_params.trained_sources(train, ["batch1", "batch4"]) == [
        f"{method}_seed0" for method in train["methods"]
    ]
    without = {k: v for k, v in train.items() if k != "rotate_holdout"}
    assert rule_params.train_params(train, "erm", 0) == rule_params.train_params(without, "erm", 0)
    assert "rotate_holdout" not in rule_params.train_params(train, "erm", 0)


def test_features_need_the_label_images():
    with pytest.raises(ConfigError, match="set segment.save_masks to true"):
        checks.check_features({"enabled": True}, {"save_masks": False})
    checks.check_features({"enabled": False}, {"save_masks": False})


def test_a_results_folder_under_a_file_is_not_writable(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="is not a directory"):
        checks.check_writable(str(tmp_path / "file" / "results"))
    checks.check_writable(str(tmp_path / "new" / "results"))


def plate_config(tmp_path):
    return {"demo": {"enabled": True, "root": str(tmp_path / "demo")}, "patterns": {}}


def test_demo_plates_are_recognised_and_a_plate_listed_twice_is_refused(tmp_path):
    sheet = tmp_path / "plates.tsv"
    write_plate_sheet(sheet, [("p1", "b1"), ("p2", "b2")], str(tmp_path / "demo"))
    loaded = plates.load_plates(str(sheet), plate_config(tmp_path), lambda sheet: None)
    assert loaded["is_demo"].tolist() == [True, True] and list(loaded.index) == ["p1", "p2"]
    write_plate_sheet(sheet, [("p1", "b1"), ("p1", "b2")], str(tmp_path / "demo"))
    with pytest.raises(ConfigError, match=r"lists plate\(s\) \['p1'\] more than once"):
        plates.load_plates(str(sheet), plate_config(tmp_path), lambda sheet: None)


def test_a_real_plate_needs_its_images_and_two_plates_need_their_own(tmp_path):
    sheet = tmp_path / "plates.tsv"
    images = tmp_path / "images"
    platemap = tmp_path / "platemap.tsv"
    pd.DataFrame({"well": ["A01"], "treatment": ["DMSO"], "role": ["negcon"]}).to_csv(
        platemap, sep="\t", index=False
    )
    rows = [
        ("p1", "b1", images, "opera_phenix", platemap),
        ("p2", "b2", images, "opera_phenix", platemap),
    ]
    pd.DataFrame(rows, columns=settings.PLATE_SHEET_COLUMNS).to_csv(sheet, sep="\t", index=False)
    with pytest.raises(ConfigError, match="plate p1: image folder not found"):
        plates.load_plates(str(sheet), plate_config(tmp_path), lambda sheet: None)
    images.mkdir()
    with pytest.raises(ConfigError, match="plates p1 and p2 read the same images"):
        plates.load_plates(str(sheet), plate_config(tmp_path), lambda sheet: None)


def test_train_params_hold_the_method_own_block_only():
    train = DEFAULTS["train"]
    abra = rule_params.train_params(train, "abra", 1)
    assert abra["abra"] == train["abra"] and abra["seed"] == 1
    assert not {"erm", "dsu", "methods", "seeds", "recipes", "recipe"} & set(abra)
    recipe = rule_params.train_params(train, "abra_plate", 0)
    assert recipe["recipe"] == train["recipes"]["abra_plate"]
    assert not set(settings.TRAIN_METHODS) & set(recipe)


def test_segment_settings_leave_out_the_method_not_in_use():
    segment = DEFAULTS["segment"]
    assert "cellpose" not in rule_params.segment_settings(segment)
    assert "shards" not in rule_params.segment_settings(segment)
    cellpose = {**segment, "method": "cellpose"}
    assert rule_params.segment_settings(cellpose)["cellpose"] == segment["cellpose"]
    assert (rule_params.segment_gpu(segment), rule_params.segment_gpu(cellpose)) == (0, 1)
    on_cpu = {**cellpose, "cellpose": {**segment["cellpose"], "device": "cpu"}}
    assert rule_params.segment_gpu(on_cpu) == 0


def test_only_jobs_that_may_use_a_gpu_ask_for_one():
    assert [rule_params.gpu_jobs(device) for device in ("auto", "cuda", "cpu")] == [1, 1, 0]


def test_embeddings_take_only_the_guards_of_feature_selection():
    profiles = DEFAULTS["profiles"]
    embedding = rule_params.aggregation_params(profiles, "erm_seed0")["feature_select"]
    assert embedding == {"operations": list(settings.GUARDS), "outlier_cutoff": 500.0}
    cellprofiler = rule_params.aggregation_params(profiles, settings.CELLPROFILER)
    assert cellprofiler["feature_select"] == settings.FEATURE_SELECT.merge(
        profiles["feature_select"]
    )


def test_every_profiles_key_reaches_the_params_of_a_rule():
    """A key no rule's params hold would change nothing when changed, silently (5fca2f2 found
    mad_epsilon missing from the wells' params this way, by a rerun that did not happen)."""
    profiles = settings.PROFILES.merge(DEFAULTS["profiles"])
    reached = set()
    for source in ("erm_seed0", settings.CELLPROFILER):
        reached |= set(rule_params.aggregation_params(profiles, source))
    for correction in settings.CORRECTIONS:
        reached |= set(rule_params.correction_params(profiles, correction))
    fan_out = {"corrections"}  # one job per correction: a wildcard, not a param
    inputs = {"reference"}  # the reference's wells are an input file of the wells rule
    assert set(profiles) - fan_out - inputs == reached


def test_correction_params_hold_one_correction_keys():
    keys = set(rule_params.correction_params(DEFAULTS["profiles"], "harmony"))
    assert "consensus" in keys and keys - {"consensus"} == {
        k for k in DEFAULTS["profiles"] if k.startswith("harmony_")
    }


def test_the_source_cells_are_every_plate_table():
    cells = rule_params.source_cells(settings.CELLPROFILER, ["p1", "p2"], "res")
    assert cells == {
        "cells": ["res/features/p1.parquet", "res/features/p2.parquet"],
        "crops": ["res/crops/p1.parquet", "res/crops/p2.parquet"],
    }
    assert rule_params.plate_cells("erm_seed0", "p1", "res") == {
        "cells": "res/embeddings/erm_seed0/p1.parquet"
    }


def test_the_package_imports_neither_torch_nor_snakemake():
    code = (
        "import sys, debatch.pipeline.checks, debatch.pipeline.plates, debatch.pipeline.params, "
        "debatch.pipeline.sources; "
        "print(sorted({'torch', 'snakemake'} & {m.split('.')[0] for m in sys.modules}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_external_sources_are_named_apart_and_their_files_found_at_start_up(tmp_path):
    """A source's name is a folder and no other source's; its table's files exist (a glob
    matches some, in order) and are tables, all before anything runs."""
    for name in ("b.parquet", "a.parquet", "notes.txt"):
        (tmp_path / name).touch()
    found = checks.check_external(
        {
            "mine": {"path": str(tmp_path / "*.parquet")},
            "one": {"path": [str(tmp_path / "b.parquet")]},
        },
        ["erm"],
    )
    assert found == {
        "mine": [str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet")],
        "one": [str(tmp_path / "b.parquet")],
    }
    table = {"path": str(tmp_path / "a.parquet")}
    for name, message in [
        ("cellprofiler", "cannot be named 'cellprofiler': that is how"),
        ("dino_seed0", "cannot be named 'dino_seed0': that is how a trained source"),
        ("erm", "'erm' is a method of train.methods"),
        ("my/table", "'my/table' cannot name a source: use letters"),
    ]:
        with pytest.raises(ConfigError, match=message):
            checks.check_external({name: table}, ["erm"])
    for block, message in [
        ({"path": str(tmp_path / "c*.parquet")}, r"external.x.path: no such file: .*c\*.parquet"),
        ({"path": str(tmp_path / "notes.txt")}, "notes.txt is not a table"),
        ({**table, "features": "dino"}, "external.x.features must be one of"),
        ({}, "external.x.path is missing"),
    ]:
        with pytest.raises(ConfigError, match=message):
            checks.check_external({"x": block}, [])


def test_an_external_source_reads_its_plate_tables_and_is_selected_as_it_says():
    external = {"cp": {"path": "t.parquet"}, "dp": {"path": "t.csv", "features": "embedding"}}
    assert rule_params.plate_cells("cp", "p1", "res", ["cp"]) == {
        "cells": "res/external/cp/p1.parquet"
    }
    profiles = DEFAULTS["profiles"]
    full = rule_params.aggregation_params(profiles, settings.CELLPROFILER)
    assert rule_params.aggregation_params(profiles, "cp", external) == full
    guards = rule_params.aggregation_params(profiles, "erm_seed0")
    assert rule_params.aggregation_params(profiles, "dp", external) == guards
    assert [rule_params.feature_kind(s, external) for s in ("cp", "dp", "erm_seed0")] == [
        "cellprofiler",
        "embedding",
        "embedding",
    ]
    assert rule_params.external_params(external, "dp") == {
        "level": "cells",
        "features": "embedding",
        "plate_column": None,
        "well_column": None,
    }
