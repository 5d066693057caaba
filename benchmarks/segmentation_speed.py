"""Segmentation speed: sites/s per core of both segmenters, and our cellpose rule against the
`cellpose` command line on the same images.

    .venv/bin/python benchmarks/segmentation_speed.py [--sites 6] [--repeats 3]   # ~2 min, 2 cores

- data: one generated demo plate (debatch.demo, the demo's 256 px sites and cell sizes),
  illumination functions computed as the pipeline does;
- propagate and cellpose rows: the segment rule's own code path
  (debatch.segment.shards.segment_shard: read, illumination correction, image-QC measures,
  segmentation, per-cell measurements, label images written), one thread (cellpose: one torch
  thread), in this process; propagate is the best of ``--repeats``, beside the flooding
  watershed it replaced (loaded from git: benchmarks/previous.py) in the same run. cellpose
  runs with the defaults (batch_size 4 tiles, sites_per_call 8) and once with batch_size 8
  (cellpose's own default);
- cellpose models: standard-width cellpose 3 CPnets (the 6.6 M-parameter network of the
  built-in nuclei / cyto3 models, so the CLI loads them too), untrained and saved to a file:
  pretrained weights cannot be downloaded here, and a network's speed does not depend on its
  weights. What does is mask reconstruction (cellpose's flow dynamics), which grows with the
  objects found; an untrained network finds none, so real models add the same dynamics time
  to both sides. Object counts are printed;
- ours vs CLI: both as fresh processes with OMP_NUM_THREADS=1 (imports and model loading
  included, what a user waits for). Ours is one segment job (nuclei model on DNA, cell model on
  AGP + DNA, pairing, measurements); the CLI is `python -m cellpose --dir ... --pretrained_model
  <file> --all_channels --channel_axis 0 --diameter 0 --save_tif --no_npy` once per model, on
  two-channel TIFFs of the same corrected images written beforehand (not timed). A one-site
  CLI run gives its start-up, so the per-site cost without start-up is printed too. Goal: ours
  not slower.

Figures are CPU seconds (this process's, or its children's from getrusage): with one thread
that is the wall time of an idle core, and it does not move when other jobs share the machine
(wall seconds are printed too). On a GPU (torch sees CUDA) the cellpose row is repeated with
device cuda. Prints markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
import torch
import yaml

from debatch.core.images import read_site
from debatch.demo.design import CHANNELS
from debatch.demo.plate import generate_plate
from debatch.illum.estimate import compute_plate_illum
from debatch.ingest.manifest import build_manifest, read_platemap
from debatch.segment import propagate as classical
from debatch.segment.shards import segment_shard
from debatch.settings import Channels
from previous import FLOODING, flooding_cells

REPO = Path(__file__).resolve().parents[1]
DEMO = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["demo"]["params"]
CELLPOSE = {"flow_threshold": 0.4, "cellprob_threshold": 0.0, "min_size": 15, "batch_size": 4}
CLI_BATCH_SIZE = 8  # the cellpose CLI's default; one 256 px image is 4 tiles, so it never fills
ONE_THREAD = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "NUMBA_NUM_THREADS": "1",
}

# The segment rule as a fresh process (workflow/scripts/segment.py minus Snakemake): imports, model
# loading, then segment_shard. Prints its own timings as JSON on the last line.
DRIVER = """
import json, sys, time
started = time.perf_counter()
import numpy as np, pandas as pd
from debatch.segment.shards import segment_shard
from debatch.settings import Channels
manifest_path, illum_path, masks = sys.argv[1], sys.argv[2], sys.argv[4]
settings = json.loads(sys.argv[3])
manifest = pd.read_parquet(manifest_path)
with np.load(illum_path) as stored:
    illum = {channel: stored[channel] for channel in stored.files}
import torch
from debatch.segment.cellpose import _cellpose
_cellpose()  # cellpose imported as segment_shard imports it (core.compiled); timed as start-up
ready = time.perf_counter()
cells, sites = segment_shard(
    manifest, 1, 0, Channels(list(illum), "DNA", "AGP"), illum, settings, masks, threads=1
)
done = time.perf_counter()
print(json.dumps({"startup": ready - started, "segment": done - ready, "cells": len(cells)}))
"""


def plate(root: Path, n_sites: int) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """A demo plate of ``n_sites`` sites (one per well) and its illumination functions."""
    params = {
        **DEMO,
        "rows": 2,
        "cols": (n_sites + 1) // 2,
        "sites": 1,
        "n_treatments": 1,
        "replicates": 1,
        "n_inactive": 0,
    }
    generate_plate(root / "plate", "P1", "batch1", params)
    channels = {name: str(i) for i, name in enumerate(CHANNELS, start=1)}
    manifest = build_manifest(
        "P1",
        "batch1",
        root / "plate" / "images",
        "opera_phenix",
        read_platemap(root / "plate" / "platemap.tsv"),
        channels,
    )
    manifest = manifest.sort_values(["Metadata_Well", "Metadata_Site"]).head(n_sites)
    return manifest.reset_index(drop=True), compute_plate_illum(manifest, list(CHANNELS), {})


def untrained_model(path: Path) -> Path:
    """A standard cellpose 3 CPnet (2 input channels) with seeded random weights, saved."""
    from cellpose import models

    torch.manual_seed(0)
    model = models.CellposeModel(gpu=False, pretrained_model=False, model_type=None, nchan=2)
    model.net.save_model(str(path))
    return path


def timed(function, *args, **kwargs):
    """(result, wall s, CPU s of this process)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(command: list[str]) -> tuple[str, float, float]:
    """(stdout, wall s, CPU s) of a command run with one thread."""
    wall, cpu = time.perf_counter(), children_cpu()
    result = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, **ONE_THREAD}
    )
    seconds, cpu = time.perf_counter() - wall, children_cpu() - cpu
    if result.returncode != 0:
        raise RuntimeError(f"{command[:4]} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result.stdout, seconds, cpu


def cli_inputs(
    folder: Path, manifest: pd.DataFrame, illum: dict, channels: tuple[str, str | None]
) -> Path:
    """Two-channel (C, Y, X) float32 TIFFs of the corrected images, as the CLI takes them."""
    folder.mkdir(parents=True)
    for row in manifest.to_dict("records"):
        images = read_site(row, ["DNA", "AGP"], illum)
        first = images[channels[0]]
        second = images[channels[1]] if channels[1] else np.zeros_like(first)
        tifffile.imwrite(
            folder / f"{row['Metadata_Well']}_{row['Metadata_Site']}.tif",
            np.stack([first, second]).astype(np.float32),
        )
    return folder


def cli_objects(folder: Path) -> int:
    return sum(int(tifffile.imread(p).max()) for p in folder.glob("*_cp_masks.tif"))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sites", type=int, default=6, help="256 px sites (default 6)")
    parser.add_argument(
        "--repeats", type=int, default=3, help="propagate runs, best kept (default 3)"
    )
    return parser.parse_args()


def per_site(whole: float, one_site: float, n: int) -> float:
    """Cost per site without start-up: (n-site run - 1-site run) / (n - 1)."""
    return (whole - one_site) / (n - 1)


def in_process_rows(
    folder: Path, manifest: pd.DataFrame, illum: dict, cellpose: dict, repeats: int
) -> tuple[list[tuple[str, float, float, int]], float]:
    """The segment rule's code path in this process: rows of (segmenter, wall s, CPU s, cells),
    and the CPU s of a one-site cellpose run (model loading + one site)."""

    def shard(settings, sites=manifest):
        return segment_shard(
            sites,
            1,
            0,
            Channels(CHANNELS, "DNA", "AGP"),
            illum,
            settings,
            folder / "masks.npz",
            threads=1,
        )[0]

    shard({"method": "propagate"})  # warm-up: page cache, imports, numba compilation
    best = min((timed(shard, {"method": "propagate"}) for _ in range(repeats)), key=lambda r: r[2])
    rows = [("propagate (classical: CellProfiler's propagation)", *best[1:], len(best[0]))]
    propagation = classical.segment_cells
    classical.segment_cells = flooding_cells()  # what segment_shard calls, for these runs only
    try:
        best = min(
            (timed(shard, {"method": "propagate"}) for _ in range(repeats)), key=lambda r: r[2]
        )
    finally:
        classical.segment_cells = propagation
    rows.append(
        (f"propagate, flooding watershed ({FLOODING}, before issue 13)", *best[1:], len(best[0]))
    )
    settings = {"method": "cellpose", "cellpose": cellpose}
    cells, wall, cpu = timed(shard, settings)
    defaults = f"batch_size {cellpose['batch_size']}, sites_per_call 8: the defaults"
    rows.append((f"cellpose, CPU ({defaults})", wall, cpu, len(cells)))
    cells, wall, cpu = timed(
        shard, {"method": "cellpose", "cellpose": {**cellpose, "batch_size": 8}}
    )
    rows.append(("cellpose, CPU, batch_size 8", wall, cpu, len(cells)))
    _, _, one_site = timed(shard, settings, manifest.head(1))  # model loading + one site
    if torch.cuda.is_available():
        gpu = {"method": "cellpose", "cellpose": {**cellpose, "device": "cuda"}}
        shard(gpu)  # warm-up
        cells, wall, cpu = timed(shard, gpu)
        rows.append((f"cellpose, GPU ({torch.cuda.get_device_name()})", wall, cpu, len(cells)))
    return rows, one_site


def print_in_process(rows: list[tuple[str, float, float, int]], n: int) -> None:
    print(
        f"## Segmentation speed ({n} demo sites of {DEMO['image_size']} px, 1 thread, "
        "segment rule code path)\n"
    )
    print("| segmenter | wall s per site | CPU s per site | sites per CPU-s (per core) | cells |")
    print("|---|---:|---:|---:|---:|")
    for name, wall, cpu, count in rows:
        print(f"| {name} | {wall / n:.3f} | {cpu / n:.3f} | {n / cpu:.2f} | {count} |")


def segment_job(folder: Path, settings: dict) -> tuple[dict, float, float]:
    """Our segment job as a fresh process (start-up included): (its own timings, wall s, CPU s)."""
    out, wall, cpu = run(
        [
            sys.executable,
            "-c",
            DRIVER,
            str(folder / "manifest.parquet"),
            str(folder / "illum.npz"),
            json.dumps(settings),
            str(folder / "masks_job.npz"),
        ]
    )
    return json.loads(out.strip().splitlines()[-1]), wall, cpu


def cellpose_cli(folder: Path, model: Path) -> tuple[str, float, float]:
    """The `cellpose` command line on every TIFF in ``folder``, as a fresh process."""
    return run(
        [
            sys.executable,
            "-m",
            "cellpose",
            "--dir",
            str(folder),
            "--pretrained_model",
            str(model),
            "--all_channels",
            "--channel_axis",
            "0",
            "--diameter",
            "0",
            "--flow_threshold",
            str(CELLPOSE["flow_threshold"]),
            "--cellprob_threshold",
            str(CELLPOSE["cellprob_threshold"]),
            "--min_size",
            str(CELLPOSE["min_size"]),
            "--batch_size",
            str(CLI_BATCH_SIZE),
            "--save_tif",
            "--no_npy",
        ]
    )


def cli_rows(
    folder: Path, manifest: pd.DataFrame, illum: dict, model: Path
) -> tuple[list[tuple[str, float, float, int]], float]:
    """The CLI once per model: rows of (model, wall s, CPU s, objects), and the CPU s of a
    one-site run (its start-up)."""
    cli = []
    for name, channels in (("nuclei", ("DNA", None)), ("cells", ("AGP", "DNA"))):
        images = cli_inputs(folder / f"cli_{name}", manifest, illum, channels)
        _, wall, cpu = cellpose_cli(images, model)
        cli.append((name, wall, cpu, cli_objects(images)))
    # the CLI's start-up: a run on one site (per_site subtracts it from the n-site run)
    cli_inputs(folder / "cli_one", manifest.head(1), illum, ("DNA", None))
    _, _, one_cpu = cellpose_cli(folder / "cli_one", model)
    return cli, one_cpu


def print_versus_cli(n: int, cli: list, ours: dict, ours_wall: float, ours_cpu: float) -> None:
    cli_wall = sum(wall for _, wall, _, _ in cli)
    cli_cpu = sum(cpu for _, _, cpu, _ in cli)
    print(
        f"\n### Our cellpose rule vs the `cellpose` CLI (same {n} sites, same two models, "
        "fresh processes, OMP_NUM_THREADS=1)\n"
    )
    print("| run | wall s | CPU s | sites per CPU-s | speed vs CLI (CPU) |")
    print("|---|---:|---:|---:|---:|")
    for name, wall, cpu, objects in cli:
        print(
            f"| `cellpose` CLI, {name} model ({objects} objects) | {wall:.1f} | {cpu:.1f} | "
            f"{n / cpu:.2f} | |"
        )
    print(
        f"| `cellpose` CLI, both models | {cli_wall:.1f} | {cli_cpu:.1f} | {n / cli_cpu:.2f} "
        "| 1.00 |"
    )
    print(
        "| debatch segment job: both models, pairing, measurements, QC "
        f"({ours['cells']} cells; imports {ours['startup']:.1f} s, "
        f"segment_shard {ours['segment']:.1f} s) | {ours_wall:.1f} | "
        f"{ours_cpu:.1f} | {n / ours_cpu:.2f} | {cli_cpu / ours_cpu:.2f} |"
    )


def print_goal(n: int, rows: list, one_site: float, cli: list, one_cpu: float, ours_cpu: float):
    """Per-site costs without start-up, and the goal: our cellpose rule not slower."""
    ours_site = per_site(rows[2][2], one_site, n) / 2
    ours_site_8 = per_site(rows[3][2], one_site, n) / 2  # one site: 4 tiles, one pass either way
    cli_site = per_site(cli[0][2], one_cpu, n)
    ratio = sum(cpu for _, _, cpu, _ in cli) / ours_cpu
    steady, steady_8 = cli_site / ours_site, cli_site / ours_site_8
    print(
        "\nStart-up excluded ((n-site run - 1-site run) / (n - 1)), CPU s per site and model: "
        f"`cellpose` CLI {cli_site:.2f} (start-up, model load and first call "
        f"{one_cpu - cli_site:.1f} s per run); debatch {ours_site:.2f} with the defaults, "
        f"{ours_site_8:.2f} with batch_size 8 (debatch's figure also covers reading 5 channels, "
        "QC measures, pairing and measurements: less than the propagate row's whole "
        f"{rows[0][2] / n:.3f} s per site)."
    )
    print(
        "\nGoal: our cellpose rule not slower than the CLI (CPU time; wall time on a shared "
        f"machine varies with the other jobs). Whole job of {n} sites: "
        f"{'met' if ratio >= 1 else 'NOT met'} ({ratio:.2f}x the CLI's speed: one start-up for "
        "both models against the CLI's two). Per site, which is what a shard of hundreds of "
        f"sites sees: {'met' if steady >= 1 else 'NOT met'} with the defaults ({steady:.2f}x), "
        f"{steady_8:.2f}x with batch_size 8. Models are untrained standard CPnets (no "
        "pretrained weights offline): network time is that of nuclei / cyto3; mask "
        "reconstruction depends on what a real model finds, and costs both sides the same."
    )
    slower = rows[0][2] / rows[1][2]
    print(
        f"\nGoal propagate within 1.5x the flooding watershed it replaced (CPU s per site, the "
        f"whole segment code path, same run): {slower:.2f}x -> "
        f"{'met' if slower <= 1.5 else 'NOT met'}."
    )


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        manifest, illum = plate(tmp, args.sites)
        n = len(manifest)
        manifest.to_parquet(tmp / "manifest.parquet")
        np.savez(tmp / "illum.npz", **illum)
        model = untrained_model(tmp / "cpnet.pt")
        cellpose = {
            **CELLPOSE,
            "nuclei_model": str(model),
            "cell_model": str(model),
            "device": "cpu",
            "sites_per_call": 8,
        }
        rows, one_site = in_process_rows(tmp, manifest, illum, cellpose, args.repeats)
        print_in_process(rows, n)
        # ours vs the CLI, each as fresh processes (start-up included)
        ours, ours_wall, ours_cpu = segment_job(tmp, {"method": "cellpose", "cellpose": cellpose})
        cli, one_cpu = cli_rows(tmp, manifest, illum, model)
        print_versus_cli(n, cli, ours, ours_wall, ours_cpu)
        print_goal(n, rows, one_site, cli, one_cpu, ours_cpu)


if __name__ == "__main__":
    main()
