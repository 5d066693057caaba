"""Start-up checks of the config: each fails with one ConfigError naming the key, so a typo
never surfaces an hour into a run."""

from __future__ import annotations

import glob
import os

from jsonschema.exceptions import ValidationError

from debatch import settings
from debatch.ingest.external import TABLE_FORMATS


class ConfigError(ValueError):
    """A config or plate sheet that cannot run; the message names the key, file or plate."""


def schema_message(error: Exception) -> str:
    """A schema failure in one line (the key path, jsonschema's sentence) instead of the
    schema dump Snakemake prints."""
    cause = error.__context__
    if not isinstance(cause, ValidationError):
        return " ".join(str(error).split())
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in cause.absolute_path)
    return f"{where.lstrip('.') or 'top level'}: {cause.message}"


def _as_written(value, written, key: str, reads_as):
    """``value`` with every name YAML or --config turned into something else (2021_05_03 ->
    20210503, 001 -> 1, 2021-05-03 -> a date) as the user wrote it (``written``); a value
    written nowhere (a Snakemake API caller's number) fails. ``reads_as(text)``: the values
    ``text`` becomes in a YAML file and on the command line."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(written, dict):
        return {k: _as_written(v, written.get(k), f"{key}.{k}", reads_as) for k, v in value.items()}
    if isinstance(value, list) and isinstance(written, list) and len(written) == len(value):
        return [
            _as_written(v, w, f"{key}[{i}]", reads_as)
            for i, (v, w) in enumerate(zip(value, written))
        ]
    if isinstance(written, str) and value in reads_as(written):  # the token as written
        return written
    raise ConfigError(
        f"{key}: {value!r} is a {type(value).__name__}, not a name, and no config file or "
        'option writes it; write the name in a config file, in quotes ("...")'
    )


def _at(tree, path: str):
    """The block holding key ``path`` (dotted) in a nested config, and the key; None where a
    block on the way is missing."""
    *parents, last = path.split(".")
    for part in parents:
        tree = tree.get(part) if isinstance(tree, dict) else None
    return (tree if isinstance(tree, dict) else None), last


def keep_names_as_written(config: dict, written_config, reads_as) -> None:
    """Names in the config (settings.NAME_KEYS) stay the strings the user wrote, as the plate
    sheet's and platemaps' do, so `holdout_batches: [2021_05_03]` names batch 2021_05_03.
    ``written_config()``: the config with every value as written (read only when needed)."""
    written = None
    for key in settings.NAME_KEYS:
        block, last = _at(config, key)
        if block is None or block.get(last) is None:
            continue
        written = written if written is not None else written_config()
        raw, _ = _at(written, key)
        block[last] = _as_written(block[last], (raw or {}).get(last), key, reads_as)


def check_channels(channels: dict) -> None:
    """Each logical channel has its own raw id (two names for one file would be one image)."""
    by_id = {}
    for name, raw in channels.items():
        by_id.setdefault(str(raw), []).append(name)
    shared = {raw: names for raw, names in by_id.items() if len(names) > 1}
    if shared:
        raw, names = next(iter(shared.items()))
        raise ConfigError(
            f"channels: {names} all map to raw channel id {raw!r}; give each its own id"
        )


def check_blocks(config: dict) -> None:
    """Each stage's block against its settings (debatch.settings: the one source of truth)."""
    blocks = {
        settings.ILLUM: config["illum"],
        settings.SEGMENT: config["segment"],
        settings.QC: config["qc"],
        settings.CROPS: config["crops"],
        settings.FEATURES: config.get("features", {}),
        settings.TRAIN: {
            k: v for k, v in config["train"].items() if k not in settings.TRAIN_FAN_OUT
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
            raise ConfigError(f"{block.name}: {error}") from None
    check_tile(config["train"].get("tile"), config["crops"])


def check_tile(tile: int | None, crops: dict) -> None:
    """A training tile (train.tile) fits inside the stored crops it is cut from."""
    key, side = settings.crop_side(crops)
    if tile is not None and tile > side:
        raise ConfigError(f"train.tile {tile} px is larger than the stored crops ({key} {side})")


def channels_of(config: dict) -> settings.Channels:
    try:
        return settings.Channels(
            tuple(config["channels"]), config["nuclei_channel"], config["cell_channel"]
        )
    except ValueError as error:
        raise ConfigError(str(error)) from None


def check_writable(folder: str) -> None:
    """Fail at start-up, not hours later, when outputs cannot be written: the nearest existing
    folder above the results folder must be a writable directory (no file is created here)."""
    existing = os.path.abspath(folder)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise ConfigError(
            f"results folder {folder} is not writable: {existing} is not a directory "
            f"(key 'results')"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(
            f"results folder {folder} is not writable: no write permission on {existing} "
            f"(key 'results')"
        )


def check_methods(train: dict, batches: list[str], reference_batches=()) -> None:
    """train.methods names presets or recipes of train.recipes (each recipe's block checked);
    train.holdout_batches names batches of the run (the plate sheet's, and those of
    profiles.reference) and, when this run trains, leaves one to train on."""
    recipes = train.get("recipes", {})
    for method in train["methods"]:
        if method in settings.TRAIN_METHODS:
            continue
        if settings.parse_source(method)[1] is not None or method == settings.CELLPROFILER:
            raise ConfigError(
                f"train.methods: a recipe cannot be named {method!r}: that is how a trained "
                f"source ({{method}}_seed{{k}}) or {settings.CELLPROFILER!r} is named"
            )
        if method not in recipes:
            raise ConfigError(
                f"train.methods: {method!r} is neither a preset {list(settings.TRAIN_METHODS)} "
                f"nor a recipe of train.recipes ({sorted(recipes)})"
            )
        try:
            settings.recipe_block(method).merge(recipes[method])
        except ValueError as error:
            raise ConfigError(f"train.recipes: {error}") from None
    holdout = set(train.get("holdout_batches", []))
    known = sorted(set(batches) | set(reference_batches))
    if sorted(holdout - set(known)):
        raise ConfigError(
            f"train.holdout_batches {sorted(holdout - set(known))} are not batches of the "
            f"plate sheet or profiles.reference ({known})"
        )
    if train["methods"] and holdout and holdout >= set(batches):
        raise ConfigError(
            f"train.holdout_batches {sorted(holdout)} hold out every batch of the plate sheet: "
            f"nothing is left to train on"
        )
    check_validation(train, batches)


def check_validation(train: dict, batches: list[str]) -> None:
    """train.validation_batches (the WILDS protocol) are batches of the plate sheet, none held
    out, and leave a batch to train on."""
    validation = set(train.get("validation_batches", []))
    if not validation:
        return
    holdout = set(train.get("holdout_batches", []))
    if sorted(validation - set(batches)):
        raise ConfigError(
            f"train.validation_batches {sorted(validation - set(batches))} are not batches of "
            f"the plate sheet ({sorted(batches)})"
        )
    if validation & holdout:
        raise ConfigError(
            f"train.validation_batches {sorted(validation & holdout)} are also "
            "train.holdout_batches: a batch that selects the model cannot test it"
        )
    if train["methods"] and validation | holdout >= set(batches):
        raise ConfigError(
            f"train.validation_batches {sorted(validation)} and train.holdout_batches "
            f"{sorted(holdout)} leave no batch of the plate sheet to train on"
        )


def check_rotation(train: dict, batches: list[str]) -> None:
    """train.rotate_holdout holds out every batch of the plate sheet in turn: it leaves
    train.holdout_batches empty, needs two batches, and each batch names a model's folder
    (models/{method}-{batch}/)."""
    if not train.get("rotate_holdout"):
        return
    if train.get("validation_batches") or train.get("splits") == "sheet":
        raise ConfigError(
            "train.rotate_holdout holds out every batch in turn and cannot be combined with "
            "the WILDS protocol's validation batches: set train.validation_batches to [] and "
            "train.splits to config"
        )
    if train.get("holdout_batches"):
        raise ConfigError(
            f"train.rotate_holdout holds out every batch in turn: train.holdout_batches must "
            f"then be [], not {train['holdout_batches']}"
        )
    if len(batches) < 2:
        raise ConfigError(
            f"train.rotate_holdout needs two batches on the plate sheet to train on one while "
            f"another is held out; it has {batches}"
        )
    for batch in batches:
        if not settings.SOURCE_NAME.fullmatch(batch):
            raise ConfigError(
                f"train.rotate_holdout: batch {batch!r} cannot name a model's folder "
                f"(models/{{method}}-{{batch}}/): use letters, digits, '.', '_' and '-'"
            )


def check_features(features: dict, segment: dict) -> None:
    """CellProfiler features are measured on the label images segment keeps."""
    if features["enabled"] and not segment.get("save_masks", True):
        raise ConfigError(
            "features.enabled needs the label images: set segment.save_masks to true "
            "(or features.enabled to false)"
        )


def _check_source_name(name: str, methods: list[str]) -> None:
    """A name that is a folder of its own and no other source's (nor a method's: the ranking
    groups a method's seeds by name)."""
    if not isinstance(name, str) or not settings.SOURCE_NAME.fullmatch(name):
        raise ConfigError(
            f"external: {name!r} cannot name a source: use letters, digits, '.', '_' and '-' "
            f"(it is a folder, profiles/{{source}}/)"
        )
    if name == settings.CELLPROFILER or settings.parse_source(name)[1] is not None:
        raise ConfigError(
            f"external: a source cannot be named {name!r}: that is how a trained source "
            f"({{method}}_seed{{k}}) or {settings.CELLPROFILER!r} is named"
        )
    if name in methods:
        raise ConfigError(
            f"external: {name!r} is a method of train.methods; give the external source "
            "another name"
        )


def _table_files(name: str, path) -> list[str]:
    """The files of ``external.{name}.path``: each entry a file or a glob matching some."""
    files = []
    for pattern in path if isinstance(path, list) else [path]:
        found = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        if not found or not all(os.path.isfile(f) for f in found):
            raise ConfigError(f"external.{name}.path: no such file: {pattern}")
        unknown = [f for f in found if os.path.splitext(f)[1].lower() not in TABLE_FORMATS]
        if unknown:
            raise ConfigError(
                f"external.{name}.path: {unknown[0]} is not a table "
                f"(Parquet or CSV: {sorted(TABLE_FORMATS)})"
            )
        files += found
    return files


def check_external(external: dict, methods: list[str]) -> dict[str, list[str]]:
    """Each external source (config `external:`): its name, its block and its table's files,
    found now rather than at the job reading them; returns source -> its files."""
    sources = {}
    for name, block in (external or {}).items():
        _check_source_name(name, methods)
        try:
            block = settings.external_block(name).merge(block)
        except ValueError as error:
            raise ConfigError(str(error)) from None
        sources[name] = _table_files(name, block["path"])
    return sources
