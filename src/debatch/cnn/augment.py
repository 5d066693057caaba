"""Feature-statistics augmentations: DSU, MixStyle and ABRA's adversarial batch-wise perturbation.

All three act on a feature map h (N, C, H, W) through its per-channel statistics: mean and std
over the pixels (the "style" of an image). They only act in training; in eval mode DSU and
MixStyle are the identity, and ABRA is not part of the network at all (debatch.cnn.methods
applies it in the training step), so embeddings never see them. None of them has parameters or
buffers, so a model's ``state_dict`` is the same with or without them.

Randomness comes from torch's global generator, which debatch.cnn.train seeds per epoch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MIN_GROUP = 8  # ABRA: groups with fewer images in the mini-batch use the whole batch's spread


def channel_moments(x: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image, per-channel mean and std over the pixels, each (N, C, 1, 1), in float32.

    std = sqrt(E[x^2] - E[x]^2 + eps): two plain means, much cheaper than ``var`` (forward and
    backward) on channels-last feature maps. The means accumulate and return float32 because under
    AMP that difference would cancel catastrophically in bf16/fp16.
    """
    mean = x.mean(dim=(2, 3), keepdim=True, dtype=torch.float32)
    square = x.square().mean(dim=(2, 3), keepdim=True, dtype=torch.float32)
    return mean, (square - mean.square()).clamp_min(0).add(eps).sqrt()


def _restyle(
    x: torch.Tensor,
    mean: torch.Tensor,
    std: torch.Tensor,
    new_mean: torch.Tensor,
    new_std: torch.Tensor,
) -> torch.Tensor:
    """(x - mean) / std * new_std + new_mean, as one per-channel affine map of x (in x's dtype)."""
    scale = new_std / std
    return x * scale.to(x.dtype) + (new_mean - mean * scale).to(x.dtype)


class DSU(nn.Module):
    """Domain shifts with uncertainty (Li et al., ICLR 2022).

    With probability ``p`` per forward pass: each image's channel mean and std are replaced by
    draws from Gaussians centred on them, whose scale is the std of that statistic across the
    mini-batch; the normalised features are re-scaled with the drawn statistics.
    """

    def __init__(self, p: float = 0.5, eps: float = 1e-6):
        super().__init__()
        self.p, self.eps = float(p), float(eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or float(torch.rand(())) >= self.p:
            return x
        mean, std = channel_moments(x, self.eps)
        spread_mean = (mean.var(dim=0, keepdim=True) + self.eps).sqrt()
        spread_std = (std.var(dim=0, keepdim=True) + self.eps).sqrt()
        beta = mean + torch.randn_like(mean) * spread_mean
        gamma = std + torch.randn_like(std) * spread_std
        return _restyle(x, mean, std, beta, gamma)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class MixStyle(nn.Module):
    """MixStyle (Zhou et al., ICLR 2021), random-shuffle variant.

    With probability ``p`` per forward pass: each image's (detached) channel mean/std become a
    convex mix with those of a randomly chosen partner in the mini-batch, lambda ~ Beta(alpha,
    alpha) per image.
    """

    def __init__(self, p: float = 0.5, alpha: float = 0.1, eps: float = 1e-6):
        super().__init__()
        self.p, self.alpha, self.eps = float(p), float(alpha), float(eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or float(torch.rand(())) >= self.p:
            return x
        mean, std = channel_moments(x, self.eps)
        mean, std = mean.detach(), std.detach()
        lam = torch.distributions.Beta(self.alpha, self.alpha).sample((x.shape[0], 1, 1, 1))
        lam = lam.to(x.device)
        perm = torch.randperm(x.shape[0]).to(x.device)
        mixed_mean = lam * mean + (1 - lam) * mean[perm]
        mixed_std = lam * std + (1 - lam) * std[perm]
        return _restyle(x, mean, std, mixed_mean, mixed_std)

    def extra_repr(self) -> str:
        return f"p={self.p}, alpha={self.alpha}"


_FEATURE_AUGMENTS = {"dsu": DSU, "mixstyle": MixStyle}


def build_feature_augment(kind: str, **settings) -> nn.Module:
    """A DSU or MixStyle module from its name and settings (as recorded in model.pt)."""
    if kind not in _FEATURE_AUGMENTS:
        raise ValueError(
            f"unknown feature augmentation {kind!r}; expected one of {sorted(_FEATURE_AUGMENTS)}"
        )
    return _FEATURE_AUGMENTS[kind](**settings)


# ABRA: batch-wise structured uncertainty of the feature statistics.


def group_statistics(
    h: torch.Tensor, groups: torch.Tensor, n_groups: int, eps: float = 1e-6, between: bool = False
) -> dict[str, torch.Tensor]:
    """Batch-wise feature statistics of each group (e.g. plate) in the mini-batch, all (G, C).

    ``mean``/``std``: channel mean/std of the group's images pooled over images and pixels (the
    statistics a batch effect shifts). ``spread_mean``/``spread_std``: how much those vary, the
    scale of the perturbation: by default the std across the group's images of their per-image
    channel mean/std (the group's statistical fluctuation; groups with fewer than MIN_GROUP
    images in the mini-batch get the spread across the whole mini-batch); with ``between``, the
    std across the mini-batch's groups of the groups' own mean/std (how much groups differ from
    each other: the size of a batch effect), the same for every group (the within-group spread
    when fewer than two groups have MIN_GROUP images). Computed without gradient: the
    perturbation treats them as constants.
    """
    with torch.no_grad():
        h = h.float()
        img_mean = h.mean(dim=(2, 3))
        img_sq = h.square().mean(dim=(2, 3))
        img_std = (img_sq - img_mean.square()).clamp_min(0).add(eps).sqrt()
        count = torch.zeros(n_groups, device=h.device).index_add_(
            0, groups, torch.ones_like(groups, dtype=h.dtype)
        )
        denom = count.clamp_min(1).unsqueeze(1)

        def group_mean(values):
            return (
                torch.zeros(n_groups, values.shape[1], device=h.device).index_add_(
                    0, groups, values
                )
                / denom
            )

        mean = group_mean(img_mean)
        std = (group_mean(img_sq) - mean.square()).clamp_min(0).add(eps).sqrt()
        spread = []
        for values in (img_mean, img_std):
            within = (group_mean(values.square()) - group_mean(values).square()).clamp_min(0)
            whole = values.var(dim=0, unbiased=False, keepdim=True).expand_as(within)
            small = (count < MIN_GROUP).unsqueeze(1)
            spread.append(torch.where(small, whole, within).add(eps).sqrt())
        full = count >= MIN_GROUP
        if between and int(full.sum()) >= 2:
            spread = [
                statistic[full]
                .std(dim=0, unbiased=False, keepdim=True)
                .add(eps)
                .expand_as(statistic)
                for statistic in (mean, std)
            ]
    return {"mean": mean, "std": std, "spread_mean": spread[0], "spread_std": spread[1]}


def perturb_statistics(
    h: torch.Tensor,
    groups: torch.Tensor,
    stats: dict,
    delta_mean: torch.Tensor,
    delta_std: torch.Tensor,
) -> torch.Tensor:
    """Move each group's channel statistics from (mean, std) to (mean + delta_mean, std +
    delta_std): the affine map h -> (h - mean) / std * (std + delta_std) + mean + delta_mean,
    shared by all images of the group (a synthetic batch effect). Deltas are (G, C); the new std
    is kept at or above 10 % of the old one.
    """
    new_std = torch.maximum(stats["std"] + delta_std, 0.1 * stats["std"])
    scale = (new_std / stats["std"])[groups]
    shift = (stats["mean"] + delta_mean)[groups] - stats["mean"][groups] * scale
    return h * scale[:, :, None, None].to(h.dtype) + shift[:, :, None, None].to(h.dtype)


def adversarial_deltas(
    h: torch.Tensor,
    groups: torch.Tensor,
    stats: dict,
    loss_fn,
    steps: int,
    bound: float,
    step_size: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Worst-case statistic shifts (delta_mean, delta_std) within |delta| <= bound * spread.

    Starts from a Gaussian draw (scale = spread, clipped to the box; with ``steps=0`` this is a
    group-wise DSU) and takes ``steps`` signed gradient-ascent steps of ``step_size * spread`` on
    ``loss_fn(perturbed h)``, projecting back onto the box after each. ``h`` is a constant here:
    only the deltas receive gradients.
    """
    h = h.detach()
    spreads = (stats["spread_mean"], stats["spread_std"])
    limits = [bound * spread for spread in spreads]
    deltas = [
        torch.max(torch.min(torch.randn_like(spread) * spread, limit), -limit)
        for spread, limit in zip(spreads, limits)
    ]
    for _ in range(steps):
        deltas = [d.requires_grad_(True) for d in deltas]
        grads = torch.autograd.grad(loss_fn(perturb_statistics(h, groups, stats, *deltas)), deltas)
        deltas = [
            torch.max(torch.min(d.detach() + step_size * spread * g.sign(), limit), -limit)
            for d, g, spread, limit in zip(deltas, grads, spreads, limits)
        ]
    return deltas[0], deltas[1]


def alignment_loss(clean: torch.Tensor, perturbed: torch.Tensor) -> torch.Tensor:
    """Distance between two sets of embeddings' distributions (on the unit sphere): squared
    distance of the means plus squared Frobenius distance of the covariances (CORAL-like)."""
    clean, perturbed = F.normalize(clean.float(), dim=1), F.normalize(perturbed.float(), dim=1)
    mean_c, mean_p = clean.mean(0), perturbed.mean(0)
    cov_c = torch.cov(clean.T) if len(clean) > 1 else torch.zeros_like(clean.T @ clean)
    cov_p = torch.cov(perturbed.T) if len(perturbed) > 1 else torch.zeros_like(cov_c)
    return (mean_c - mean_p).square().sum() + (cov_c - cov_p).square().sum()
