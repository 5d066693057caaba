"""What a training recipe adds to the shared backbone and loop: its network and step loss.

A recipe (debatch.settings: a preset's block via ``preset_recipe``, or ``train.recipes.{name}``)
combines input scaling (``global`` | ``plate``, debatch.cnn.data), a feature-statistic
augmentation (``none``; ``dsu`` and ``mixstyle`` modules in the network, debatch.cnn.augment;
``abra``, the step loss ``ABRA`` below), a head (``linear`` | ``cosface`` | ``arcface``) and
the mean teacher (debatch.cnn.teacher). The presets: ``erm`` (global, none, linear), ``dsu``,
``mixstyle`` (global, their modules, linear), ``abra`` (global, abra, arcface), ``deepnoise``
(plate scaling with jitter, none, arcface). docs/methods.md says what each part does.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from debatch.cnn.augment import (
    adversarial_deltas,
    alignment_loss,
    group_statistics,
    perturb_statistics,
)

# the parts of a step loss the training log reports (NaN where a recipe has none)
LOSS_PARTS = ["loss_ce", "loss_adv", "loss_align", "loss_consistency"]


def model_arch(recipe: dict, **backbone) -> dict:
    """CellResNet arguments for a recipe (``backbone``: in_channels, n_classes, width, ...):
    its head, and DSU or MixStyle modules when it augments with them."""
    arch = {**backbone, "head": recipe["head"]}
    if arch["head"] != "linear":
        arch.update(head_s=recipe["head_s"], head_m=recipe["head_m"])
    augment = recipe["augment"]
    if augment in ("dsu", "mixstyle"):
        arch["feature_augment"] = {"kind": augment, **recipe[augment]}
    return arch


def plate_scaling(recipe: dict) -> bool:
    """Whether the recipe standardises inputs per plate (else with global training stats)."""
    return recipe["scaling"] == "plate"


def _cross_entropy(
    model: nn.Module, x: torch.Tensor, target: torch.Tensor, groups: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Step loss without ABRA: cross-entropy of the (margin) head.

    Returns (loss, logits without margin, loss parts); the logits keep their graph (the mean
    teacher's consistency trains through them; accuracy detaches them).
    """
    embedding = model.forward_features(x)
    loss = F.cross_entropy(model.head(embedding, target).float(), target)
    return loss, model.head(embedding), {"loss_ce": loss}


@contextlib.contextmanager
def frozen_batchnorm_stats(model: nn.Module):
    """BatchNorm still normalises with batch statistics but leaves its running stats alone
    (momentum 0), so the inner maximisation's extra passes do not leak into eval-mode BN."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, momentum in zip(norms, saved):
            m.momentum = momentum


class ABRA:
    """ABRA step loss (adversarial batch representation augmentation).

    1. Features h at ``level`` (-1: the scaled input crop itself, where a batch's gain and offset
       act); batch-wise statistics of each group (plate, batch, or the whole mini-batch) and
       their spread: across the group's images (``spread: within``) or across the groups in the
       mini-batch (``spread: between``, the scale of a batch effect;
       debatch.cnn.augment.group_statistics).
    2. A random ``adv_fraction`` of the images is chosen; starting from a Gaussian draw, K
       signed gradient-ascent steps find per-group shifts of the channel mean/std, within
       ``bound`` x spread, that maximise the chosen images' task loss (network weights fixed,
       BN running statistics untouched).
    3. Outer loss on the mini-batch with the chosen images' features shifted:
       CE(clean) + adv_weight * CE(perturbed) + align_weight * alignment(clean, perturbed
       embeddings), with the angular-margin head.

    The inner steps run the whole mini-batch (clean rows included, without gradient to them),
    exactly as the outer step does: train-mode BatchNorm normalises with the batch's own
    statistics, so on the perturbed rows alone it would cancel most of a shift shared by all of
    them (one group) and the ascent would climb a loss the outer step never sees.
    """

    def __init__(self, settings: dict, n_groups: int):
        self.s, self.n_groups = settings, n_groups

    def __call__(
        self, model: nn.Module, x: torch.Tensor, target: torch.Tensor, groups: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, dict]:
        s, level = self.s, self.s["level"]
        if not -1 <= level < model.levels:
            raise ValueError(
                f"train.abra.level {level} is outside the network's levels "
                f"-1 (the input) .. {model.levels - 1}"
            )
        h = model.features_upto(x, level)
        stats = group_statistics(h, groups, self.n_groups, between=s["spread"] == "between")
        n_adv = min(max(1, round(s["adv_fraction"] * len(x))), len(x) - 1)
        adv = torch.zeros(len(x), dtype=torch.bool)
        adv[torch.randperm(len(x))[:n_adv]] = True
        adv = adv.to(x.device)
        target_adv = target[adv]

        def embed_mixed(shifted: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
            """Embeddings of the batch with the chosen rows shifted, the others clean."""
            return model.features_from(torch.where(adv[:, None, None, None], shifted, clean), level)

        def adversarial_ce(shifted: torch.Tensor) -> torch.Tensor:
            # Summed: the ascent uses only the gradient's sign, and a sum keeps fp16 (AMP)
            # gradients from underflowing where a mean over the rows could.
            logits = model.head(embed_mixed(shifted, h.detach())[adv], target_adv)
            return F.cross_entropy(logits.float(), target_adv, reduction="sum")

        with frozen_batchnorm_stats(model):
            delta_mean, delta_std = adversarial_deltas(
                h, groups, stats, adversarial_ce, s["steps"], s["bound"], s["step_size"]
            )
        embedding = embed_mixed(perturb_statistics(h, groups, stats, delta_mean, delta_std), h)
        logits = model.head(embedding, target).float()
        ce_clean = F.cross_entropy(logits[~adv], target[~adv])
        ce_adv = F.cross_entropy(logits[adv], target_adv)
        align = alignment_loss(embedding[~adv], embedding[adv])
        loss = ce_clean + s["adv_weight"] * ce_adv + s["align_weight"] * align
        parts = {"loss_ce": ce_clean, "loss_adv": ce_adv, "loss_align": align}
        return loss, model.head(embedding), parts


# A recipe's ``augment`` -> its step loss's maker: (recipe, number of ABRA groups) -> the
# callable (model, x, target, groups) -> (loss, logits without margin, loss parts). DSU and
# MixStyle act inside the network (model_arch), so their step loss is plain cross-entropy; a
# new augmentation that acts in the loss registers here (docs/extending.md).
STEP_LOSSES = {
    "none": lambda recipe, n_groups: _cross_entropy,
    "dsu": lambda recipe, n_groups: _cross_entropy,
    "mixstyle": lambda recipe, n_groups: _cross_entropy,
    "abra": lambda recipe, n_groups: ABRA(recipe["abra"], n_groups),
}


def step_loss(recipe: dict, n_groups: int):
    """The recipe's step loss (``STEP_LOSSES``)."""
    return STEP_LOSSES[recipe["augment"]](recipe, n_groups)
