"""Load and check config + plate sheet before anything runs; paths, input functions, params.

Every check here fails at start-up with one line naming the key, file or plate, so a typo
never surfaces an hour into a run. Only debatch.settings and the sheet and platemap readers are
imported: parsing the workflow (a dry run, --lint, each cluster job's re-parse) never imports
torch.
"""

import os
import re
import tempfile

import pandas as pd
import yaml
from jsonschema.exceptions import ValidationError
from snakemake.cli import parse_config
from snakemake.common import parse_key_value_arg
from snakemake.utils import update_config, validate

from debatch import settings
from debatch.ingest.manifest import ManifestError, image_source, read_platemap
from debatch.ingest.sheets import check_distinct, name_clashes, read_sheet

ENV = "../../envs/debatch.yaml"  # every rule's software (--sdm conda)
REPO = os.path.dirname(os.path.abspath(workflow.main_snakefile))
DEFAULT_CONFIG = "config/config.yaml"  # the Snakefile's configfile, relative to the workdir


def fail(message):
    raise WorkflowError(f"debatch config: {message}")


def schema_message(error):
    """A schema failure in one line (the key path, jsonschema's sentence) instead of the
    schema dump Snakemake prints."""
    cause = error.__context__
    if not isinstance(cause, ValidationError):
        return " ".join(str(error).split())
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in cause.absolute_path)
    return f"{where.lstrip('.') or 'top level'}: {cause.message}"


def check_config_loaded():
    """-d DIR or -s from another folder with --configfile: Snakemake skips config/config.yaml
    when the working directory has none, silently; say what was loaded and how to add it."""
    with open(f"{REPO}/workflow/schemas/config.schema.yaml") as handle:
        required = yaml.safe_load(handle)["required"]
    missing = [key for key in required if key not in config]
    if not missing:
        return
    loaded = [str(path) for path in workflow.configfiles]
    lacks = f"{', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}"
    if not os.path.exists(DEFAULT_CONFIG):
        fail(
            f"the config lacks {lacks}: only {loaded} was loaded, as {DEFAULT_CONFIG} (the "
            f"defaults) is not in the working directory {os.getcwd()} (-d / -s from another "
            f"folder); load it first: --configfile {REPO}/{DEFAULT_CONFIG} {' '.join(loaded)}"
        )
    fail(f"the config lacks {lacks} (loaded: {loaded}); {DEFAULT_CONFIG} documents every key")


def written_config():
    """The config as written (every value the string in its file or on the command line),
    merged in Snakemake's order: config/config.yaml, each --configfile, then --config."""
    merged = {}
    cli = [str(path) for path in workflow.overwrite_configfiles]
    default = [str(path) for path in workflow.configfiles if str(path) not in cli]
    for path in default + cli:
        with open(path) as handle:
            update_config(merged, yaml.load(handle, Loader=yaml.BaseLoader) or {})
    for argument in workflow.config_settings.config_args or []:
        key, text = parse_key_value_arg(argument, errmsg=f"--config {argument}")
        update_config(merged, {key: yaml.load(text, Loader=yaml.BaseLoader) if text else None})
    return merged


def reads_as(text):
    """What a value written as ``text`` becomes: in a YAML file, and on the command line
    (--config reads 1e5 as a number, YAML as a string)."""
    return [yaml.safe_load(text), parse_config([f"key={text}"])["key"]]


def as_written(value, written, key):
    """``value`` with every name YAML or --config turned into something else (2021_05_03 ->
    20210503, 001 -> 1, 2021-05-03 -> a date) as the user wrote it (``written``); a value
    written nowhere (a Snakemake API caller's number) fails."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(written, dict):
        return {k: as_written(v, written.get(k), f"{key}.{k}") for k, v in value.items()}
    if isinstance(value, list) and isinstance(written, list) and len(written) == len(value):
        return [as_written(v, w, f"{key}[{i}]") for i, (v, w) in enumerate(zip(value, written))]
    if isinstance(written, str) and value in reads_as(written):  # the token as written
        return written
    fail(
        f"{key}: {value!r} is a {type(value).__name__}, not a name, and no config file or "
        'option writes it; write the name in a config file, in quotes ("...")'
    )


def _at(tree, path):
    """The block holding key ``path`` (dotted) in a nested config, and the key; None where a
    block on the way is missing."""
    *parents, last = path.split(".")
    for part in parents:
        tree = tree.get(part) if isinstance(tree, dict) else None
    return (tree if isinstance(tree, dict) else None), last


def keep_names_as_written():
    """Names in the config (settings.NAME_KEYS) stay the strings the user wrote, as the plate
    sheet's and platemaps' do, so `holdout_batches: [2021_05_03]` names batch 2021_05_03."""
    written = None
    for key in settings.NAME_KEYS:
        block, last = _at(config, key)
        if block is None or block.get(last) is None:
            continue
        written = written if written is not None else written_config()
        raw, _ = _at(written, key)
        block[last] = as_written(block[last], (raw or {}).get(last), key)


def validate_config():
    try:
        validate(config, schema="../schemas/config.schema.yaml")
    except WorkflowError as error:
        fail(schema_message(error))


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


check_config_loaded()
replace_channels()
keep_names_as_written()
validate_config()
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
    """The plate sheet (debatch.ingest.sheets: names as written, stray spaces stripped), its
    columns and plate and batch names checked."""
    if not os.path.exists(path):
        fail(f"plate sheet not found: {path} (key 'plates')")
    try:
        sheet = read_sheet(path)
        for column in settings.PLATE_SHEET_GROUPS:
            if column in sheet:
                check_distinct(sheet[column], f"plate sheet {path} column {column}")
    except ValueError as error:
        fail(str(error))
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
        row = re.search(r"row (\d+)", str(error))
        line = f" line {int(row.group(1)) + 2}" if row else ""  # the header is line 1
        fail(f"plate sheet {path}{line}: {schema_message(error)}")
    duplicated = sorted(sheet.loc[sheet["plate"].duplicated(), "plate"].unique())
    if duplicated:
        fail(f"plate sheet {path} lists plate(s) {duplicated} more than once")
    for column in ("images", "platemap"):
        sheet[column] = sheet[column].map(os.path.normpath)
    return sheet


def check_real_plate(row, platemaps):
    """A plate the demo does not generate: its folder, CSV manifest and platemap exist and parse.
    read_platemap checks what platemap.schema.yaml says, column-wise: a row-by-row schema check
    cost 50 ms per platemap, most of a 2,000-plate dry run. Each platemap file is read once
    (``platemaps``: path -> its treatments)."""
    if not os.path.isdir(row.images):
        fail(f"plate {row.plate}: image folder not found: {row.images}")
    if row.pattern.endswith(".csv") and not os.path.exists(row.pattern):
        fail(f"plate {row.plate}: CSV manifest not found: {row.pattern}")
    if row.platemap in platemaps:
        return
    try:
        platemaps[row.platemap] = set(read_platemap(row.platemap)["treatment"])
    except ManifestError as error:
        fail(f"plate {row.plate}: {error}")


def check_treatments_across(platemaps):
    """A treatment spelt two ways in two platemaps (DMSO, dmso) would be two treatments."""
    clashes = name_clashes(set().union(*platemaps.values()))
    if clashes:
        where = [
            f"{name!r} ({next(p for p, names in platemaps.items() if name in names)})"
            for name in clashes[0]
        ]
        fail(
            f"treatments {' / '.join(where)} differ only by case or whitespace; write each one way"
        )


def check_image_sources(sheet):
    """Two plates reading one set of images (one folder, links to one plate's files, or CSV
    manifests listing one file first) would be analysed as two plates, the copy counted in
    another batch's every metric."""
    seen = {}
    for row in sheet[~sheet["is_demo"]].itertuples():
        try:
            source = image_source(row.images, row.pattern, config.get("patterns"))
        except ValueError as error:
            fail(f"plate {row.plate}: CSV manifest {error}")
        if source in seen:
            where = (
                f"their CSV manifests both list {source[0]} first, after symlinks"
                if source[1] == "csv"
                else f"{source[0]} after symlinks, pattern {source[1]}"
            )
            fail(
                f"plates {seen[source]} and {row.plate} read the same images ({where}); give "
                "each plate its own images"
            )
        seen[source] = row.plate


def load_plates(path):
    sheet = read_plate_sheet(path)
    sheet["is_demo"] = [
        config["demo"]["enabled"]
        and row.images == demo_plate_paths(row.plate)["images"]
        and row.platemap == demo_plate_paths(row.plate)["platemap"]
        for row in sheet.itertuples()
    ]
    platemaps = {}
    for row in sheet[~sheet["is_demo"]].itertuples():
        check_real_plate(row, platemaps)
    check_treatments_across(platemaps)
    check_image_sources(sheet)
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
    """The profiles keys that shape the plate-normalised wells (shared by every correction):
    all of feature selection for CellProfiler features, only its guards (drop_outliers and
    its cutoff) for embeddings, so tuning the rest never reruns a CNN's."""
    profiles = settings.PROFILES.merge(config["profiles"])
    params = {
        key: profiles[key] for key in ("aggregate", "aggregate_columns", "normalise", "mad_epsilon")
    }
    selection = profiles["feature_select"]
    if wildcards.source != settings.CELLPROFILER:
        guards = [o for o in selection["operations"] if o in settings.GUARDS]
        selection = {"operations": guards, "outlier_cutoff": selection["outlier_cutoff"]}
    return {**params, "feature_select": selection}


def correction_params(wildcards):
    """Only this correction's keys (+ consensus), so tuning Harmony never reruns sphering."""
    return {
        key: value
        for key, value in config["profiles"].items()
        if key == "consensus" or key.startswith(f"{wildcards.correction}_")
    }
