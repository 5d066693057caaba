"""The features stage's memory at a screen's plate size: does a job hold the plate's table?

    .venv/bin/python benchmarks/features_memory.py    # ~4 min; up to ~17 GB of temporary files

A 384-well plate of 9 sites at the dense field's cells per site (site_cost.json), each cell
with the default measurements' float32 features of the demo's five channels (``feature_names``)
and the cells table's ``Metadata_`` columns. The values are random (what is measured here is
memory, not features): each site's rows are handed to the writer as a features job's workers
hand them over, the cells' metadata beside the site's features. Each job runs in a fresh
process; its peak resident memory above what it held before the call comes from Linux (VmHWM,
reset first):

- a features job of the whole plate (``measure_shard``'s writer: ``ParquetStream``, site by
  site), and one of a quarter of it (``segment.shards: 4``);
- the gather of the four shards' files into the plate's (``gather_features``);
- the reference: a quarter plate's table held whole and then written, the features stage's way
  before it streamed (its sites' tables concatenated, then ``write_parquet``).

Goal: every job's peak at a screen's plate within its rule's ``mem_mb``
(workflow/rules/features.smk). Prints markdown.
"""

from __future__ import annotations

import multiprocessing
import re
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

import figures
from debatch.core.io import ROW_GROUP_BYTES, ParquetStream, write_parquet
from debatch.core.wells import well_name
from debatch.demo.design import CHANNELS
from debatch.features.gather import gather_features
from debatch.features.plate import features_schema
from debatch.features.site import feature_names

REPO = Path(__file__).resolve().parents[1]
WELLS, SITES, SHARDS = 384, 9, 4
RULE_MEM_MB = int(  # features and gather_features ask for the same
    re.search(r"mem_mb=(\d+)", (REPO / "workflow/rules/features.smk").read_text()).group(1)
)


def resident_mb(field: str) -> float:
    """/proc/self/status's ``field`` (VmRSS; VmHWM, the peak) in MB."""
    status = Path("/proc/self/status").read_text()
    return int(re.search(rf"{field}:\s+(\d+)", status).group(1)) / 1024


def peak_during(call, *args) -> tuple[float, float]:
    """(MB resident before ``call(*args)``, its peak MB above that): the peak is reset first
    (Linux's clear_refs), since a spawned process starts with its parent's."""
    before = resident_mb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")
    call(*args)
    return before, resident_mb("VmHWM") - before


def site_metadata(index: int, cells_per_site: int) -> pd.DataFrame:
    """The cells table's ``Metadata_`` columns of site ``index`` of the plate (well-major)."""
    well = well_name(index // SITES // 24, index // SITES % 24)
    return pd.DataFrame(
        {
            "Metadata_Plate": "P1",
            "Metadata_Batch": "b1",
            "Metadata_Well": well,
            "Metadata_Site": index % SITES + 1,
            "Metadata_Treatment": "DMSO",
            "Metadata_Role": "negcon",
            "Metadata_ObjectNumber": np.arange(1, cells_per_site + 1),
        }
    )


def plate_sites(cells_per_site: int, first: int, count: int):
    """Sites ``first`` .. ``first + count - 1`` of the plate, each as the features job writes
    it: its cells' ``Metadata_`` columns, then the features (random float32)."""
    names = feature_names(list(CHANNELS))
    for index in range(first, first + count):
        values = np.random.default_rng(index).random((cells_per_site, len(names)), np.float32)
        features = pd.DataFrame(values, columns=names)
        yield pd.concat([site_metadata(index, cells_per_site), features], axis=1)


def cells_table(cells_per_site: int, first: int, count: int) -> pd.DataFrame:
    """The cells table of those sites: what the features must follow, row for row."""
    sites = range(first, first + count)
    return pd.concat([site_metadata(i, cells_per_site) for i in sites], ignore_index=True)


def streamed(out: Path, cells_per_site: int, first: int, count: int) -> None:
    """A features job's writing: its sites' rows to ``out`` as they come (ParquetStream)."""
    schema = features_schema(site_metadata(0, 1), feature_names(list(CHANNELS)))
    with ParquetStream(out, schema) as stream:
        for site in plate_sites(cells_per_site, first, count):
            stream.write(site)


def held_whole(out: Path, cells_per_site: int, first: int, count: int) -> None:
    """The reference: the sites' rows concatenated into one table, then written."""
    write_parquet(pd.concat(plate_sites(cells_per_site, first, count), ignore_index=True), out)


def gathered(out: Path, shards: list[Path], cells_per_site: int) -> None:
    gather_features(shards, cells_table(cells_per_site, 0, WELLS * SITES), out)


def job(function, *args) -> tuple[float, float]:
    """(MB before, peak MB above) of ``function(*args)`` in a fresh process."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(peak_during, function, *args).result()


def main() -> None:
    cells_per_site = round((figures.load("site_cost.py") or {}).get("dense_cells_per_site", 211))
    sites = WELLS * SITES
    quarter = sites // SHARDS
    features = len(feature_names(list(CHANNELS)))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        plate = folder / "plate.parquet"
        rows.append(
            (
                "features job, whole plate (streamed)",
                sites,
                job(streamed, plate, cells_per_site, 0, sites),
            )
        )
        plate.unlink()
        shards = [folder / f"shard{k}.parquet" for k in range(SHARDS)]
        for k, shard in enumerate(shards):
            peak = job(streamed, shard, cells_per_site, k * quarter, quarter)
        rows.append(
            (f"features job, a quarter plate (shard {SHARDS}/{SHARDS}, streamed)", quarter, peak)
        )
        rows.append(
            ("gather of the four shards", sites, job(gathered, plate, shards, cells_per_site))
        )
        for shard in shards:
            shard.unlink()
        reference = job(held_whole, folder / "whole.parquet", cells_per_site, 0, quarter)
        rows.append(("reference: a quarter plate held whole, then written", quarter, reference))
    per_site_mb = cells_per_site * features * 4 / 1e6
    print("## The features stage's memory at a screen's plate size (1 thread)\n")
    print(
        f"A 384-well plate of 9 sites, {cells_per_site} cells per site (the dense field's), "
        f"{features:,} float32 features per cell: {sites * per_site_mb / 1e3:,.1f} GB of values. "
        f"Random values, a site at a time; each job in a fresh process. Row groups of "
        f"{ROW_GROUP_BYTES / 2**20:.0f} MiB of values.\n"
    )
    print("| job | sites | cells | values MB | held before MB | peak above it MB | peak / values |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, count, (before, peak) in rows:
        values = count * per_site_mb
        print(
            f"| {name} | {count:,} | {count * cells_per_site:,} | {values:,.0f} | {before:,.0f} "
            f"| {peak:,.0f} | {peak / values:.2f} |"
        )
    worst = max(before + peak for name, _, (before, peak) in rows if "reference" not in name)
    reference_total = sum(reference)
    print(
        f"\nGoal every features and gather job's peak within its rule's mem_mb ({RULE_MEM_MB:,} "
        f"MB) at this plate: {'met' if worst <= RULE_MEM_MB else 'NOT met'} (worst "
        f"{worst:,.0f} MB). The reference, a quarter of the plate held whole, peaked at "
        f"{reference_total:,.0f} MB."
    )
    figures.save(__file__, {"worst_job_mb": worst, "reference_quarter_mb": reference_total})


if __name__ == "__main__":
    main()
