"""`make bench`: run every benchmark script here and rewrite benchmarks/README.md with their tables.

Each script prints its own markdown (tables + goal verdicts); this runner adds the machine, the
date and the time each took, then appends notes.md (hand-written reasons for goals not met).
``python benchmarks/run_all.py features.py ...`` reruns only the named scripts and keeps the
other sections of the README as they are; arguments after ``--`` go to each named script
(``run_all.py verdict.py -- --judge-only``). ``BY_HAND`` scripts (gpu.py) run only when named.
"""

from __future__ import annotations

import datetime
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
HELPERS = {
    "previous.py",
    "figures.py",
    "clone.py",
    "fields.py",
}  # modules the benchmarks import, not benchmarks
# benchmarks `make bench` leaves out (they need a GPU to say anything): run by name,
# `run_all.py gpu.py -- --image-size 512`; their last section is kept otherwise. Until one has
# a section, the goals table says its goal was not assessed.
BY_HAND = {"gpu.py": "Goal (issue 29 goal 7) >= 5k crops/s for 64 px crops on an H100-class GPU"}
# Snakemake runs here use no SLURM: scontrol (which Snakemake's SLURM plugin asks at every start)
# is pointed at a configuration without a controller, as tests/conftest.py does, so a machine
# with SLURM installed but not running times what a machine without SLURM would (not SLURM's
# MessageTimeout per Snakemake start)
SLURM_UNREACHABLE = HERE.parent / "tests" / "slurm_unreachable.conf"
ORDER = [
    "image_stages.py",
    "segmentation_accuracy.py",
    "segmentation_speed.py",
    "site_cost.py",
    "focus_qc.py",
    "features.py",
    "features_memory.py",
    "aggregate.py",
    "train_step.py",
    "dag_scaling.py",
    "end_to_end.py",
    "rxrx1_demo.py",
    "test_suite.py",
    "report_size.py",
    "umap_wells.py",
    "cost_model.py",
    "verdict_weights.py",
    "verdict.py",
]


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{os.cpu_count()} cores ({cpu}), {memory_gb:.0f} GiB RAM, {platform.platform()}, "
        f"Python {platform.python_version()}"
    )


def run(script: Path, args=()) -> tuple[str, bool]:
    """A benchmark's markdown (its stdout), framed with its name and duration; and whether it
    succeeded (a failure's section shows the end of its stderr). ``args``: its arguments."""
    print(f"running {script.name} ...", flush=True)
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    env = {"SLURM_CONF": str(SLURM_UNREACHABLE), **os.environ}
    result = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, env=env
    )
    seconds = time.perf_counter() - started
    # wall-clock figures mean little on a busy machine: say how busy it was
    load = f"load average {load_before:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    if result.returncode != 0:
        body = f"**failed** (exit {result.returncode}):\n\n```\n{result.stderr[-2000:]}\n```"
    else:
        body = result.stdout.strip()
    print(body, flush=True)
    section = (
        f"<!-- {script.name}: {seconds:.0f} s -->\n{body}\n\n_`{script.name}`, {seconds:.0f} s, "
        f"{load}._"
    )
    return section, result.returncode == 0


def goals_table(sections: dict[str, str]) -> str:
    """Every goal line the benchmarks printed ("Goal ...: met / NOT met ..."), one row each,
    so the summary is regenerated with the figures instead of typed beside them."""
    rows = [
        f"| `{name}` | {line.strip()} |"
        for name, section in sections.items()
        for line in section.splitlines()
        if line.startswith("Goal")
    ]
    rows += [
        f"| `{name}` | {goal}: not assessed, it has not run on a GPU here (the notes below). |"
        for name, goal in BY_HAND.items()
        if name not in sections
    ]
    return "\n".join(
        [
            "## Goals: where each stands",
            "",
            "| benchmark | goal and latest figure |",
            "|---|---|",
            *rows,
            "",
        ]
    )


SECTION = re.compile(
    r"<!-- (?P<name>\S+\.py): \d+ s -->\n.*?\n_`(?P=name)`, \d+ s[^\n]*?\._", re.DOTALL
)


def existing_sections() -> dict[str, str]:
    """The sections of the current README, by script name (to keep when rerunning a few)."""
    readme = HERE / "README.md"
    text = readme.read_text() if readme.exists() else ""
    return {match.group("name"): match.group(0) for match in SECTION.finditer(text)}


def main(only: list[str], args=()) -> None:
    scripts = [HERE / name for name in ORDER if (HERE / name).exists()]
    scripts += sorted(
        p
        for p in HERE.glob("*.py")
        if p.name not in ORDER and p.name not in HELPERS and p.name != Path(__file__).name
    )
    kept = existing_sections()
    sections, failures = {}, []
    for script in scripts:
        skipped = script.name not in only if only else script.name in BY_HAND
        if skipped:
            if script.name in kept:
                sections[script.name] = kept[script.name]
            continue
        sections[script.name], succeeded = run(script, args)
        if not succeeded:
            failures.append(script.name)
    notes = HERE / "notes.md"
    text = [
        "# Benchmarks",
        "",
        f"Latest figures from `make bench` on {datetime.date.today()}: {machine()}.",
        "Every table compares debatch with a reference measured in the same run, so ratios",
        "carry over between machines better than absolute numbers. Rerun: `make bench`",
        "(its references, e.g. pycytominer, are test dependencies in",
        "workflow/envs/dev-requirements.txt).",
        "",
        *[section + "\n" for section in sections.values()],
        goals_table(sections),
    ]
    if notes.exists():
        text.append(notes.read_text())
    (HERE / "README.md").write_text("\n".join(text))
    if failures:
        raise SystemExit(f"benchmarks failed: {failures}")


if __name__ == "__main__":
    names = sys.argv[1:]
    cut = names.index("--") if "--" in names else len(names)
    main(names[:cut], names[cut + 1 :])
