"""The features stage against CellProfiler's numbers and against cp_measure's own functions.

- Exactness: CellProfiler's measurements of five NF1 cells (real images, CellProfiler's masks,
  the NF1 pipeline's background subtraction reproduced) and the shapes of five cells of a
  1080 px Phenix field (objects filled from CellProfiler's outlines): per module, the share of
  features within 1 % (or 1e-6) of CellProfiler's value, and the worst.
- Speed: core-seconds per site and per cell of ``measure_site`` against calling cp_measure's
  functions (its default backend) on the same images and masks for the same features, at the
  demo's 256 px and at 1080 px x 5 channels (a synthetic field with ~200 cells, and the real
  Phenix field); where the time goes, module by module; a shard of four 1080 px sites on 1 and
  2 threads, and the job's peak memory.

Goals: debatch <= 1.10 x cp_measure's functions per site (issue 12); <= 5 core-seconds per
1080 px 5-channel field with ~200 cells (issue 29; CellProfiler: ~62 core-seconds per field for
the whole pipeline at JUMP scale). Prints markdown.
"""

from __future__ import annotations

import itertools
import multiprocessing
import resource
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
from cp_measure.bulk import get_core_measurements, get_correlation_measurements
from cp_measure.core.measurecolocalization import get_correlation_overlap
from cp_measure.core.numba import measureobjectintensity
from skimage.segmentation import relabel_sequential

import figures
from debatch.core.io import NpzWriter
from debatch.demo.design import CHANNELS
from debatch.features import intensity
from debatch.features.objects import cytoplasm, object_sets
from debatch.features.plate import measure_shard
from debatch.features.site import PAIR_NAMES, measure_site, site_images
from debatch.ingest.manifest import build_manifest, read_platemap
from debatch.segment.shards import segment_shard
from debatch.settings import FEATURES, Channels
from debatch.validate.cellprofiler import (
    agreement,
    compare_objects,
    fill_outlines,
    label_mask,
    match_object,
    subtract_background,
)
from fields import DEMO_FIELD, DENSE_FIELD, write_field

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
ATLAS_CHANNELS = {"ER": 2, "AGP": 3, "Mito": 4, "DNA": 5, "RNA": 6}
warnings.simplefilter("ignore", RuntimeWarning)
GOAL_CORE_SECONDS = 5.0  # per 1080 px 5-channel field with ~200 cells (issue 29)
ROUNDS = 3  # debatch's rounds per field (the fastest is kept)


def markdown(table: pd.DataFrame, digits: int = 3) -> str:
    header = "| " + " | ".join(map(str, table.columns)) + " |"
    lines = [header, "|" + "---|" * len(table.columns)]
    for row in table.itertuples(index=False):
        cells = [f"{v:.{digits}g}" if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --- exactness -------------------------------------------------------------------------------


def nf1_agreement() -> tuple[pd.DataFrame, dict]:
    folder = REAL / "nf1_plate2"
    table = pd.read_parquet(folder / "Plate_2_with_image_data_shrunken.parquet")
    compared, skipped = [], {}
    for _, row in table.iterrows():
        well = row["Image_Metadata_Well_x"]
        images = {
            c: subtract_background(
                tifffile.imread(next((folder / "Plate_2_images").glob(f"{well}_01_*_{c}_001.tif")))
            )
            for c in ("DAPI", "GFP", "RFP")
        }
        objects = {
            name: label_mask(
                tifffile.imread(next((folder / "Plate_2_masks").glob(f"{well}_*{name}.tiff")))
            )
            for name in ("Nuclei", "Cells")
        }
        ours, why = compare_objects(objects, images, row)
        compared.append(ours.assign(field=f"NF1 {well}"))
        skipped |= {f"NF1 {well} {name}": reason for name, reason in why.items()}
        label, _ = match_object(objects["Nuclei"], row, "Nuclei")
        if label is not None:
            theirs = cp_measure_correlation(objects["Nuclei"], images, label)
            compared.append(agreement(theirs, row).assign(field="NF1, cp_measure per object"))
    return pd.concat(compared), skipped


def cp_measure_correlation(labels: np.ndarray, images: dict, label: int) -> pd.Series:
    """cp_measure's own MeasureColocalization (each object alone) of one object, named as
    CellProfiler names it: the reference the Correlation rows are checked against."""
    pairs = get_correlation_measurements()
    values = {}
    for a, b in itertools.combinations(images, 2):
        x, y = images[a], images[b]
        measured = {
            **pairs["pearson"](x, y, labels),
            **pairs["manders_fold"](x, y, labels),
            **pairs["rwc"](x, y, labels),
            **get_correlation_overlap(x, y, labels),
            **pairs["costes"](x, y, labels, scale_max=65535),
        }
        for key, (feature, reverse) in PAIR_NAMES.items():
            first, second = (b, a) if reverse else (a, b)
            values[f"Nuclei_Correlation_{feature}_{first}_{second}"] = measured[key][label - 1]
    return pd.Series(values, dtype=float)


def atlas_objects() -> dict[str, np.ndarray]:
    folder = REAL / "atlas_BR00143976" / "outlines"
    nuclei = fill_outlines(tifffile.imread(folder / "NucleiOutlines_BR00143976_C03_3.tiff")[..., 1])
    cells = fill_outlines(tifffile.imread(folder / "CellsOutlines_BR00143976_C03_3.tiff")[..., 1])
    return {"Nuclei": nuclei, "Cells": cells, "Cytoplasm": cytoplasm(cells, nuclei)}


def atlas_images() -> dict[str, np.ndarray]:
    folder = REAL / "atlas_BR00143976" / "images"
    return {
        name: tifffile.imread(folder / f"r03c03f03p01-ch{number}sk1fk1fl1.tiff")
        for name, number in ATLAS_CHANNELS.items()
    }


def atlas_agreement() -> tuple[pd.DataFrame, dict]:
    table = pd.read_parquet(REAL / "atlas_BR00143976" / "BR00143976_shrunken.parquet")
    objects, images = atlas_objects(), {"DNA": atlas_images()["DNA"] / 65535}
    compared, skipped = [], {}
    for _, row in table.iterrows():
        number = row["Metadata_Cells_Number_Object_Number"]
        ours, why = compare_objects(
            objects, images, row, {"measurements": ["areashape"]}, ("AreaShape",)
        )
        compared.append(ours.assign(field="atlas"))
        skipped |= {f"atlas cell {number} {name}": reason for name, reason in why.items()}
    return pd.concat(compared), skipped


GOALS = {
    "AreaShape": 0.99,
    "Intensity": 0.99,
    "Correlation": 0.99,
    "Texture": 0.95,
    "Granularity": 0.95,
    "RadialDistribution": 0.95,
    "Location": 0.99,
}


def exactness_table(compared: pd.DataFrame) -> pd.DataFrame:
    """Per field and module: features compared, the share that agrees, the worst difference."""
    compared = compared.assign(
        field=compared["field"].str.replace(r"^NF1 [A-H]\d+$", "NF1", regex=True),
        relative=(compared["ours"] - compared["cellprofiler"]).abs()
        / compared["cellprofiler"].abs(),
    )
    return compared.groupby(["field", "module"], as_index=False).agg(
        features=("agrees", "size"),
        agree=("agrees", "mean"),
        **{"worst rel. diff": ("relative", "max")},
    )


def exactness_section() -> None:
    nf1, nf1_skipped = nf1_agreement()
    atlas, atlas_skipped = atlas_agreement()
    table = exactness_table(pd.concat([nf1, atlas]))
    print("## CellProfiler features against CellProfiler\n")
    print(markdown(table, 4) + "\n")
    print("Objects not compared (their saved mask or outline fill is not CellProfiler's object):\n")
    for name, why in {**nf1_skipped, **atlas_skipped}.items():
        print(f"- {name}: {why}")
    ours = table[table["field"].isin(["NF1", "atlas"])]
    short = [f"{r.field} {r.module}" for r in ours.itertuples() if r.agree < GOALS[r.module]]
    print(
        f"\nGoal AreaShape, Intensity, Correlation >= 99 % and Texture, Granularity, "
        f"RadialDistribution >= 95 % within 1 % of CellProfiler: "
        f"{'met' if not short else 'NOT met: ' + ', '.join(short)} "
        f"({int(ours['features'].sum())} features compared)\n"
    )


# --- speed -----------------------------------------------------------------------------------


def demo_field(field: dict, folder: Path):
    """One field of the demo generator (``field``: its image size, cells and radii) segmented
    by debatch: (raw images, nuclei, cells, manifest)."""
    write_field(field, folder / "plate")
    channels = {name: str(i) for i, name in enumerate(CHANNELS, start=1)}
    manifest = build_manifest(
        "P1",
        "b1",
        folder / "plate" / "images",
        "opera_phenix",
        read_platemap(folder / "plate" / "platemap.tsv"),
        channels,
    )
    segment = {"propagate": {"nucleus_diameter": 2 * field["nucleus_radius"]}}
    segment_shard(
        manifest, 1, 0, Channels(tuple(CHANNELS), "DNA", "AGP"), None, segment, folder / "masks.npz"
    )
    with np.load(folder / "masks.npz") as masks:
        nuclei, labels = (
            masks[next(n for n in masks.files if n.endswith(k))] for k in ("nuclei", "cells")
        )
    raw = {c: tifffile.imread(manifest.iloc[0][f"Path_{c}"]) for c in CHANNELS}
    return raw, nuclei.astype(np.int32), labels.astype(np.int32), manifest


def cp_measure_site(nuclei, cells, images, timings) -> None:
    """The same features with cp_measure's functions called directly (its default backend)."""
    features = FEATURES.merge({})
    core, pairs = get_core_measurements(), get_correlation_measurements()
    calls = {
        "areashape": [
            lambda labels, _: core["sizeshape"](
                labels, None, calculate_advanced=False, new_features=False
            ),
            lambda labels, _: core["zernike"](labels, None),
            lambda labels, _: core["feret"](labels, None),
        ],
        "intensity": [lambda labels, x: core["intensity"](labels, x, legacy=True)],
        "texture": [lambda labels, x: core["texture"](labels, x, 3, 256)],
        "granularity": [core["granularity"]],
        "radial_distribution": [core["radial_distribution"]],
        "radial_zernikes": [core["radial_zernikes"]],
    }
    for labels in object_sets(nuclei, cells, features["shrink_nuclei"]).values():
        for module, functions in calls.items():
            started = time.thread_time()
            for function in functions:
                for image in [None] if module == "areashape" else images.values():
                    function(labels, image)
            timings[module] = timings.get(module, 0) + time.thread_time() - started
        started = time.thread_time()
        for a, b in itertools.combinations(images, 2):
            x, y = images[a], images[b]
            for function in (
                pairs["pearson"],
                pairs["manders_fold"],
                pairs["rwc"],
                get_correlation_overlap,
            ):
                function(x, y, labels)
            pairs["costes"](x, y, labels, scale_max=65535)
        timings["correlation"] = timings.get("correlation", 0) + time.thread_time() - started


def time_site(raw, nuclei, cells) -> tuple[dict, dict]:
    """Per-module CPU seconds of debatch (its fastest of ROUNDS rounds, kept whole: a shared
    VM's speed drifts over minutes) and of cp_measure (one round: a dense field takes it
    minutes) on one site, after a warm-up."""
    images = site_images(raw)
    measure_site(nuclei[:64, :64], cells[:64, :64], {c: v[:64, :64] for c, v in images.items()})
    rounds = []
    for _ in range(ROUNDS):
        rounds.append({})
        measure_site(nuclei, cells, images, timings=rounds[-1])
    theirs = {}
    cp_measure_site(nuclei, cells, images, theirs)
    return min(rounds, key=lambda timings: sum(timings.values())), theirs


def speed_rows(folder: Path) -> tuple[list[dict], dict, dict]:
    fields = {
        "demo 256 px": demo_field(DEMO_FIELD, folder / "demo"),
        "synthetic 1080 px": demo_field(DENSE_FIELD, folder / "big"),
    }
    if (REAL / "atlas_BR00143976").is_dir():  # real pixels, CellProfiler's objects
        atlas = atlas_objects()
        nuclei, cells = (
            relabel_sequential(atlas[k])[0].astype(np.int32) for k in ("Nuclei", "Cells")
        )
        fields["real Phenix 1080 px"] = (atlas_images(), nuclei, cells, None)
    rows, modules = [], {}
    for name, (raw, nuclei_labels, cell_labels, _) in fields.items():
        ours, theirs = time_site(raw, nuclei_labels, cell_labels)
        rows.append(speed_row(name, int(cell_labels.max()), ours, theirs))
        modules[name] = (ours, theirs)
    return rows, modules, fields


def intensity_rows(raw: dict, cells: np.ndarray) -> list[dict]:
    """debatch's MeasureObjectIntensity and the cp_measure code it replaces (its numba
    backend) on ``cells``: the field's own channels, then channels whose pixels take one, two
    or 256 values (blank, saturated, binary, 8-bit), where a selection can slow down on ties."""
    rng = np.random.default_rng(0)
    channels = {
        **site_images(raw),
        "blank (all 0)": np.zeros(cells.shape),
        "saturated (all 1)": np.ones(cells.shape),
        "two values": (rng.random(cells.shape) < 0.5).astype(np.float64),
        "8-bit": rng.integers(0, 256, cells.shape) / 255,
    }
    rows = []
    for name, image in channels.items():
        seconds = []
        for function in (intensity.get_intensity, measureobjectintensity.get_intensity):
            function(cells[:64, :64], image[:64, :64])  # compiled before timing
            runs = []
            for _ in range(ROUNDS):
                started = time.thread_time()
                function(cells, image, legacy=True)
                runs.append(time.thread_time() - started)
            seconds.append(min(runs))
        debatch_s, cp_measure_s = seconds
        rows.append(
            {
                "channel": name,
                "debatch s": debatch_s,
                "cp_measure numba s": cp_measure_s,
                "ratio": debatch_s / cp_measure_s,
            }
        )
    return rows


def speed_row(name: str, n_cells: int, ours: dict, theirs: dict) -> dict:
    a, b = sum(ours.values()), sum(theirs.values())
    return {
        "field (5 channels)": name,
        "cells": n_cells,
        "debatch core-s/site": a,
        "cp_measure core-s/site": b,
        "debatch ms/cell": 1000 * a / n_cells,
        "cp_measure ms/cell": 1000 * b / n_cells,
        "ratio": a / b,
    }


def modules_table(ours: dict, theirs: dict) -> pd.DataFrame:
    rows = [
        {"module": m, "debatch s": ours.get(m, 0.0), "cp_measure s": theirs.get(m, 0.0)}
        for m in sorted(theirs, key=lambda m: -ours.get(m, 0.0))
    ]
    return pd.DataFrame(rows).assign(
        share=lambda t: (t["debatch s"] / t["debatch s"].sum()).map("{:.0%}".format),
        ratio=lambda t: t["debatch s"] / t["cp_measure s"],
    )


def shard_job(args) -> tuple[float, float, int]:
    """measure_shard of four sites on ``threads``: (wall s, CPU s of this process and the
    workers it forked, the larger of their peak RSS in MiB)."""
    cells, manifest, masks_path, threads = args
    out = Path(masks_path).with_name(f"features_{threads}.parquet")
    started, cpu = time.perf_counter(), time.process_time()
    measure_shard(cells, manifest, 1, 0, list(CHANNELS), None, masks_path, out, {}, threads=threads)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, children.ru_maxrss) // 1024
    spent = time.process_time() - cpu + children.ru_utime + children.ru_stime
    return time.perf_counter() - started, spent, peak


def shard_rows(folder: Path) -> list[dict]:
    """Four copies of the 1080 px field as a shard, measured on 1 and 2 threads in a fresh
    process each (so the peak memory is the job's)."""
    raw, nuclei, cells, manifest = demo_field(DENSE_FIELD, folder / "big")
    sites = pd.concat([manifest.assign(Metadata_Site=k) for k in range(1, 5)], ignore_index=True)
    with NpzWriter(folder / "shard_masks.npz") as writer:
        for k in range(1, 5):
            writer.add(f"{manifest.iloc[0]['Metadata_Well']}_{k}_nuclei", nuclei)
            writer.add(f"{manifest.iloc[0]['Metadata_Well']}_{k}_cells", cells)
    table = pd.DataFrame(
        {
            "Metadata_Well": manifest.iloc[0]["Metadata_Well"],
            "Metadata_Site": np.repeat(np.arange(1, 5), nuclei.max()),
            "Metadata_ObjectNumber": np.tile(np.arange(1, nuclei.max() + 1), 4),
        }
    )
    rows = []
    context = multiprocessing.get_context("spawn")
    for threads in (1, 2):
        # a fresh, non-daemonic process per run: measure_shard forks its own workers
        with ProcessPoolExecutor(1, mp_context=context) as pool:
            wall, cpu, peak = pool.submit(
                shard_job, (table, sites, folder / "shard_masks.npz", threads)
            ).result()
        rows.append(
            {
                "threads": threads,
                "sites": 4,
                "wall s": wall,
                "CPU s": cpu,
                "s/site": wall / 4,
                "peak RSS MiB": peak,
            }
        )
    return rows


def speed_section() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rows, modules, fields = speed_rows(Path(tmp))
        shards = pd.DataFrame(shard_rows(Path(tmp)))
    table = pd.DataFrame(rows)
    print("## CellProfiler features: speed\n")
    print(
        f"CPU seconds of one thread per site: debatch's fastest of {ROUNDS} rounds, cp_measure's "
        "one round.\n"
    )
    print(markdown(table) + "\n")
    big = table.set_index("field (5 channels)").loc["synthetic 1080 px"]
    worst = table["ratio"].max()
    print(
        f"Goal debatch <= 1.10 x cp_measure's functions per site: "
        f"{'met' if worst <= 1.10 else 'NOT met'} (worst {worst:.2f} x)"
    )
    print(
        f"Goal (issue 29) <= {GOAL_CORE_SECONDS:g} core-seconds per 1080 px 5-channel field with "
        f"~200 cells (>= 12x CellProfiler's ~62): "
        f"{'met' if big['debatch core-s/site'] <= GOAL_CORE_SECONDS else 'NOT met'} "
        f"({big['debatch core-s/site']:.2f} s for {big['cells']} cells)\n"
    )
    figures.save(
        __file__,
        {
            "core_s_per_field": float(big["debatch core-s/site"]),
            "cells_per_field": int(big["cells"]),
        },
    )
    print(
        "Where the time goes (1080 px synthetic field, CPU seconds per module, all three "
        "object sets; AreaShape includes the Zernike moments of the shape and of every channel, "
        "computed in one pass, so radial Zernikes only name them, and each pixel's distance to "
        "its object's edge, which the radial distribution reuses; cp_measure: its default "
        "functions, as cp_measure.bulk gives them; notes.md says what bounds each module):\n"
    )
    print(markdown(modules_table(*modules["synthetic 1080 px"])) + "\n")
    raw, _, cells = fields["synthetic 1080 px"][:3]
    compared = pd.DataFrame(intensity_rows(raw, cells))
    worst = compared["ratio"].max()
    print(
        "MeasureObjectIntensity against the cp_measure code it replaces (cp_measure's numba "
        "backend; the table above runs its default functions): the dense field's cells on its "
        f"channels and on channels of few values, CPU s of the fastest of {ROUNDS} rounds:\n"
    )
    print(markdown(compared) + "\n")
    print(
        f"Goal debatch's intensity <= 1.10 x cp_measure's numba backend on every channel above: "
        f"{'met' if worst <= 1.10 else 'NOT met'} (worst {worst:.2f} x)\n"
    )
    print("A shard of four 1080 px sites (one features job):\n")
    print(markdown(shards) + "\n")


def main() -> None:
    if (REAL / "nf1_plate2").is_dir():
        exactness_section()
    speed_section()


if __name__ == "__main__":
    main()
