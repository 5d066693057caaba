"""End to end on real pixels: NF1 Cell Painting fields through manifest -> segment -> crops.

Checks the per-field nucleus count against CellProfiler's masks for the same fields.
"""

import re

import numpy as np
import pandas as pd
import pytest
import tifffile
from scipy import ndimage

from workflow_helpers import snakemake, write_config

pytestmark = pytest.mark.slow

NAME = re.compile(r"(?P<well>[A-H]\d+)_01_(?P<channel>\d)_(?P<site>\d+)_\w+_001\.tif$")


@pytest.fixture(scope="module")
def nf1_run(tmp_path_factory):
    from conftest import REAL_DATA

    folder = REAL_DATA / "nf1_plate2"
    if not folder.is_dir():
        pytest.skip(f"real images not found at {folder}")
    workdir = tmp_path_factory.mktemp("nf1")
    images = folder / "Plate_2_images"
    records = [
        {**NAME.match(p.name).groupdict(), "path": p.name} for p in sorted(images.glob("*.tif"))
    ]
    pd.DataFrame(records)[["well", "site", "channel", "path"]].to_csv(
        workdir / "load_data.csv", index=False
    )
    wells = sorted({r["well"] for r in records})
    pd.DataFrame(
        {
            "well": wells,
            "treatment": ["WT"] + ["NF1_null"] * (len(wells) - 1),
            "role": ["negcon"] + ["treatment"] * (len(wells) - 1),
        }
    ).to_csv(workdir / "platemap.tsv", sep="\t", index=False)
    pd.DataFrame(
        [
            {
                "plate": "Plate_2",
                "batch": "nf1",
                "images": str(images),
                "pattern": str(workdir / "load_data.csv"),
                "platemap": str(workdir / "platemap.tsv"),
            }
        ]
    ).to_csv(workdir / "plates.tsv", sep="\t", index=False)
    config = write_config(
        workdir,
        {
            "results": str(workdir / "results"),
            "plates": str(workdir / "plates.tsv"),
            "nuclei_channel": "DNA",
            "cell_channel": "RFP",
            "demo": {"enabled": False},
            "segment": {"propagate": {"nucleus_diameter": 50.0, "max_cell_distance": 4.0}},
            "crops": {"size": 96},
            "train": {"holdout_batches": []},
        },
        replace={"channels": {"DNA": "1", "GFP": "2", "RFP": "3"}},
    )
    snakemake(workdir, config, str(workdir / "results" / "crops" / "Plate_2.npy"))
    return workdir / "results", folder


def test_counts_within_25_percent_of_cellprofiler(nf1_run):
    results, folder = nf1_run
    cells = pd.read_parquet(results / "cells" / "Plate_2.parquet")
    masks = np.load(results / "masks" / "Plate_2.npz")
    manifest = pd.read_parquet(results / "manifest" / "Plate_2.parquet")
    assert len(manifest) == 5
    for row in manifest.itertuples():
        key = f"{row.Metadata_Well}_{row.Metadata_Site}"
        stem = row.Path_DNA.rsplit("/", 1)[1].removesuffix(".tif")
        expected = ndimage.label(
            tifffile.imread(folder / "Plate_2_masks" / f"{stem}_MaskNuclei.tiff") > 0
        )[1]
        on_site = cells[
            (cells["Metadata_Well"] == row.Metadata_Well)
            & (cells["Metadata_Site"] == row.Metadata_Site)
        ]
        found = int(
            (~on_site["Nuclei_Touching_Border"]).sum()
        )  # CellProfiler dropped border nuclei
        assert abs(found - expected) <= 0.25 * expected, (
            f"{key}: {found} vs CellProfiler {expected}"
        )
        assert masks[f"{key}_nuclei"].max() == len(on_site)


def test_crops_match_cells_and_hold_real_signal(nf1_run):
    results, _ = nf1_run
    cells = pd.read_parquet(results / "cells" / "Plate_2.parquet")
    crops = np.load(results / "crops" / "Plate_2.npy", mmap_mode="r")
    table = pd.read_parquet(results / "crops" / "Plate_2.parquet")
    assert crops.shape == (len(cells), 3, 96, 96) and len(table) == len(cells)
    centre = np.asarray(crops[:, 0, 40:56, 40:56], np.float32).mean(axis=(1, 2))
    corner = np.asarray(crops[:, 0, :8, :8], np.float32).mean(axis=(1, 2))
    assert np.median(centre) > 2 * np.median(corner)  # DNA is brightest at the nucleus centroid
    assert set(table["Metadata_Treatment"]) == {"WT", "NF1_null"}


@pytest.fixture(scope="module")
def atlas_run(tmp_path_factory):
    """The 1080 px Opera Phenix atlas field through manifest, illum, segment, QC, crops and
    features, with only channels (brightfield among them), nucleus_diameter and crops.size
    set besides where things are."""
    from conftest import REAL_DATA, REPO

    folder = REAL_DATA / "atlas_BR00143976"
    if not folder.is_dir():
        pytest.skip(f"real images not found at {folder}")
    workdir = tmp_path_factory.mktemp("atlas")
    pd.DataFrame({"well": ["C03"], "treatment": ["DMSO"], "role": ["negcon"]}).to_csv(
        workdir / "platemap.tsv", sep="\t", index=False
    )
    pd.DataFrame(
        [
            {
                "plate": "BR00143976",
                "batch": "atlas",
                "images": str(folder / "images"),
                "pattern": "opera_phenix",
                "platemap": str(workdir / "platemap.tsv"),
            }
        ]
    ).to_csv(workdir / "plates.tsv", sep="\t", index=False)
    import yaml

    atlas = yaml.safe_load((REPO / "config" / "atlas.yaml").read_text())
    config = write_config(
        workdir,
        {
            "results": str(workdir / "results"),
            "plates": str(workdir / "plates.tsv"),
            "demo": {"enabled": False},
            "train": {"holdout_batches": []},
            "segment": {"propagate": {"nucleus_diameter": 30.0}},
            "crops": {"size": 96},
        },
        replace={"channels": atlas["channels"]},
    )
    targets = [
        f"{workdir}/results/{stage}/BR00143976.{ext}"
        for stage, ext in (("crops", "npy"), ("features", "parquet"), ("qc", "parquet"))
    ]
    snakemake(workdir, config, *targets)
    return workdir / "results", atlas["channels"]


def test_a_phenix_field_with_brightfield_runs_to_features(atlas_run):
    """Every cell of the field is cropped in all six channels (brightfield first, as listed)
    and measured, brightfield included; segmentation read DNA and AGP only."""
    results, channels = atlas_run
    cells = pd.read_parquet(results / "cells" / "BR00143976.parquet")
    crops = np.load(results / "crops" / "BR00143976.npy", mmap_mode="r")
    features = pd.read_parquet(results / "features" / "BR00143976.parquet")
    qc = pd.read_parquet(results / "qc" / "BR00143976.parquet")
    assert qc["QC_Pass"].all() and 20 <= len(cells) <= 60
    assert crops.shape == (len(cells), len(channels), 96, 96)
    assert len(features) == len(cells)
    brightfield = [c for c in features if c.endswith("_Brightfield")]
    assert brightfield and np.isfinite(features[brightfield].to_numpy(float)).mean() > 0.9
