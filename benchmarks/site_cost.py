"""Image stages per 1080 px site: CPU seconds of illum + segment + QC + crops on a real field,
step by step, against the cost of reading the site's TIFFs.

    .venv/bin/python benchmarks/site_cost.py [--sites 32]   # ~1 min, 1 thread

Data: the Opera Phenix atlas field (../shared/data/real/atlas_BR00143976: 1080 x 1080, 16-bit
LZW TIFFs), its five fluorescence channels copied as ``--sites`` sites of one well, segmented
with config/atlas.yaml (the settings whose accuracy against CellProfiler
segmentation_accuracy.py reports). The total is the four stages run as their rules run them,
on one thread (process CPU time, so worker threads count). The breakdown calls the segment
stage's steps one by one on every site (the functions segment_shard calls); illumination is
computed once per plate and divided by the sites; what is left (tables, label images written,
orchestration) is the remainder.
Goal (issue 16): <= 0.5 CPU-s per site for the four stages. Prints markdown.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
import yaml

import figures
from debatch.core.images import cellprofiler_scale, correct_site, read_raw_site
from debatch.crops.cut import write_plate_crops
from debatch.crops.eligible import select_cells
from debatch.illum.estimate import compute_plate_illum
from debatch.ingest.manifest import build_manifest, read_platemap
from debatch.segment.cell_table import measure_site
from debatch.segment.propagate import segment_cells, segment_nuclei
from debatch.segment.qc import flag_sites, image_quality
from debatch.segment.score import score_against_labels
from debatch.segment.shards import segment_shard
from debatch.settings import CROPS, SEGMENT, Channels
from segmentation_accuracy import atlas_references

REPO = Path(__file__).resolve().parents[1]
FIELD = REPO.parent / "shared" / "data" / "real" / "atlas_BR00143976" / "images"
ATLAS = yaml.safe_load((REPO / "config" / "atlas.yaml").read_text())
CHANNELS = {name: raw for name, raw in ATLAS["channels"].items() if name != "Brightfield"}
SETTINGS = SEGMENT.merge({**ATLAS["segment"], "method": "propagate"})


def plate(folder: Path, n_sites: int) -> pd.DataFrame:
    """A one-well plate of ``n_sites`` copies of the field, and its manifest."""
    images = folder / "images"
    images.mkdir()
    for site in range(1, n_sites + 1):
        for raw in CHANNELS.values():
            source = FIELD / f"r03c03f03p01-ch{raw}sk1fk1fl1.tiff"
            shutil.copyfile(source, images / f"r03c03f{site:02d}p01-ch{raw}sk1fk1fl1.tiff")
    pd.DataFrame({"well": ["C03"], "treatment": ["DMSO"], "role": ["negcon"]}).to_csv(
        folder / "platemap.tsv", sep="\t", index=False
    )
    return build_manifest(
        "P1", "b1", images, "opera_phenix", read_platemap(folder / "platemap.tsv"), CHANNELS
    )


def stages(folder: Path, manifest: pd.DataFrame) -> tuple[int, float, dict]:
    """illum, segment, QC and crops of the plate, as their rules run them: (cells, CPU s of
    the illumination functions, the functions)."""
    names = list(CHANNELS)
    started = time.process_time()
    functions = compute_plate_illum(manifest, names, {}, threads=1)
    illum = time.process_time() - started
    cells, sites = segment_shard(
        manifest, 1, 0, Channels(tuple(names), "DNA", "AGP"), functions, SETTINGS,
        folder / "masks.npz", threads=1,
    )  # fmt: skip
    flagged = flag_sites(sites, "DNA", {})
    crops = CROPS.merge(ATLAS["crops"])
    chosen, _ = select_cells(cells, flagged, crops)
    write_plate_crops(chosen, manifest, names, functions, folder / "crops.npy", crops, threads=1)
    return len(cells), illum, functions


def segment_steps(manifest: pd.DataFrame, functions) -> dict[str, float]:
    """CPU seconds of each step of the segment stage, summed over the sites."""
    names, propagate_settings = list(CHANNELS), SETTINGS["propagate"]
    steps = dict.fromkeys(
        ["read the TIFFs", "image-quality measures", "illumination correction",
         "nuclei (threshold, declump)", "cells (propagation)", "per-cell measurements"], 0.0
    )  # fmt: skip

    def timed(step, function, *args):
        started = time.process_time()
        result = function(*args)
        steps[step] += time.process_time() - started
        return result

    for row in manifest.to_dict("records"):
        raw = timed("read the TIFFs", read_raw_site, row, names)
        timed("image-quality measures", image_quality, raw, "DNA")
        images = timed("illumination correction", correct_site, raw, row, functions)
        nuclei = timed(
            "nuclei (threshold, declump)", segment_nuclei, images["DNA"], propagate_settings
        )
        scale = cellprofiler_scale(raw["AGP"].dtype)
        cells = timed(
            "cells (propagation)", segment_cells, nuclei, images["AGP"], propagate_settings, scale
        )
        timed("per-cell measurements", measure_site, nuclei, cells, images)
    return steps


def read_seconds(manifest: pd.DataFrame) -> float:
    started = time.process_time()
    for path in manifest.filter(like="Path_").to_numpy().ravel():
        tifffile.imread(path)
    return time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sites", type=int, default=32)
    args = parser.parse_args()
    if not FIELD.is_dir():
        raise SystemExit(f"real images not found at {FIELD}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        manifest = plate(folder, args.sites)
        stages(folder, manifest.head(1))  # numba compilation and imports, as a job's first site
        started = time.process_time()
        n_cells, illum, functions = stages(folder, manifest)
        total = time.process_time() - started
        steps = {"illumination functions (per plate)": illum, **segment_steps(manifest, functions)}
        read = min(read_seconds(manifest) for _ in range(3))
        with np.load(folder / "masks.npz") as masks:
            ours = masks["C03_1_nuclei"], masks["C03_1_cells"]
    accuracy = {
        compartment: score_against_labels(theirs, mine)["AP@0.5"]
        for compartment, mine, theirs in zip(("nuclei", "cells"), ours, atlas_references())
    }
    steps["the rest: tables, label images, QC flags, crops"] = total - sum(steps.values())
    n = args.sites
    print(
        f"## Image stages per 1080 px site (atlas field x {n} sites, 5 channels, "
        f"{n_cells / n:.0f} cells per site, 1 thread)\n"
    )
    print("| step | CPU s per site | share | x the TIFF read |")
    print("|---|---:|---:|---:|")
    for step, seconds in steps.items():
        print(f"| {step} | {seconds / n:.3f} | {seconds / total:.0%} | {seconds / read:.1f} |")
    print(f"| **illum + segment + QC + crops** | **{total / n:.3f}** | 100% | {total / read:.1f} |")
    print(f"| reading the site's five TIFFs once (limit) | {read / n:.3f} | | 1.0 |")
    verdict = "met" if total / n <= 0.5 else "NOT met"
    print(
        f"\nAccuracy of the objects timed here against CellProfiler's (AP@0.5): nuclei "
        f"{accuracy['nuclei']:.3f}, cells {accuracy['cells']:.3f} (segmentation_accuracy.py "
        "scores the same field without illumination correction)."
    )
    print(
        f"\nGoal <= 0.5 CPU-s per site: {verdict} ({total / n:.2f}). The crops stage reads "
        "every site again."
    )
    figures.save(__file__, {"cpu_s_per_site": total / n, "cells_per_site": n_cells / n})


if __name__ == "__main__":
    main()
