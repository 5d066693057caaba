"""Start-up checks: bad config or plate sheet fails before any job, naming the culprit."""

import pandas as pd
import pytest

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
