"""What a cpg0016-size screen would cost: core-hours per stage and wall time on a cluster,
computed from the figures the other benchmarks measured (benchmarks/figures/*.json), never from
numbers typed here.

Screen: 2,000 plates x 384 wells x 9 sites, 5 channels of 1080 px, SCREEN's cells per site.
Per stage: the measured unit cost, where it was measured, how many units the screen has, the
core-hours, and the wall time on N nodes x 32 cores if the stage's jobs fill them (image and
feature jobs are one per plate or plate shard, thousands of them, so they do). Training and
embedding are on CPU at the measured crops/s unless train_step.py ran on a GPU. The DAG's size
and cluster submissions come from dag_scaling.py. Prints markdown; docs/running.md shows it.
"""

from __future__ import annotations

from pathlib import Path

import yaml

import figures

REPO = Path(__file__).resolve().parents[1]
SCREEN = {"plates": 2000, "wells": 384, "sites": 9, "cells_per_site": 200}
NODES = (10, 50, 200)
CORES_PER_NODE = 32
# train.max_cells_per_epoch a screen this size is trained with (the default, null, would train
# every one of its ~1.4 billion cells each epoch)
TRAIN_CELLS_PER_EPOCH = 2_000_000


def measured(script: str, *keys: str) -> dict:
    """The figures ``script`` saved, with ``keys`` among them."""
    found = figures.load(script)
    if found is None or not set(keys) <= set(found):
        raise SystemExit(f"no figures {sorted(keys)} of {script}: run python benchmarks/{script}")
    return found


def stage_rows() -> list[tuple[str, str, str, float, float]]:
    """(stage, unit cost as measured, where, core-hours, hours of its longest job) for the
    whole screen: image and feature jobs are short and many; training and embedding are one
    job per model, so no cluster finishes them sooner than one job takes."""
    sites = SCREEN["plates"] * SCREEN["wells"] * SCREEN["sites"]
    cells = sites * SCREEN["cells_per_site"]
    image, features = measured("site_cost.py", "dense_cpu_s_per_site"), measured("features.py")
    dag, step = measured("dag_scaling.py"), measured("train_step.py")
    demo = figures.load("end_to_end.py")  # its job start-up figure; the row waits for it
    train = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["train"]
    models = len(train["methods"]) * len(train["seeds"])
    crops_per_model = train["epochs"] * TRAIN_CELLS_PER_EPOCH
    train_rate = min(step["train_crops_per_s"][m] for m in train["methods"])
    threads = step["threads"]
    rows = [
        (
            "image stages (illum, segment, QC, crops)",
            f"{image['dense_cpu_s_per_site']:.2f} CPU-s per site "
            f"({image['dense_cells_per_site']:.0f} cells)",
            "site_cost.py",
            image["dense_cpu_s_per_site"] * sites / 3600,
            0.0,
        ),
        (
            "CellProfiler features",
            f"{features['core_s_per_field']:.2f} core-s per site "
            f"({features['cells_per_field']:.0f} cells)",
            "features.py",
            features["core_s_per_field"] * sites / 3600,
            0.0,
        ),
        (
            f"training ({models} models x {train['epochs']} epochs x "
            f"{TRAIN_CELLS_PER_EPOCH:,} cells)",
            f"{train_rate:.0f} crops/s on {step['device']} (slowest method)",
            "train_step.py",
            models * crops_per_model / train_rate * threads / 3600,
            crops_per_model / train_rate / 3600,
        ),
        (
            f"embedding ({models} models x every cell)",
            f"{step['embed_crops_per_s']:.0f} crops/s on {step['device']}",
            "train_step.py",
            models * cells / step["embed_crops_per_s"] * threads / 3600,
            cells / step["embed_crops_per_s"] / 3600,
        ),
    ]
    if demo is not None:
        rows.insert(
            2,
            (
                "job start-ups",
                f"{dag['jobs_per_plate']:.1f} jobs per plate x {demo['job_floor_s']:.2f} s",
                "dag_scaling.py, end_to_end.py",
                dag["jobs_per_plate"] * demo["job_floor_s"] * SCREEN["plates"] / 3600,
                0.0,
            ),
        )
    return rows


def main() -> None:
    rows = stage_rows()
    dag = measured("dag_scaling.py")
    sites = SCREEN["plates"] * SCREEN["wells"] * SCREEN["sites"]
    print("## Cost model: a cpg0016-size screen\n")
    print(
        f"{SCREEN['plates']:,} plates x {SCREEN['wells']} wells x {SCREEN['sites']} sites = "
        f"{sites:,} sites of 5 channels, {SCREEN['cells_per_site']} cells per site assumed "
        f"(~{sites * SCREEN['cells_per_site'] / 1e9:.1f} billion cells). Unit costs as the "
        "named benchmarks measured them on this machine (in brackets the cells per site they "
        "were measured at: the image stages and features on dense fields, about the density "
        "assumed); wall time if the stage's jobs fill "
        f"N nodes x {CORES_PER_NODE} cores, or the time of its longest job where fewer jobs "
        "than cores run (training and embedding: one job per model).\n"
    )
    header = " | ".join(f"wall h, {n} nodes" for n in NODES)
    print(f"| stage | unit cost | measured by | core-hours | {header} |")
    print(f"|---|---|---|---:|{'---:|' * len(NODES)}")
    totals = dict.fromkeys(NODES, 0.0)
    for stage, unit, source, core_hours, longest_job in rows:
        walls = {n: max(core_hours / (n * CORES_PER_NODE), longest_job) for n in NODES}
        totals = {n: totals[n] + walls[n] for n in NODES}
        cells = " | ".join(f"{walls[n]:,.1f}" for n in NODES)
        print(f"| {stage} | {unit} | `{source}` | {core_hours:,.0f} | {cells} |")
    total = sum(row[3] for row in rows)
    cells = " | ".join(f"**{totals[n]:,.1f}**" for n in NODES)
    print(f"| **all, one stage after another** | | | **{total:,.0f}** | {cells} |")
    submissions = dag["submissions_per_plate"] * SCREEN["plates"] + dag["submissions_per_screen"]
    print(
        f"\nThe DAG: {dag['jobs_per_plate'] * SCREEN['plates']:,.0f} jobs, built by a dry run "
        f"in {dag['dry_run_s']:.0f} s (`dag_scaling.py`); on SLURM {submissions:,.0f} "
        f"submissions ({dag['submissions_per_plate']:g} per plate + "
        f"{dag['submissions_per_screen']:g} per screen, the group jobs of docs/running.md). "
        "Training and embedding figures are CPU figures unless train_step.py ran on a GPU "
        "(no GPU has been lent to this project's benchmarks yet); on a GPU they shrink by the "
        "GPU's crops/s over the CPU's."
        + (
            ""
            if figures.load("end_to_end.py")
            else " Job start-ups are left out until end_to_end.py has run here."
        )
    )


if __name__ == "__main__":
    main()
