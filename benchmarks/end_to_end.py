"""End to end: wall time and peak memory of the demo per rule, and peak memory as plates double.

1. Times `make demo` as a new user meets it (issue 29's goal 4): a fresh clone of the committed
   repository in a temporary folder, its virtual environment built by `make venv` (pip, with
   this machine's warm pip cache), then Snakemake on 2 cores: the goal counts both, since
   `make demo` is a new user's first command; says which part took what and summarises
   Snakemake's `benchmark:` tables per rule: jobs, total and max wall seconds, max peak RSS (the
   `umap` rule's rows are what the report's UMAP panels cost); and the report's size
   (report_size.py extrapolates it to 200 plates).
2. Runs a small screen with 2, 4 and 8 plates (erm, 1 epoch) and prints the peak RSS of each
   rule: per-plate rules must stay flat as plates double (the DAG never loads a whole screen).
Prints markdown tables.

The goal is in minutes on this machine, whose speed drifts by tens of percent from hour to hour.
So the run also times a fixed single-threaded workload (``REFERENCE``) in a fresh process
before the clone and again after the demo, and prints both beside the previous run's (when it
timed the same workload on the same library versions): a slower demo with a slower reference
points at the machine. The reference is compute only, in a warm process: start-up, imports,
disk and the second core can drift on their own.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

import figures
from clone import REPO, fresh_clone, timed_make

UNSAMPLED_MB = 20  # a Python job's RSS is never this small: Snakemake's sampler missed the job
SMALL_PLATE = {"rows": 4, "cols": 6, "sites": 2, "image_size": 256, "cells_per_site": 40}


# It imports nothing of debatch's, so a change to our code cannot change it: training steps of a
# small plain-torch CNN on random crops, then image filtering and sorting (the demo's two kinds).
REFERENCE = """
import json
import time
import numpy as np
import scipy
import torch
from scipy import ndimage
from torch import nn

torch.set_num_threads(1)
torch.manual_seed(0)
net = nn.Sequential(
    nn.Conv2d(5, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
    nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
    nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
    nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 9),
).to(memory_format=torch.channels_last)
optimiser = torch.optim.AdamW(net.parameters())
crops = torch.randn(256, 5, 32, 32).contiguous(memory_format=torch.channels_last)
labels = torch.randint(0, 9, (256,))
image = np.random.default_rng(0).random((1080, 1080), np.float32)
for step in range(31):  # the first step warms up
    if step == 1:
        started = time.perf_counter()
    loss = nn.functional.cross_entropy(net(crops), labels)
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
for _ in range(30):
    ndimage.gaussian_filter(image, 2.0)
    np.sort(image, axis=None)
versions = f"torch {torch.__version__} numpy {np.__version__} scipy {scipy.__version__}"
print(json.dumps({"seconds": time.perf_counter() - started, "versions": versions}))
"""


def reference() -> tuple[float, str]:
    """(seconds, fingerprint) of ``REFERENCE`` in a fresh single-threaded process; the
    fingerprint names the workload's code and library versions, so that only like is compared."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", REFERENCE], capture_output=True, text=True, env=env
    )
    if result.returncode != 0:
        raise SystemExit(f"the reference workload failed:\n{result.stderr[-3000:]}")
    measured = json.loads(result.stdout.splitlines()[-1])
    digest = hashlib.sha256((REFERENCE + measured["versions"]).encode()).hexdigest()[:12]
    return measured["seconds"], digest


def run(workdir: Path, config: dict) -> float:
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    started = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-s",
            str(REPO / "workflow" / "Snakefile"),
            "--directory",
            str(workdir),
            "--configfile",
            str(path),
            "--cores",
            "2",
            "--quiet",
        ],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise SystemExit(f"run failed:\n{result.stderr[-3000:]}")
    return time.perf_counter() - started


def rule_table(results: Path) -> pd.DataFrame:
    rows = []
    for path in sorted((results / "benchmarks").rglob("*.tsv")):
        rule = path.relative_to(results / "benchmarks").parts[0]
        record = pd.read_csv(path, sep="\t").iloc[0]
        rows.append({"rule": rule, "s": float(record["s"]), "max_rss": float(record["max_rss"])})
    table = pd.DataFrame(rows)
    return table.groupby("rule", sort=False).agg(
        jobs=("s", "size"), total_s=("s", "sum"), max_s=("s", "max"), max_rss_mb=("max_rss", "max")
    )


def machine_speed(seconds: tuple[float, float], fingerprint: str, previous: dict) -> str:
    """The reference workload's times before and after this run's demo, against the previous
    run's when it timed the same workload on the same library versions."""
    line = (
        "This machine's speed: a fixed workload (end_to_end.REFERENCE: compute on one thread, not "
        f"start-up or I/O) took {seconds[0]:.2f} s before the demo and {seconds[1]:.2f} s after"
    )
    if previous.get("reference_fingerprint") != fingerprint:
        return line + " (no earlier run timed this workload on these library versions)."
    before, after = previous["reference_before_s"], previous["reference_after_s"]
    ratio = sum(seconds) / (before + after)
    return line + (
        f"; {before:.2f} s and {after:.2f} s in the previous run (at "
        f"{previous.get('commit', 'an unknown commit')}): {ratio:.2f}x its time."
    )


def rss_mb(value: float) -> str:
    return f"{value:.0f}" if value >= UNSAMPLED_MB else "n/s"


def default_config(workdir: Path) -> dict:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["results"] = str(workdir / "results")
    config["plates"] = str(REPO / "config" / "plates.tsv")
    config["demo"]["root"] = "resources/demo"  # relative to the temporary working directory
    return config


def plates_sheet(workdir: Path, n_plates: int) -> str:
    rows = ["plate\tbatch\timages\tpattern\tplatemap"]
    for i in range(n_plates):
        plate = f"plate{i + 1:02d}"
        rows.append(
            f"{plate}\tbatch{i % 2 + 1}\tresources/demo/{plate}/images\topera_phenix\t"
            f"resources/demo/{plate}/platemap.tsv"
        )
    (workdir / "plates.tsv").write_text("\n".join(rows) + "\n")
    return str(workdir / "plates.tsv")


def main() -> None:
    previous = figures.load(__file__) or {}
    reference_before, fingerprint = reference()
    with tempfile.TemporaryDirectory() as tmp:
        clone, commit, venv_s = fresh_clone(Path(tmp))
        demo_s = timed_make(clone, "demo")
        results = clone / "results"
        table = rule_table(results)
        report_mb = (results / "report" / "index.html").stat().st_size / 1e6
    reference_after, _ = reference()
    seconds = venv_s + demo_s
    verdict = "met" if seconds <= 300 else "NOT met"
    mean_s = table.total_s / table.jobs
    figures.save(
        __file__,
        {
            "demo_s": demo_s,
            "venv_s": venv_s,
            "report_mb": report_mb,
            # what a job costs however little it does (start-up, imports, its script's wrapper)
            "job_floor_s": float(mean_s.min()),
            "job_floor_rule": str(mean_s.idxmin()),
            "commit": commit,
            "reference_before_s": reference_before,
            "reference_after_s": reference_after,
            "reference_fingerprint": fingerprint,
        },
    )
    print(f"## `make demo` from a fresh clone of {commit} (2 cores): {seconds:.0f} s wall\n")
    print(
        f"Goal (issue 29) <= 5 minutes including the virtual environment: {verdict} "
        f"({seconds / 60:.1f} min: the virtual environment {venv_s:.0f} s with a warm pip cache, "
        f"Snakemake {demo_s:.0f} s, in which its jobs ran {table.total_s.sum():.0f} job-seconds "
        f"on the 2 cores, training jobs {table.total_s.get('train', 0.0):.0f} of them). "
        "The report is "
        f"{report_mb:.1f} MB (goal < 10 MB: {'met' if report_mb < 10 else 'NOT met'}).\n"
    )
    print(machine_speed((reference_before, reference_after), fingerprint, previous) + "\n")
    print("| rule | jobs | total s | max s per job | max peak RSS MB |")
    print("|---|---:|---:|---:|---:|")
    for rule, row in table.iterrows():
        print(
            f"| {rule} | {row.jobs:.0f} | {row.total_s:.1f} | {row.max_s:.1f} | "
            f"{rss_mb(row.max_rss_mb)} |"
        )

    rss = {}
    for n_plates in (2, 4, 8):
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            config = default_config(workdir)
            config["plates"] = plates_sheet(workdir, n_plates)
            config["demo"]["params"].update(SMALL_PLATE)
            config["train"].update(
                methods=["erm"], holdout_batches=[], epochs=1, lr_schedule_epochs=1
            )
            config["profiles"]["corrections"] = ["none"]
            run(workdir, config)
            rss[n_plates] = rule_table(workdir / "results")["max_rss_mb"]
    frame = pd.DataFrame(rss)
    print("\n## Peak RSS (MB) per rule as plates double (24 wells x 2 sites per plate)\n")
    print("| rule | 2 plates | 4 plates | 8 plates | 8 / 2 |")
    print("|---|---:|---:|---:|---:|")
    for rule, row in frame.iterrows():
        ratio = f"{row[8] / row[2]:.2f}" if min(row[2], row[8]) >= UNSAMPLED_MB else "n/s"
        print(f"| {rule} | {rss_mb(row[2])} | {rss_mb(row[4])} | {rss_mb(row[8])} | {ratio} |")
    print(
        "\nn/s: not sampled (a job that ends within Snakemake's first memory sample reports a "
        "few MB)."
    )


if __name__ == "__main__":
    main()
