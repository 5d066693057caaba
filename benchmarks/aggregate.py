"""Benchmark: debatch's well aggregation against pycytominer.aggregate on the same cell table.

    .venv/bin/python benchmarks/aggregate.py                  # 1M cells x 256 features (~3 min)
    .venv/bin/python benchmarks/aggregate.py --cells 100000   # quick look

Writes one synthetic per-cell Parquet table (float32 embeddings, 4 plates x 384 wells, cells in
well order as CellProfiler/CytoTable exports and this pipeline write them; ``--shuffle`` for
random order; encoded as the pipeline's stages write their tables,
``core.io.write_parquet_table``, which every contender reads), then runs each contender in its
own fresh process, so peak memory (VmHWM) is its own, in ``--repeats`` rounds of every
contender (best time kept, every contender alike; rounds, so that a slow spell of a shared
machine slows all of them):

- pycytominer: ``pd.read_parquet`` -> ``pycytominer.aggregate`` (median, object counts) ->
  ``DataFrame.to_parquet``;
- debatch DataFrame: the same read and write around ``debatch.profiles.aggregate.aggregate_wells``;
- debatch streamed: ``aggregate_parquet`` -> ``to_parquet``, what the well_profiles rule runs
  (reads a block of feature columns at a time, never the whole table);
- and, on the same table with NaN in a few features, pycytominer against the ``cellprofiler``
  source's aggregation (``skip_nan``: each well's median over its finite values).

debatch runs with 1 thread and with every usable core (its default; pycytominer/pandas has no
thread option). Two ratios:

- **stage** (the goal's ratio): Parquet cell table -> Parquet well profiles, read and write
  included, each tool used the way it is meant to be (pycytominer needs the DataFrame in
  memory): what a pipeline sees;
- **compute** (what ``pycytominer.aggregate`` does): aggregation alone, both given the same
  in-memory DataFrame.

Goals: the whole stage >= 10x faster than pycytominer's (issue 29; issue 5 asked it of the
compute ratio); debatch streamed peak memory <= 1.5x the cell table's in-memory size. Also
checks that every well profile equals pycytominer's (float tolerance) and that the cell counts
agree. Prints markdown; needs the test dependencies in workflow/envs/dev-requirements.txt.
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
import pyarrow as pa

from debatch.core.io import write_parquet_table
from debatch.core.parallel import usable_cores
from debatch.settings import COUNT_CELLS

STRATA = ["Metadata_Plate", "Metadata_Well"]
GOAL_SPEEDUP = 10.0
GOAL_MEMORY = 1.5  # x the cell table's in-memory size
TOLERANCE = 1e-6
# NaN in every 50th feature, for a fifth of the cells: CellProfiler leaves NaN where a feature
# cannot be measured, in a few features (Costes' thresholds of a dim channel pair, ...)
NAN_FEATURES = (50, 0.2)
SKIPPING_NAN = "debatch streamed, NaN skipped"  # the cellprofiler source's aggregation


def write_table(
    path: Path, cells: int, features: int, shuffle: bool, seed: int = 0, with_nan: bool = False
) -> int:
    """The synthetic cell table, ``with_nan``: NaN as CellProfiler leaves it (``NAN_FEATURES``);
    returns its in-memory (Arrow) size in bytes."""
    rng, nan_rng = np.random.default_rng(seed), np.random.default_rng([seed, 1])
    wells = [f"{row}{col:02d}" for row in "ABCDEFGHIJKLMNOP" for col in range(1, 25)]
    well_of_cell = np.sort(rng.integers(0, 4 * len(wells), cells))
    if shuffle:
        rng.shuffle(well_of_cell)
    all_wells = range(4 * len(wells))
    columns = {
        "Metadata_Plate": pa.array([f"plate{i // len(wells) + 1}" for i in all_wells]).take(
            well_of_cell
        ),
        "Metadata_Well": pa.array(wells * 4).take(well_of_cell),
        "Metadata_Treatment": pa.array([f"cpd{i % 40:02d}" for i in all_wells]).take(well_of_cell),
        "Metadata_Site": pa.array(rng.integers(1, 10, cells)),
        "Metadata_ObjectNumber": pa.array(np.arange(cells)),
    }
    for i in range(features):
        values = rng.normal(size=cells).astype(np.float32)
        if with_nan and i % NAN_FEATURES[0] == 0:  # its own draws: the values stay the same
            values[nan_rng.random(cells) < NAN_FEATURES[1]] = np.nan
        columns[f"emb_{i:03d}"] = pa.array(values)
    table = pa.table(columns)
    write_parquet_table(table, path)
    return table.nbytes


def run_contender(name: str, threads: int, table: Path, out: Path) -> dict:
    """One contender in this (fresh) process: phase times, peak RSS; its well profiles go to
    ``out``.

    Each imports only its own library, before the clock starts.
    """
    if name == "pycytominer":
        from pycytominer import aggregate
    else:
        from debatch.profiles.aggregate import aggregate_parquet, aggregate_wells
    start, cpu = time.perf_counter(), time.process_time()
    if name.startswith("debatch streamed"):
        wells = aggregate_parquet(table, threads=threads, skip_nan=name == SKIPPING_NAN)
        read = compute = None
    else:
        cells = pd.read_parquet(table)
        read = time.perf_counter() - start
        if name == "pycytominer":
            features = [c for c in cells.columns if not c.startswith("Metadata_")]
            wells = aggregate(
                cells,
                strata=STRATA,
                features=features,
                operation="median",
                compute_object_count=True,
                object_feature="Metadata_ObjectNumber",
            )
        else:
            wells = aggregate_wells(cells, threads=threads)
        compute = time.perf_counter() - start - read
    wells.to_parquet(out, index=False)
    stage = time.perf_counter() - start
    return {
        "read_s": read,
        "compute_s": compute,
        "stage_s": stage,
        "stage_cpu_s": time.process_time() - cpu,
        "peak_mb": peak_memory_mb(),
    }


def peak_memory_mb() -> float:
    """This process's peak resident memory. Linux's VmHWM starts afresh at exec, while ru_maxrss
    keeps the parent's high-water mark (the parent holds the synthetic table's memory)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def seconds(value) -> str:
    return "—" if value is None else f"{value:.2f}"


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cells", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=256)
    parser.add_argument(
        "--shuffle", action="store_true", help="cells in random order, not well order"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs per contender; the fastest is kept"
    )
    parser.add_argument("--contender", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--table", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    return parser.parse_args()


def contenders(cores: int) -> list[tuple[str, int]]:
    """(name, threads) of every run: all on 1 thread, debatch also on every usable core."""
    runs = [("pycytominer", 1), ("debatch DataFrame", 1), ("debatch streamed", 1)]
    if cores > 1:
        runs += [("debatch DataFrame", cores), ("debatch streamed", cores)]
    return runs


def fresh_process(name: str, threads: int, table: Path, out: Path) -> dict:
    """One run of one contender in a fresh process: its times and peak memory."""
    done = subprocess.run(
        [
            sys.executable,
            __file__,
            "--contender",
            name,
            "--threads",
            str(threads),
            "--table",
            str(table),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(args: argparse.Namespace, cores: int) -> tuple[dict, dict, float]:
    """Every contender on one synthetic table, then pycytominer and the NaN-skipping aggregation
    on the table with NaN (``NAN_FEATURES``): (results, well profiles sorted by well, table MB),
    both dicts keyed by (name, threads). ``args.repeats`` rounds, each running every contender
    once (a slow spell of a shared machine then slows all of them alike); per contender, the
    fastest run's times with the highest peak memory of its runs."""
    runs = [("", run) for run in contenders(cores)]
    runs += [("_nan", ("pycytominer", 1)), ("_nan", (SKIPPING_NAN, cores))]
    with tempfile.TemporaryDirectory() as tmp:
        tables = {"": Path(tmp) / "cells.parquet", "_nan": Path(tmp) / "cells_nan.parquet"}
        table_bytes = write_table(tables[""], args.cells, args.features, args.shuffle)
        write_table(tables["_nan"], args.cells, args.features, args.shuffle, with_nan=True)
        every_run, outs = {}, {}
        for _ in range(max(1, args.repeats)):
            for table, (name, threads) in runs:
                key = (name + table, threads)
                outs[key] = Path(tmp) / f"{name.replace(' ', '_')}_{threads}{table}.parquet"
                run = fresh_process(name, threads, tables[table], outs[key])
                every_run.setdefault(key, []).append(run)
        profiles = {
            key: pd.read_parquet(out).sort_values(STRATA).reset_index(drop=True)
            for key, out in outs.items()
        }
    results = {}
    for key, runs_of_key in every_run.items():
        results[key] = min(runs_of_key, key=lambda run: run["stage_s"])
        results[key]["peak_mb"] = max(run["peak_mb"] for run in runs_of_key)
    return results, profiles, table_bytes / 2**20


def print_header(args: argparse.Namespace, table_mb: float, cores: int, load: float) -> None:
    order = "shuffled" if args.shuffle else "well order"
    print(
        f"## Well aggregation: {args.cells:,} cells x {args.features} float32 features, "
        f"4 plates x 384 wells, {order} (median)\n"
    )
    print(
        f"Cell table in memory: {table_mb:,.0f} MB. Best of {max(1, args.repeats)} rounds of "
        f"every contender, each run in a fresh process; {cores} usable core(s), "
        f"load average {load:.1f} at the start (other work on the machine slows "
        "multi-threaded runs most).\n"
    )


def compare_to_reference(got: pd.DataFrame, reference: pd.DataFrame):
    """(max |difference| of the feature medians, whether wells and cell counts agree)."""
    features = [c for c in reference.columns if c.startswith("emb_")]
    expected = reference[features].to_numpy(np.float64)
    difference = np.abs(got[features].to_numpy(np.float64) - expected).max()
    counts_ok = (
        got[STRATA].equals(reference[STRATA])
        and (got[COUNT_CELLS].to_numpy() == reference[COUNT_CELLS].to_numpy()).all()
    )
    return difference, counts_ok


def print_contenders(results: dict, profiles: dict, table_mb: float) -> bool:
    """The table of every contender; returns whether all their well profiles agree."""
    print(
        "| contender | threads | read s | compute s | stage s (read+compute+write) | "
        "stage speed-up | compute speed-up | stage CPU s (all threads) | peak memory MB | "
        "peak / table | max \\|diff\\| to pycytominer |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    py = results["pycytominer", 1]
    agree = True
    for (name, threads), r in results.items():
        if name.endswith("_nan"):  # print_skipping_nan's
            continue
        difference, counts_ok = compare_to_reference(
            profiles[name, threads], profiles["pycytominer", 1]
        )
        agree &= bool(difference <= TOLERANCE and counts_ok)
        compute_ratio = (
            "—" if r["compute_s"] is None else f"{py['compute_s'] / r['compute_s']:.1f}x"
        )
        print(
            f"| {name} | {threads} | {seconds(r['read_s'])} | {seconds(r['compute_s'])} | "
            f"{r['stage_s']:.2f} | {py['stage_s'] / r['stage_s']:.1f}x | {compute_ratio} | "
            f"{r['stage_cpu_s']:.2f} | {r['peak_mb']:,.0f} | {r['peak_mb'] / table_mb:.2f} | "
            f"{difference:.1e}{'' if counts_ok else ' (counts differ!)'} |"
        )
    return agree


def print_goals(results: dict, table_mb: float, cores: int, agree: bool) -> None:
    py = results["pycytominer", 1]
    streamed = results["debatch streamed", cores]
    frame = results["debatch DataFrame", cores]
    stage_ratio = py["stage_s"] / streamed["stage_s"]
    compute_ratio = py["compute_s"] / frame["compute_s"]
    memory_ratio = streamed["peak_mb"] / table_mb
    print(
        "\nGoal (issue 29: the whole stage, Parquet -> Parquet, debatch streamed as the pipeline "
        f"runs it, {cores} thread(s)): >= {GOAL_SPEEDUP:.0f}x pycytominer's: {stage_ratio:.1f}x, "
        f"{verdict(stage_ratio >= GOAL_SPEEDUP)}."
    )
    print(
        "Aggregation alone (the same DataFrame, as pycytominer.aggregate does, "
        f"{cores} thread(s)): {compute_ratio:.1f}x; 1 thread: compute "
        f"{py['compute_s'] / results['debatch DataFrame', 1]['compute_s']:.1f}x, stage "
        f"{py['stage_s'] / results['debatch streamed', 1]['stage_s']:.1f}x; stage CPU seconds "
        f"(all threads) {py['stage_cpu_s'] / streamed['stage_cpu_s']:.1f}x fewer."
    )
    print(
        f"Goal peak memory <= {GOAL_MEMORY}x the cell table ({table_mb:,.0f} MB): debatch streamed "
        f"{streamed['peak_mb']:,.0f} MB = {memory_ratio:.2f}x, "
        f"{verdict(memory_ratio <= GOAL_MEMORY)} (pycytominer {py['peak_mb'] / table_mb:.1f}x)."
    )
    print(
        f"Well profiles equal pycytominer's (|diff| <= {TOLERANCE:g}) with the same cell counts: "
        f"{'yes' if agree else 'NO'}."
    )


def print_skipping_nan(results: dict, profiles: dict, cores: int) -> bool:
    """The cellprofiler source's aggregation against pycytominer on the table with NaN; returns
    whether their well profiles agree."""
    py, ours = results["pycytominer_nan", 1], results[SKIPPING_NAN + "_nan", cores]
    difference, counts_ok = compare_to_reference(
        profiles[SKIPPING_NAN + "_nan", cores], profiles["pycytominer_nan", 1]
    )
    print(
        f"\nCellProfiler features (the `cellprofiler` source: a well's median over its cells' "
        f"finite values, as pandas and pycytominer take it), the same table with NaN in every "
        f"{NAN_FEATURES[0]}th feature for {NAN_FEATURES[1]:.0%} of the cells: pycytominer "
        f"{py['stage_s']:.2f} s, "
        f"{SKIPPING_NAN} ({cores} thread(s)) {ours['stage_s']:.2f} s = "
        f"{py['stage_s'] / ours['stage_s']:.1f}x, "
        f"{ours['stage_s'] / results['debatch streamed', cores]['stage_s']:.2f}x the time of the "
        f"table without NaN; max |diff| {difference:.1e}."
    )
    return bool(difference <= TOLERANCE and counts_ok)


def main() -> None:
    args = parse_args()
    if args.contender:
        result = run_contender(args.contender, args.threads, Path(args.table), Path(args.out))
        print(json.dumps(result))
        return
    cores, load = usable_cores(), os.getloadavg()[0]
    results, profiles, table_mb = measure(args, cores)
    print_header(args, table_mb, cores, load)
    agree = print_contenders(results, profiles, table_mb)
    print_goals(results, table_mb, cores, agree)
    agree &= print_skipping_nan(results, profiles, cores)
    if not agree:
        raise SystemExit("debatch's well profiles differ from pycytominer's")


if __name__ == "__main__":
    main()
