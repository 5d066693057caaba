"""End to end: a small screen in RxRx1's layout (8-bit PNG sites, 6 channels, 2 sites per well,
metadata.csv) converted by debatch.ingest.rxrx1 and run by the real workflow with the overlay of
docs/running.md ("RxRx1 and other PNG screens") to the report.

The pixels are the demo's (cell-like, with each experiment's technical effects), exported to
8 bit as RxRx1's are: one fixed factor per channel for the whole screen, clipped at 255."""

import re

import numpy as np
import pandas as pd
import pytest
import tifffile
import yaml
from PIL import Image

from debatch.demo.plate import generate_plate
from debatch.ingest.rxrx1 import convert
from debatch.settings import CELL_TYPE, DATASET, QC_FAILED, QC_PASS, TREATMENT

from conftest import REPO
from workflow_helpers import TINY_DEMO, TINY_OVERLAY, snakemake, write_config

pytestmark = pytest.mark.slow

# (experiment, plate number, dataset): 2 experiments, 3 plates
PLATES = [("HEPG2-01", "1", "train"), ("HEPG2-01", "2", "train"), ("U2OS-01", "1", "test")]
NAMES = [f"{experiment}_{plate}" for experiment, plate, _ in PLATES]
# RxRx1's channel w{k} <- the demo's channel (1 DNA, 2 ER, 3 RNA, 4 AGP, 5 Mito) and a factor
# that brings it to 8 bit; w3 (actin) and w6 (WGA) both show the demo's AGP
CHANNELS = {1: (1, 1.5), 2: (2, 1.5), 3: (4, 1.5), 4: (3, 1.5), 5: (5, 1.5), 6: (4, 1.0)}
DEMO = {**TINY_DEMO, "sites": 2, "image_size": 128, "cells_per_site": 14}
# the config under the docs' overlay: the tiny training of .test/config, results in the workdir
RUN = {
    "results": "results",
    "train": TINY_OVERLAY["train"] | {"holdout_batches": []},
    "profiles": {"corrections": ["none"]},
}


def recipe() -> dict:
    """The overlay docs/running.md gives under "RxRx1 and other PNG screens"."""
    text = (REPO / "docs" / "running.md").read_text()
    section = text[text.index("## RxRx1 and other PNG screens") :]
    return yaml.safe_load(re.search(r"```yaml\n(.*?)```", section, re.S).group(1))


def to_8_bit(image: np.ndarray, factor: float) -> np.ndarray:
    """A 16-bit demo plane on RxRx1's 8-bit scale: 16 bit -> 8 bit, times ``factor``, clipped."""
    return np.clip(np.round(image / 257.0 * factor), 0, 255).astype(np.uint8)


def rxrx1_tree(root, demo_root) -> pd.DataFrame:
    """RxRx1's images/{dataset}/{experiment}/Plate{p}/ of the demo's plates, and the rows of
    its metadata.csv (DMSO: negative_control EMPTY; compounds: treatments named as siRNAs)."""
    rows = []
    for experiment, plate, dataset in PLATES:
        demo = demo_root / f"{experiment}_{plate}"
        generate_plate(demo, demo.name, experiment, DEMO)
        folder = root / "images" / dataset / experiment / f"Plate{plate}"
        folder.mkdir(parents=True)
        layout = pd.read_csv(demo / "platemap.tsv", sep="\t", dtype=str)
        for well, treatment in zip(layout["well"], layout["treatment"]):
            row, col = ord(well[0]) - 64, int(well[1:])
            for site in (1, 2):
                for k, (demo_channel, factor) in CHANNELS.items():
                    name = f"r{row:02d}c{col:02d}f{site:02d}p01-ch{demo_channel}sk1fk1fl1.tiff"
                    pixels = to_8_bit(tifffile.imread(demo / "images" / name), factor)
                    Image.fromarray(pixels).save(folder / f"{well}_s{site}_w{k}.png")
                negcon = treatment == "DMSO"
                rows.append(
                    {
                        "site_id": f"{experiment}_{plate}_{well}_{site}",
                        "well_id": f"{experiment}_{plate}_{well}",
                        "cell_type": experiment.split("-")[0],
                        "dataset": dataset,
                        "experiment": experiment,
                        "plate": plate,
                        "well": well,
                        "site": site,
                        "well_type": "negative_control" if negcon else "treatment",
                        "sirna": "EMPTY" if negcon else treatment.replace("cpd", "s"),
                        "sirna_id": 1138 if negcon else int(treatment[3:]) - 1,
                    }
                )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("rxrx1")
    metadata = rxrx1_tree(workdir / "rxrx1", workdir / "demo")
    metadata.to_csv(workdir / "rxrx1" / "metadata.csv", index=False)
    convert([workdir / "rxrx1" / "metadata.csv"], workdir / "rxrx1" / "images", workdir / "rxrx1")
    overlay = workdir / "rxrx1.yaml"
    overlay.write_text(yaml.safe_dump(recipe()))
    snakemake(workdir, [write_config(workdir, RUN), overlay])
    return workdir


def test_the_8_bit_png_sites_pass_qc_and_give_cells(finished_run):
    results = finished_run / "results"
    for plate, (experiment, _, dataset) in zip(NAMES, PLATES):
        manifest = pd.read_parquet(results / "manifest" / f"{plate}.parquet")
        assert len(manifest) == 2 * TINY_DEMO["rows"] * TINY_DEMO["cols"]
        first = manifest["Path_Golgi"][0]
        assert re.search(f"/{dataset}/{experiment}/Plate[12]/A01_s1_w6.png$", first)
        assert set(manifest[CELL_TYPE]) == {experiment.split("-")[0]}
        assert set(manifest[DATASET]) == {dataset}
        qc = pd.read_parquet(results / "qc" / f"{plate}.parquet")
        assert qc[QC_PASS].all(), qc[QC_FAILED].tolist()
        crops = np.load(results / "crops" / f"{plate}.npy", mmap_mode="r")
        assert crops.shape[1:] == (6, 32, 32) and len(crops) > 50
        assert 0.05 < float(np.max(crops)) <= 1.0  # crops.scale 255: 8-bit sites in [0, 1]


def test_the_report_ranks_the_held_out_experiment(finished_run):
    results = finished_run / "results"
    page = (results / "report" / "index.html").read_text()
    assert "U2OS-01" in page
    wells = pd.read_parquet(results / "profiles" / "cellprofiler" / "wells_normalised.parquet")
    assert set(wells["Metadata_Batch"]) == {"HEPG2-01", "U2OS-01"}
    assert "EMPTY" in set(wells[TREATMENT])
