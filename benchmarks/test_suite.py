"""The test suite as CI runs it: `make test` (README.md's test command: every unit test and every
slow end-to-end Snakemake run, on pytest-xdist workers), timed against issue 29's goal of
<= 15 minutes on 2 cores.

The reference in the same run is the suite's own busy time: the seconds its tests took summed
over the workers (pytest's JUnit XML, fixtures included), so the ratio busy / wall says how
much the workers overlap, and the modules that take longest say where the time goes. A census
(benchmarks/census/sitecustomize.py, on PYTHONPATH for the run) says who spent the CPU:
Snakemake, the workflow's jobs by rule script, the test processes. The machine's load at the
start is in the section's footer: the goal is for an idle machine.
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GOAL_MINUTES = 15.0
SLOWEST_MODULES = 8
CENSUS = REPO / "benchmarks" / "census"  # its sitecustomize.py records every Python process
LARGEST_JOBS = 6


def run_make_test(junit: Path, census: Path) -> tuple[float, float, int]:
    """`make test` with pytest's JUnit XML written to ``junit`` and every Python process's CPU
    to ``census``: wall s, CPU s of every process it started, exit status."""
    addopts = f"{os.environ.get('PYTEST_ADDOPTS', '')} --junit-xml={junit}".strip()
    path = os.pathsep.join(filter(None, [str(CENSUS), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTEST_ADDOPTS": addopts, "PYTHONPATH": path, "DEBATCH_CENSUS": census}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(["make", "test"], cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if not junit.exists():
        raise SystemExit(f"make test wrote no JUnit XML:\n{result.stdout[-3000:]}{result.stderr}")
    return wall, cpu, result.returncode


def module_seconds(junit: Path) -> tuple[dict, dict, dict, list[str]]:
    """Tests and busy seconds per test module, the outcome counts, and each failed test with
    the first line of its failure, from the JUnit XML."""
    tests, seconds, outcomes = defaultdict(int), defaultdict(float), defaultdict(int)
    failures = []
    for case in ElementTree.parse(junit).iter("testcase"):
        module = case.get("classname", "").removeprefix("tests.") + ".py"
        tests[module] += 1
        seconds[module] += float(case.get("time", 0))
        failure = case.find("failure")
        failure = failure if failure is not None else case.find("error")
        skipped = case.find("skipped") is not None
        outcomes["failed" if failure is not None else "skipped" if skipped else "passed"] += 1
        if failure is not None:
            message = (failure.get("message") or "").strip().splitlines()
            failures.append(f"`{module}::{case.get('name')}`: {message[0] if message else '?'}")
    return tests, seconds, outcomes, failures


def census_rows(census: Path) -> list[tuple[str, int, float]]:
    """(kind, processes, CPU s) from the census, largest first: Snakemake's runs and dry runs,
    the jobs together and the LARGEST_JOBS rule scripts that spent most, the tests, the rest."""
    processes, seconds = defaultdict(int), defaultdict(float)
    for line in census.read_text().splitlines() if census.exists() else []:
        kind, cpu = line.rsplit("\t", 1)
        processes[kind] += 1
        seconds[kind] += float(cpu)
    jobs = [kind for kind in seconds if kind.startswith("job: ")]
    rows = [(kind, processes[kind], seconds[kind]) for kind in seconds if kind not in jobs]
    rows.append(
        ("jobs, every rule", sum(processes[k] for k in jobs), sum(seconds[k] for k in jobs))
    )
    largest = sorted(jobs, key=seconds.get, reverse=True)[:LARGEST_JOBS]
    rows += [(f"{kind} (of the jobs)", processes[kind], seconds[kind]) for kind in largest]
    return sorted(rows, key=lambda row: (row[0].endswith("(of the jobs)"), -row[2]))


def print_census(rows: list[tuple[str, int, float]], cpu: float) -> None:
    recorded = sum(s for kind, _, s in rows if not kind.endswith("(of the jobs)"))
    print(
        f"Who spent the CPU (census of every Python process that exited normally: "
        f"{recorded / 60:.1f} CPU min, against {cpu / 60:.1f} measured for `make test`'s "
        "processes; the census leaves out processes killed outright and counts SLURM's jobs):"
    )
    print()
    print("| processes | count | CPU min | share | CPU s each |")
    print("|---|---:|---:|---:|---:|")
    for kind, count, seconds in rows:
        print(
            f"| {kind} | {count} | {seconds / 60:.1f} | {seconds / recorded:.0%} | "
            f"{seconds / count:.2f} |"
        )
    print()


def workers() -> str:
    """The pytest-xdist workers `make test` starts (its -n): TEST_WORKERS from the environment,
    else the Makefile's default."""
    if os.environ.get("TEST_WORKERS"):
        return os.environ["TEST_WORKERS"]
    makefile = (REPO / "Makefile").read_text()
    match = re.search(r"^TEST_WORKERS \?= (\S+)", makefile, re.MULTILINE)
    return match.group(1) if match else "?"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        junit, census = Path(tmp) / "junit.xml", Path(tmp) / "census.tsv"
        wall, cpu, status = run_make_test(junit, census)
        tests, seconds, outcomes, failures = module_seconds(junit)
        processes = census_rows(census)
    busy = sum(seconds.values())
    print(f"## The test suite (`make test`, {workers()} pytest-xdist workers)")
    print()
    print(
        "| tests | passed | skipped | failed | wall min | CPU min (its processes; not SLURM's "
        "jobs) | busy min "
        "(tests summed over workers) | busy / wall |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {sum(tests.values())} | {outcomes['passed']} | {outcomes['skipped']} | "
        f"{outcomes['failed']} | {wall / 60:.1f} | {cpu / 60:.1f} | {busy / 60:.1f} | "
        f"{busy / wall:.2f} |"
    )
    print()
    for failure in failures:
        print(f"Failed: {failure[:300]}")
    if failures:
        print()
    print(f"The {SLOWEST_MODULES} slowest modules (busy seconds, their fixtures included):")
    print()
    print("| module | tests | s | share of busy time |")
    print("|---|---:|---:|---:|")
    for module in sorted(seconds, key=seconds.get, reverse=True)[:SLOWEST_MODULES]:
        print(
            f"| `{module}` | {tests[module]} | {seconds[module]:.0f} | "
            f"{seconds[module] / busy:.0%} |"
        )
    print()
    print_census(processes, cpu)
    verdict = "met" if wall / 60 <= GOAL_MINUTES and status == 0 else "NOT met"
    failing = "" if status == 0 else f"; make test exited {status}"
    print(
        f"Goal (issue 29) `make test` <= {GOAL_MINUTES:.0f} min on {os.cpu_count()} cores, idle "
        f"machine (load in the footer): {verdict} ({wall / 60:.1f} min{failing})."
    )


if __name__ == "__main__":
    main()
