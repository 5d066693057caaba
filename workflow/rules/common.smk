"""Load and check config + plate sheet before anything runs; paths, input functions, params.

Every check here fails at start-up with one line naming the key, file or plate, so a typo
never surfaces an hour into a run. The checks and params are debatch.pipeline (plain Python,
unit-tested in tests/test_pipeline.py); this file binds them to the loaded config and to
Snakemake. Only debatch.settings, debatch.pipeline and the sheet and platemap readers are
imported: parsing the workflow (a dry run, --lint, each cluster job's re-parse) never imports
torch.
"""

import os
import re
import tempfile

import yaml
from snakemake.cli import parse_config
from snakemake.common import parse_key_value_arg
from snakemake.utils import update_config, validate

from debatch import settings
from debatch.pipeline import ConfigError, checks, plates, sources
from debatch.pipeline import params as rule_params

ENV = "../envs/debatch.yaml"  # every rule's software (--sdm conda)
# The checkout (or module source) holding this workflow, two folders above this file: not the
# main Snakefile's, which is the user's own when debatch is used as a module.
REPO = os.path.dirname(os.path.dirname(workflow.current_basedir.get_path_or_uri(secret_free=True)))
DEFAULT_CONFIG = "config/config.yaml"  # the Snakefile's configfile, relative to the workdir
# libyaml's loaders where PyYAML has them (its wheels do): the same documents parsed in C, at
# every Snakemake start and each cluster job's re-parse
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
BASE_LOADER = getattr(yaml, "CBaseLoader", yaml.BaseLoader)


def fail(message):
    raise WorkflowError(f"debatch config: {message}")


def checked(check, *args):
    """``check(*args)``, a ConfigError turned into Snakemake's one-line start-up failure."""
    try:
        return check(*args)
    except ConfigError as error:
        fail(str(error))


def check_config_loaded():
    """-d DIR or -s from another folder with --configfile: Snakemake skips config/config.yaml
    when the working directory has none, silently; say what was loaded and how to add it."""
    with open(workflow.source_path("../schemas/config.schema.yaml")) as handle:
        required = yaml.load(handle, Loader=SAFE_LOADER)["required"]
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
            update_config(merged, yaml.load(handle, Loader=BASE_LOADER) or {})
    for argument in workflow.config_settings.config_args or []:
        key, text = parse_key_value_arg(argument, errmsg=f"--config {argument}")
        update_config(merged, {key: yaml.load(text, Loader=BASE_LOADER) if text else None})
    return merged


def reads_as(text):
    """What a value written as ``text`` becomes: in a YAML file, and on the command line
    (--config reads 1e5 as a number, YAML as a string)."""
    return [yaml.safe_load(text), parse_config([f"key={text}"])["key"]]


def validate_config():
    try:
        validate(config, schema="../schemas/config.schema.yaml")
    except WorkflowError as error:
        fail(checks.schema_message(error))


def replace_channels():
    """An overlay's `channels:` replaces the default's instead of being merged into it
    (Snakemake merges nested blocks: four renamed channels would keep the demo's five)."""
    for path in reversed([str(p) for p in workflow.overwrite_configfiles]):
        with open(path) as handle:
            overlay = yaml.load(handle, Loader=SAFE_LOADER) or {}
        if "channels" in overlay:
            config["channels"] = overlay["channels"]
            return


check_config_loaded()
replace_channels()
checked(checks.keep_names_as_written, config, written_config, reads_as)
validate_config()
checked(checks.check_channels, config["channels"])
checked(checks.check_blocks, config)
CHANNELS = checked(checks.channels_of, config)


RESULTS = config["results"].rstrip("/")


def res(path):
    """A path under the results folder: res("crops/{plate}.npy")."""
    return f"{RESULTS}/{path}"


checked(checks.check_writable, RESULTS)


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
    return plates.demo_plate_paths(DEMO_ROOT, plate)


def check_sheet_schema(sheet):
    """The plate sheet against plates.schema.yaml, a failure naming its line."""
    try:
        validate(sheet, schema="../schemas/plates.schema.yaml")
    except WorkflowError as error:
        row = re.search(r"row (\d+)", str(error))
        line = f" line {int(row.group(1)) + 2}" if row else ""  # the header is line 1
        raise ConfigError(
            f"plate sheet {config['plates']}{line}: {checks.schema_message(error)}"
        ) from None


PLATES = checked(plates.load_plates, config["plates"], config, check_sheet_schema)
PLATE_NAMES = PLATES["plate"].tolist()
BATCHES = sorted(PLATES["batch"].unique())


FEATURES = settings.FEATURES.merge(config.get("features", {}))
checked(checks.check_features, FEATURES, config["segment"])
METHODS = config["train"]["methods"]
checked(checks.check_rotation, config["train"], BATCHES)
# train.splits: sheet -> holdout_batches and validation_batches from the sheet's split column
config["train"] = checked(plates.sheet_splits, config["train"], PLATES, config["plates"])
# the WILDS protocol (docs/metrics.md): models selected on validation batches, or training
# batches' sites scored as in-distribution test; the report then adds its table (wilds.tsv)
WILDS = bool(METHODS) and any(config["train"].get(k) for k in settings.TRAIN_WILDS)
# the report's further output then (none otherwise, so an existing run's report stays done)
WILDS_TABLE = {"wilds": res("report/wilds.tsv")} if WILDS else {}
# A source of per-cell features: a model this run trains, {method}_seed{k}, one per method and
# seed ({method}-{batch}_seed{k}, one per held-out batch too, with train.rotate_holdout); a
# frozen model trained in another run (embed.models, embed.models_from), under its name; and
# CellProfiler's measurements (features stage), `cellprofiler`, when enabled.
MODELS = rule_params.trained_sources(config["train"], BATCHES)
FROZEN = checked(sources.frozen_models, config["embed"])
checked(sources.check_frozen, FROZEN, MODELS, list(config["channels"]), config["crops"])
EMBEDDED = MODELS + list(FROZEN)  # every source embedded by a model: embeddings/{source}/
# Tables made elsewhere (config `external:`), each a source named as its key: source -> files.
EXTERNAL = checked(checks.check_external, config.get("external", {}), METHODS)
checked(sources.check_distinct, {"embed.models": list(FROZEN), "external": list(EXTERNAL)})
SOURCES = EMBEDDED + ([settings.CELLPROFILER] if FEATURES["enabled"] else []) + list(EXTERNAL)
if not SOURCES:
    fail(
        "nothing to profile: train.methods, embed.models, embed.models_from and external are "
        "empty and features.enabled is false"
    )
# a finished run's well profiles that join this run's, per source (profiles.reference)
REFERENCE = checked(sources.reference_wells, config["profiles"].get("reference"), SOURCES)
checked(checks.check_methods, config["train"], BATCHES, sources.reference_batches(REFERENCE))
OUTPUTS = settings.OUTPUTS.merge(config.get("outputs", {}))
CORRECTIONS = settings.PROFILES.merge(config["profiles"])["corrections"]
# Ground truth exists only for plates the demo generates, or a screen generated before the run
# (demo.truth: debatch.demo.rxrx1's truth/); a real screen has none.
DEMO_TRUTH = [demo_plate_paths(p)["truth"] for p in PLATE_NAMES if PLATES.loc[p, "is_demo"]]
DEMO_TRUTH += [config["demo"]["truth"]] if config["demo"].get("truth") else []


# A plate is any name without "/" (plate_row checks it is on the sheet): an alternation of every
# plate name made matching each file against each rule's outputs a fifth of a 2,000-plate DAG.
wildcard_constraints:
    plate=r"[^/]+",
    method="|".join(re.escape(m) for m in METHODS),
    seed=r"\d+",
    fold="|".join(re.escape(b) for b in BATCHES),
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
    return rule_params.stage_params(config[section], drop)


def log_path(stage, name="{plate}"):
    return res(f"logs/{stage}/{name}.log")


def benchmark_path(stage, name="{plate}"):
    return res(f"benchmarks/{stage}/{name}.tsv")


# --- sharded stages (segment, features, crops) ---

SHARDS = list(range(config["segment"].get("shards", 1)))
# With one shard (the default) a stage's job writes the plate's files itself; with more, each
# shard's job writes temporary parts and a gather_{stage} job joins them: a plate's fixed cost is
# paid in job start-ups, and gathering one part would only copy it.
WHOLE_PLATES = len(SHARDS) == 1


def shard_part(path, shard="{shard}"):
    """A shard's part of a plate file under the results: cells/{plate}/shard{shard}.parquet."""
    stem, suffix = os.path.splitext(path)
    return res(f"{stem}/shard{shard}{suffix}")


def stage_output(path):
    """What a sharded stage's job writes for a plate file ("cells/{plate}.parquet")."""
    return res(path) if WHOLE_PLATES else temp(shard_part(path))


def shard_parts(path):
    """A gather job's inputs: every shard's part of a plate file."""
    return [shard_part(path, shard) for shard in SHARDS]


# a sharded stage's job: its log and benchmark file name (log_path, benchmark_path)
STAGE_JOB = "{plate}" if WHOLE_PLATES else "{plate}/shard{shard}"


# --- segment rules' parameters ---


def segment_settings():
    return rule_params.segment_settings(config["segment"])


def segment_gpu():
    return rule_params.segment_gpu(config["segment"])


# --- train rules' parameters ---


def train_params(wildcards):
    """A train job's params (train or train_fold: its held-out batch is the fold wildcard)."""
    return rule_params.train_params(
        config["train"], wildcards.method, int(wildcards.seed), getattr(wildcards, "fold", None)
    )


def model_path(source, name):
    """A file of a source's model folder: models/{method}/seed{k}/{name} for a model this run
    trains (models/{method}-{batch}/seed{k}/ rotating), the folder of its model.pt for a
    frozen one."""
    if source in FROZEN:
        return os.path.join(os.path.dirname(FROZEN[source]), name)
    method, seed = settings.parse_source(source)
    model = settings.source_name(method, None, settings.source_fold(source))
    return res(f"models/{model}/seed{seed}/{name}")


def model_files(name):
    """Source -> a file of its model folder (training_log.tsv, model.json) for every embedded
    source that has it: all this run trains; frozen ones whose folder holds it."""
    return {
        source: model_path(source, name)
        for source in EMBEDDED
        if source in MODELS or os.path.exists(model_path(source, name))
    }


TRAINING_LOGS = model_files("training_log.tsv")
MODEL_CARDS = model_files(settings.MODEL_CARD)


def plate_cells(source, plate):
    return rule_params.plate_cells(source, plate, RESULTS, EXTERNAL)


def source_cells(wildcards):
    """A source's per-cell tables, every plate's, and the reference run's wells of it."""
    cells = rule_params.source_cells(wildcards.source, PLATE_NAMES, RESULTS, EXTERNAL)
    if wildcards.source in REFERENCE:
        cells["reference"] = REFERENCE[wildcards.source]
    return cells


# --- profiles and diagnostics rules' parameters ---


def holdout_batches(wildcards):
    return rule_params.holdout_batches(config["train"], wildcards.source, BATCHES)


ROTATION_PARAMS = rule_params.rotation_params(config["train"])


VALIDATION_PARAMS = rule_params.validation_params(config["train"])


def aggregation_params(wildcards):
    return rule_params.aggregation_params(
        config["profiles"], wildcards.source, config.get("external")
    )


def feature_kind(wildcards):
    return rule_params.feature_kind(wildcards.source, config.get("external"))


# --- external sources' parameters ---


def external_params(wildcards):
    return rule_params.external_params(config["external"], wildcards.source)


# per-cell AnnData (outputs.anndata_cells) of every source whose tables hold cells: a model's
# embeddings are of whole sites with crops.unit site
CELL_SOURCES = rule_params.cell_sources(
    SOURCES, EMBEDDED, config.get("external", {}), config["crops"]
)


def correction_params(wildcards):
    return rule_params.correction_params(config["profiles"], wildcards.correction)
