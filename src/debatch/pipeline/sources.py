"""The sources a run profiles besides its own training: frozen models trained in another run
(``embed.models``, ``embed.models_from``) and a finished run's well profiles that join this
run's (``profiles.reference``). Everything is checked at start-up from files alone (each model's
card, model.json, is JSON), so a model of other channels, unit (cells or whole sites) or crop
size is refused before a job runs, with one line naming both values.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

from debatch import settings
from debatch.pipeline.checks import ConfigError

REFERENCE_WELLS = "profiles/{source}/wells_normalised.parquet"  # in a finished run's results


def frozen_models(embed: dict) -> dict[str, str]:
    """Source name -> model.pt of every frozen model: ``embed.models`` as written, then every
    ``models/{method}/seed{k}/model.pt`` of the finished run ``embed.models_from`` under its
    name there, ``{method}_seed{k}``, so its profiles line up with that run's."""
    models = dict(embed.get("models") or {})
    folder = embed.get("models_from")
    if folder:
        found = sorted(Path(folder, "models").glob("*/seed*/model.pt"))
        if not found:
            raise ConfigError(
                f"embed.models_from: {folder} holds no models/{{method}}/seed{{k}}/model.pt "
                "(name a finished run's results folder)"
            )
        for path in found:
            seed = path.parent.name.removeprefix("seed")
            source = settings.source_name(path.parent.parent.name, int(seed))
            if source in models:
                raise ConfigError(
                    f"embed.models: {source!r} is also a model of embed.models_from {folder}"
                )
            models[source] = str(path)
    for source, path in models.items():
        if not Path(path).is_file():
            raise ConfigError(f"embed.models: {source}: {path} is not a file (a model.pt)")
    return models


def model_card(model: str) -> dict | None:
    """The card beside a model.pt (None for a model saved before cards existed)."""
    path = Path(model).with_name(settings.MODEL_CARD)
    return json.loads(path.read_text()) if path.is_file() else None


def check_frozen(frozen: dict[str, str], trained: list[str], channels: list[str], crops: dict):
    """Each frozen model's name is a free folder name, and its card matches this run's
    channels (names and order), unit (crops.unit: cells or whole sites) and crop size."""
    for source, model in frozen.items():
        if not settings.SOURCE_NAME.fullmatch(source) or source == settings.CELLPROFILER:
            raise ConfigError(
                f"embed.models: {source!r} cannot name a source (letters, digits, . _ -; not "
                f"{settings.CELLPROFILER!r})"
            )
        method = settings.parse_source(source)[0]
        if method in {settings.parse_source(s)[0] for s in trained}:
            raise ConfigError(
                f"embed.models: {source!r} would be ranked as a seed of this run's "
                f"{method!r} models (train.methods): rename the frozen model"
            )
        card = model_card(model)
        if card is None:
            continue
        if card["channels"] is not None and card["channels"] != list(channels):
            raise ConfigError(
                f"embed.models: {source} ({model}) was trained on channels {card['channels']}, "
                f"this run's channels are {list(channels)}"
            )
        unit = settings.CROPS.merge(crops)["unit"]
        if card.get("unit", "cell") != unit:
            raise ConfigError(
                f"embed.models: {source} ({model}) was trained on {card.get('unit', 'cell')}s, "
                f"this run's crops.unit is {unit}"
            )
        key, size = settings.crop_side(crops)
        if card["crop_shape"][-1] != size:
            raise ConfigError(
                f"embed.models: {source} ({model}) was trained on {card['crop_shape'][-1]} px "
                f"crops, this run's {key} is {size}"
            )


def check_distinct(names: dict[str, list[str]]) -> None:
    """Sources named in two places (``names``: where -> names) would share every output path."""
    seen = {}
    for where, listed in names.items():
        for name in listed:
            if name in seen:
                raise ConfigError(f"{where}: {name!r} is also a source of {seen[name]}")
            seen[name] = where


def reference_wells(reference: str | None, sources: list[str]) -> dict[str, str]:
    """Source -> the finished run ``reference``'s well profiles of that source, for every
    source of this run it has (a source it lacks is profiled from this run's plates alone)."""
    if not reference:
        return {}
    if not Path(reference, "profiles").is_dir():
        raise ConfigError(
            f"profiles.reference: {reference} has no profiles/ folder (name a finished run's "
            "results folder)"
        )
    wells = {s: str(Path(reference, REFERENCE_WELLS.format(source=s))) for s in sources}
    found = {s: path for s, path in wells.items() if Path(path).is_file()}
    if not found:
        raise ConfigError(
            f"profiles.reference: {reference} has well profiles of none of this run's sources "
            f"{sources}"
        )
    return found


def reference_batches(wells: dict[str, str]) -> list[str]:
    """Every batch of the reference's well profiles (they count as batches of this run)."""
    batches = set()
    for path in wells.values():
        table = pq.read_table(path, columns=[settings.BATCH])
        batches |= set(table.column(0).unique().to_pylist())
    return sorted(map(str, batches))
