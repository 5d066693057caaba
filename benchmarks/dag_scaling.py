"""DAG scaling: `snakemake --dry-run` wall time for screens of 10 to 2,000 plates, and how
many cluster submissions each makes.

Each plate has 384 wells x 9 sites x 5 channels (2,000 plates: the scale of cpg0016). Image
stages run one job per plate, so the DAG grows with plates, never with images: only folders and
platemaps are generated (no pixels). On a cluster a `group:` (workflow/rules) travels as one
submission: a plate's image steps are one, its CellProfiler features another. Submissions are
counted from a verbose dry run (group jobs + ungrouped jobs), timings from a quiet one.
Goal: <= 60 s at 2,000 plates. The reference, timed in the same run: Snakemake's own dry run of
a Snakefile with nothing but the same number of jobs per plate (a chain of rules per plate and
one job reading every plate's last file), so the ratio says what the workflow adds to
Snakemake's DAG building, whatever the machine's speed that day. Prints a markdown table.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

import figures

REPO = Path(__file__).resolve().parents[1]
PLATE_COUNTS = (10, 200, 2000)
COUNTED = (10, 200)  # plates whose submissions are counted (a verbose dry run prints every job)
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


def dry_run(folder: Path, config: Path, *options: str) -> tuple[float, str]:
    return timed_dry_run(
        REPO / "workflow" / "Snakefile", folder, "--configfile", str(config), *options
    )


def write_reference(folder: Path, n_plates: int, jobs_per_plate: int) -> Path:
    """A Snakefile of ``jobs_per_plate`` chained rules per plate and one job reading every
    plate's last file: Snakemake's DAG building for the same job count, nothing of ours."""
    (folder / "plates.txt").write_text("\n".join(f"P{plate:04d}" for plate in range(n_plates)))
    last = jobs_per_plate - 1
    rules = [
        'PLATES = open("plates.txt").read().split()',
        f'rule screen:\n    input: expand("step{last}/{{plate}}.txt", plate=PLATES)\n'
        '    output: "screen.txt"\n    shell: "touch {output}"',
        'rule step0:\n    output: "step0/{plate}.txt"\n    shell: "touch {output}"',
    ]
    for step in range(1, jobs_per_plate):
        rules.append(
            f'rule step{step}:\n    input: "step{step - 1}/{{plate}}.txt"\n'
            f'    output: "step{step}/{{plate}}.txt"\n    shell: "touch {{output}}"'
        )
    snakefile = folder / "Snakefile"
    snakefile.write_text("\n\n".join(rules) + "\n")
    return snakefile


def timed_dry_run(snakefile: Path, folder: Path, *options: str) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-s",
            str(snakefile),
            "--directory",
            str(folder),
            "--cores",
            "2",
            "--dry-run",
            *options,
        ],
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"dry run failed:\n{result.stderr[-2000:]}")
    return seconds, result.stdout + result.stderr


def job_count(summary: str) -> int:
    return next(int(line.split()[-1]) for line in summary.splitlines() if line.startswith("total"))


def submissions(log: str) -> int:
    """Cluster submissions of a dry run's jobs: one per group job, one per ungrouped job
    (printed unindented; `localrule all` runs on the submitting node)."""
    return len(re.findall(r"Group job \w+", log)) + len(re.findall(r"(?m)^rule \w+:", log))


def main() -> None:
    print("## DAG scaling (`snakemake --dry-run`, 384 wells x 9 sites x 5 channels per plate)\n")
    print("| plates | images represented | jobs | cluster submissions | dry-run s |")
    print("|---:|---:|---:|---:|---:|")
    seconds_at, submitted_at = {}, {}
    for n_plates in PLATE_COUNTS:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            config = write_screen(folder, n_plates)
            seconds, summary = dry_run(folder, config, "--quiet", "rules")
            if n_plates in COUNTED:
                submitted_at[n_plates] = submissions(dry_run(folder, config)[1])
        seconds_at[n_plates] = seconds
        submitted = f"{submitted_at[n_plates]:,}" if n_plates in submitted_at else "(see below)"
        print(
            f"| {n_plates} | {n_plates * 384 * 9 * 5:,} | {job_count(summary):,} | "
            f"{submitted} | {seconds:.1f} |"
        )
    small, large = COUNTED
    per_plate = (submitted_at[large] - submitted_at[small]) / (large - small)
    fixed = submitted_at[small] - per_plate * small
    largest = PLATE_COUNTS[-1]
    verdict = "met" if seconds_at[largest] <= 60 else "NOT met"
    jobs_per_plate = (job_count(summary) - 1) / largest
    with tempfile.TemporaryDirectory() as tmp:
        chain = round(jobs_per_plate)
        snakefile = write_reference(Path(tmp), largest, chain)
        reference_s, reference = timed_dry_run(snakefile, Path(tmp), "--quiet", "rules")
    figures.save(
        __file__,
        {
            "plates": largest,
            "dry_run_s": seconds_at[largest],
            "jobs_per_plate": jobs_per_plate,
            "submissions_per_plate": per_plate,
            "submissions_per_screen": fixed,
            "reference_s": reference_s,
        },
    )
    print(
        f"\nSnakemake alone, a Snakefile of {chain} chained jobs per plate "
        f"({job_count(reference) - 1:,} jobs at {largest:,} plates): {reference_s:.1f} s in the "
        f"same run; the workflow's dry run takes {seconds_at[largest] / reference_s:.1f}x that."
    )
    print(
        f"\nGoal <= 60 s at {largest:,} plates: {verdict} ({seconds_at[largest]:.1f} s). "
        f"Cluster submissions: {per_plate:g} per plate + {fixed:g} per screen (training, "
        f"embedding and profiles per method), so {per_plate * largest + fixed:,.0f} for "
        f"{largest:,} plates, against {job_count(summary) - 1:,} jobs."
    )


if __name__ == "__main__":
    main()
