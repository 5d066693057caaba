"""cellpose: model resolution without hangs, one-to-one pairing, and a small cellpose model
trained on the demo's ground truth, reloaded by path and run by the pipeline's segment rule."""

import numpy as np
import pandas as pd
import pytest
import torch

from debatch.core.images import read_site
from debatch.demo.plate import demo_manifest
from debatch.illum.estimate import compute_plate_illum
from debatch.segment import cellpose as cellpose_seg
from debatch.segment.cell_table import measure_site
from debatch.segment.cellpose import (
    CellposeError,
    CellposeSegmenter,
    pair_objects,
    reachable,
    resolve_model,
    train_model,
)
from debatch.segment.score import score_site, summarise
from debatch.settings import CELLPOSE, Channels

from workflow_helpers import snakemake, tiny_workdir

TINY = {
    "rows": 2,
    "cols": 4,
    "sites": 1,
    "image_size": 128,
    "cells_per_site": 14,
    "n_treatments": 3,
    "replicates": 2,
    "n_inactive": 1,
}


def test_pairing_keeps_one_nucleus_per_cell_and_counts_the_rest():
    nuclei = np.zeros((40, 60), np.int32)
    cells = np.zeros((40, 60), np.int32)
    cells[5:25, 5:25] = 7  # cell with two nuclei: keeps the larger overlap
    nuclei[8:14, 8:14], nuclei[15:18, 15:18] = 3, 4
    cells[5:25, 30:50] = 2  # cell without a nucleus
    nuclei[30:36, 52:58] = 9  # nucleus outside every cell
    cells[26:38, 5:20] = 5  # nucleus sticking out of its cell: the cell takes it in
    nuclei[25:31, 8:14] = 1
    paired_nuclei, paired_cells, lost_nuclei, lost_cells = pair_objects(nuclei, cells)
    assert (lost_nuclei, lost_cells) == (2, 1)
    assert paired_nuclei.max() == 2 and paired_cells.max() == 2
    assert paired_nuclei[25, 10] == 1 and paired_cells[25, 10] == 1  # first by nucleus label
    assert (
        paired_nuclei[10, 10] == 2 and paired_nuclei[16, 16] == 0
    )  # the smaller second nucleus goes
    assert (paired_cells[5:25, 5:25] == 2).all() and paired_cells[10, 40] == 0
    table = measure_site(paired_nuclei, paired_cells, {"DNA": np.ones((40, 60), np.float32)})
    assert table["Cells_AreaShape_Area"].tolist() == [12 * 15 + 6, 400]


def test_settings_are_checked():
    assert CELLPOSE.merge({"cell_model": None, "nucleus_diameter": 20})["cell_model"] is None
    for bad, message in (
        ({"device": "gpu"}, r"segment.cellpose.device must be one of \['auto', 'cpu', 'cuda'\]"),
        ({"cell_diameter": 0}, "cell_diameter must be a number > 0 or null"),
        ({"flow": 0.4}, r"unknown segment.cellpose parameter\(s\) \['flow'\]"),
    ):
        with pytest.raises(ValueError, match=message):
            CELLPOSE.merge(bad)


@pytest.fixture
def empty_model_dir(tmp_path, monkeypatch):
    from cellpose import models

    monkeypatch.setattr(models, "MODEL_DIR", tmp_path)
    return tmp_path


def test_missing_builtin_weights_offline_is_one_clear_line(empty_model_dir):
    with pytest.raises(CellposeError) as error:
        resolve_model("nuclei", "nuclei_model", timeout=0)
    message = str(error.value)
    assert "\n" not in message and str(empty_model_dir / "nucleitorch_0") in message
    assert "segment.cellpose.nuclei_model" in message and "offline" in message
    (empty_model_dir / "cyto3").write_bytes(b"weights")  # present weights need no network
    assert resolve_model("cyto3", "cell_model", timeout=0) == "cyto3"
    with pytest.raises(
        CellposeError, match="neither a model file nor a built-in model of cellpose 3 .*cyto3"
    ):
        resolve_model("cytoplasm9", "cell_model", timeout=0)


def test_unreachable_server_answers_false_instead_of_hanging():
    assert not reachable("http://127.0.0.1:9/nucleitorch_0", timeout=5)  # refused: no wait
    assert not reachable("http://127.0.0.1:9/nucleitorch_0", timeout=0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_asking_for_a_gpu_without_one_is_an_error():
    with pytest.raises(CellposeError, match="device is cuda but torch sees no GPU"):
        cellpose_seg.load_model("nuclei", "nuclei_model", device="cuda", timeout=0)


def demo_sites(root, plate, batch):
    """Generated demo plate: (illumination-corrected site images, as the segment stage reads
    them, truth nuclei, truth cells)."""
    manifest = demo_manifest(root / plate, plate, batch, TINY)
    truth = np.load(root / plate / "truth" / "masks.npz")
    keys = [f"{row.Metadata_Well}_{row.Metadata_Site}" for row in manifest.itertuples()]
    illum = compute_plate_illum(manifest, ["DNA", "AGP"])
    images = [read_site(row, ["DNA", "AGP"], illum) for row in manifest.to_dict("records")]
    return images, [truth[f"{key}_nuclei"] for key in keys], [truth[f"{key}_cells"] for key in keys]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Nuclei and cell models (CPnet of width 16) trained from scratch on a demo plate's truth."""
    root = tmp_path_factory.mktemp("cellpose")
    images, nuclei, cells = demo_sites(root, "train01", "batch1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small convolutions: one thread is fastest, and immune to busy cores
    try:
        settings = dict(width=16, epochs=50, crop=48, images_per_epoch=16, seed=0)
        zeros = np.zeros_like(images[0]["DNA"])
        nuclei_path = train_model(
            [np.stack([s["DNA"], zeros]) for s in images], nuclei, root / "nuclei.pt", **settings
        )
        cells_path = train_model(
            [np.stack([s["AGP"], s["DNA"]]) for s in images], cells, root / "cells.pt", **settings
        )
    finally:
        torch.set_num_threads(threads)
    return root, nuclei_path, cells_path


@pytest.mark.slow
def test_trained_models_reload_by_path_and_segment_unseen_sites(models):
    root, nuclei_path, cells_path = models
    images, true_nuclei, true_cells = demo_sites(
        root, "test01", "batch2"
    )  # another plate and batch
    segmenter = CellposeSegmenter(
        {"nuclei_model": str(nuclei_path), "cell_model": str(cells_path), "flow_threshold": 0.0},
        threads=1,
    )
    results = segmenter(images, Channels(("DNA", "AGP"), "DNA", "AGP"))
    nuclei = summarise(pd.DataFrame([score_site(t, r[0]) for t, r in zip(true_nuclei, results)]))
    cells = summarise(pd.DataFrame([score_site(t, r[1]) for t, r in zip(true_cells, results)]))
    assert nuclei["AP@0.5"] > 0.8 and cells["AP@0.5"] > 0.7, (nuclei, cells)
    for (paired_nuclei, paired_cells, _, _), site in zip(results, images):
        assert len(measure_site(paired_nuclei, paired_cells, site)) == paired_nuclei.max()
    # batched evaluation gives exactly the one-by-one masks
    segmenter.cellpose["sites_per_call"] = 1
    for batched, single in zip(results, segmenter(images, Channels(("DNA", "AGP"), "DNA", "AGP"))):
        np.testing.assert_array_equal(batched[1], single[1])


@pytest.mark.slow
def test_pipeline_segments_with_cellpose_models_given_by_path(models, tmp_path):
    _, nuclei_path, cells_path = models
    config = tiny_workdir(
        tmp_path,
        {
            "demo": {"params": TINY},
            "threads": {"images": 1},
            "train": {"holdout_batches": []},
            "segment": {
                "method": "cellpose",
                "shards": 2,
                "cellpose": {
                    "nuclei_model": str(nuclei_path),
                    "cell_model": str(cells_path),
                    "flow_threshold": 0.0,
                    "device": "auto",
                },
            },
        },
        sheet="plates_two.tsv",
    )
    snakemake(tmp_path, config, str(tmp_path / "results" / "crops" / "plate01.npy"))
    results = tmp_path / "results"
    cells = pd.read_parquet(results / "cells" / "plate01.parquet")
    truth = pd.read_parquet(tmp_path / "demo" / "plate01" / "truth" / "cells.parquet")
    assert abs(len(cells) - len(truth)) <= 0.2 * len(truth)
    crops = np.load(results / "crops" / "plate01.npy", mmap_mode="r")
    assert (
        crops.shape[0] == len(pd.read_parquet(results / "crops" / "plate01.parquet")) == len(cells)
    )
    log = (results / "logs" / "segment" / "plate01" / "shard0.log").read_text()
    assert "cellpose on cpu" in log and str(nuclei_path) in log


@pytest.mark.slow
def test_pipeline_stops_with_one_line_when_weights_are_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("CELLPOSE_LOCAL_MODELS_PATH", str(tmp_path / "no_models"))
    config = tiny_workdir(
        tmp_path,
        {
            "demo": {"params": {**TINY, "cols": 2, "n_treatments": 1}},
            "train": {"holdout_batches": []},
            "segment": {
                "method": "cellpose",
                "cellpose": {"nuclei_model": "nuclei", "download_timeout": 0.0},
            },
        },
        sheet="plates_two.tsv",
    )
    run = snakemake(
        tmp_path, config, str(tmp_path / "results" / "cells" / "plate01.parquet"), check=False
    )
    assert run.returncode != 0
    log = (tmp_path / "results" / "logs" / "segment" / "plate01.log").read_text()
    errors = [line for line in log.splitlines() if "debatch error:" in line]
    assert len(errors) == 1 and "Traceback" not in log, log
    assert "cellpose model 'nuclei' (nuclei_model): weights not found at" in errors[0]
    assert str(tmp_path / "no_models" / "nucleitorch_0") in errors[0]


def test_a_file_that_is_no_model_is_named(tmp_path):
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(
        CellposeError, match=f"segment.cellpose.cell_model: cannot load {bad} as a cellpose 3 model"
    ):
        cellpose_seg.load_model(str(bad), "cell_model", device="cpu", timeout=0)
    torch.save({"weight": torch.zeros(3)}, bad)
    with pytest.raises(CellposeError, match="holds no cellpose 3 network weights"):
        cellpose_seg.load_model(str(bad), "cell_model", device="cpu", timeout=0)
