"""Segmentation accuracy of both segmenters, and illumination flattening on real vignetting.

    .venv/bin/python benchmarks/segmentation_accuracy.py            # a few minutes on 2 cores
    .venv/bin/python benchmarks/segmentation_accuracy.py --cellpose-nuclei-model nuclei

- demo screen (config/config.yaml's demo parameters, plates of three batches): nuclei and
  whole cells of `propagate` (default settings), of the flooding watershed it replaced (loaded
  from git, benchmarks/previous.py) and of `cellpose` against the generator's ground-truth
  masks, after the pipeline's illumination correction. The cellpose models are small CPnets
  trained here from scratch on another demo plate's ground truth (pretrained weights cannot be
  downloaded on this machine): they measure the cellpose path and what a screen-specific model
  reaches, not the pretrained cyto3 / cpsam;
- a confluent demo plate (demo.params confluence 1, 60 cells per site): cells fill the space
  between nuclei, membranes the only cue between neighbours;
- the atlas field (../shared/data/real/atlas_BR00143976, 1080 px Opera Phenix): nuclei and
  cells against CellProfiler's objects (filled from its outline images), at default settings
  (config/config.yaml with config/atlas.yaml: channels, nucleus_diameter and crop size only),
  and with Otsu nuclei for comparison;
- NF1 Cell Painting fields (../shared/data/real/nf1_plate2), at default settings with
  nucleus_diameter 50: nuclei against CellProfiler's
  masks (binary, so touching nuclei it merged are one reference object; border nuclei, which
  CellProfiler dropped, are removed from our masks before scoring), cells (RFP) by foreground
  IoU and by AP on the mask components holding a single nucleus (few: the cells touch);
  beside the code and defaults of before issue 24 (benchmarks/previous.py) and the default
  settings with the cell threshold of then, which say where the change in figures comes from.
  cellpose is scored only when the named built-in model's weights are present
  (--cellpose-nuclei-model);
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

from debatch.core.images import cellprofiler_scale, read_site
from debatch.demo.design import CHANNELS
from debatch.demo.plate import demo_manifest
from debatch.illum.estimate import compute_plate_illum
from debatch.illum.plot import plot_functions
from debatch.segment.cellpose import CellposeSegmenter, resolve_model, train_model
from debatch.segment.propagate import segment_nuclei, segment_site
from debatch.segment.score import (
    drop_border_objects,
    median_area,
    score_against_binary_cells,
    score_against_labels,
    score_site,
    summarise,
)
from debatch.settings import Channels
from debatch.validate.cellprofiler import objects_from_outlines
from previous import (
    BEFORE_ISSUE_24,
    BEFORE_ISSUE_24_SETTINGS,
    FLOODING,
    flooding_cells,
    segment_site_before_issue_24,
)

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "data" / "real"
CONFIG = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
EVALUATED = [("plate01", "batch1"), ("plate03", "batch2"), ("plate05", "batch3")]
TRAINING = ("plate00", "batch1")  # a demo plate that is not scored
CELLPOSE_TRAINING = dict(width=16, epochs=40, crop=64, images_per_epoch=24, seed=0)
DNA_AGP = Channels(("DNA", "AGP"), "DNA", "AGP")  # the channels segmentation reads
DEMO_SCALE = 1 / 65535  # the demo's uint16 images on CellProfiler's scale
CONFLUENT = {"confluence": 1.0, "cells_per_site": 60}
CONFLUENT_PROPAGATE = {"cell_level_fraction": 0.5}  # the setting a confluent screen needs
ATLAS = yaml.safe_load((REPO / "config" / "atlas.yaml").read_text())
ATLAS_FIELD = REAL / "atlas_BR00143976"
ATLAS_MIN_CELL = 500  # px; smaller regions enclosed by CellProfiler's jagged cell outlines
NF1_BEFORE = "propagate before issue 24"  # the NF1 rows of the code and defaults of then
STRICTER_CELLS = {"cell_threshold_correction": 1.2}  # the cell threshold of before issue 24
GOALS = {
    "atlas nuclei": 0.9,
    "atlas cells": 0.85,
    "nf1 count error": 0.1,
    "confluent cells": 0.8,
    "demo cells@0.75": 0.8,
}


def demo_plate(root: Path, plate: str, batch: str, params: dict):
    """(manifest, illumination functions, truth masks) of a generated demo plate."""
    manifest = demo_manifest(root / plate, plate, batch, params)
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


def score_demo(root: Path, params: dict, segmenters: dict, plates=EVALUATED) -> pd.DataFrame:
    rows = []
    for plate, batch in plates:
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


def nf1_fields():
    """(field, DNA, RFP, CellProfiler's nuclei mask, its cells mask) of the NF1 fields."""
    folder = REAL / "nf1_plate2"
    for path in sorted((folder / "Plate_2_images").glob("*_01_1_*_DAPI_001.tif")):
        well, _, _, site = path.stem.split("_")[:4]
        rfp = f"{well}_01_3_{site}_RFP_001"
        yield (
            well,
            tifffile.imread(path),
            tifffile.imread(folder / "Plate_2_images" / f"{rfp}.tif"),
            tifffile.imread(folder / "Plate_2_masks" / f"{path.stem}_MaskNuclei.tiff"),
            tifffile.imread(folder / "Plate_2_masks" / f"{rfp}_MaskCells.tiff"),
        )


def score_nf1(nuclei_model: str | None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(nuclei scores per segmenter, per-field counts, cell scores per segmenter)."""
    segmenter = None
    if nuclei_model:
        # one clear line if weights are absent
        resolve_model(nuclei_model, "nuclei_model", timeout=5)
        segmenter = CellposeSegmenter(
            {"nuclei_model": nuclei_model, "cell_model": None, "nucleus_diameter": 50.0}
        )
    settings = {**CONFIG["segment"]["propagate"], "nucleus_diameter": 50.0}
    before = segment_site_before_issue_24()
    old = {**settings, **BEFORE_ISSUE_24_SETTINGS, "max_cell_distance": 4.0}
    fields, per_field, cells = [], [], []
    for field, dna, rfp, nuclei_mask, cells_mask in nf1_fields():
        reference = ndimage.label(nuclei_mask > 0, np.ones((3, 3)))[0]
        images = {"DNA": dna.astype(np.float32), "RFP": rfp.astype(np.float32)}
        channels, scale = Channels(("DNA", "RFP"), "DNA", "RFP"), cellprofiler_scale(rfp.dtype)
        nuclei, found_cells = segment_site(images, channels, settings, scale)
        old_nuclei, old_cells = before(images, channels, old, scale)
        stricter = segment_site(images, channels, {**settings, **STRICTER_CELLS}, scale)[1]
        found = {"propagate": nuclei, NF1_BEFORE: old_nuclei}
        if segmenter is not None:
            found["cellpose"] = segmenter([{"DNA": dna, "AGP": dna}], DNA_AGP)[0][0]
        for name, labels in found.items():
            kept = drop_border_objects(labels)
            score = score_site(reference, kept)
            area_ratio = median_area(kept) / median_area(reference)
            fields.append({"segmenter": name, **score, "area_ratio": area_ratio})
            per_field.append(
                {
                    "field": field,
                    "segmenter": name,
                    "ours": score["n_predicted"],
                    "CellProfiler": score["n_true"],
                }
            )
        cells.append(
            {
                "field": field,
                **score_against_binary_cells(cells_mask, nuclei_mask, found_cells),
                **{
                    f"{name}_iou": score_against_binary_cells(cells_mask, nuclei_mask, labels)[
                        "foreground_iou"
                    ]
                    for name, labels in (("before", old_cells), ("stricter", stricter))
                },
            }
        )
    table = pd.DataFrame(fields)
    cells = pd.DataFrame(cells)
    return (
        pd.DataFrame(
            [
                {
                    "segmenter": name,
                    **summarise(group),
                    "area_ratio": float(group["area_ratio"].median()),
                }
                for name, group in table.groupby("segmenter", sort=False)
            ]
        ),
        pd.DataFrame(per_field),
        cells,
    )


def atlas_images() -> dict[str, np.ndarray]:
    """The atlas field's channels, named as config/atlas.yaml names them (raw uint16)."""
    return {
        name: tifffile.imread(ATLAS_FIELD / "images" / f"r03c03f03p01-ch{number}sk1fk1fl1.tiff")
        for name, number in ATLAS["channels"].items()
    }


def atlas_references() -> tuple[np.ndarray, np.ndarray]:
    """CellProfiler's (nuclei, cells) label images of the atlas field."""
    outlines = ATLAS_FIELD / "outlines"
    return (
        objects_from_outlines(outlines / "NucleiOutlines_BR00143976_C03_3.tiff"),
        objects_from_outlines(outlines / "CellsOutlines_BR00143976_C03_3.tiff", ATLAS_MIN_CELL),
    )


def score_atlas() -> pd.DataFrame:
    """Nuclei and cells of the atlas field against CellProfiler's: default settings, Otsu
    nuclei, and the flooding cells of before issue 13."""
    images = atlas_images()
    reference_nuclei, reference_cells = atlas_references()
    channels = Channels(tuple(images), ATLAS["nuclei_channel"], ATLAS["cell_channel"])
    defaults = {**CONFIG["segment"]["propagate"], **ATLAS["segment"]["propagate"]}
    otsu = {**defaults, "threshold_method": "otsu"}
    flooding = flooding_cells()
    rows = []
    for name, settings, grow in (
        ("default settings (config/atlas.yaml)", defaults, None),
        ("default settings, Otsu nuclei", otsu, None),
        (f"default settings, flooding cells ({FLOODING})", defaults, flooding),
    ):
        scale = cellprofiler_scale(images[channels.cell].dtype)
        floats = {name: image.astype(np.float32) for name, image in images.items()}
        started = time.perf_counter()
        nuclei, cells = segment_site(floats, channels, settings, scale)
        if grow is not None:
            cells = grow(nuclei, floats[channels.cell], settings, scale)
        seconds = time.perf_counter() - started
        for compartment, ours, theirs in (
            ("nuclei", nuclei, reference_nuclei),
            ("cells", cells, reference_cells),
        ):
            rows.append(
                {
                    "settings": name,
                    "compartment": compartment,
                    **score_against_labels(theirs, ours),
                    "s/field": seconds,
                }
            )
    return pd.DataFrame(rows)


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


def classical_segmenters(settings: dict) -> dict:
    """propagate and the flooding watershed it replaced, as site-list segmenters."""
    flooding = flooding_cells()

    def flood(site):
        nuclei = segment_nuclei(site["DNA"], settings)
        return nuclei, flooding(nuclei, site["AGP"], settings)

    return {
        "propagate": lambda sites: [segment_site(s, DNA_AGP, settings, DEMO_SCALE) for s in sites],
        f"flooding ({FLOODING})": lambda sites: [flood(s) for s in sites],
    }


def segment_demo(params: dict, threads: int) -> tuple[pd.DataFrame, float]:
    """Trains the cellpose models, then scores the segmenters on the demo screen:
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
                **classical_segmenters(propagate),
                "cellpose": lambda sites: [r[:2] for r in cellpose(sites, DNA_AGP)],
            },
        )
    return demo, training_seconds


def segment_confluent(params: dict) -> pd.DataFrame:
    """The classical segmenters on a confluent demo plate, with the defaults and with the
    confluent setting."""
    defaults = CONFIG["segment"]["propagate"]
    confluent = {**defaults, **CONFLUENT_PROPAGATE}
    segmenters = classical_segmenters(defaults)
    segmenters["propagate, " + ", ".join(f"{k} {v}" for k, v in CONFLUENT_PROPAGATE.items())] = (
        classical_segmenters(confluent)["propagate"]
    )
    with tempfile.TemporaryDirectory() as tmp:
        return score_demo(Path(tmp), {**params, **CONFLUENT}, segmenters, EVALUATED[:1])


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
        f"(worst batch) -> {'met' if nuclei.min() >= 0.85 else 'NOT met'}."
    )
    cells = demo[demo["compartment"] == "cells"].groupby("segmenter")["AP@0.75"].min()
    goal = GOALS["demo cells@0.75"]
    print(
        f"Goal demo cells AP@0.75 >= {goal}: propagate {cells['propagate']:.3f} (worst batch; "
        f"flooding {cells[f'flooding ({FLOODING})']:.3f}) -> "
        f"{'met' if cells['propagate'] >= goal else 'NOT met'}.\n"
    )


def print_confluent(confluent: pd.DataFrame, params: dict) -> None:
    sites = int(confluent["sites"].iloc[0])
    print(
        f"Confluent demo plate (confluence {CONFLUENT['confluence']}, "
        f"{CONFLUENT['cells_per_site']} cells per site, {sites} sites of "
        f"{params['image_size']} px):\n"
    )
    columns = ["compartment", "segmenter", "objects", "AP@0.5", "AP@0.75", "count_error"]
    print(markdown(confluent.sort_values("compartment", ascending=False)[columns]))
    cells = confluent[confluent["compartment"] == "cells"].set_index("segmenter")["AP@0.5"]
    best = cells.drop(f"flooding ({FLOODING})").idxmax()
    goal = GOALS["confluent cells"]
    print(
        f"\nGoal confluent cells AP@0.5 >= {goal}: {best} {cells[best]:.3f} -> "
        f"{'met' if cells[best] >= goal else 'NOT met'}.\n"
    )


def print_atlas(atlas: pd.DataFrame) -> None:
    print(
        "Atlas field (BR00143976 C03 site 3, 1080 px Opera Phenix) against CellProfiler's "
        "objects (border objects left out on both sides; area ratio = our median area / "
        "CellProfiler's):\n"
    )
    columns = ["settings", "compartment", "objects", "AP@0.5", "AP@0.75", "count_error"]
    print(markdown(atlas[columns + ["area_ratio", "s/field"]]))
    defaults = atlas[atlas["settings"] == atlas["settings"].iloc[0]].set_index("compartment")
    nuclei, cells = defaults.loc["nuclei"], defaults.loc["cells"]
    met = (
        nuclei["AP@0.5"] >= GOALS["atlas nuclei"]
        and cells["AP@0.5"] >= GOALS["atlas cells"]
        and abs(nuclei["area_ratio"] - 1) <= 0.05
    )
    print(
        f"\nGoal atlas at default settings: nuclei AP@0.5 >= {GOALS['atlas nuclei']}, "
        f"cells AP@0.5 >= {GOALS['atlas cells']}, median nucleus area within 5 %: "
        f"{nuclei['AP@0.5']:.3f}, "
        f"{cells['AP@0.5']:.3f}, {nuclei['area_ratio'] - 1:+.1%} -> "
        f"{'met' if met else 'NOT met'}.\n"
    )


def print_nf1(
    nf1: pd.DataFrame, counts: pd.DataFrame, cells: pd.DataFrame, cellpose_scored: bool
) -> None:
    print(
        f"NF1 Plate_2, {int(nf1['sites'].iloc[0])} fields, nuclei vs CellProfiler "
        "(default settings, nucleus_diameter 50):\n"
    )
    columns = ["segmenter", "objects", "AP@0.5", "AP@0.75", "count_error", "area_ratio"]
    print(markdown(nf1[columns]))
    print(
        "\narea_ratio: our median nucleus area / CellProfiler's (median over fields); "
        f"{NF1_BEFORE}: the code and defaults of {BEFORE_ISSUE_24} (Otsu nuclei, no speck "
        "filter)."
    )
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
    per_field = counts[counts["segmenter"] == "propagate"]
    off = float((per_field["ours"] / per_field["CellProfiler"] - 1).abs().max())
    goal = GOALS["nf1 count error"]
    met = off <= goal and worst["AP@0.5"] >= 0.6
    print(
        f"\nGoal NF1 nucleus count of every field within {goal:.0%} and AP@0.5 >= 0.6: "
        f"propagate worst field {off:.1%} off, AP@0.5 {worst['AP@0.5']:.3f} -> "
        f"{'met' if met else 'NOT met'}.\n"
    )
    pooled = summarise(cells)
    print(
        "NF1 cells (RFP, default settings) against CellProfiler's binary cell masks: "
        f"foreground IoU {cells['foreground_iou'].mean():.3f} (mean of {len(cells)} fields); "
        f"AP@0.5 {pooled['AP@0.5']:.3f}, AP@0.75 {pooled['AP@0.75']:.3f} on the "
        f"{pooled['objects']} mask components that hold a single nucleus (the other cells "
        f"touch and merge in the binary masks). Before issue 24 ({BEFORE_ISSUE_24}: Otsu "
        "nuclei, cell threshold x1.2, max_cell_distance 4 in this benchmark): foreground IoU "
        f"{cells['before_iou'].mean():.3f}; default settings but the cell threshold x1.2: "
        f"{cells['stricter_iou'].mean():.3f}.\n"
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
    confluent = segment_confluent(params)
    atlas = score_atlas()
    nf1, counts, nf1_cells = score_nf1(args.cellpose_nuclei_model)
    flat = illumination(args.picture)
    print_demo(demo, params, training_seconds, args.threads)
    print_confluent(confluent, params)
    print_atlas(atlas)
    print_nf1(nf1, counts, nf1_cells, args.cellpose_nuclei_model is not None)
    print_illumination(flat, args.picture)


if __name__ == "__main__":
    main()
