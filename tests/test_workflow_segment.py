"""End to end: segmentation, features and crops split into shards give the same files as one
job, and sites failing image QC are flagged, logged and left out of the crops."""

import numpy as np
import pandas as pd
import pytest
import tifffile
import yaml
from scipy import ndimage

from debatch.demo.plate import generate_plate

from workflow_helpers import scheduled_rules, snakemake, write_config

pytestmark = pytest.mark.slow

PLATE = {
    "rows": 2,
    "cols": 4,
    "sites": 2,
    "image_size": 256,
    "cells_per_site": 40,
    "n_treatments": 3,
    "replicates": 2,
    "n_inactive": 1,
}
BLURRED, SATURATED = ("A02", 1), ("B03", 2)  # (well, site) spoiled on purpose


def site_files(images, well, site):
    row, col = ord(well[0]) - ord("A") + 1, int(well[1:])
    return sorted(images.glob(f"r{row:02d}c{col:02d}f{site:02d}p01-ch*sk1fk1fl1.tiff"))


@pytest.fixture(scope="module")
def plate(tmp_path_factory):
    """A generated plate (not the workflow's demo) with one out-of-focus and one saturated site."""
    root = tmp_path_factory.mktemp("spoiled")
    generate_plate(root / "P1", "P1", "b1", PLATE)
    images = root / "P1" / "images"
    for path in site_files(images, *BLURRED):
        tifffile.imwrite(path, ndimage.gaussian_filter(tifffile.imread(path), 3.0))
    agp = site_files(images, *SATURATED)[3]
    pixels = tifffile.imread(agp)
    pixels[:32, :] = 65535  # 12.5 % of the field clipped at the detector maximum
    tifffile.imwrite(agp, pixels)
    pd.DataFrame(
        [
            {
                "plate": "P1",
                "batch": "b1",
                "images": str(images),
                "pattern": "opera_phenix",
                "platemap": str(root / "P1" / "platemap.tsv"),
            }
        ]
    ).to_csv(root / "plates.tsv", sep="\t", index=False)
    return root


TARGETS = ("crops/P1.npy", "features/P1.parquet", "qc/overlays/P1.png", "qc/heatmaps/P1.png")


def run(plate, workdir, shards):
    config = write_config(
        workdir,
        {
            "results": str(workdir / "results"),
            "plates": str(plate / "plates.tsv"),
            "demo": {"enabled": False},
            "train": {"holdout_batches": []},
            "segment": {"shards": shards},
        },
    )
    results = workdir / "results"
    snakemake(workdir, config, *(str(results / name) for name in TARGETS))
    return results


@pytest.fixture(scope="module")
def runs(plate, tmp_path_factory):
    return {
        shards: run(plate, tmp_path_factory.mktemp(f"shards{shards}"), shards) for shards in (1, 3)
    }


def rules_after_change(results, section, key, value):
    """Jobs a dry run schedules for TARGETS after one config change."""
    workdir = results.parent
    settings = yaml.safe_load((workdir / "config.yaml").read_text())
    block = settings[section]
    for part in key.split(".")[:-1]:
        block = block.setdefault(part, {})
    block[key.split(".")[-1]] = value
    changed = workdir / f"config_{section}.yaml"
    changed.write_text(yaml.safe_dump(settings, sort_keys=False))
    # the helper's --cores ends the --configfile list, so the targets are read as targets
    return scheduled_rules(workdir, changed, *(str(results / name) for name in TARGETS))


def test_every_plate_file_is_identical_whatever_the_shard_count(runs):
    one, three = runs[1], runs[3]
    for stage in ("cells", "sites", "qc", "crops", "features"):
        name = f"{stage}/P1.parquet"
        pd.testing.assert_frame_equal(pd.read_parquet(one / name), pd.read_parquet(three / name))
    np.testing.assert_array_equal(np.load(one / "crops/P1.npy"), np.load(three / "crops/P1.npy"))
    with np.load(one / "masks/P1.npz") as a, np.load(three / "masks/P1.npz") as b:
        assert sorted(a.files) == sorted(b.files) and len(a.files) == 2 * 16
        for name in a.files:
            np.testing.assert_array_equal(a[name], b[name])
    assert len(list((three / "logs" / "segment" / "P1").glob("shard*.log"))) == 3
    assert not list((three / "crops").glob("P1/shard*"))  # shard files are temporary


def test_failed_sites_are_flagged_logged_and_get_no_crops(runs):
    results = runs[3]
    qc = pd.read_parquet(results / "qc" / "P1.parquet").set_index(
        ["Metadata_Well", "Metadata_Site"]
    )
    assert sorted(qc.index[~qc["QC_Pass"]]) == sorted([BLURRED, SATURATED])
    assert (
        qc.loc[BLURRED, "QC_Failed"] == "focus" and qc.loc[SATURATED, "QC_Failed"] == "saturation"
    )
    cells = pd.read_parquet(results / "cells" / "P1.parquet")
    table = pd.read_parquet(results / "crops" / "P1.parquet")
    sites = set(zip(table["Metadata_Well"], table["Metadata_Site"]))
    assert BLURRED not in sites and SATURATED not in sites
    spoiled = int(qc.loc[[BLURRED, SATURATED], "Count_Cells"].sum())
    assert (
        spoiled > 0
        and len(table) == len(cells) - spoiled == np.load(results / "crops" / "P1.npy").shape[0]
    )
    qc_log = (results / "logs" / "qc" / "P1.log").read_text()
    assert (
        f"2 of 16 sites failed (focus: 1 site; saturation: 1 site); they hold {spoiled} of "
        f"{len(cells)} cells" in qc_log
    )
    crops_log = (results / "logs" / "crops" / "P1.log").read_text()
    assert f"{len(table)} crops" in crops_log and f"{spoiled} on sites that failed QC" in crops_log


def test_qc_thresholds_and_unused_cellpose_settings_do_not_rerun_segmentation(runs):
    results = runs[3]
    assert rules_after_change(results, "segment", "cellpose.flow_threshold", 0.0) == {}
    jobs = rules_after_change(results, "qc", "focus_mad", 20.0)
    assert set(jobs) == {"qc", "crops", "gather_crops", "qc_figures"} and jobs["crops"] == 3
    assert set(rules_after_change(results, "qc", "overlay_sites", 2)) == {"qc_figures"}


@pytest.mark.parametrize(
    "section, block, expected",
    [
        (
            "segment",
            {"cellpose": {"flow": 0.4}},
            "segment: unknown segment.cellpose parameter(s) ['flow']",
        ),
        ("qc", {"max_saturated": 1.0}, "qc: unknown qc parameter(s) ['max_saturated']"),
        ("segment", {"method": "stardist"}, "stardist"),
    ],
)
def test_segmentation_and_qc_typos_fail_at_start_up(plate, tmp_path, section, block, expected):
    config = write_config(
        tmp_path,
        {
            "results": str(tmp_path / "results"),
            "demo": {"enabled": False},
            "plates": str(plate / "plates.tsv"),
            "train": {"holdout_batches": []},
            section: block,
        },
    )
    result = snakemake(tmp_path, config, "-n", check=False)
    assert result.returncode != 0 and expected in result.stdout + result.stderr
