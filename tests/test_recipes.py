"""Training recipes: the presets are exactly the methods they always were, a recipe combines
its parts, and every part is checked by name."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from debatch.cnn import methods
from debatch.cnn.data import jitter_stats, to_input
from debatch.cnn.models import CellResNet
from debatch.settings import METHOD_BLOCKS, TRAIN, TRAIN_METHODS, preset_recipe, recipe_block

# Each preset's step loss on a fixed batch, computed with the code before recipes existed
# (commit 86dbb73, methods.model_arch(method, block) / methods.step_loss(method, block, 2)):
# a preset must stay exactly the method it was.
PINNED_LOSS = {
    "erm": 1.407565712928772,
    "dsu": 1.4012407064437866,
    "mixstyle": 1.4285506010055542,
    "abra": 21.327035903930664,
    "deepnoise": 10.2578125,
}


def fixed_batch():
    rng = np.random.default_rng(0)
    crops = rng.random((32, 3, 16, 16)).astype(np.float16)
    return crops, torch.from_numpy(rng.integers(0, 4, 32)), torch.from_numpy(rng.integers(0, 2, 32))


def step_loss_of(recipe: dict) -> float:
    crops, target, groups = fixed_batch()
    torch.manual_seed(0)
    arch = methods.model_arch(
        recipe, in_channels=3, n_classes=4, width=8, depth=1, stages=3, embedding_dim=16
    )
    model = CellResNet(**arch).train()
    mean, std = torch.full((1, 3, 1, 1), 0.5), torch.full((1, 3, 1, 1), 0.29)
    if methods.plate_scaling(recipe):
        mean, std = jitter_stats(
            mean.expand(32, -1, -1, -1),
            std.expand(32, -1, -1, -1),
            recipe["jitter"],
            np.random.default_rng(1),
        )
    x = to_input(crops, mean, std, torch.device("cpu"))
    torch.manual_seed(1)
    loss, _, _ = methods.step_loss(recipe, 2)(model, x, target, groups)
    return float(loss)


@pytest.mark.parametrize("method", TRAIN_METHODS)
def test_presets_are_exactly_todays_methods(method):
    torch.set_num_threads(1)
    recipe = preset_recipe(method, METHOD_BLOCKS[method].merge({}))
    assert step_loss_of(recipe) == pytest.approx(PINNED_LOSS[method], rel=1e-6)


def test_a_user_recipe_combines_parts():
    train = TRAIN.merge(
        {
            "method": "abra_plate",
            "recipe": {
                "scaling": "plate",
                "jitter": 0.1,
                "augment": "abra",
                "head": "arcface",
                "abra": {"spread": "between"},
            },
        }
    )
    recipe = train["recipe"]
    assert recipe["scaling"] == "plate" and recipe["augment"] == "abra"
    assert recipe["abra"]["spread"] == "between" and recipe["abra"]["bound"] == 2.0
    assert isinstance(methods.step_loss(recipe, 2), methods.ABRA)
    assert methods.model_arch(recipe, in_channels=3, n_classes=2)["head"] == "arcface"
    # the same parts as the abra preset except the input scaling: its loss differs
    assert step_loss_of(recipe) != pytest.approx(PINNED_LOSS["abra"])


@pytest.mark.parametrize(
    "block, match",
    [
        ({"augment": "cutmix"}, r"train.recipes.mine.augment must be one of"),
        ({"scaling": "batch"}, r"train.recipes.mine.scaling must be one of"),
        ({"abra": {"spread": "across"}}, r"train.recipes.mine.abra.spread must be one of"),
        ({"mean_teacher": {"cells": "held-out"}}, r"train.recipes.mine.mean_teacher.cells"),
        ({"teacher": "on"}, r"train.recipes.mine.teacher must be of type bool"),
    ],
)
def test_recipe_parts_are_checked_by_name(block, match):
    with pytest.raises(ValueError, match=match):
        recipe_block("mine").merge(block)


def test_a_method_that_is_no_preset_needs_a_recipe():
    with pytest.raises(ValueError, match="'adabn' is neither a preset"):
        TRAIN.merge({"method": "adabn"})
