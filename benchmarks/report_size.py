"""The report at screen scale: the page's size as plates grow, extrapolated to 200 plates.

    .venv/bin/python benchmarks/report_size.py     # ~2 min on 2 cores

1. One plate of the default demo screen (24 wells, one 256 px site each) goes through the
   workflow's own rules (snakemake: demo_plate, manifest, illum, segment, qc, qc_figures,
   crops, gallery): its QC table, QC figures (heatmaps, segmentation overlays, illumination)
   and a cell gallery, as the report rule gets them.
2. Screens of 8 plates (the demo's count), 24 and 48 plates are tiled from that plate: each
   plate gets its QC table (renamed, a varying share of sites failed so the worst-first order
   has something to order) and its figures. Every source x correction of the default config
   gets metrics (debatch's diagnostics) of a generated well table of the screen's size (the
   demo's platemap on every plate, a batch shift per batch, an effect per active compound),
   its PCA, metric bars and UMAP figures drawn by the workflow's functions, and the page is
   written by the report rule's own function (debatch.report.html.write_report).
3. The page's bytes at 24 and 48 plates (both above report.max_plate_figures, so the inline
   figures are the same and only per-plate rows and well-count-dependent figures grow) give a
   fixed cost and a cost per plate; 200 plates = fixed + 200 x per plate. What grows is a table
   row per plate and the PCA and UMAP scatter plots (more wells); a scatter plot's PNG grows
   less than linearly with its points, so the line over-estimates.
Goal (issue 28): the report page <= 20 MB for a 200-plate screen. Prints markdown.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from debatch.evaluate.diagnostics import compute_metrics
from debatch.report.figures import plot_cells_per_well, plot_metric_bars, plot_pca, plot_umap
from debatch.report.html import PlateQC, write_report
from debatch.settings import (
    BATCH,
    CELLPROFILER,
    PLATE,
    QC_FAILED,
    QC_PASS,
    REPORT,
    ROLE,
    TREATMENT,
    WELL,
    parse_source,
    source_name,
)

REPO = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
PLATE_COUNTS = (8, 24, 48)  # the demo's plate count; two counts above the figure cap to fit
TARGET, GOAL_MB = 200, 20.0
FEATURES = 64
BATCHES = 4  # the demo's


def one_plate(workdir: Path) -> Path:
    """The workflow's rules on one default demo plate; returns its results folder."""
    workdir.mkdir(parents=True)
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["results"] = str(workdir / "results")
    config["demo"]["root"] = str(workdir / "demo")
    sheet = workdir / "plates.tsv"
    sheet.write_text(
        "plate\tbatch\timages\tpattern\tplatemap\n"
        f"plate01\tbatch1\t{workdir}/demo/plate01/images\topera_phenix\t"
        f"{workdir}/demo/plate01/platemap.tsv\n"
    )
    config["plates"] = str(sheet)
    config["train"]["holdout_batches"] = []
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    results = workdir / "results"
    targets = [
        "qc/plate01.parquet",
        "qc/heatmaps/plate01.png",
        "qc/overlays/plate01.png",
        "illum/plate01.png",
        "crops/plate01.parquet",
        "report/gallery.png",
    ]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-s",
            str(REPO / "workflow" / "Snakefile"),
            "--directory",
            str(workdir),
            "--configfile",
            str(workdir / "config.yaml"),
            "--cores",
            "2",
            "--quiet",
            "all",
            "--",
            *[str(results / t) for t in targets],
        ],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise SystemExit(f"snakemake failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    return results


def tiled_sites(sites: pd.DataFrame, n_plates: int) -> pd.DataFrame:
    """``n_plates`` copies of one plate's QC table; plate i fails its first i % 5 sites."""
    plates = []
    for i in range(n_plates):
        plate = sites.copy()
        plate[PLATE] = f"plate{i + 1:03d}"
        plate[BATCH] = f"batch{1 + i * BATCHES // n_plates}"
        failed = plate.index < i % 5
        plate.loc[failed, QC_PASS] = False
        plate.loc[failed, QC_FAILED] = "focus"
        plates.append(plate)
    return pd.concat(plates, ignore_index=True)


def generated_wells(sites: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """One well profile per well of ``sites``: a shift per batch, an effect per compound."""
    rng = np.random.default_rng(seed)
    wells = sites.drop_duplicates([PLATE, WELL])[[PLATE, BATCH, WELL, TREATMENT, ROLE]]
    wells = wells.reset_index(drop=True)
    effects = {t: rng.normal(0, 2, FEATURES) for t in wells[TREATMENT].unique()}
    shifts = {b: rng.normal(0, 1, FEATURES) for b in wells[BATCH].unique()}
    values = np.stack(
        [
            (0 if role == "negcon" else effects[t]) + shifts[b] + rng.normal(0, 1, FEATURES)
            for t, role, b in zip(wells[TREATMENT], wells[ROLE], wells[BATCH])
        ]
    )
    features = pd.DataFrame(values, columns=[f"emb_{i:03d}" for i in range(FEATURES)])
    return pd.concat([wells, features], axis=1)


def screen_report(folder: Path, plate: Path, n_plates: int) -> dict:
    """The report of an ``n_plates`` screen tiled from ``plate`` (results of one_plate)."""
    inputs = folder / "inputs"
    inputs.mkdir(parents=True)
    sites = tiled_sites(pd.read_parquet(plate / "qc" / "plate01.parquet"), n_plates)
    wells = generated_wells(sites)
    holdout = [f"batch{BATCHES}"]
    metrics = compute_metrics(wells, {"map_null_size": 1000}, holdout_batches=holdout)
    plot_pca(wells, "well profiles", inputs / "pca.png")
    corrections = CONFIG["profiles"]["corrections"]
    methods, seeds = CONFIG["train"]["methods"], CONFIG["train"]["seeds"]
    models = [source_name(method, seed) for method in methods for seed in seeds]
    entries = []
    for source in [*models, CELLPROFILER]:
        method, seed = parse_source(source)
        for correction in corrections:
            entry = dict(metrics, source=source, method=method, seed=seed, correction=correction)
            entries.append(
                {"correction": correction, "metrics": entry, "figure": str(inputs / "pca.png")}
            )
    plot_metric_bars(entries[: len(corrections)], "metric scores", inputs / "bars.png")
    plot_umap(
        {c: wells for c in corrections},
        "UMAP of well profiles",
        inputs / "umap.png",
        REPORT.merge(CONFIG["report"])["umap_seed"],
    )
    log = inputs / "training_log.tsv"
    pd.DataFrame(
        {
            "epoch": [1],
            "loss": [1.0],
            "train_acc": [0.5],
            "holdout_acc": [0.4],
            "crops_per_s": [1000.0],
            "seconds": [1.0],
        }
    ).to_csv(log, sep="\t", index=False)
    cells = pd.read_parquet(plate / "crops" / "plate01.parquet", columns=[PLATE, BATCH, WELL])
    per_plate = sites.drop_duplicates(PLATE)[[PLATE, BATCH]]
    cells = pd.concat(
        [cells.assign(**{PLATE: p, BATCH: b}) for p, b in zip(per_plate[PLATE], per_plate[BATCH])]
    )
    plot_cells_per_well(cells, inputs / "cells_per_well.png")
    figures = {
        "heatmaps": str(plate / "qc" / "heatmaps" / "plate01.png"),
        "overlays": str(plate / "qc" / "overlays" / "plate01.png"),
        "illum": str(plate / "illum" / "plate01.png"),
    }
    index = write_report(
        folder / "report",
        entries,
        {**CONFIG["report"], "bootstrap": 200},
        plate_qc=PlateQC(
            sites, {p: figures for p in per_plate[PLATE]}, str(inputs / "cells_per_well.png")
        ),
        training_logs={model: str(log) for model in models},
        source_figures={source: str(inputs / "bars.png") for source in [*models, CELLPROFILER]},
        umap_figures={source: str(inputs / "umap.png") for source in [*models, CELLPROFILER]},
        plates=list(per_plate[PLATE]),
        gallery=str(plate / "report" / "gallery.png"),
        config=CONFIG,
    )
    beside = sum(p.stat().st_size for p in index.parent.rglob("*") if p.is_file() and p != index)
    return {
        "page": index.stat().st_size,
        "beside": beside,
        "images": index.read_text().count("<img "),
        "wells": len(wells),
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        plate = one_plate(Path(tmp) / "plate")
        measured = {n: screen_report(Path(tmp) / f"screen{n}", plate, n) for n in PLATE_COUNTS}
    low, high = PLATE_COUNTS[-2:]
    per_plate = (measured[high]["page"] - measured[low]["page"]) / (high - low)
    fixed = measured[low]["page"] - low * per_plate
    at_target = fixed + TARGET * per_plate
    cap = REPORT.merge(CONFIG["report"])["max_plate_figures"]
    sources = len(CONFIG["train"]["methods"]) * len(CONFIG["train"]["seeds"]) + 1
    print("## Report size as plates grow (the report rule's page)\n")
    print(
        f"Default config: {sources} sources x {len(CONFIG['profiles']['corrections'])} "
        f"corrections, report.max_plate_figures {cap}; every plate a copy of one demo plate run "
        "through the workflow (24 wells, QC figures as the qc_figures and illum rules draw "
        "them), well profiles generated (benchmarks/report_size.py).\n"
    )
    print("| plates | wells | page MB | images on the page | files beside the page MB |")
    print("|---:|---:|---:|---:|---:|")
    for n, row in measured.items():
        print(
            f"| {n} | {row['wells']:,} | {row['page'] / 1e6:.2f} | {row['images']} | "
            f"{row['beside'] / 1e6:.1f} |"
        )
    print(
        f"\nFit on {low} and {high} plates: {fixed / 1e6:.2f} MB fixed + "
        f"{per_plate / 1e3:.1f} kB per plate; the demo's {PLATE_COUNTS[0]} plates: "
        f"{measured[PLATE_COUNTS[0]]['page'] / 1e6:.2f} MB (every plate's figures inline).\n"
    )
    verdict = "met" if at_target / 1e6 <= GOAL_MB else "NOT met"
    print(
        f"Goal report page <= {GOAL_MB:.0f} MB at {TARGET} plates: {at_target / 1e6:.1f} MB "
        f"(extrapolated) -> {verdict}."
    )


if __name__ == "__main__":
    main()
