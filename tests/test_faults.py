"""Faults: kill -9 at several points, a concurrent run, and bad input in a real workflow run."""

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from debatch.demo.plate import generate_plate, write_plate_sheet

from conftest import REPO
from workflow_helpers import SNAKEMAKE, snakemake, write_config

pytestmark = pytest.mark.slow

TINY = {
    "params": {
        "rows": 2,
        "cols": 4,
        "sites": 1,
        "image_size": 96,
        "cells_per_site": 12,
        "n_treatments": 3,
        "replicates": 2,
        "n_inactive": 1,
    }
}


def tiny_config(workdir: Path, epochs: int = 40) -> Path:
    write_plate_sheet(
        workdir / "plates.tsv",
        [("plate01", "batch1"), ("plate02", "batch2")],
        str(workdir / "demo"),
    )
    return write_config(
        workdir,
        {
            "results": str(workdir / "results"),
            "plates": str(workdir / "plates.tsv"),
            "demo": {"root": str(workdir / "demo"), **TINY},
            "train": {
                "methods": ["erm"],
                "holdout_batches": [],
                "epochs": epochs,
                "lr_schedule_epochs": epochs,
                "width": 8,
                "embedding_dim": 8,
                "batch_size": 32,
            },
            "profiles": {"corrections": ["none"]},
        },
    )


def start(workdir: Path, config: Path) -> subprocess.Popen:
    command = [
        *SNAKEMAKE,
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(config),
        "--cores",
        "2",
        "--rerun-incomplete",
    ]
    return subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


def kill_when(process: subprocess.Popen, marker: Path, timeout: float = 300) -> None:
    """SIGKILL Snakemake and every job it started as soon as ``marker`` exists."""
    deadline = time.monotonic() + timeout
    while not marker.exists():
        assert process.poll() is None, f"run ended before {marker} appeared"
        assert time.monotonic() < deadline, f"{marker} never appeared"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def assert_no_half_written_outputs(results: Path) -> None:
    """Every output under its final name is complete: readable to the end."""
    for path in results.rglob("*"):
        if path.name.startswith("."):
            continue  # temporary names of killed writers, never taken as outputs
        if path.suffix == ".parquet":
            pd.read_parquet(path)
        elif path.suffix == ".npy":
            np.asarray(np.load(path, mmap_mode="r")[-1])
        elif path.suffix == ".npz":
            with np.load(path) as stored:
                for key in stored.files:
                    stored[key]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("uninterrupted")
    snakemake(workdir, tiny_config(workdir))
    return workdir / "results"


def test_killed_three_times_then_finishes_identically_and_training_resumes(reference, tmp_path):
    config = tiny_config(tmp_path)
    results = tmp_path / "results"
    points = [
        results / "logs" / "segment" / "plate01" / "shard0.log",  # during segmentation
        results / "models" / "erm" / "seed0" / "checkpoints" / "last.pt",  # mid-training
        results / "logs" / "well_profiles" / "erm" / "seed0.log",
    ]  # during profiles
    for marker in points:
        kill_when(start(tmp_path, config), marker)
        assert_no_half_written_outputs(results)
        snakemake(tmp_path, config, "--unlock")  # a killed Snakemake leaves its lock behind
    snakemake(tmp_path, config, "--rerun-incomplete")

    train_log = (results / "logs" / "train" / "erm" / "seed0.log").read_text()
    assert "resuming from" in train_log and "after epoch" in train_log
    epochs = pd.read_csv(results / "models" / "erm" / "seed0" / "training_log.tsv", sep="\t")[
        "epoch"
    ].tolist()
    assert epochs == list(range(1, 41))
    for name in ("wells.parquet", "consensus.parquet"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(results / "profiles" / "erm" / "seed0" / "none" / name),
            pd.read_parquet(reference / "profiles" / "erm" / "seed0" / "none" / name),
        )


def test_second_run_on_the_same_folder_is_refused_with_the_way_out(tmp_path):
    config = tiny_config(tmp_path)
    first = start(tmp_path, config)
    try:
        lock_dir = tmp_path / ".snakemake" / "locks"
        deadline = time.monotonic() + 120
        while not (lock_dir.exists() and any(lock_dir.iterdir())):
            assert time.monotonic() < deadline and first.poll() is None
            time.sleep(0.05)
        second = snakemake(tmp_path, config, check=False)
        assert second.returncode != 0
        message = second.stdout + second.stderr
        assert "Directory cannot be locked" in message and "--unlock" in message
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()


def test_corrupt_tiff_fails_its_plate_with_one_line_and_keeps_other_plates(tmp_path):
    for plate, batch in (("good", "b1"), ("bad", "b2")):
        generate_plate(tmp_path / plate, plate, batch, TINY["params"])
    broken = tmp_path / "bad" / "images" / "r01c02f01p01-ch3sk1fk1fl1.tiff"
    broken.write_bytes(broken.read_bytes()[:300])  # truncated mid-file
    pd.DataFrame(
        [
            {
                "plate": p,
                "batch": b,
                "images": str(tmp_path / p / "images"),
                "pattern": "opera_phenix",
                "platemap": str(tmp_path / p / "platemap.tsv"),
            }
            for p, b in (("good", "b1"), ("bad", "b2"))
        ]
    ).to_csv(tmp_path / "plates.tsv", sep="\t", index=False)
    config = write_config(
        tmp_path,
        {
            "results": str(tmp_path / "results"),
            "plates": str(tmp_path / "plates.tsv"),
            "demo": {"enabled": False},
            "train": {"holdout_batches": []},
        },
    )
    targets = [str(tmp_path / "results" / "illum" / f"{p}.npz") for p in ("good", "bad")]
    result = snakemake(tmp_path, config, "--keep-going", *targets, check=False)
    assert result.returncode != 0
    log = (tmp_path / "results" / "logs" / "illum" / "bad.log").read_text()
    errors = [line for line in log.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and f"cannot read image {broken}" in errors[0]
    assert "Traceback" not in log
    assert (tmp_path / "results" / "illum" / "good.npz").exists()
    assert not (tmp_path / "results" / "illum" / "bad.npz").exists()


def spoilt_screen(tmp_path: Path, spoil) -> Path:
    """Two generated plates (good, bad) as a real screen (demo off); ``spoil(images folder,
    platemap)`` damages the bad one. Returns the config."""
    for plate, batch in (("good", "b1"), ("bad", "b2")):
        generate_plate(tmp_path / plate, plate, batch, TINY["params"])
    spoil(tmp_path / "bad" / "images", pd.read_csv(tmp_path / "bad" / "platemap.tsv", sep="\t"))
    pd.DataFrame(
        [
            {
                "plate": p,
                "batch": b,
                "images": str(tmp_path / p / "images"),
                "pattern": "opera_phenix",
                "platemap": str(tmp_path / p / "platemap.tsv"),
            }
            for p, b in (("good", "b1"), ("bad", "b2"))
        ]
    ).to_csv(tmp_path / "plates.tsv", sep="\t", index=False)
    return write_config(
        tmp_path,
        {
            "results": str(tmp_path / "results"),
            "plates": str(tmp_path / "plates.tsv"),
            "demo": {"enabled": False},
            "train": {"holdout_batches": []},
        },
    )


def image_of(folder: Path, well: str, channel: int) -> Path:
    row, col = ord(well[0]) - 64, int(well[1:])
    return folder / f"r{row:02d}c{col:02d}f01p01-ch{channel}sk1fk1fl1.tiff"


def rewrite(path: Path, change) -> None:
    import tifffile

    tifffile.imwrite(path, change(tifffile.imread(path)))


def test_a_site_at_another_bit_depth_and_a_blank_channel_fail_qc_naming_the_channel(tmp_path):
    def spoil(images, platemap):
        wells = platemap[platemap["role"] == "treatment"]["well"].tolist()
        for channel in range(1, 6):  # well 1: every channel exported at 8 bit into 16-bit files
            rewrite(image_of(images, wells[0], channel), lambda a: (a >> 8).astype(a.dtype))
        rewrite(image_of(images, wells[1], 4), lambda a: np.zeros_like(a))  # well 2: AGP blank
        spoil.wells = wells

    config = spoilt_screen(tmp_path, spoil)
    snakemake(tmp_path, config, str(tmp_path / "results" / "qc" / "bad.parquet"))
    qc = pd.read_parquet(tmp_path / "results" / "qc" / "bad.parquet").set_index("Metadata_Well")
    first, second = spoil.wells[:2]
    assert (
        qc.loc[first, "QC_Failed"].startswith("scale DNA x0.00")
        and "scale Mito" in qc.loc[first, "QC_Failed"]
    )
    assert "constant AGP" in qc.loc[second, "QC_Failed"]
    assert qc.drop(index=[first, second])["QC_Pass"].mean() > 0.8
    log = (tmp_path / "results" / "logs" / "qc" / "bad.log").read_text()
    assert f"failed QC: well {second} site 1 (" in log


def test_a_plate_whose_negcon_wells_fail_qc_stops_at_qc_naming_them(tmp_path):
    def spoil(images, platemap):
        for well in platemap[platemap["role"] == "negcon"]["well"]:
            rewrite(image_of(images, well, 4), lambda a: np.zeros_like(a))

    config = spoilt_screen(tmp_path, spoil)
    results = tmp_path / "results"
    snakemake(tmp_path, config, str(results / "cells" / "bad.parquet"))
    before = {p: p.read_bytes() for p in (results / "cells").iterdir()}
    result = snakemake(tmp_path, config, str(results / "qc" / "bad.parquet"), check=False)
    assert result.returncode != 0 and not (results / "qc" / "bad.parquet").exists()
    log = (results / "logs" / "qc" / "bad.log").read_text()
    assert "plate bad: QC left no cell in its negcon wells" in log and "constant AGP" in log
    assert {p: p.read_bytes() for p in (results / "cells").iterdir()} == before
    dropping = config.parent / "drop.yaml"
    dropping.write_text(
        config.read_text().replace("plate_without_negcon: fail", "plate_without_negcon: drop")
    )
    snakemake(tmp_path, dropping, str(results / "qc" / "bad.parquet"))
    assert "left out of the profiles" in (results / "logs" / "qc" / "bad.log").read_text()


def test_an_odd_shaped_image_on_the_first_site_is_the_one_named(tmp_path):
    odd = {}

    def spoil(images, platemap):
        odd["path"] = image_of(images, "A01", 1)
        rewrite(odd["path"], lambda a: a[:80, :90].copy())

    config = spoilt_screen(tmp_path, spoil)
    result = snakemake(
        tmp_path, config, str(tmp_path / "results" / "illum" / "bad.npz"), check=False
    )
    log = (tmp_path / "results" / "logs" / "illum" / "bad.log").read_text()
    assert result.returncode != 0
    assert (
        f"1 DNA image(s) differ in shape from the plate's other 7 (96, 96): {odd['path']} (80, 90)"
        in log
    )
