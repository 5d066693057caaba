"""Faults: kill -9 at several points, a concurrent run, and bad input in a real workflow run."""

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from debatch.demo.plate import generate_plate
from debatch.segment.qc import qc_warnings

from conftest import CORES, REPO
from workflow_helpers import SNAKEMAKE, TINY_DEMO, snakemake, tiny_workdir, write_config

pytestmark = pytest.mark.slow


def tiny_config(workdir: Path, epochs: int = 40) -> Path:
    """The two-plate tiny screen, trained long enough for a kill to land mid-training."""
    train = {"holdout_batches": [], "epochs": epochs, "lr_schedule_epochs": epochs}
    return tiny_workdir(workdir, {"train": train}, sheet="plates_two.tsv")


def start(workdir: Path, config: Path, *targets: str) -> subprocess.Popen:
    command = [
        *SNAKEMAKE,
        "-s",
        str(REPO / "workflow" / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(config),
        "--cores",
        str(CORES),
        "--rerun-incomplete",
        *targets,
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


COMPARED = [
    Path("profiles", "erm_seed0", "none", name) for name in ("wells.parquet", "consensus.parquet")
]


def compared(workdir: Path) -> list[str]:
    """The targets of the runs compared: the profiles, not the figures and report after them
    (nor the CellProfiler features beside them), which a kill would add nothing to."""
    return [str(workdir / "results" / path) for path in COMPARED]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run's profiles."""
    workdir = tmp_path_factory.mktemp("uninterrupted")
    snakemake(workdir, tiny_config(workdir), *compared(workdir))
    return workdir / "results"


def test_killed_three_times_then_finishes_identically_and_training_resumes(reference, tmp_path):
    config = tiny_config(tmp_path)
    results, targets = tmp_path / "results", compared(tmp_path)
    points = [
        results / "logs" / "segment" / "plate01.log",  # during segmentation
        results / "models" / "erm" / "seed0" / "checkpoints" / "last.pt",  # mid-training
        results / "logs" / "well_profiles" / "erm_seed0.log",
    ]  # during profiles
    for marker in points:
        kill_when(start(tmp_path, config, *targets), marker)
        assert_no_half_written_outputs(results)
        snakemake(tmp_path, config, "--unlock")  # a killed Snakemake leaves its lock behind
    snakemake(tmp_path, config, "--rerun-incomplete", *targets)

    train_log = (results / "logs" / "train" / "erm" / "seed0.log").read_text()
    assert "resuming from" in train_log and "after epoch" in train_log
    epochs = pd.read_csv(results / "models" / "erm" / "seed0" / "training_log.tsv", sep="\t")[
        "epoch"
    ].tolist()
    assert epochs == list(range(1, 41))
    for path in COMPARED:
        pd.testing.assert_frame_equal(
            pd.read_parquet(results / path), pd.read_parquet(reference / path)
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
        generate_plate(tmp_path / plate, plate, batch, TINY_DEMO)
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
        generate_plate(tmp_path / plate, plate, batch, TINY_DEMO)
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
    # issue 24 case 9: a warning, in the log and among the report's QC warnings, that names the
    # site and says what the scale means; the summary counts sites, not "scale DNA 1"
    assert "scale (AGP, DNA, ER, Mito, RNA): 1 site" in log and "scale DNA 1" not in log
    warnings = qc_warnings(pd.read_parquet(tmp_path / "results" / "qc" / "bad.parquet"))
    (scale,) = [w for w in warnings if "another intensity scale" in w]
    assert scale.startswith("plate bad: 1 site(s) failed QC for a channel on another intensity")
    assert (
        "8-bit data in 16-bit files" in scale and f"well {first} site 1 (scale DNA x0.00" in scale
    )
    assert any(line.split(" WARNING ")[-1].endswith(scale) for line in log.splitlines())


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


def real_screen(tmp_path: Path, rows: list[dict], extra: dict | None = None) -> Path:
    """A real screen (demo off) of plates generated under tmp_path; ``rows`` are plate-sheet
    rows whose images / platemap default to the generated plate's. Returns the config."""
    for row in rows:
        folder = tmp_path / row["plate"].strip()
        if not folder.exists():
            generate_plate(folder, row["plate"].strip(), row["batch"].strip(), TINY_DEMO)
        row.setdefault("images", str(folder / "images"))
        row.setdefault("pattern", "opera_phenix")
        row.setdefault("platemap", str(folder / "platemap.tsv"))
    pd.DataFrame(rows).to_csv(tmp_path / "plates.tsv", sep="\t", index=False)
    return write_config(
        tmp_path,
        {
            "results": str(tmp_path / "results"),
            "plates": str(tmp_path / "plates.tsv"),
            "demo": {"enabled": False},
            "train": {"holdout_batches": []},
            **(extra or {}),
        },
    )


def manifests(tmp_path: Path, config, plates) -> tuple[dict[str, pd.DataFrame], str]:
    """The manifests of ``plates`` (built by the workflow), and what the run printed."""
    targets = [str(tmp_path / "results" / "manifest" / f"{p}.parquet") for p in plates]
    run = snakemake(tmp_path, config, *targets)
    found = {p: pd.read_parquet(tmp_path / "results" / "manifest" / f"{p}.parquet") for p in plates}
    return found, run.stdout + run.stderr


def test_stray_spaces_in_the_sheet_and_a_platemap_are_stripped_and_said(tmp_path):
    """Issue 24 case 1: a spreadsheet export's trailing spaces ('b1 ', 'DMSO ', a header, an
    image path) make no second batch or treatment; each file's log says it once."""
    config = real_screen(
        tmp_path, [{"plate": "good", "batch": "b1"}, {"plate": "bad", "batch": "b1"}]
    )
    sheet = pd.read_csv(tmp_path / "plates.tsv", sep="\t")
    sheet.loc[1, "batch"] = "b1 "
    sheet.loc[1, "images"] += " "
    sheet.to_csv(tmp_path / "plates.tsv", sep="\t", index=False)
    platemap = tmp_path / "bad" / "platemap.tsv"
    table = pd.read_csv(platemap, sep="\t")
    table["treatment"] += " "
    table.rename(columns={"role": "role "}).to_csv(platemap, sep="\t", index=False)
    found, output = manifests(tmp_path, config, ["good", "bad"])
    assert set(found["bad"]["Metadata_Batch"]) == set(found["good"]["Metadata_Batch"]) == {"b1"}
    treatments = set(found["good"]["Metadata_Treatment"])
    assert set(found["bad"]["Metadata_Treatment"]) == treatments and "DMSO" in treatments
    said = [line for line in output.splitlines() if "whitespace stripped" in line]
    assert len([line for line in said if str(tmp_path / "plates.tsv") in line]) == 1, said
    log = (tmp_path / "results" / "logs" / "manifest" / "bad.log").read_text()
    (line,) = [line for line in log.splitlines() if "whitespace stripped" in line]
    assert f"{platemap}: surrounding whitespace stripped from 8 cell(s) and 1 header(s)" in line


def test_a_comma_separated_platemap_with_a_byte_order_mark_is_read(tmp_path):
    """Issue 24 case 4: platemap.csv (Excel's "CSV UTF-8": commas and a BOM) is read as
    comma-separated by its name, not refused for lacking columns it has."""
    config = real_screen(tmp_path, [{"plate": "good", "batch": "b1"}])
    table = pd.read_csv(tmp_path / "good" / "platemap.tsv", sep="\t")
    table.to_csv(tmp_path / "good" / "platemap.csv", index=False, encoding="utf-8-sig")
    sheet = pd.read_csv(tmp_path / "plates.tsv", sep="\t")
    sheet["platemap"] = str(tmp_path / "good" / "platemap.csv")
    sheet.to_csv(tmp_path / "plates.tsv", sep="\t", index=False)
    found = manifests(tmp_path, config, ["good"])[0]["good"]
    assert sorted(set(found["Metadata_Treatment"])) == sorted(set(table["treatment"]))


def test_names_yaml_or_pandas_read_as_numbers_stay_as_written(tmp_path):
    """Issue 24 case 7: plate 001, batches 2021_05_03 and 1e5, treatments NA, None and 1e5
    stay those strings, and `holdout_batches: [2021_05_03]` (unquoted YAML) names that batch."""
    config = real_screen(
        tmp_path, [{"plate": "001", "batch": "2021_05_03"}, {"plate": "002", "batch": "1e5"}]
    )
    platemap = tmp_path / "001" / "platemap.tsv"
    table = pd.read_csv(platemap, sep="\t")
    names = {
        old: new
        for old, new in zip(sorted(set(table["treatment"]) - {"DMSO"}), ["NA", "None", "1e5"])
    }
    table["treatment"] = table["treatment"].replace(names)
    table.to_csv(platemap, sep="\t", index=False)
    overlay = tmp_path / "screen.yaml"
    overlay.write_text("train:\n  holdout_batches: [2021_05_03]\n")
    target = str(tmp_path / "results" / "manifest" / "001.parquet")
    snakemake(tmp_path, [config, overlay], target)
    found = pd.read_parquet(target)
    assert set(found["Metadata_Plate"]) == {"001"} and set(found["Metadata_Batch"]) == {
        "2021_05_03"
    }
    assert set(found["Metadata_Treatment"]) == {"DMSO", *names.values()}


def test_a_site_of_specks_is_no_cells_and_fails_qc_saying_so(tmp_path):
    """Issue 24 case 3: a DNA channel of background and six specks of a few bright pixels gives
    no nuclei (a speck is not a cell), and its site fails QC as mostly specks, a warning."""

    def spoil(images, platemap):
        spoil.well = platemap[platemap["role"] == "treatment"]["well"].iloc[0]

        def specks(a):  # the site's own background (vignetting, camera noise), no nuclei
            background = ndimage.gaussian_filter(ndimage.minimum_filter(a.astype(float), 15), 8)
            flat = background + np.random.default_rng(0).normal(0, 10, a.shape)
            for y, x in ((10, 10), (10, 50), (30, 80), (50, 20), (70, 60), (85, 85)):
                flat[y : y + 3, x : x + 3] = 60000  # 3 x 3 px: 21-25 px "nuclei" before
            return np.clip(flat, 0, 65535).astype(a.dtype)

        rewrite(image_of(images, spoil.well, 1), specks)

    config = spoilt_screen(tmp_path, spoil)
    snakemake(tmp_path, config, str(tmp_path / "results" / "qc" / "bad.parquet"))
    cells = pd.read_parquet(tmp_path / "results" / "cells" / "bad.parquet")
    assert spoil.well not in set(cells["Metadata_Well"]) and len(cells) > 50
    qc = pd.read_parquet(tmp_path / "results" / "qc" / "bad.parquet").set_index("Metadata_Well")
    assert qc.loc[spoil.well, "QC_Failed"] == "cell count;specks 6 of 6 objects"
    log = (tmp_path / "results" / "logs" / "qc" / "bad.log").read_text()
    assert (
        "WARNING" in log
        and "mostly specks, not cells" in log
        and f"well {spoil.well} site 1 (specks 6 of 6 objects)" in log
    )


def test_a_full_disk_names_the_file_and_leaves_no_temporary(tmp_path):
    """Issue 24 case 5: crops written to a full disk (a 64 kB tmpfs): one line naming the file
    and "No space left on device", no SIGBUS, no traceback, no .tmp file left behind."""
    config = spoilt_screen(tmp_path, lambda images, platemap: None)
    results = tmp_path / "results"
    snakemake(tmp_path, config, str(results / "qc" / "bad.parquet"))
    (results / "crops").mkdir()
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "true"], check=False)
    if probe.returncode != 0:
        pytest.skip("no user namespaces here to mount a small tmpfs in")
    command = " ".join(
        [*SNAKEMAKE, "-s", str(REPO / "workflow" / "Snakefile"), "--directory", str(tmp_path)]
        + ["--configfile", str(config), "--cores", "1", str(results / "crops" / "bad.npy")]
    )
    script = (
        f"mount -t tmpfs -o size=64k tmpfs {results / 'crops'} && {command}; "
        f"echo rc=$?; find {results / 'crops'} -name '*.tmp*'"
    )
    run = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert "rc=1" in run.stdout and ".tmp" not in run.stdout.split("rc=1")[-1], run.stdout[-2000:]
    log = (results / "logs" / "crops" / "bad.log").read_text()
    (error,) = [line for line in log.splitlines() if "ERROR" in line]
    crops = results / "crops" / "bad.npy"
    assert f"debatch error: cannot write {crops}: No space left on device" in error
    assert "Traceback" not in log
