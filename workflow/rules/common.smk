"""Load and check config + plate sheet before anything runs; paths, input functions, params.

Every check here fails at start-up with one line naming the key, file or plate, so a typo
never surfaces an hour into a run. Only debatch.settings and the platemap reader are imported:
parsing the workflow (a dry run, --lint, each cluster job's re-parse) never imports torch.
"""

import os
import re
import tempfile

import pandas as pd
import yaml
from snakemake.utils import validate

from debatch import settings
from debatch.ingest.manifest import ManifestError, read_platemap

ENV = "../../envs/debatch.yaml"  # every rule's software (--sdm conda)


def fail(message):
    raise WorkflowError(f"debatch config: {message}")


def replace_channels():
    """An overlay's `channels:` replaces the default's instead of being merged into it
    (Snakemake merges nested blocks: four renamed channels would keep the demo's five)."""
    for path in reversed([str(p) for p in workflow.overwrite_configfiles]):
        with open(path) as handle:
            overlay = yaml.safe_load(handle) or {}
        if "channels" in overlay:
            config["channels"] = overlay["channels"]
            return


def check_channels():
    """Each logical channel has its own raw id (two names for one file would be one image)."""
    by_id = {}
    for name, raw in config["channels"].items():
        by_id.setdefault(str(raw), []).append(name)
    shared = {raw: names for raw, names in by_id.items() if len(names) > 1}
    if shared:
        raw, names = next(iter(shared.items()))
        fail(f"channels: {names} all map to raw channel id {raw!r}; give each its own id")


replace_channels()
validate(config, schema="../schemas/config.schema.yaml")
check_channels()


def check_blocks():
    """Each stage's block against its settings (debatch.settings: the one source of truth)."""
    blocks = {
        settings.ILLUM: config["illum"],
        settings.SEGMENT: config["segment"],
        settings.QC: config["qc"],
        settings.CROPS: config["crops"],
        settings.FEATURES: config.get("features", {}),
        settings.TRAIN: {
            k: v for k, v in config["train"].items() if k not in ("methods", "seeds", "recipes")
        },
        settings.EMBED: config["embed"],
        settings.PROFILES: config["profiles"],
        settings.DIAGNOSTICS: config["diagnostics"],
        settings.REPORT: config["report"],
        settings.OUTPUTS: config.get("outputs", {}),
        settings.THREADS: config["threads"],
        settings.DEMO: config["demo"].get("params", {}),
    }
    for block, values in blocks.items():
        try:
            block.merge(values)
        except ValueError as error:
            fail(f"{block.name}: {error}")


check_blocks()
try:
    CHANNELS = settings.Channels(
        tuple(config["channels"]), config["nuclei_channel"], config["cell_channel"]
    )
except ValueError as _error:
    fail(str(_error))

RESULTS = config["results"].rstrip("/")


def res(path):
    """A path under the results folder: res("crops/{plate}.npy")."""
    return f"{RESULTS}/{path}"


def check_writable(folder):
    """Fail at start-up, not hours later, when outputs cannot be written: the nearest existing
    folder above the results folder must be a writable directory (no file is created here)."""
    existing = os.path.abspath(folder)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        fail(
            f"results folder {folder} is not writable: {existing} is not a directory "
            f"(key 'results')"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        fail(
            f"results folder {folder} is not writable: no write permission on {existing} "
            f"(key 'results')"
        )


check_writable(RESULTS)


onstart:
    # A real write, once the run starts (a dry run writes nothing): catches read-only mounts
    # and full quotas that permission bits do not show.
    try:
        os.makedirs(RESULTS, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=RESULTS):
            pass
    except OSError as error:
        raise WorkflowError(
            f"debatch: results folder {RESULTS} is not writable: {error.strerror}"
        )


DEMO_ROOT = os.path.normpath(config["demo"]["root"])


def demo_plate_paths(plate):
    """Paths the demo rule writes for a plate (the plate sheet must use exactly these)."""
    return {
        "images": f"{DEMO_ROOT}/{plate}/images",
        "platemap": f"{DEMO_ROOT}/{plate}/platemap.tsv",
        "truth": f"{DEMO_ROOT}/{plate}/truth",
    }


def read_plate_sheet(path):
    """The plate sheet, its columns and plate names checked."""
    if not os.path.exists(path):
        fail(f"plate sheet not found: {path} (key 'plates')")
    sheet = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    allowed = list(settings.PLATE_SHEET_COLUMNS)
    unknown = sorted(set(sheet.columns) - set(allowed))
    missing = sorted(set(allowed) - set(sheet.columns))
    if unknown or missing:
        fail(
            f"plate sheet {path}: unknown column(s) {unknown}, missing column(s) {missing}; "
            f"columns must be {allowed}"
        )
    try:
        validate(sheet, schema="../schemas/plates.schema.yaml")
    except WorkflowError as error:
        fail(f"plate sheet {path}: " + " ".join(str(error).split()))
    duplicated = sorted(sheet.loc[sheet["plate"].duplicated(), "plate"].unique())
    if duplicated:
        fail(f"plate sheet {path} lists plate(s) {duplicated} more than once")
    for column in ("images", "platemap"):
        sheet[column] = sheet[column].map(os.path.normpath)
    return sheet


def check_real_plate(row, checked_platemaps):
    """A plate the demo does not generate: its folder, CSV manifest and platemap exist and parse.
    read_platemap checks what platemap.schema.yaml says, column-wise: a row-by-row schema check
    cost 50 ms per platemap, most of a 2,000-plate dry run. Each platemap file is read once."""
    if not os.path.isdir(row.images):
        fail(f"plate {row.plate}: image folder not found: {row.images}")
    if row.pattern.endswith(".csv") and not os.path.exists(row.pattern):
        fail(f"plate {row.plate}: CSV manifest not found: {row.pattern}")
    if row.platemap in checked_platemaps:
        return
    try:
        read_platemap(row.platemap)
    except ManifestError as error:
        fail(f"plate {row.plate}: {error}")
    checked_platemaps.add(row.platemap)


def load_plates(path):
    sheet = read_plate_sheet(path)
    sheet["is_demo"] = [
        config["demo"]["enabled"]
        and row.images == demo_plate_paths(row.plate)["images"]
        and row.platemap == demo_plate_paths(row.plate)["platemap"]
        for row in sheet.itertuples()
    ]
    checked_platemaps = set()
    for row in sheet[~sheet["is_demo"]].itertuples():
        check_real_plate(row, checked_platemaps)
    return sheet.set_index("plate", drop=False)


PLATES = load_plates(config["plates"])
PLATE_NAMES = PLATES["plate"].tolist()
BATCHES = sorted(PLATES["batch"].unique())


def check_methods():
    """train.methods names presets or recipes of train.recipes (each recipe's block checked);
    train.holdout_batches names batches of the plate sheet and leaves one to train on."""
    recipes = config["train"].get("recipes", {})
    for method in config["train"]["methods"]:
        if method in settings.TRAIN_METHODS:
            continue
        if method not in recipes:
            fail(
                f"train.methods: {method!r} is neither a preset {list(settings.TRAIN_METHODS)} "
                f"nor a recipe of train.recipes ({sorted(recipes)})"
            )
        try:
            settings.recipe_block(method).merge(recipes[method])
        except ValueError as error:
            fail(f"train.recipes: {error}")
    holdout = set(config["train"].get("holdout_batches", []))
    if sorted(holdout - set(BATCHES)):
        fail(
            f"train.holdout_batches {sorted(holdout - set(BATCHES))} are not batches of the "
            f"plate sheet ({BATCHES})"
        )
    if holdout and holdout >= set(BATCHES):
        fail(
            f"train.holdout_batches {sorted(holdout)} hold out every batch of the plate sheet: "
            f"nothing is left to train on"
        )


def check_features():
    """CellProfiler features are measured on the label images segment keeps."""
    if FEATURES["enabled"] and not config["segment"].get("save_masks", True):
        fail(
            "features.enabled needs the label images: set segment.save_masks to true "
            "(or features.enabled to false)"
        )


check_methods()
FEATURES = settings.FEATURES.merge(config.get("features", {}))
check_features()
METHODS = config["train"]["methods"]
SEEDS = config["train"].get("seeds", [0])
# A source of per-cell features: a trained model, {method}/seed{k}, one per method and seed,
# and CellProfiler's measurements (features stage), `cellprofiler`, when features are enabled.
MODELS = [settings.source_name(method, seed) for method in METHODS for seed in SEEDS]
SOURCES = MODELS + ([settings.CELLPROFILER] if FEATURES["enabled"] else [])
OUTPUTS = settings.OUTPUTS.merge(config.get("outputs", {}))
CORRECTIONS = settings.PROFILES.merge(config["profiles"])["corrections"]
# Ground truth exists only for plates the demo generates; a real screen has none.
DEMO_TRUTH = [demo_plate_paths(p)["truth"] for p in PLATE_NAMES if PLATES.loc[p, "is_demo"]]


# A plate is any name without "/" (plate_row checks it is on the sheet): an alternation of every
# plate name made matching each file against each rule's outputs a fifth of a 2,000-plate DAG.
wildcard_constraints:
    plate=r"[^/]+",
    method="|".join(re.escape(m) for m in METHODS),
    seed=r"\d+",
    source="|".join(re.escape(s) for s in SOURCES),
    correction="|".join(CORRECTIONS),
    shard=r"\d+",


def plate_row(wildcards):
    if wildcards.plate not in PLATES.index:
        fail(f"plate {wildcards.plate!r} is not on the plate sheet {config['plates']}")
    return PLATES.loc[wildcards.plate]


def manifest_inputs(wildcards):
    """Images folder + platemap (+ CSV manifest) of a plate; demo ones come from demo_plate."""
    row = plate_row(wildcards)
    inputs = {"images": row["images"], "platemap": row["platemap"]}
    if row["pattern"].endswith(".csv"):
        inputs["csv"] = row["pattern"]
    return inputs


def stage_params(section, drop=()):
    """A rule's params: its config slice, minus keys that only fan out jobs (e.g. train.methods)."""
    return {key: value for key, value in config[section].items() if key not in drop}


def log_path(stage, name="{plate}"):
    return res(f"logs/{stage}/{name}.log")


def benchmark_path(stage, name="{plate}"):
    return res(f"benchmarks/{stage}/{name}.tsv")


# --- segment rules' parameters ---

SHARDS = list(range(config["segment"].get("shards", 1)))


def segment_settings():
    """The segment block without the settings of the method not in use (changing those must
    not rerun segmentation); the shard count lives in params.shards."""
    block = {k: v for k, v in config["segment"].items() if k not in ("cellpose", "shards")}
    if block["method"] == "cellpose":
        block["cellpose"] = config["segment"].get("cellpose", {})
    return block


def segment_gpu():
    """cellpose on a GPU node when one may be used (SLURM maps gpu=1 to --gpus=1)."""
    cellpose = config["segment"].get("cellpose", {})
    return int(
        config["segment"]["method"] == "cellpose" and cellpose.get("device", "auto") != "cpu"
    )


# --- train rules' parameters ---


def train_params(wildcards):
    """This method's settings: the shared train keys, its seed and only its own block (a
    preset's, e.g. train.abra, or its recipe of train.recipes), so tuning one method, or adding
    a method or a seed, never retrains the others."""
    drop = ("methods", "seeds", "recipes", *settings.TRAIN_METHODS)
    shared = stage_params("train", drop=drop)
    method = wildcards.method
    own = {}
    if method in settings.TRAIN_METHODS and config["train"].get(method):
        own = {method: config["train"][method]}
    elif method not in settings.TRAIN_METHODS:
        own = {"recipe": config["train"]["recipes"][method]}
    return {**shared, "method": method, "seed": int(wildcards.seed), **own}


def plate_cells(source, plate):
    """One plate's per-cell table of a source: a model's embeddings; for `cellprofiler`, the
    plate's features and its crops table naming the cells to profile (the cells every CNN
    embeds: those on sites that passed QC)."""
    if source == settings.CELLPROFILER:
        return {
            "cells": res(f"features/{plate}.parquet"),
            "crops": res(f"crops/{plate}.parquet"),
        }
    return {"cells": res(f"embeddings/{source}/{plate}.parquet")}


def source_cells(wildcards):
    """The per-cell tables of a source, every plate's (plate_cells), as lists."""
    tables = [plate_cells(wildcards.source, plate) for plate in PLATE_NAMES]
    return {key: [table[key] for table in tables] for key in tables[0]}


# --- profiles rules' parameters ---


def aggregation_params(wildcards):
    """The profiles keys that shape the plate-normalised wells (shared by every correction);
    feature selection only for CellProfiler features, so tuning it never reruns a CNN's."""
    keys = ["aggregate", "aggregate_columns", "normalise"]
    if wildcards.source == settings.CELLPROFILER:
        keys.append("feature_select")
    return {key: value for key, value in config["profiles"].items() if key in keys}


def correction_params(wildcards):
    """Only this correction's keys (+ consensus), so tuning Harmony never reruns sphering."""
    return {
        key: value
        for key, value in config["profiles"].items()
        if key == "consensus" or key.startswith(f"{wildcards.correction}_")
    }
