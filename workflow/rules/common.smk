"""Load and check config + plate sheet before anything runs; paths, input functions, params.

Every check here fails at start-up with one line naming the key, file or plate, so a typo
never surfaces an hour into a run. Only debatch.settings and the platemap reader are imported:
parsing the workflow (a dry run, --lint, each cluster job's re-parse) never imports torch.
"""

import os
import re
import tempfile

import pandas as pd
from snakemake.utils import validate

from debatch import settings
from debatch.ingest.manifest import ManifestError, read_platemap

ENV = "../../envs/debatch.yaml"  # every rule's software (--sdm conda)


def fail(message):
    raise WorkflowError(f"debatch config: {message}")


validate(config, schema="../schemas/config.schema.yaml")


def check_blocks():
    """Each stage's block against its settings (debatch.settings: the one source of truth)."""
    blocks = {
        settings.ILLUM: config["illum"],
        settings.SEGMENT: config["segment"],
        settings.QC: config["qc"],
        settings.CROPS: config["crops"],
        settings.TRAIN: {k: v for k, v in config["train"].items() if k != "methods"},
        settings.EMBED: config["embed"],
        settings.PROFILES: config["profiles"],
        settings.DIAGNOSTICS: config["diagnostics"],
        settings.REPORT: config["report"],
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


def check_real_plate(row):
    """A plate the demo does not generate: its folder, CSV manifest and platemap exist and parse."""
    if not os.path.isdir(row.images):
        fail(f"plate {row.plate}: image folder not found: {row.images}")
    if row.pattern.endswith(".csv") and not os.path.exists(row.pattern):
        fail(f"plate {row.plate}: CSV manifest not found: {row.pattern}")
    try:
        platemap = read_platemap(row.platemap)
    except ManifestError as error:
        fail(f"plate {row.plate}: {error}")
    validate(platemap, schema="../schemas/platemap.schema.yaml")


def load_plates(path):
    sheet = read_plate_sheet(path)
    sheet["is_demo"] = [
        config["demo"]["enabled"]
        and row.images == demo_plate_paths(row.plate)["images"]
        and row.platemap == demo_plate_paths(row.plate)["platemap"]
        for row in sheet.itertuples()
    ]
    for row in sheet[~sheet["is_demo"]].itertuples():
        check_real_plate(row)
    return sheet.set_index("plate", drop=False)


PLATES = load_plates(config["plates"])
PLATE_NAMES = PLATES["plate"].tolist()
BATCHES = sorted(PLATES["batch"].unique())
METHODS = config["train"]["methods"]
CORRECTIONS = settings.PROFILES.merge(config["profiles"])["corrections"]
_unknown_holdout = sorted(set(config["train"].get("holdout_batches", [])) - set(BATCHES))
if _unknown_holdout:
    fail(f"train.holdout_batches {_unknown_holdout} are not batches of the plate sheet ({BATCHES})")
# Ground truth exists only for plates the demo generates; a real screen has none.
DEMO_TRUTH = [demo_plate_paths(p)["truth"] for p in PLATE_NAMES if PLATES.loc[p, "is_demo"]]


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
    """This method's settings: the shared train keys plus only its own block (e.g. train.abra),
    so tuning one method, or adding one to train.methods, never retrains the others."""
    shared = stage_params("train", drop=("methods", *settings.TRAIN_METHODS))
    own = config["train"].get(wildcards.method)
    return {**shared, "method": wildcards.method, **({wildcards.method: own} if own else {})}


# --- profiles rules' parameters ---


def aggregation_params():
    """The profiles keys that shape the plate-normalised wells (shared by every correction)."""
    return {
        key: value
        for key, value in config["profiles"].items()
        if key in ("aggregate", "aggregate_columns", "normalise")
    }


def correction_params(wildcards):
    """Only this correction's keys (+ consensus), so tuning Harmony never reruns sphering."""
    return {
        key: value
        for key, value in config["profiles"].items()
        if key == "consensus" or key.startswith(f"{wildcards.correction}_")
    }
