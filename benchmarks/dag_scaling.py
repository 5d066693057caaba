"""DAG scaling: `snakemake --dry-run` wall time for screens of 10, 50 and 200 plates.

Each plate has 384 wells x 9 sites x 5 channels. Image stages run one job per plate, so the DAG
grows with plates, never with images: only folders and platemaps are generated (no pixels).
Goal: <= 15 s at 200 plates and close to linear. Prints a markdown table.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PLATE_COUNTS = (10, 50, 200)
WELLS = [f"{row}{col:02d}" for row in "ABCDEFGHIJKLMNOP" for col in range(1, 25)]  # 384


def write_screen(folder: Path, n_plates: int) -> Path:
    """Plate sheet, platemaps and (empty) image folders; returns the config path."""
    platemap = folder / "platemap.tsv"
    lines = ["well\ttreatment\trole"]
    for i, well in enumerate(WELLS):
        treatment = "DMSO" if i % 12 == 0 else f"cpd{i % 300:03d}"
        role = "negcon" if i % 12 == 0 else "treatment"
        lines.append(f"{well}\t{treatment}\t{role}")
    platemap.write_text("\n".join(lines) + "\n")
    rows = ["plate\tbatch\timages\tpattern\tplatemap"]
    for plate in range(n_plates):
        images = folder / f"P{plate:04d}"
        images.mkdir()
        rows.append(f"P{plate:04d}\tbatch{plate // 10}\t{images}\topera_phenix\t{platemap}")
    (folder / "plates.tsv").write_text("\n".join(rows) + "\n")
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config.update(results=str(folder / "results"), plates=str(folder / "plates.tsv"))
    config["demo"]["enabled"] = False
    config["train"]["holdout_batches"] = []
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def dry_run_seconds(folder: Path, config: Path) -> tuple[float, int]:
    started = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-s",
            str(REPO / "Snakefile"),
            "--directory",
            str(folder),
            "--configfile",
            str(config),
            "--cores",
            "2",
            "--dry-run",
            "--quiet",
            "rules",
        ],
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"dry run failed:\n{result.stderr[-2000:]}")
    total = next(
        int(line.split()[-1]) for line in result.stdout.splitlines() if line.startswith("total")
    )
    return seconds, total


def main() -> None:
    print("## DAG scaling (`snakemake --dry-run`, 384 wells x 9 sites x 5 channels per plate)\n")
    print("| plates | images represented | jobs | dry-run s | s per 100 plates |")
    print("|---:|---:|---:|---:|---:|")
    seconds_at = {}
    for n_plates in PLATE_COUNTS:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            seconds, jobs = dry_run_seconds(folder, write_screen(folder, n_plates))
        seconds_at[n_plates] = seconds
        print(
            f"| {n_plates} | {n_plates * 384 * 9 * 5:,} | {jobs:,} | {seconds:.1f} | "
            f"{100 * seconds / n_plates:.1f} |"
        )
    largest = PLATE_COUNTS[-1]
    growth = (seconds_at[largest] / seconds_at[PLATE_COUNTS[0]]) / (largest / PLATE_COUNTS[0])
    verdict = "met" if seconds_at[largest] <= 15 else "NOT met"
    print(
        f"\nGoal <= 15 s at {largest} plates: {verdict} ({seconds_at[largest]:.1f} s). "
        f"Time grows {growth:.2f}x as fast as the plate count from {PLATE_COUNTS[0]} to {largest} "
        f"plates (1.0 = linear, below 1 = fixed start-up cost dominates)."
    )


if __name__ == "__main__":
    main()
