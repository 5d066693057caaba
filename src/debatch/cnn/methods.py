"""Training methods: each one's settings, network (head, augmentation slots) and step loss.

- ``erm``: cross-entropy; linear head by default (``head`` can name an angular-margin head to
  separate the head's effect from augmentation's).
- ``dsu``: DSU modules (debatch.cnn.augment.DSU) at ``levels``; linear head.
- ``mixstyle``: MixStyle modules at ``levels``; linear head.
- ``abra``: adversarial batch-wise perturbation of the feature statistics at ``level`` (see
  ``ABRA`` below and docs/methods.md); angular-margin head.
- ``deepnoise``: per-plate channel standardisation of the input with jittered statistics
  (debatch.cnn.data) and an ArcFace head.

Each method's settings are its block of ``train`` (debatch.settings.METHOD_BLOCKS).
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


def model_arch(method: str, settings: dict, **backbone) -> dict:
    """CellResNet arguments for a method (``backbone``: in_channels, n_classes, width, ...)."""
    arch = {
        **backbone,
        "head": settings.get("head", "arcface" if method == "deepnoise" else "linear"),
    }
    if arch["head"] != "linear":
        arch.update(head_s=settings["head_s"], head_m=settings["head_m"])
    if method == "dsu":
        arch["feature_augment"] = {"kind": "dsu", "levels": settings["levels"], "p": settings["p"]}
    elif method == "mixstyle":
        arch["feature_augment"] = {
            "kind": "mixstyle",
            "levels": settings["levels"],
            "p": settings["p"],
            "alpha": settings["alpha"],
        }
    return arch


def plate_scaling(method: str) -> bool:
    """Whether the method standardises inputs per plate (else with global training stats)."""
    return method == "deepnoise"


def cross_entropy(
    model: nn.Module, x: torch.Tensor, target: torch.Tensor, groups: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """ERM / DSU / MixStyle / DeepNoise step loss: cross-entropy of the (margin) head.

    Returns (loss, logits without margin, for accuracy; loss parts).
    """
    embedding = model.forward_features(x)
    loss = F.cross_entropy(model.head(embedding, target).float(), target)
    return loss, model.head(embedding).detach(), {"loss_ce": loss}


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

    1. Features h at ``level``; batch-wise statistics of each group (plate, batch, or the whole
       mini-batch) and their spread across the group's images
       (debatch.cnn.augment.group_statistics).
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
        if level >= model.levels:
            raise ValueError(
                f"train.abra.level {level} is outside the network's levels 0..{model.levels - 1}"
            )
        h = model.features_upto(x, level)
        stats = group_statistics(h, groups, self.n_groups)
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
        return loss, model.head(embedding).detach(), parts


def step_loss(method: str, settings: dict, n_groups: int):
    """The callable (model, x, target, groups) -> (loss, logits without margin, loss parts)."""
    return ABRA(settings, n_groups) if method == "abra" else cross_entropy
