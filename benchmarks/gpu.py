"""GPU throughput and accuracy on an RxRx1-shaped screen: one prepared script for a machine with
a GPU (issue 27, issue 29 goal 7), which also runs on CPU at a reduced size.

    python benchmarks/gpu.py [--image-size 512] [--epochs 10] [--cell-types HEPG2 HUVEC U2OS]
                             [--experiments 4] [--sirnas 28] [--device auto] [--work DIR]

Not part of `make bench` (run_all.py's BY_HAND): on a GPU machine,
``python benchmarks/run_all.py gpu.py -- --image-size 512 --epochs 10`` puts its section in
benchmarks/README.md; the test runs it on CPU with tiny sites (tests/test_gpu_benchmark.py).

1. **Screen.** debatch.demo.rxrx1 renders a screen in RxRx1's layout (8-bit 6-channel PNG, 2
   sites per well) with ``--image-size`` px sites (RxRx1's are 512) and the generator's cell
   density (``cells_per_site`` scaled by the site's area over its default 128 px site), then
   debatch.ingest.rxrx1 converts its metadata.csv into the plate sheet, the validation
   experiments those of the generator's experiments.tsv split ``val``.
2. **Whole-site crops** (``crops.unit: site``, ``site_size`` = the image size, ``scale`` 255, as
   config/rxrx1.yaml): each plate's manifest (debatch.ingest.manifest), illumination functions
   (debatch.illum) and sites (debatch.crops.sites), the library calls of the workflow's
   manifest, illum and crops scripts. Segmentation and QC are left out: every site gets a crop,
   so the crops tables lack ``Metadata_Cells`` (training does not read it).
3. **Training**: ERM, DeepNoise and abra_plate_within, config/rxrx1.yaml's train block (its
   recipe, batch size, the WILDS split from the plate sheet, ID sites [2]) with ``--epochs``
   epochs (and as many for the learning-rate schedule), each the train rule's library call
   (debatch.cnn.train.train_model with debatch.pipeline.params.train_params' params), AMP on
   CUDA. From each training_log.tsv, at the epoch the model card selected (best validation
   accuracy): the OOD test accuracy of sites and wells (the held-out test experiments), the
   validation and ID accuracy; training sites/s is the median over the epochs after the first
   (the first pays cuDNN autotuning), the one epoch when only one ran.
4. **Embedding**: the ERM model over every plate's sites through debatch.cnn.embed (float32, the
   embed rule's path); the faster of two passes, in sites/s.
5. **64 px cell crops** (issue 29 goal 7: >= 5k crops/s on a GPU): the training step of each of
   the three methods on random 5-channel 64 px crops (benchmarks/train_step.py's timing: the
   fastest of interleaved rounds) and the embedding forward pass. The goal is judged on the
   slowest method, and only on a GPU.

Prints a markdown section and writes benchmarks/figures/gpu.json (``--figures`` elsewhere).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch
import yaml

import figures
import train_step
from debatch.cnn.checkpoint import torch_runtime
from debatch.cnn.embed import embed_plates
from debatch.cnn.train import Training, train_model
from debatch.core.logs import setup_logging
from debatch.crops.sites import write_plate_sites
from debatch.demo import rxrx1
from debatch.illum.estimate import compute_plate_illum
from debatch.ingest.manifest import build_manifest, read_platemap
from debatch.ingest.rxrx1 import convert
from debatch.ingest.sheets import read_sheet
from debatch.pipeline.params import train_params
from debatch.pipeline.plates import sheet_splits
from debatch.settings import METADATA, MODEL_CARD, RXRX1_SCREEN

log = logging.getLogger("debatch.benchmarks.gpu")
REPO = Path(__file__).resolve().parents[1]
RXRX1_CONFIG = REPO / "config" / "rxrx1.yaml"
GOAL_CROPS_PER_S = 5000  # issue 29 goal 7: 64 px crops on an H100-class GPU
CELL_CHANNELS = 5  # the cell crops of a Cell Painting screen


def arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image-size", type=int, default=512, help="site side (px)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--cell-types", nargs="+", default=["HEPG2", "HUVEC", "U2OS"])
    parser.add_argument("--experiments", type=int, default=4, help="per cell type (>= 3)")
    parser.add_argument("--sirnas", type=int, default=28)
    parser.add_argument("--batch-size", type=int, help="sites per step (config/rxrx1.yaml's)")
    parser.add_argument("--embed-batch", type=int, default=128, help="sites per forward pass")
    parser.add_argument("--crop-size", type=int, default=64, help="cell crops' side (px)")
    parser.add_argument("--crop-batch", type=int, default=256)
    parser.add_argument("--crop-steps", type=int, default=4, help="timed steps per round")
    parser.add_argument("--crop-repeats", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    parser.add_argument("--threads", type=int, default=min(16, os.cpu_count() or 1))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", help="keep the screen, crops and models here (default: a tmp)")
    parser.add_argument("--figures", help="write gpu.json here (default: benchmarks/figures)")
    return parser.parse_args(argv)


def screen_params(args) -> dict:
    """The generator's settings: config/rxrx1_screen.yaml's (settings.RXRX1_SCREEN) with fewer
    experiments and siRNAs (inactive and close siRNAs in its proportions) and the site size."""
    default = RXRX1_SCREEN.merge({})
    share = args.sirnas / default["sirnas"]
    return RXRX1_SCREEN.merge(
        {
            "seed": args.seed,
            "cell_types": list(args.cell_types),
            "experiments": args.experiments,
            "sirnas": args.sirnas,
            "inactive": round(default["inactive"] * share),
            "close_pairs": round(default["close_pairs"] * share),
            "image_size": args.image_size,
            "cells_per_site": default["cells_per_site"]
            * (args.image_size / default["image_size"]) ** 2,
        }
    )


def make_screen(work: Path, args, config: dict) -> tuple[list, pd.DataFrame, dict]:
    """Render and convert the screen, then write every plate's whole-site crops. Returns the
    (npy, parquet) pairs, the plate sheet and ``info``: render_s, crops_s (seconds) and sites."""
    info, screen = {"sites": 0}, screen_params(args)
    started = time.perf_counter()
    rxrx1.generate(
        work / "screen", screen, jobs=min(args.threads, len(args.cell_types) * args.experiments)
    )
    info["render_s"] = time.perf_counter() - started
    experiments = pd.read_csv(work / "screen" / "experiments.tsv", sep="\t")
    validation = tuple(experiments.loc[experiments["split"] == "val", "experiment"])
    convert(
        [work / "screen" / "metadata.csv"], work / "screen" / "images", work / "sheet", validation
    )
    sheet = read_sheet(work / "sheet" / "plates.tsv")
    channels = config["channels"]
    crops = {"unit": "site", "site_size": args.image_size, "scale": config["crops"]["scale"]}
    started, plates = time.perf_counter(), []
    for row in sheet.itertuples(index=False):
        manifest = build_manifest(
            row.plate, row.batch, row.images, row.pattern, read_platemap(row.platemap), channels
        )
        illum = compute_plate_illum(manifest, list(channels), threads=args.threads)
        sites = manifest[[c for c in manifest.columns if c.startswith(METADATA)]]
        npy, table = work / "crops" / f"{row.plate}.npy", work / "crops" / f"{row.plate}.parquet"
        npy.parent.mkdir(parents=True, exist_ok=True)
        write_plate_sites(sites, manifest, list(channels), illum, npy, crops, args.threads)
        sites.to_parquet(table, index=False)
        plates.append((str(npy), str(table)))
        info["sites"] += len(sites)
    info["crops_s"] = time.perf_counter() - started
    return plates, sheet, info


def train_methods(work: Path, plates, sheet: pd.DataFrame, args, config: dict):
    """Each method of config/rxrx1.yaml trained as the train rule trains it. Returns per method
    the figures of its training log (module docstring), and the held-out and validation
    batches."""
    block = {
        **config["train"],
        "seeds": [args.seed],
        "epochs": args.epochs,
        "lr_schedule_epochs": args.epochs,
        "device": args.device,
        "amp": True,
    }
    if args.batch_size:
        block["batch_size"] = args.batch_size
    block = sheet_splits(block, sheet, str(work / "sheet" / "plates.tsv"))
    results = {}
    for method in block["methods"]:
        out = work / "models" / method / f"seed{args.seed}"
        params = {**train_params(block, method, args.seed), "num_threads": args.threads}
        started = time.perf_counter()
        train_model(plates, out, params, channels=list(config["channels"]))
        wall = time.perf_counter() - started
        history = pd.read_csv(out / "training_log.tsv", sep="\t")
        selected = int(json.loads((out / MODEL_CARD).read_text())["selected_epoch"])
        row = history[history["epoch"] == selected].iloc[0]
        speeds = history["crops_per_s"].tolist()
        results[method] = {
            "selected_epoch": selected,
            "epochs": args.epochs,
            "ood_site_acc": float(row["holdout_acc"]),
            "ood_well_acc": float(row["holdout_well_acc"]),
            "val_acc": float(row["val_acc"]),
            "id_acc": float(row["id_acc"]),
            "train_sites_per_s": statistics.median(speeds[1:] or speeds),
            "train_seconds": wall,
        }
    return results, {k: block[k] for k in ("holdout_batches", "validation_batches")}


def embed_sites_per_s(work: Path, plates, args, config: dict) -> float:
    """The ERM model over every plate's sites (debatch.cnn.embed), the faster of two passes."""
    model = work / "models" / "erm" / f"seed{args.seed}" / "model.pt"
    params = {"batch_size": args.embed_batch, "device": args.device}
    best, sites = float("inf"), 0
    for _ in range(2):
        started = time.perf_counter()
        tables = list(embed_plates(model, plates, params, args.threads, list(config["channels"])))
        best = min(best, time.perf_counter() - started)
        sites = sum(len(table) for table in tables)
        values = np.concatenate([t.filter(like="emb_").to_numpy() for t in tables])
        if not np.isfinite(values).all():
            raise FloatingPointError("embeddings are not finite")
    return sites / best


def cell_crop_speed(work: Path, args, config: dict) -> dict:
    """crops/s of each method's training step and of the embedding pass on 64 px cell crops."""
    folder = work / "cell_crops"
    folder.mkdir(parents=True, exist_ok=True)
    plates = train_step.write_plates(folder, (CELL_CHANNELS, args.crop_size, args.crop_size))
    timing = SimpleNamespace(
        steps=args.crop_steps, repeats=args.crop_repeats, batch_size=args.crop_batch
    )
    shared = {
        "batch_size": args.crop_batch,
        "max_cells_per_epoch": args.crop_batch * args.crop_steps,
        "epochs": 10**6,
        "num_threads": args.threads,
        "device": args.device,
        "amp": True,
    }
    runs = {}
    for method in config["train"]["methods"]:
        own = train_params({**config["train"], "seeds": [args.seed]}, method, args.seed)
        own = {k: own[k] for k in ("method", "recipe", "seed") if k in own}
        training = Training(plates, folder / method, {**shared, **own})
        with torch_runtime(training.train, training.device):
            training.start()
        runs[method] = training
    per_step = train_step.seconds_per_step(runs, timing)
    embed = train_step.embed_crops_per_s(runs["erm"], timing)
    return {
        "train_crops_per_s": {m: args.crop_batch / s for m, s in per_step.items()},
        "ms_per_step": {m: 1000 * s for m, s in per_step.items()},
        "embed_crops_per_s": embed,
        "device": runs["erm"].device,
        "amp": (runs["erm"].use_amp, runs["erm"].amp_dtype),
    }


def goal_line(cells: dict, on_gpu: bool, size: int) -> tuple[str, bool | None]:
    """Issue 29 goal 7's line, judged on the slowest method; and whether it is met (None: cpu)."""
    slowest = min(cells["train_crops_per_s"], key=cells["train_crops_per_s"].get)
    value = cells["train_crops_per_s"][slowest]
    figure = f"{value:.0f} crops/s, slowest method {slowest}"
    if not on_gpu:
        return f"Goal (issue 29 goal 7) >= 5k crops/s for {size} px crops on a GPU: " + (
            f"not assessed on cpu ({figure})."
        ), None
    met = value >= GOAL_CROPS_PER_S
    verdict = "met" if met else "NOT met"
    return (
        f"Goal (issue 29 goal 7) >= 5k crops/s for {size} px crops on a GPU: {verdict} ({figure}).",
        met,
    )


def report(args, plates, info, trained, splits, embed, cells) -> dict:
    """Print the markdown section; return the figures for gpu.json."""
    device = cells["device"]
    on_gpu = device.type == "cuda"
    name = torch.cuda.get_device_name(device) if on_gpu else "cpu"
    threads = "" if on_gpu else f", {args.threads} threads"
    use_amp, dtype = cells["amp"]
    amp = f"on ({str(dtype).removeprefix('torch.')})" if use_amp else "off"
    n_sites = info["sites"]
    print(f"## GPU: RxRx1-shaped training and 64 px crops ({name}{threads}, amp {amp})\n")
    print(
        f"Screen: {n_sites} sites of {args.image_size} px, 6 channels: {len(plates)} plates "
        f"({args.experiments} experiments x {len(args.cell_types)} cell types), {args.sirnas} "
        f"siRNAs; rendered in {info['render_s']:.0f} s; manifests, illumination and whole-site "
        f"crops {n_sites / info['crops_s']:.1f} sites/s (no segmentation or QC). OOD test: "
        f"{', '.join(splits['holdout_batches'])}; validation: "
        f"{', '.join(splits['validation_batches'])}; ID test: site 2 of the others.\n"
    )
    print(
        "| method | epoch selected | training sites/s | OOD test acc (sites) "
        "| OOD test acc (wells) | val acc | ID acc | training s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for method, r in trained.items():
        print(
            f"| {method} | {r['selected_epoch']} of {r['epochs']} | {r['train_sites_per_s']:.1f} "
            f"| {r['ood_site_acc']:.3f} | {r['ood_well_acc']:.3f} | {r['val_acc']:.3f} "
            f"| {r['id_acc']:.3f} | {r['train_seconds']:.0f} |"
        )
    print(f"\nEmbedding (ERM, float32, the embed rule's path): {embed:.1f} sites/s.\n")
    size = args.crop_size
    print(
        f"| {size} px cell crops ({CELL_CHANNELS} channels, batch {args.crop_batch}) "
        "| ms/step | crops/s |"
    )
    print("|---|---:|---:|")
    for method, value in cells["train_crops_per_s"].items():
        print(f"| {method} | {cells['ms_per_step'][method]:.1f} | {value:.0f} |")
    print(f"| embedding (eval forward) | | {cells['embed_crops_per_s']:.0f} |")
    line, met = goal_line(cells, on_gpu, size)
    print(f"\n{line}")
    return {
        "device": name,
        "threads": args.threads,
        "amp": amp,
        "image_size": args.image_size,
        "sites": n_sites,
        "plates": len(plates),
        "crops_sites_per_s": n_sites / info["crops_s"],
        "methods": trained,
        "embed_sites_per_s": embed,
        "crop_size": size,
        "crop_train_crops_per_s": cells["train_crops_per_s"],
        "crop_embed_crops_per_s": cells["embed_crops_per_s"],
        "goal_met": met,
    }


def main(argv=None) -> None:
    args = arguments(argv)
    setup_logging(None)
    config = yaml.safe_load(RXRX1_CONFIG.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work) if args.work else Path(tmp)
        if work.exists() and any(work.iterdir()):  # models there would resume, not train
            raise SystemExit(f"--work {work} is not empty")
        work.mkdir(parents=True, exist_ok=True)
        plates, sheet, info = make_screen(work, args, config)
        log.info("screen ready: %s", info)
        trained, splits = train_methods(work, plates, sheet, args, config)
        embed = embed_sites_per_s(work, plates, args, config)
        log.info("trained and embedded")
        cells = cell_crop_speed(work, args, config)
    result = report(args, plates, info, trained, splits, embed, cells)
    figures.save(__file__, result, args.figures)


if __name__ == "__main__":
    main()
