"""Load and check config + plate sheet before anything runs; input functions and constraints.

Every check here fails at start-up with one line naming the key, file or plate, so a typo
never surfaces an hour into a run.
"""

import os
import re
import tempfile

import pandas as pd
from snakemake.utils import validate

from debatch import cellpose_seg as cellpose_lib
from debatch import crops as crops_lib
from debatch import diagnostics as diagnostics_lib
from debatch import illum as illum_lib
from debatch import profiles as profiles_lib
from debatch import qc as qc_lib
from debatch import segment as segment_lib
from debatch import synth as synth_lib
from debatch import train as train_lib
from debatch.manifest import ManifestError, read_platemap


def fail(message):
    raise WorkflowError(f"debatch config: {message}")


validate(config, schema="../schemas/config.schema.yaml")

# Per-stage blocks are checked against the library's own parameter lists (one source of truth).
for _name, _check in [
    ("illum", lambda: illum_lib.merge_params(config["illum"])),
    ("segment.propagate", lambda: segment_lib.merge_params(config["segment"].get("propagate", {}))),
    ("segment.cellpose", lambda: cellpose_lib.merge_params(config["segment"].get("cellpose", {}))),
    ("qc", lambda: qc_lib.merge_params(config["qc"])),
    ("crops", lambda: crops_lib.merge_params(config["crops"])),
    ("train", lambda: train_lib.merge_params({k: v for k, v in config["train"].items() if k != "methods"})),
    ("profiles", lambda: profiles_lib.merge_params(config["profiles"])),
    ("diagnostics", lambda: diagnostics_lib.merge_params(config["diagnostics"])),
    ("demo.params", lambda: synth_lib.resolve_params(config["demo"].get("params", {}))),
]:
    try:
        _check()
    except ValueError as _error:
        fail(f"{_name}: {_error}")

CHANNELS = [str(name) for name in config["channels"]]
for _key in ("nuclei_channel", "cell_channel"):
    if config[_key] not in CHANNELS:
        fail(f"{_key} {config[_key]!r} is not one of the channels {CHANNELS}")

RESULTS = config["results"].rstrip("/")


def check_writable(folder):
    """Fail at start-up, not hours later, when outputs cannot be written."""
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder):
            pass
    except OSError as error:
        fail(f"results folder {folder} is not writable: {error.strerror} (key 'results')")


check_writable(RESULTS)
DEMO_ROOT = os.path.normpath(config["demo"]["root"])


def demo_plate_paths(plate):
    """Paths the demo rule writes for a plate (the plate sheet must use exactly these)."""
    return {"images": f"{DEMO_ROOT}/{plate}/images", "platemap": f"{DEMO_ROOT}/{plate}/platemap.tsv",
            "truth": f"{DEMO_ROOT}/{plate}/truth"}


def load_plate_sheet(path):
    if not os.path.exists(path):
        fail(f"plate sheet not found: {path} (key 'plates')")
    sheet = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    allowed = ["plate", "batch", "images", "pattern", "platemap"]
    unknown, missing = sorted(set(sheet.columns) - set(allowed)), sorted(set(allowed) - set(sheet.columns))
    if unknown or missing:
        fail(f"plate sheet {path}: unknown column(s) {unknown}, missing column(s) {missing}; "
             f"columns must be {allowed}")
    try:
        validate(sheet, schema="../schemas/plates.schema.yaml")
    except WorkflowError as error:
        fail(f"plate sheet {path}: " + " ".join(str(error).split()))
    duplicated = sorted(sheet.loc[sheet["plate"].duplicated(), "plate"].unique())
    if duplicated:
        fail(f"plate sheet {path} lists plate(s) {duplicated} more than once")
    for column in ("images", "platemap"):
        sheet[column] = sheet[column].map(os.path.normpath)
    sheet["is_demo"] = [
        config["demo"]["enabled"] and row.images == demo_plate_paths(row.plate)["images"]
        and row.platemap == demo_plate_paths(row.plate)["platemap"]
        for row in sheet.itertuples()
    ]
    for row in sheet[~sheet["is_demo"]].itertuples():
        if not os.path.isdir(row.images):
            fail(f"plate {row.plate}: image folder not found: {row.images}")
        if row.pattern.endswith(".csv") and not os.path.exists(row.pattern):
            fail(f"plate {row.plate}: CSV manifest not found: {row.pattern}")
        try:
            platemap = read_platemap(row.platemap)
        except ManifestError as error:
            fail(f"plate {row.plate}: {error}")
        validate(platemap, schema="../schemas/platemap.schema.yaml")
    return sheet.set_index("plate", drop=False)


PLATES = load_plate_sheet(config["plates"])
PLATE_NAMES = PLATES["plate"].tolist()
BATCHES = sorted(PLATES["batch"].unique())
METHODS = config["train"]["methods"]
CORRECTIONS = config["profiles"].get("corrections", profiles_lib.DEFAULTS["corrections"])
_unknown_holdout = sorted(set(config["train"].get("holdout_batches", [])) - set(BATCHES))
if _unknown_holdout:
    fail(f"train.holdout_batches {_unknown_holdout} are not batches of the plate sheet ({BATCHES})")


wildcard_constraints:
    plate="|".join(re.escape(p) for p in PLATE_NAMES),
    method="|".join(METHODS),
    correction="|".join(CORRECTIONS),
    shard=r"\d+",


def plate_row(wildcards):
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
    return f"{RESULTS}/logs/{stage}/{name}.log"


def benchmark_path(stage, name="{plate}"):
    return f"{RESULTS}/benchmarks/{stage}/{name}.tsv"


# --- segment rules' parameters ---

SHARDS = list(range(config["segment"].get("shards", 1)))


def segment_settings():
    """The segment block without the settings of the method not in use (changing those must
    not rerun segmentation); the shard count lives in params.shards."""
    block = {key: value for key, value in config["segment"].items() if key not in ("cellpose", "shards")}
    if block["method"] == "cellpose":
        block["cellpose"] = config["segment"].get("cellpose", {})
    return block


def segment_gpu():
    """cellpose on a GPU node when one may be used (SLURM maps gpu=1 to --gpus=1)."""
    cellpose = config["segment"].get("cellpose", {})
    return int(config["segment"]["method"] == "cellpose" and cellpose.get("device", "auto") != "cpu")


# --- train rules' parameters ---


def train_params(wildcards):
    """This method's settings: the shared train keys plus only its own block (e.g. train.abra),
    so tuning one method, or adding one to train.methods, never retrains the others."""
    shared = stage_params("train", drop=("methods", *train_lib.METHOD_NAMES))
    own = config["train"].get(wildcards.method)
    return {**shared, "method": wildcards.method, **({wildcards.method: own} if own else {})}


# --- profiles rules' parameters ---


def aggregation_params():
    """The profiles keys that shape the plate-normalised wells (shared by every correction)."""
    return {key: value for key, value in config["profiles"].items()
            if key in ("aggregate", "aggregate_columns", "normalise")}


def correction_params(wildcards):
    """Only this correction's keys (+ consensus), so tuning Harmony never reruns sphering."""
    return {key: value for key, value in config["profiles"].items()
            if key == "consensus" or key.startswith(f"{wildcards.correction}_")}
