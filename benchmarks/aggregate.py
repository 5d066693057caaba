"""Benchmark: debatch's well aggregation against pycytominer.aggregate on the same cell table.

    .venv/bin/python benchmarks/aggregate.py                  # 1M cells x 256 features (~8 GB peak)
    .venv/bin/python benchmarks/aggregate.py --cells 100000   # quick look

Writes one synthetic per-cell Parquet table (4 plates x 384 wells, cells in well order as
CellProfiler/CytoTable exports and this pipeline write them; ``--shuffle`` for random order),
then runs each contender in its own process so peak memory (VmHWM) is its own:

- pycytominer: ``pd.read_parquet`` + ``pycytominer.aggregate`` (median, object counts);
- debatch in memory: the same ``pd.read_parquet`` + ``debatch.aggregate.aggregate_wells``;
- debatch streamed: ``debatch.aggregate.aggregate_parquet`` (what the well_profiles rule runs).

Prints the times, peak memory, the ratios (goal: >= 10x faster), and checks that every well
profile agrees. Needs envs/bench-requirements.txt (``make bench`` installs it).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

STRATA = ["Metadata_Plate", "Metadata_Well"]


def write_table(path: Path, cells: int, features: int, shuffle: bool, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    wells = [f"{row}{col:02d}" for row in "ABCDEFGHIJKLMNOP" for col in range(1, 25)]
    well_of_cell = np.sort(rng.integers(0, 4 * len(wells), cells))
    if shuffle:
        rng.shuffle(well_of_cell)
    all_wells = range(4 * len(wells))
    columns = {
        "Metadata_Plate": pa.array([f"plate{i // len(wells) + 1}" for i in all_wells]).take(well_of_cell),
        "Metadata_Well": pa.array(wells * 4).take(well_of_cell),
        "Metadata_Treatment": pa.array([f"cpd{i % 40:02d}" for i in all_wells]).take(well_of_cell),
        "Metadata_Site": pa.array(rng.integers(1, 10, cells)),
        "Metadata_ObjectNumber": pa.array(np.arange(cells)),
    }
    for i in range(features):
        columns[f"emb_{i:03d}"] = pa.array(rng.normal(size=cells).astype(np.float32))
    pq.write_table(pa.table(columns), path)


def run_contender(name: str, table: Path, out: Path) -> dict:
    """One contender in this (fresh) process: times, peak RSS, and its well profiles written to ``out``.

    Each imports only its own library, before the clock starts: reading and aggregating are timed.
    """
    if name == "pycytominer":
        from pycytominer import aggregate
    else:
        from debatch.aggregate import aggregate_parquet, aggregate_wells
    start = time.perf_counter()
    read = 0.0
    if name == "debatch streamed":
        wells = aggregate_parquet(table)
    else:
        cells = pd.read_parquet(table)
        read = time.perf_counter() - start
        if name == "pycytominer":
            features = [c for c in cells.columns if not c.startswith("Metadata_")]
            wells = aggregate(cells, strata=STRATA, features=features, operation="median",
                              compute_object_count=True, object_feature="Metadata_ObjectNumber")
        else:
            wells = aggregate_wells(cells)
    total = time.perf_counter() - start
    wells.to_parquet(out, index=False)
    return {"read_s": read, "aggregate_s": total - read, "total_s": total, "peak_mb": peak_memory_mb()}


def peak_memory_mb() -> float:
    """This process's peak resident memory. Linux's VmHWM starts afresh at exec, while ru_maxrss
    keeps the parent's high-water mark (the parent holds the synthetic table's memory)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=256)
    parser.add_argument("--shuffle", action="store_true", help="cells in random order, not well order")
    parser.add_argument("--contender", help=argparse.SUPPRESS)
    parser.add_argument("--table", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.contender:
        print(json.dumps(run_contender(args.contender, Path(args.table), Path(args.out))))
        return

    with tempfile.TemporaryDirectory() as tmp:
        table = Path(tmp) / "cells.parquet"
        start = time.perf_counter()
        write_table(table, args.cells, args.features, args.shuffle)
        print(f"table: {args.cells:,} cells x {args.features} features, 4 plates x 384 wells, "
              f"{'shuffled' if args.shuffle else 'well order'} ({time.perf_counter() - start:.1f} s to write)")
        results, profiles = {}, {}
        for name in ("pycytominer", "debatch in memory", "debatch streamed"):
            out = Path(tmp) / f"{name.replace(' ', '_')}.parquet"
            done = subprocess.run([sys.executable, __file__, "--contender", name, "--table", str(table),
                                   "--out", str(out)], capture_output=True, text=True, check=True)
            results[name] = json.loads(done.stdout.strip().splitlines()[-1])
            profiles[name] = pd.read_parquet(out).sort_values(STRATA).reset_index(drop=True)
            r = results[name]
            print(f"{name:18s} read {r['read_s']:6.2f} s  aggregate {r['aggregate_s']:6.2f} s  "
                  f"total {r['total_s']:6.2f} s  peak memory {r['peak_mb']:7.0f} MB")

    features = [c for c in profiles["pycytominer"].columns if c.startswith("emb_")]
    reference = profiles["pycytominer"][features].to_numpy(np.float64)
    for name in ("debatch in memory", "debatch streamed"):
        difference = np.abs(profiles[name][features].to_numpy(np.float64) - reference).max()
        counts_agree = (profiles[name]["Metadata_Count_Cells"].to_numpy()
                        == profiles["pycytominer"]["Metadata_Object_Count"].to_numpy()).all()
        print(f"{name}: max |difference| to pycytominer {difference:.2e}, cell counts agree: {counts_agree}")
    py, memory, streamed = results["pycytominer"], results["debatch in memory"], results["debatch streamed"]
    print(f"speed-up, aggregation of the same DataFrame: {py['aggregate_s'] / memory['aggregate_s']:.1f}x")
    print(f"speed-up, Parquet file -> well profiles:    {py['total_s'] / streamed['total_s']:.1f}x")
    print(f"peak memory, pycytominer / debatch streamed: {py['peak_mb'] / streamed['peak_mb']:.1f}x "
          f"({py['peak_mb']:.0f} MB vs {streamed['peak_mb']:.0f} MB)")


if __name__ == "__main__":
    main()
