"""Illumination correction and crops against their I/O limit, on one generated demo plate.

- illum: images/s for computing the plate's functions and applying them the way the pipeline
  does (debatch.core.images.read_site: read + divide, done by segment and crops as they read) vs
  plain tifffile read + write of the same images. Goal >= 0.5.
- crops: cells/s of the crops stage vs reading the same images raw (cells / read time).
  Goals >= 0.5 of the read limit and >= 20k cells/s per core.
Both are measured with the files in the page cache (a warm-up read first), single-threaded, so
the figures are per core; the crops figures are the best of 3 runs (fresh output file each) and
the per-core figure divides by the process CPU time (reader thread included), not wall time.
Prints markdown tables.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pandas as pd
import tifffile

from debatch.core.images import read_site
from debatch.crops.cut import write_plate_crops
from debatch.demo.design import CHANNELS
from debatch.demo.plate import generate_plate
from debatch.illum.estimate import compute_plate_illum
from debatch.ingest.manifest import build_manifest, read_platemap
from debatch.segment.shards import segment_shard
from debatch.settings import Channels

PLATE = {"rows": 4, "cols": 6, "sites": 2, "image_size": 512, "cells_per_site": 160}
REPEATS = 3


def timed(function, *args, **kwargs):
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - started


def read_all(paths):
    return [tifffile.imread(path) for path in paths]


def demo_manifest(folder: Path) -> pd.DataFrame:
    """The manifest of a freshly generated demo plate."""
    generate_plate(folder / "plate", "P1", "b1", PLATE)
    channels = {name: str(i) for i, name in enumerate(CHANNELS, start=1)}
    return build_manifest(
        "P1",
        "b1",
        folder / "plate" / "images",
        "opera_phenix",
        read_platemap(folder / "plate" / "platemap.tsv"),
        channels,
    )


def read_write(paths, folder: Path) -> None:
    """The I/O limit: plain tifffile read + write of every image."""
    for i, image in enumerate(read_all(paths)):
        tifffile.imwrite(folder / f"copy{i}.tif", image)


def compute_and_apply(manifest: pd.DataFrame) -> dict:
    """The plate's illumination functions, applied as segment and crops read the sites."""
    functions = compute_plate_illum(manifest, list(CHANNELS), {}, threads=1)
    for row in manifest.to_dict("records"):
        read_site(row, list(CHANNELS), functions)
    return functions


def illum_section(folder: Path, manifest: pd.DataFrame, paths) -> dict:
    """Measures and prints the illumination table; returns the plate's functions."""
    _, io_seconds = timed(read_write, paths, folder)
    functions, illum_seconds = timed(compute_and_apply, manifest)
    n_images = len(paths)
    print(f"## Illumination correction ({n_images} images of {PLATE['image_size']} px, 1 thread)\n")
    print("| | images/s | ratio |")
    print("|---|---:|---:|")
    print(f"| tifffile read + write (I/O limit) | {n_images / io_seconds:.0f} | 1.00 |")
    ratio = io_seconds / illum_seconds
    print(f"| debatch compute + apply | {n_images / illum_seconds:.0f} | {ratio:.2f} |")
    print(f"\nGoal >= 0.5 of the I/O limit: {'met' if ratio >= 0.5 else 'NOT met'}.\n")
    return functions


def best_crops_run(folder: Path, cells, manifest: pd.DataFrame, functions: dict):
    """(wall s, CPU s) of the crops stage, each the best of ``REPEATS`` runs."""
    crop_seconds = crop_cpu = float("inf")
    for i in range(REPEATS):
        cpu = time.process_time()
        _, seconds = timed(
            write_plate_crops,
            cells,
            manifest,
            list(CHANNELS),
            functions,
            folder / f"crops{i}.npy",
            {"size": 32},
            threads=1,
        )
        crop_seconds, crop_cpu = (
            min(crop_seconds, seconds),
            min(crop_cpu, time.process_time() - cpu),
        )
        (folder / f"crops{i}.npy").unlink()
    return crop_seconds, crop_cpu


def crops_section(folder: Path, manifest: pd.DataFrame, paths, functions: dict) -> None:
    """Segments the plate, then measures and prints the crops table."""
    cells, _ = segment_shard(
        manifest,
        1,
        0,
        Channels(CHANNELS, "DNA", "AGP"),
        functions,
        {},
        folder / "masks.npz",
        threads=2,
    )
    read_seconds = min(timed(read_all, paths)[1] for _ in range(REPEATS))
    crop_seconds, crop_cpu = best_crops_run(folder, cells, manifest, functions)
    n_cells = len(cells)
    print(
        f"## Crops ({n_cells} cells, {len(manifest)} sites x 5 channels, 32 px, 1 thread, "
        f"best of {REPEATS})\n"
    )
    print("| | cells/s | cells per CPU-s | ratio |")
    print("|---|---:|---:|---:|")
    print(
        f"| raw tifffile read of the same images (limit) | {n_cells / read_seconds:,.0f} | | 1.00 |"
    )
    crop_ratio = read_seconds / crop_seconds
    per_core = n_cells / crop_cpu
    print(
        f"| debatch crops stage | {n_cells / crop_seconds:,.0f} | {per_core:,.0f} | "
        f"{crop_ratio:.2f} |"
    )
    print(
        f"\nGoals: >= 0.5 of the read limit: {'met' if crop_ratio >= 0.5 else 'NOT met'} "
        f"({crop_ratio:.2f}); >= 20k cells/s per core: "
        f"{'met' if per_core >= 20000 else 'NOT met'} ({per_core:,.0f})."
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        manifest = demo_manifest(tmp)
        paths = [path for name in CHANNELS for path in manifest[f"Path_{name}"]]
        read_all(paths)  # warm the page cache
        functions = illum_section(tmp, manifest, paths)
        crops_section(tmp, manifest, paths, functions)


if __name__ == "__main__":
    main()
