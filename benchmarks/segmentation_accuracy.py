"""Segmentation accuracy of both segmenters, and illumination flattening on real vignetting.

    .venv/bin/python benchmarks/segmentation_accuracy.py            # a few minutes on 2 cores
    .venv/bin/python benchmarks/segmentation_accuracy.py --cellpose-nuclei-model nuclei

- demo screen (config/config.yaml's demo parameters, plates of three batches): nuclei and
  whole cells of `propagate` (default settings) and of `cellpose` against the generator's
  ground-truth masks, after the pipeline's illumination correction. The cellpose models are
  small CPnets trained here from scratch on another demo plate's ground truth (pretrained
  weights cannot be downloaded on this machine): they measure the cellpose path and what a
  screen-specific model reaches, not the pretrained cyto3 / cpsam;
- NF1 Cell Painting fields (../shared/data/real/nf1_plate2): nuclei against CellProfiler's
  masks (binary, so touching nuclei it merged are one reference object; border nuclei, which
  CellProfiler dropped, are removed from our masks before scoring). cellpose is scored only
  when the named built-in model's weights are present (--cellpose-nuclei-model);
- Transfluor plate (../shared/data/real/transfluor_illum, 72 fields, strong vignetting):
  coefficient of variation of an 8 x 8 grid of the per-position mean, raw and corrected, and
  the illumination function picture (docs/illum_transfluor.png).

AP@t = TP / (TP + FP + FN) pooled over sites (debatch.segment.score); count error = mean absolute
relative error of the per-site object count. Prints markdown tables with the goals of issue #3.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
import torch
import yaml
from scipy import ndimage

from debatch.core.images import read_site
from debatch.demo.design import CHANNELS
from debatch.demo.plate import generate_plate
from debatch.illum.estimate import compute_plate_illum
from debatch.illum.figures import plot_functions
from debatch.ingest.manifest import build_manifest, read_platemap
from debatch.segment.cellpose import CellposeSegmenter, resolve_model, train_model
from debatch.segment.propagate import segment_nuclei, segment_site
from debatch.segment.score import drop_border_objects, score_site, summarise
from debatch.settings import Channels

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "data" / "real"
CONFIG = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
EVALUATED = [("plate01", "batch1"), ("plate03", "batch2"), ("plate05", "batch3")]
TRAINING = ("plate00", "batch1")  # a demo plate that is not scored
CELLPOSE_TRAINING = dict(width=16, epochs=40, crop=64, images_per_epoch=24, seed=0)
DNA_AGP = Channels(("DNA", "AGP"), "DNA", "AGP")  # the channels segmentation reads


def demo_plate(root: Path, plate: str, batch: str, params: dict):
    """(manifest, illumination functions, truth masks) of a generated demo plate."""
    generate_plate(root / plate, plate, batch, params)
    channels = {name: str(i) for i, name in enumerate(CHANNELS, start=1)}
    manifest = build_manifest(
        plate,
        batch,
        root / plate / "images",
        "opera_phenix",
        read_platemap(root / plate / "platemap.tsv"),
        channels,
    )
    illum = compute_plate_illum(manifest, list(CHANNELS), CONFIG["illum"])
    return manifest, illum, np.load(root / plate / "truth" / "masks.npz")


def train_cellpose(root: Path, params: dict) -> tuple[Path, Path, float]:
    manifest, illum, truth = demo_plate(root, *TRAINING, params)
    sites = [read_site(row, ["DNA", "AGP"], illum) for row in manifest.to_dict("records")][:16]
    keys = [f"{row.Metadata_Well}_{row.Metadata_Site}" for row in manifest.itertuples()][:16]
    started = time.perf_counter()
    zeros = np.zeros_like(sites[0]["DNA"])
    nuclei = train_model(
        [np.stack([s["DNA"], zeros]) for s in sites],
        [truth[f"{k}_nuclei"] for k in keys],
        root / "nuclei.pt",
        **CELLPOSE_TRAINING,
    )
    cells = train_model(
        [np.stack([s["AGP"], s["DNA"]]) for s in sites],
        [truth[f"{k}_cells"] for k in keys],
        root / "cells.pt",
        **CELLPOSE_TRAINING,
    )
    return nuclei, cells, time.perf_counter() - started


def score_demo(root: Path, params: dict, segmenters: dict) -> pd.DataFrame:
    rows = []
    for plate, batch in EVALUATED:
        manifest, illum, truth = demo_plate(root, plate, batch, params)
        sites = [read_site(row, list(CHANNELS), illum) for row in manifest.to_dict("records")]
        keys = [f"{row.Metadata_Well}_{row.Metadata_Site}" for row in manifest.itertuples()]
        for name, segment in segmenters.items():
            started = time.perf_counter()
            masks = segment(sites)
            seconds = (time.perf_counter() - started) / len(sites)
            for compartment, index in (("nuclei", 0), ("cells", 1)):
                scores = pd.DataFrame(
                    [
                        score_site(truth[f"{key}_{compartment}"], m[index])
                        for key, m in zip(keys, masks)
                    ]
                )
                rows.append(
                    {
                        "segmenter": name,
                        "batch": batch,
                        "compartment": compartment,
                        **summarise(scores),
                        "s/site": seconds,
                    }
                )
    return pd.DataFrame(rows)


def score_nf1(nuclei_model: str | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    folder = REAL / "nf1_plate2"
    fields, per_field = [], []
    segmenter = None
    if nuclei_model:
        # one clear line if weights are absent
        resolve_model(nuclei_model, "nuclei_model", timeout=5)
        segmenter = CellposeSegmenter(
            {"nuclei_model": nuclei_model, "cell_model": None, "nucleus_diameter": 50.0}
        )
    for path in sorted((folder / "Plate_2_images").glob("*_01_1_*_DAPI_001.tif")):
        reference = ndimage.label(
            tifffile.imread(folder / "Plate_2_masks" / f"{path.stem}_MaskNuclei.tiff") > 0
        )[0]
        dna = tifffile.imread(path).astype(np.float32)
        found = {
            "propagate": segment_nuclei(
                dna, {**CONFIG["segment"]["propagate"], "nucleus_diameter": 50.0}
            )
        }
        if segmenter is not None:
            found["cellpose"] = segmenter([{"DNA": dna, "AGP": dna}], DNA_AGP)[0][0]
        for name, labels in found.items():
            score = score_site(reference, drop_border_objects(labels))
            fields.append({"segmenter": name, **score})
            per_field.append(
                {
                    "field": path.stem.split("_")[0],
                    "segmenter": name,
                    "ours": score["n_predicted"],
                    "CellProfiler": score["n_true"],
                }
            )
    table = pd.DataFrame(fields)
    return (
        pd.DataFrame(
            [{"segmenter": name, **summarise(group)} for name, group in table.groupby("segmenter")]
        ),
        pd.DataFrame(per_field),
    )


def illumination(picture: Path) -> dict:
    paths = sorted((REAL / "transfluor_illum").glob("*.TIF"))
    function = compute_plate_illum(
        pd.DataFrame({"Path_GFP": [str(p) for p in paths]}), ["GFP"], CONFIG["illum"]
    )
    mean = np.mean([tifffile.imread(p).astype(np.float64) for p in paths], axis=0)

    def grid_cv(image, cells=8):
        h, w = (s // cells * cells for s in image.shape)
        blocks = image[:h, :w].reshape(cells, h // cells, cells, w // cells).mean(axis=(1, 3))
        return float(blocks.std() / blocks.mean())

    picture.parent.mkdir(parents=True, exist_ok=True)
    plot_functions(
        function, f"illumination function, Transfluor plate ({len(paths)} fields)", picture
    )
    return {
        "fields": len(paths),
        "raw": grid_cv(mean),
        "corrected": grid_cv(mean / function["GFP"]),
        "range": (float(function["GFP"].min()), float(function["GFP"].max())),
    }


def markdown(table: pd.DataFrame, digits: int = 3) -> str:
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    for row in table.itertuples(index=False):
        lines.append(
            "| "
            + " | ".join(f"{v:.{digits}f}" if isinstance(v, float) else str(v) for v in row)
            + " |"
        )
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--cellpose-nuclei-model", help="also score this cellpose model on the NF1 nuclei"
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1 is fastest on a busy 2-core box)"
    )
    parser.add_argument("--picture", type=Path, default=REPO / "docs" / "illum_transfluor.png")
    return parser.parse_args()


def segment_demo(params: dict, threads: int) -> tuple[pd.DataFrame, float]:
    """Trains the cellpose models, then scores both segmenters on the demo screen:
    (scores, training seconds)."""
    propagate = CONFIG["segment"]["propagate"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        nuclei_model, cell_model, training_seconds = train_cellpose(root, params)
        cellpose = CellposeSegmenter(
            {
                "nuclei_model": str(nuclei_model),
                "cell_model": str(cell_model),
                "flow_threshold": 0.0,
            },
            propagate,
            threads,
        )
        demo = score_demo(
            root,
            params,
            {
                "propagate": lambda sites: [segment_site(s, DNA_AGP, propagate) for s in sites],
                "cellpose": lambda sites: [r[:2] for r in cellpose(sites, DNA_AGP)],
            },
        )
    return demo, training_seconds


def print_demo(demo: pd.DataFrame, params: dict, training_seconds: float, threads: int) -> None:
    print("### Segmentation accuracy\n")
    print(
        f"Demo screen ({params['image_size']} px sites, {len(EVALUATED)} plates x "
        f"{int(demo['sites'].iloc[0])} sites, ground-truth masks). cellpose = CPnet of width "
        f"{CELLPOSE_TRAINING['width']} trained from scratch here on {TRAINING[0]}'s truth "
        f"({training_seconds:.0f} s for both models, CPU, {threads} thread).\n"
    )
    columns = [
        "compartment",
        "segmenter",
        "batch",
        "objects",
        "AP@0.5",
        "AP@0.75",
        "count_error",
        "s/site",
    ]
    order = demo.sort_values(["compartment", "segmenter", "batch"], ascending=[False, False, True])
    print(markdown(order[columns]))
    nuclei = demo[demo["compartment"] == "nuclei"].groupby("segmenter")["AP@0.5"].min()
    print(
        f"\nGoal demo nuclei AP@0.5 >= 0.85: propagate {nuclei['propagate']:.3f}, "
        f"cellpose {nuclei['cellpose']:.3f} "
        f"(worst batch) -> {'met' if nuclei.min() >= 0.85 else 'NOT met'}.\n"
    )


def print_nf1(nf1: pd.DataFrame, counts: pd.DataFrame, cellpose_scored: bool) -> None:
    print(
        f"NF1 Plate_2, {int(nf1['sites'].iloc[0])} fields, nuclei vs CellProfiler "
        "(nucleus_diameter 50):\n"
    )
    print(markdown(nf1[["segmenter", "objects", "AP@0.5", "AP@0.75", "count_error"]]))
    if not cellpose_scored:
        print(
            "\ncellpose on NF1: not scored (no pretrained weights offline; "
            "pass --cellpose-nuclei-model)."
        )
    print(
        "\n"
        + markdown(
            counts.pivot(index="field", columns="segmenter", values="ours")
            .join(counts.groupby("field")["CellProfiler"].first())
            .reset_index()
        )
    )
    worst = nf1.set_index("segmenter").loc["propagate"]
    met = worst["count_error"] <= 0.15 and worst["AP@0.5"] >= 0.6
    print(
        "\nGoal NF1 count within 15 % and AP@0.5 >= 0.6: propagate count error "
        f"{worst['count_error']:.3f}, AP@0.5 {worst['AP@0.5']:.3f} -> "
        f"{'met' if met else 'NOT met'}.\n"
    )


def print_illumination(flat: dict, picture: Path) -> None:
    print("### Illumination correction (Transfluor)\n")
    print(
        f"| fields | grid CV raw | grid CV corrected | function range |\n|---|---|---|---|\n"
        f"| {flat['fields']} | {flat['raw']:.3f} | {flat['corrected']:.3f} | "
        f"{flat['range'][0]:.2f}-{flat['range'][1]:.2f} |\n"
    )
    shown = picture.relative_to(REPO) if picture.is_relative_to(REPO) else picture
    print(f"Illumination function picture: {shown}")


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    params = CONFIG["demo"]["params"]
    demo, training_seconds = segment_demo(params, args.threads)
    nf1, counts = score_nf1(args.cellpose_nuclei_model)
    flat = illumination(args.picture)
    print_demo(demo, params, training_seconds, args.threads)
    print_nf1(nf1, counts, args.cellpose_nuclei_model is not None)
    print_illumination(flat, args.picture)


if __name__ == "__main__":
    main()
