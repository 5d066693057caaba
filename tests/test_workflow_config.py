"""Start-up checks: bad config or plate sheet fails before any job, naming the culprit."""

import json
from pathlib import Path

import pandas as pd
import pytest

from debatch.demo.plate import write_plate_sheet

from conftest import REPO
from workflow_helpers import scheduled_rules, snakemake, tiny_workdir, write_config


def plate_sheet(path, rows):
    pd.DataFrame(rows, columns=["plate", "batch", "images", "pattern", "platemap"]).to_csv(
        path, sep="\t", index=False
    )
    return str(path)


def startup_error(tmp_path, overrides, results=None):
    config = write_config(tmp_path, {"results": results or str(tmp_path / "results"), **overrides})
    result = snakemake(tmp_path, config, "--dry-run", check=False)
    assert result.returncode != 0
    lines = [
        line for line in (result.stdout + result.stderr).splitlines() if "debatch config:" in line
    ]
    assert lines, result.stderr[-3000:]
    return lines[0]


def test_unknown_stage_key_is_named(tmp_path):
    line = startup_error(
        tmp_path, {"plates": plate_sheet(tmp_path / "p.tsv", []), "crops": {"sise": 32}}
    )
    assert "crops" in line and "'sise'" in line


def test_wrong_type_is_named(tmp_path):
    line = startup_error(tmp_path, {"segment": {"propagate": {"nucleus_diameter": "big"}}})
    assert "segment.propagate.nucleus_diameter must be of type float" in line


def test_missing_image_folder_is_named(tmp_path):
    sheet = plate_sheet(
        tmp_path / "p.tsv", [["P1", "b1", str(tmp_path / "nowhere"), "opera_phenix", "map.tsv"]]
    )
    line = startup_error(tmp_path, {"plates": sheet})
    assert f"plate P1: image folder not found: {tmp_path / 'nowhere'}" in line


def test_duplicate_plate_names_are_named(tmp_path):
    row = ["P1", "b1", str(tmp_path), "opera_phenix", "map.tsv"]
    line = startup_error(tmp_path, {"plates": plate_sheet(tmp_path / "p.tsv", [row, row])})
    assert "plate(s) ['P1'] more than once" in line


def test_platemap_without_negcon_is_named(tmp_path):
    platemap = tmp_path / "map.tsv"
    pd.DataFrame({"well": ["A01"], "treatment": ["x"], "role": ["treatment"]}).to_csv(
        platemap, sep="\t", index=False
    )
    sheet = plate_sheet(
        tmp_path / "p.tsv", [["P1", "b1", str(tmp_path), "opera_phenix", str(platemap)]]
    )
    line = startup_error(tmp_path, {"plates": sheet})
    assert "plate P1" in line and "no negcon well" in line


def test_a_target_of_a_plate_not_on_the_sheet_is_named(tmp_path):
    """The plate wildcard matches any name (fast matching at 2,000 plates); the sheet decides."""
    plates = str(REPO / "config" / "plates.tsv")
    config = write_config(tmp_path, {"results": str(tmp_path / "results"), "plates": plates})
    target = str(tmp_path / "results" / "crops" / "plate99.npy")
    result = snakemake(tmp_path, config, "--dry-run", target, check=False)
    assert result.returncode != 0
    assert "plate 'plate99' is not on the plate sheet" in result.stdout + result.stderr


def test_unknown_holdout_batch_is_named(tmp_path):
    line = startup_error(
        tmp_path,
        {"plates": str(REPO / "config" / "plates.tsv"), "train": {"holdout_batches": ["batch9"]}},
    )
    assert "holdout_batches ['batch9']" in line


@pytest.mark.parametrize("key, value", [("nuclei_channel", "Hoechst")])
def test_segmentation_channel_must_exist(tmp_path, key, value):
    assert f"{key} 'Hoechst' is not one of the channels" in startup_error(tmp_path, {key: value})


def test_unwritable_results_folder_is_named(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    line = startup_error(
        tmp_path,
        {"plates": str(REPO / "config" / "plates.tsv"), "train": {"holdout_batches": []}},
        results=str(blocker / "results"),
    )
    assert f"results folder {blocker / 'results'} is not writable" in line


def test_two_channels_with_one_raw_id_are_named(tmp_path):
    line = startup_error(tmp_path, {"channels": {"DNA": "1", "ER": "2", "RNA": "2", "AGP": "4"}})
    assert "['ER', 'RNA'] all map to raw channel id '2'" in line


@pytest.mark.slow
def test_an_overlays_channels_replace_the_defaults(tmp_path):
    """A real screen's first run is an overlay: its channels (renamed, one fewer) are the ones
    used, not merged into the demo's five."""
    write_plate_sheet(tmp_path / "plates.tsv", [("plate01", "batch1")], str(tmp_path / "demo"))
    demo = {
        "rows": 1,
        "cols": 2,
        "sites": 1,
        "image_size": 64,
        "cells_per_site": 4,
        "n_treatments": 1,
        "replicates": 1,
        "n_inactive": 0,
    }
    base = write_config(
        tmp_path,
        {
            "results": str(tmp_path / "results"),
            "plates": str(tmp_path / "plates.tsv"),
            "demo": {"root": str(tmp_path / "demo"), "params": demo},
            "train": {"holdout_batches": []},
        },
    )
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(
        "channels: {Hoechst: '1', ER: '2', RNA: '3', AGP: '4'}\nnuclei_channel: Hoechst\n"
    )
    snakemake(tmp_path, [base, overlay], "--until", "manifest")
    manifest = pd.read_parquet(tmp_path / "results" / "manifest" / "plate01.parquet")
    assert [c for c in manifest if c.startswith("Path_")] == [
        f"Path_{c}" for c in ("Hoechst", "ER", "RNA", "AGP")
    ]


def real_plate(folder, wells=("A01", "A02"), treatments=("DMSO", "cpd1"), name="map.tsv"):
    """A plate folder as start-up sees it (file names, a platemap), no pixels: (images, map)."""
    images = folder / "images"
    images.mkdir(parents=True)
    for well in wells:
        row, col = ord(well[0]) - 64, int(well[1:])
        (images / f"r{row:02d}c{col:02d}f01p01-ch1sk1fk1fl1.tiff").touch()
    roles = ["negcon"] + ["treatment"] * (len(wells) - 1)
    pd.DataFrame({"well": wells, "treatment": treatments, "role": roles}).to_csv(
        folder / name, sep="\t", index=False
    )
    return str(images), str(folder / name)


def sheet_of(tmp_path, rows):
    """A plate sheet of (plate, batch, images, platemap) rows, pattern opera_phenix."""
    return plate_sheet(
        tmp_path / "plates.tsv", [[p, b, images, "opera_phenix", m] for p, b, images, m in rows]
    )


def test_names_differing_only_by_case_or_spaces_are_refused_naming_them(tmp_path):
    """Issue 24 case 1: 'DMSO' and 'dmso' (or 'B1' and 'b1') would be two treatments (two
    batches): refused at start-up, in one platemap, across platemaps and in the sheet."""
    one = real_plate(tmp_path / "one", treatments=("DMSO", "dmso"))
    line = startup_error(tmp_path, {"plates": sheet_of(tmp_path, [("P1", "b1", *one)])})
    assert f"platemap {one[1]} column treatment: 'DMSO' / 'dmso' differ only by case" in line
    a = real_plate(tmp_path / "a", treatments=("DMSO", "cpd  1"))
    b = real_plate(tmp_path / "b", treatments=("DMSO", "cpd 1"))
    line = startup_error(
        tmp_path, {"plates": sheet_of(tmp_path, [("P1", "b1", *a), ("P2", "b1", *b)])}
    )
    assert f"treatments 'cpd  1' ({a[1]}) / 'cpd 1' ({b[1]}) differ only by case" in line
    line = startup_error(
        tmp_path, {"plates": sheet_of(tmp_path, [("P1", "B1", *a), ("P2", "b1", *b)])}
    )
    assert "column batch: 'B1' / 'b1' differ only by case or whitespace" in line


def test_two_plates_reading_one_set_of_images_are_refused_naming_both(tmp_path):
    """Issue 24 case 2: the same folder under two plate names, a symlink to it, or a folder
    of links to another plate's files would be analysed twice (the copy another batch's
    plate): refused at start-up, naming both plates."""
    images, platemap = real_plate(tmp_path / "p1")
    linked = tmp_path / "linked"
    linked.symlink_to(images)
    links = tmp_path / "links"
    links.mkdir()
    for file in sorted((tmp_path / "p1" / "images").iterdir()):
        (links / file.name).symlink_to(file)
    for other in (images, str(linked), str(links)):
        rows = [("P1", "b1", images, platemap), ("P2", "b2", other, platemap)]
        line = startup_error(tmp_path, {"plates": sheet_of(tmp_path, rows)})
        assert f"plates P1 and P2 read the same images ({images} after symlinks" in line, other


def test_plates_sharing_a_template_manifest_are_told_apart_by_the_files_it_lists(tmp_path):
    """A CSV manifest's relative paths are relative to each plate's image folder: one template
    manifest for two plates with their own folders is fine. Two manifests listing the same
    (absolute) files are one set of images under two plate names: refused naming both."""
    one = real_plate(tmp_path / "one")
    two = real_plate(tmp_path / "two")
    files = sorted(p.name for p in Path(one[0]).iterdir())
    rows = [{"well": f"A0{i + 1}", "site": 1, "channel": 1, "path": f} for i, f in enumerate(files)]
    template = tmp_path / "template.csv"
    pd.DataFrame(rows).to_csv(template, index=False)
    sheet = plate_sheet(
        tmp_path / "plates.tsv",
        [[p, "b1", images, str(template), m] for p, (images, m) in (("P1", one), ("P2", two))],
    )
    holdout = {"train": {"holdout_batches": []}}
    config = write_config(
        tmp_path, {"results": str(tmp_path / "results"), "plates": sheet, **holdout}
    )
    snakemake(tmp_path, config, "--dry-run")
    for name in ("a.csv", "b.csv"):
        listed = [{**row, "path": str(Path(one[0]) / row["path"])} for row in rows]
        pd.DataFrame(listed).to_csv(tmp_path / name, index=False)
    sheet = plate_sheet(
        tmp_path / "plates.tsv",
        [["P1", "b1", one[0], str(tmp_path / "a.csv"), one[1]]]
        + [["P2", "b2", two[0], str(tmp_path / "b.csv"), two[1]]],
    )
    line = startup_error(tmp_path, {"plates": sheet, **holdout})
    first = Path(one[0]).resolve() / files[0]
    assert f"plates P1 and P2 read the same images (their CSV manifests both list {first}" in line


def test_without_the_default_config_the_start_up_says_what_was_loaded(tmp_path):
    """Issue 24 case 6: -d DIR with an overlay, where DIR has no config/config.yaml: one line
    saying what was loaded and the --configfile that adds the defaults, not a schema dump."""
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("crops: {size: 64}\n")
    result = snakemake(tmp_path, overlay, "--dry-run", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "required property" not in output
    (line,) = [line for line in output.splitlines() if "debatch config:" in line]
    assert (
        f"only ['{overlay}'] was loaded" in line
        and f"not in the working directory {tmp_path}" in line
    )
    assert f"--configfile {REPO}/config/config.yaml {overlay}" in line


def test_names_yaml_reads_as_numbers_are_taken_as_written(tmp_path):
    """Issue 24 case 7: config/README.md's `holdout_batches: [2021_05_03]` (YAML: the number
    20210503) names batch 2021_05_03 of the sheet, and a name on the command line (--config
    nuclei_channel=1, which Snakemake reads as a number) is the name written."""
    a = real_plate(tmp_path / "a")
    b = real_plate(tmp_path / "b")
    sheet = sheet_of(tmp_path, [("001", "2021_05_03", *a), ("002", "1e5", *b)])
    config = write_config(tmp_path, {"results": str(tmp_path / "results"), "plates": sheet})
    overlay = tmp_path / "screen.yaml"
    overlay.write_text("train:\n  holdout_batches: [2021_05_03]\n")
    snakemake(tmp_path, [config, overlay], "--dry-run")
    # --config reads 1 (and 1e5, 2021_05_03) as a number too: taken as the name written, "1",
    # not a channel of the default config's, and a channel once one is named so
    result = snakemake(
        tmp_path, [config, overlay], "--dry-run", "--config", "nuclei_channel=1", check=False
    )
    assert "debatch config: nuclei_channel '1' is not one of the channels" in result.stdout
    channels = {"1": "1", "ER": "2", "RNA": "3", "AGP": "4", "Mito": "5"}
    renamed = write_config(
        tmp_path,
        {"results": str(tmp_path / "results"), "plates": sheet},
        replace={"channels": channels},
    )
    snakemake(tmp_path, [renamed, overlay], "--dry-run", "--config", "nuclei_channel=1")


def test_a_run_with_nothing_to_profile_is_refused(tmp_path):
    overrides = {
        "plates": str(REPO / "config" / "plates.tsv"),
        "train": {"methods": []},
        "features": {"enabled": False},
    }
    assert "nothing to profile: train.methods, embed.models" in startup_error(tmp_path, overrides)


def test_a_frozen_model_of_other_channels_is_refused_at_start_up(tmp_path):
    """The model's card (model.json) is read before any job: no image stage runs first."""
    model = tmp_path / "elsewhere" / "model.pt"
    model.parent.mkdir()
    model.write_bytes(b"")
    card = {"channels": ["DNA", "RNA"], "crop_shape": [2, 32, 32]}
    (model.parent / "model.json").write_text(json.dumps(card))
    overrides = {
        "plates": str(REPO / "config" / "plates.tsv"),
        "embed": {"models": {"abra_ref": str(model)}},
    }
    line = startup_error(tmp_path, overrides)
    assert "abra_ref" in line and "trained on channels ['DNA', 'RNA']" in line


@pytest.mark.parametrize(
    "external, message",
    [
        ({"cellprofiler": {"path": "t.parquet"}}, "a source cannot be named 'cellprofiler'"),
        ({"mine": {"path": "nowhere/*.parquet"}}, "external.mine.path: no such file"),
        ({"mine": {"path": "t.parquet", "level": "site"}}, "external.mine.level"),
    ],
)
def test_an_external_source_that_cannot_run_is_named(tmp_path, external, message):
    (tmp_path / "t.parquet").touch()
    config = tiny_workdir(tmp_path, {"external": external})
    result = snakemake(tmp_path, config, "--dry-run", check=False)
    output = (result.stdout + result.stderr).splitlines()
    lines = [line for line in output if "debatch config:" in line]
    assert result.returncode != 0 and lines and message in lines[0], output[-20:]


def test_external_sources_add_their_jobs_and_per_cell_anndata_only_for_cells(tmp_path):
    """One external_cells job per source; per-cell AnnData of a source of cells, never of a
    table of wells; a dry run reads no table."""
    (tmp_path / "t.parquet").touch()
    external = {"cells": {"path": "t.parquet"}, "wells": {"path": "t.parquet", "level": "wells"}}
    config = tiny_workdir(tmp_path, {"external": external, "outputs": {"anndata_cells": True}})
    rules = scheduled_rules(tmp_path, config)
    assert rules["external_cells"] == 2 and rules["well_profiles"] == 4
    assert rules["cells_h5ad"] == 3 * 3  # erm_seed0, cellprofiler, cells x 3 plates
