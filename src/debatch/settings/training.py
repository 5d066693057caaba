"""Training: a method is a recipe of orthogonal parts, input scaling x feature-statistic
augmentation x head x mean teacher (docs/methods.md). The five named methods are presets: their
blocks keep the keys they always had, and ``preset_recipe`` turns a block into the recipe it
stands for. ``train.recipes`` holds user-named recipes; ``train.methods`` lists presets and
recipes alike. The embed stage's block sits here too."""

from __future__ import annotations

from .block import Block, Check, above, at_least, between, one_of
from .names import DEVICES, GROUPINGS, HEADS, SPLIT_SOURCES, TRAIN_METHODS

SCALINGS = ("global", "plate")
AUGMENTS = ("none", "dsu", "mixstyle", "abra")
SPREADS = ("within", "between")
TEACHER_CELLS = ("training", "all")

_MARGIN_HEAD = {
    "head_s": 30.0,
    "head_m": 0.1,
}
_HEAD = one_of(HEADS, "head")


def _levels(*keys: str) -> Check:
    def check(merged: dict, name: str) -> None:
        for key in keys:
            levels = merged[key]
            if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in levels):
                raise ValueError(
                    f"{name}.{key} must be a list of feature levels >= 0, not {levels!r}"
                )

    return check


def _dsu(name: str) -> Block:
    return Block(
        name,
        {
            "levels": [
                0,
                1,
                2,
                3,
            ],
            "p": 0.5,
        },
        checks=[between(0, 1, "p"), _levels("levels")],
    )


def _mixstyle(name: str) -> Block:
    return Block(
        name,
        {
            "levels": [1, 2],
            "p": 0.5,
            "alpha": 0.1,
        },
        checks=[between(0, 1, "p"), above(0, "alpha"), _levels("levels")],
    )


_ABRA = {
    "level": 1,
    "group_by": "plate",
    "spread": "within",
    "steps": 1,
    "bound": 2.0,
    "step_size": 1.0,
    "adv_fraction": 0.5,
    "adv_weight": 1.0,
    "align_weight": 1.0,
}
_ABRA_CHECKS = [
    one_of(GROUPINGS, "group_by"),
    one_of(SPREADS, "spread"),
    between(0, 1, "adv_fraction"),
    at_least(-1, "level"),
    at_least(0, "steps", "bound", "step_size"),
]


def _teacher(name: str) -> Block:
    return Block(
        name,
        {
            "decay": 0.99,
            "weight": 1.0,
            "ramp_epochs": 2,
            "cells": "training",
        },
        checks=[
            between(0, 1, "decay"),
            at_least(0, "weight", "ramp_epochs"),
            one_of(TEACHER_CELLS, "cells"),
        ],
    )


METHOD_BLOCKS = {
    "erm": Block(
        "train.erm",
        {
            "head": "linear",
            **_MARGIN_HEAD,
        },
        checks=[_HEAD],
    ),
    "dsu": _dsu("train.dsu"),
    "mixstyle": _mixstyle("train.mixstyle"),
    "abra": Block(
        "train.abra",
        {
            **_ABRA,
            "head": "arcface",
            **_MARGIN_HEAD,
        },
        checks=[*_ABRA_CHECKS, _HEAD],
    ),
    "deepnoise": Block(
        "train.deepnoise",
        {
            "jitter": 0.1,
            **_MARGIN_HEAD,
        },
        checks=[between(0, 1, "jitter", open_high=True)],
    ),
}
assert tuple(METHOD_BLOCKS) == TRAIN_METHODS


def recipe_block(name: str) -> Block:
    """The block of a user-named recipe ``train.recipes.{name}``."""
    return Block(
        f"train.recipes.{name}",
        {
            "scaling": "global",
            "jitter": 0.0,
            "augment": "none",
            "dsu": _dsu(f"train.recipes.{name}.dsu"),
            "mixstyle": _mixstyle(f"train.recipes.{name}.mixstyle"),
            "abra": Block(f"train.recipes.{name}.abra", dict(_ABRA), checks=_ABRA_CHECKS),
            "head": "linear",
            **_MARGIN_HEAD,
            "teacher": False,
            "mean_teacher": _teacher(f"train.recipes.{name}.mean_teacher"),
        },
        checks=[
            one_of(SCALINGS, "scaling"),
            one_of(AUGMENTS, "augment"),
            _HEAD,
            between(0, 1, "jitter", open_high=True),
        ],
    )


def preset_recipe(method: str, block: dict) -> dict:
    """The recipe a preset's block stands for (exactly what the preset always did)."""
    recipe = recipe_block(method).merge(None)
    if method == "erm":
        recipe.update(head=block["head"], head_s=block["head_s"], head_m=block["head_m"])
    elif method in ("dsu", "mixstyle"):
        recipe.update(augment=method, **{method: dict(block)})
    elif method == "abra":
        head = {key: block[key] for key in ("head", "head_s", "head_m")}
        recipe.update(augment="abra", abra={k: block[k] for k in _ABRA}, **head)
    elif method == "deepnoise":
        recipe.update(
            scaling="plate",
            jitter=block["jitter"],
            head="arcface",
            head_s=block["head_s"],
            head_m=block["head_m"],
        )
    else:
        raise ValueError(f"{method!r} is not a preset method; presets: {list(TRAIN_METHODS)}")
    return recipe


def _holdout_batches_sorted(train: dict, name: str) -> None:
    for key in ("holdout_batches", "validation_batches"):
        if isinstance(train[key], str):
            raise ValueError(f"{name}.{key} must be a list of Metadata_Batch values, not a string")
        train[key] = sorted(str(batch) for batch in train[key])
    both = sorted(set(train["holdout_batches"]) & set(train["validation_batches"]))
    if both:
        raise ValueError(
            f"{name}.validation_batches {both} are also holdout_batches: a batch that selects "
            "the model cannot test it"
        )


def _id_sites_checked(train: dict, name: str) -> None:
    sites = train["id_sites"]
    if not isinstance(sites, list) or not all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in sites
    ):
        raise ValueError(
            f"{name}.id_sites must be a list of site numbers (Metadata_Site), not {sites!r}"
        )
    train["id_sites"] = sorted(set(sites))


def _recipe_resolved(train: dict, name: str) -> None:
    """``train["recipe"]``: the recipe the run trains (a preset's, or the given user recipe)."""
    if train["method"] in TRAIN_METHODS:
        train["recipe"] = preset_recipe(train["method"], train[train["method"]])
    elif train["recipe"] is None:
        raise ValueError(
            f"{name}.method {train['method']!r} is neither a preset "
            f"{list(TRAIN_METHODS)} nor given a recipe (train.recipes)"
        )
    else:
        train["recipe"] = recipe_block(train["method"]).merge(train["recipe"])


# train keys that fan jobs out (one per method, seed and, rotating, held-out batch) and never
# reach a job: each train job gets its own slice instead (debatch.pipeline.params.train_params)
TRAIN_FAN_OUT = ("methods", "seeds", "recipes", "rotate_holdout")
# train keys resolved at start-up that never reach a job: `splits: sheet` becomes the lists
# holdout_batches and validation_batches (debatch.pipeline.plates.sheet_splits)
TRAIN_START_UP = ("splits",)
# the WILDS protocol's keys (docs/metrics.md): left out of a job's params and of a run's
# settings while empty, so runs made before they existed keep their params and checkpoints
TRAIN_WILDS = ("validation_batches", "id_sites")

# config/config.yaml comments every key but those the workflow sets for each job: method (each
# of train.methods), recipe (its block of train.recipes; a preset's is derived from its block),
# seed (each of train.seeds) and num_threads (threads.train).
TRAIN = Block(
    "train",
    {
        "method": "erm",
        "recipe": None,
        "epochs": 30,
        "batch_size": 256,
        "lr": 1e-3,
        "lr_schedule_epochs": 30,
        "weight_decay": 0.01,
        "seed": 0,
        "width": 32,
        "depth": 2,
        "stages": 3,
        "embedding_dim": 128,
        "holdout_batches": [],
        "validation_batches": [],
        "id_sites": [],
        "splits": "config",
        "max_holdout_cells": 20000,
        "augment": True,
        "tile": None,
        "max_cells_per_epoch": None,
        "normalise": True,
        "num_threads": 1,
        "device": "auto",
        "amp": True,
        **METHOD_BLOCKS,
    },
    nullable=("max_holdout_cells", "tile"),
    checks=[
        one_of(DEVICES, "device"),
        at_least(8, "tile"),
        one_of(SPLIT_SOURCES, "splits"),
        at_least(
            1,
            "epochs",
            "lr_schedule_epochs",
            "batch_size",
            "num_threads",
            "width",
            "depth",
            "stages",
            "embedding_dim",
            "max_holdout_cells",
        ),
        at_least(2, "max_cells_per_epoch"),
        _holdout_batches_sorted,
        _id_sites_checked,
        _recipe_resolved,
    ],
)

EMBED = Block(
    "embed",
    {
        "batch_size": 512,
        "device": "auto",
        "models": {},
        "models_from": None,
    },
    checks=[at_least(1, "batch_size"), one_of(DEVICES, "device")],
)
# the embed keys that say which models embed, not how: changing them never reruns an embed job
FROZEN_KEYS = ("models", "models_from")
