"""Start-up checks: bad config or plate sheet fails before any job, naming the culprit."""

import pandas as pd
import pytest

from debatch.demo.plate import write_plate_sheet

from conftest import REPO
from workflow_helpers import snakemake, write_config


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
