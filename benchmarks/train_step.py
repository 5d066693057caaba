"""Training-step throughput of every preset and recipe on the same crops and backbone, against ERM.

    .venv/bin/python benchmarks/train_step.py [--batch-size 256] [--steps 2] [--repeats 8]
                                               [--threads 2] [--device auto]

One step is exactly the training rule's (debatch.cnn.train: gather crops from the memmaps, input
scaling, flips, forward, the recipe's loss, backward, AdamW, the mean teacher's EMA): each
recipe is set up as its training job would be, on the same synthetic plates (5 x 32 x 32 crops,
9 classes, 4 plates), with the default backbone. On CUDA, AMP and cuDNN autotune as in the rule;
on CPU, ``--threads`` torch threads. Recipes are timed in interleaved rounds of ``--steps``
steps and each one's fastest round is kept: on a machine shared with other jobs, contention only
ever adds time, so the fastest round is the closest to the recipe's own cost. DeepNoise does the
same network work as ERM, so its ratio to ERM shows how much noise is left. Prints a markdown
table of ms/step, crops/s and the ratio to ERM (goals: ABRA <= 1.5, the mean teacher <= 1.3),
then the embedding throughput (eval-mode forward, the embed rule's path), and on a CPU with two
or more cores how training jobs' threads should be laid out: the wall time of the demo's
training jobs (its methods and network, a few epochs of these plates, each job a fresh
process as Snakemake runs it) one at a time on two threads, and two at a time on one thread.
Whole jobs, not steps: a job's start-up, data loading and held-out scoring run on one thread.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

import figures
from debatch.cnn.checkpoint import torch_runtime
from debatch.cnn.data import to_input
from debatch.cnn.train import Training
from debatch.core.parallel import usable_cores
from debatch.settings import TRAIN_METHODS

CROP_SHAPE, N_CLASSES, N_PLATES, CELLS_PER_PLATE = (5, 32, 32), 9, 4, 1024
DEMO_CONFIG = Path(__file__).resolve().parents[1] / "config" / "config.yaml"
LAYOUT_EPOCHS = 3
LAYOUTS = {  # (jobs at once, threads per job) on 2 cores
    "one job at a time, 2 threads each (threads.train 2)": (1, 2),
    "two jobs at a time, 1 thread each (threads.train 1, --resources gpu=2)": (2, 1),
}
RECIPES = {  # beyond the presets: one of each part the presets do not combine
    "abra_plate": {
        "scaling": "plate",
        "jitter": 0.1,
        "augment": "abra",
        "head": "arcface",
        "abra": {"spread": "between"},
    },
    "abra_input": {"augment": "abra", "head": "arcface", "abra": {"level": -1}},
    "deepnoise_teacher": {"scaling": "plate", "jitter": 0.1, "head": "arcface", "teacher": True},
}


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=2, help="timed steps per round")
    parser.add_argument("--repeats", type=int, default=8, help="interleaved rounds")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--layout-job", help=argparse.SUPPRESS)  # one job of thread_layouts
    return parser.parse_args()


def write_plates(folder: Path, crop_shape=CROP_SHAPE) -> list[tuple[str, str]]:
    """Cell crops of random pixels (the step's cost does not depend on them) and their tables
    (benchmarks/gpu.py's too, at its crop size)."""
    rng = np.random.default_rng(0)
    plates = []
    for plate in range(N_PLATES):
        crops = rng.random((CELLS_PER_PLATE, *crop_shape), dtype=np.float32).astype(np.float16)
        npy, parquet = folder / f"P{plate}.npy", folder / f"P{plate}.parquet"
        np.save(npy, crops)
        treatment = rng.integers(0, N_CLASSES, CELLS_PER_PLATE)
        pd.DataFrame(
            {
                "Metadata_Plate": f"P{plate}",
                "Metadata_Batch": f"B{plate}",
                "Metadata_Well": [f"A{t + 1:02d}" for t in treatment],
                "Metadata_Treatment": [f"t{t}" for t in treatment],
                "Metadata_ObjectNumber": np.arange(1, CELLS_PER_PLATE + 1),  # cells, not sites
            }
        ).to_parquet(parquet)
        plates.append((str(npy), str(parquet)))
    return plates


def trainings(plates, folder: Path, args) -> dict[str, Training]:
    """Every preset and recipe set up (network, optimiser, scaling) as its training job is."""
    shared = {
        "batch_size": args.batch_size,
        "max_cells_per_epoch": args.batch_size * args.steps,
        "epochs": 10**6,
        "num_threads": args.threads,
        "device": args.device,
    }
    params = {
        **{m: {"method": m} for m in TRAIN_METHODS},
        **{name: {"method": name, "recipe": recipe} for name, recipe in RECIPES.items()},
    }
    out = {}
    for name, own in params.items():
        training = Training(plates, folder / name, {**shared, **own})
        with torch_runtime(training.train, training.device):
            training.start()
        out[name] = training
    return out


def seconds_per_step(runs: dict[str, Training], args) -> dict[str, float]:
    """Each recipe's fastest of ``repeats`` interleaved rounds of ``steps`` steps (one warm-up
    round first: cuDNN autotune, allocator)."""
    seconds = {name: [] for name in runs}
    for round_ in range(args.repeats + 1):
        for name, t in runs.items():
            with torch_runtime(t.train, t.device):
                t.run.epoch += 1
                started = time.perf_counter()
                t.epoch()
                if t.device.type == "cuda":
                    torch.cuda.synchronize()
                if round_:
                    seconds[name].append((time.perf_counter() - started) / args.steps)
    return {name: min(values) for name, values in seconds.items()}


def embed_crops_per_s(training: Training, args) -> float:
    """Fastest of ``repeats`` inference passes over a batch (float32, no autocast, as embed)."""
    model, device = training.run.deployed.eval(), training.device
    crops = np.asarray(training.data.memmaps[0][: args.batch_size])
    mean = torch.full((1, CROP_SHAPE[0], 1, 1), 0.5, device=device)
    std = torch.full((1, CROP_SHAPE[0], 1, 1), 0.29, device=device)
    best = float("inf")
    with torch.inference_mode():
        for _ in range(args.repeats + 1):  # the first pass is a warm-up
            started = time.perf_counter()
            model.forward_features(to_input(crops, mean, std, device)).float().cpu()
            best = min(best, time.perf_counter() - started)
    return len(crops) / best


def layout_job(method: str, args) -> None:
    """One training job of ``thread_layouts`` (this script in a fresh process, as Snakemake runs
    a train job): the demo's settings for ``method`` (config/config.yaml), ``LAYOUT_EPOCHS``
    epochs on the benchmark's plates, the last plate's batch held out."""
    from debatch.cnn.train import train_model
    from debatch.pipeline.params import train_params

    config = yaml.safe_load(DEMO_CONFIG.read_text())["train"]
    params = {**train_params(config, method, 0, None), "num_threads": args.threads}
    params.update(epochs=LAYOUT_EPOCHS, holdout_batches=[f"B{N_PLATES - 1}"], device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        train_model(write_plates(Path(tmp)), Path(tmp) / "model", params)


def wall_seconds(jobs_at_once: int, threads: int) -> float:
    """Wall seconds of the demo's training jobs (``config.yaml``'s train.methods), each a fresh
    process on ``threads`` threads, ``jobs_at_once`` at a time."""
    methods = yaml.safe_load(DEMO_CONFIG.read_text())["train"]["methods"]

    def job(method: str) -> None:
        command = [sys.executable, __file__, "--layout-job", method, "--threads", str(threads)]
        subprocess.run(command, check=True, capture_output=True)

    started = time.perf_counter()
    with ThreadPoolExecutor(jobs_at_once) as pool:
        list(pool.map(job, methods))
    return time.perf_counter() - started


def thread_layouts() -> dict[str, float]:
    """Layout -> wall seconds of the demo's trainings (``LAYOUTS``)."""
    return {layout: wall_seconds(*jobs_threads) for layout, jobs_threads in LAYOUTS.items()}


def print_layouts(layouts: dict[str, float]) -> None:
    print(
        "\n### Threads per training job on this CPU: the demo's trainings "
        f"({LAYOUT_EPOCHS} epochs of the plates above each, whole jobs)\n"
    )
    print("| layout | wall s | x the one-at-a-time layout |")
    print("|---|---:|---:|")
    reference = layouts[next(iter(LAYOUTS))]
    for layout, seconds in layouts.items():
        print(f"| {layout} | {seconds:.1f} | {seconds / reference:.2f} |")
    print(
        "\nthreads.train defaults to 1, and the demos let train jobs run side by side where "
        "torch sees no GPU (docs/running.md)."
    )


def main() -> None:
    args = arguments()
    if args.layout_job:
        layout_job(args.layout_job, args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        runs = trainings(write_plates(Path(tmp)), Path(tmp), args)
        per_step = seconds_per_step(runs, args)
        embed = embed_crops_per_s(runs["erm"], args)
    erm = runs["erm"]
    name = (
        torch.cuda.get_device_name()
        if erm.device.type == "cuda"
        else f"cpu, {args.threads} threads"
    )
    amp = f"on ({str(erm.amp_dtype).removeprefix('torch.')})" if erm.use_amp else "off"
    print(f"## Training step ({name}, batch {args.batch_size} x {CROP_SHAPE}, amp {amp})\n")
    print("| method | ms/step | crops/s | time vs erm |")
    print("|---|---:|---:|---:|")
    for method, value in per_step.items():
        print(
            f"| {method} | {value * 1000:.1f} | {args.batch_size / value:.0f} | "
            f"{value / per_step['erm']:.2f} |"
        )
    abra = per_step["abra"] / per_step["erm"]
    teacher = per_step["deepnoise_teacher"] / per_step["erm"]
    print(
        f"\nGoal ABRA / ERM step time <= 1.5: {'met' if abra <= 1.5 else 'NOT met'} ({abra:.2f})."
    )
    print(
        f"Goal mean teacher (deepnoise_teacher) / ERM step time <= 1.3: "
        f"{'met' if teacher <= 1.3 else 'NOT met'} ({teacher:.2f}; "
        f"{per_step['deepnoise_teacher'] / per_step['deepnoise']:.2f} x DeepNoise alone)."
    )
    print(
        f"Embedding (eval-mode forward as the embed rule runs it, the same network for every "
        f"method): {embed:.0f} crops/s."
    )
    layouts = {}
    if erm.device.type == "cpu" and usable_cores() >= 2:
        layouts = thread_layouts()
        print_layouts(layouts)
    figures.save(
        __file__,
        {
            "device": name,
            "threads": args.threads,
            "train_crops_per_s": {m: args.batch_size / v for m, v in per_step.items()},
            "embed_crops_per_s": embed,
            "thread_layouts": layouts,
        },
    )


if __name__ == "__main__":
    main()
