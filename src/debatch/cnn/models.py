"""Small ResNet-style CNN for single-cell crops, with slots for feature-statistics augmentation.

Layout (``CellResNet``), with the feature "levels" that augmentations refer to::

    stem (3x3 conv, BN, ReLU; full resolution)                      -> augment[0]  (level 0)
    stage i = 0 .. stages-1: ``depth`` residual blocks, the first
      downsampling by 2 and (after stage 0) doubling the width      -> augment[i+1] (level i+1)
    global average pool -> linear -> embedding (``embedding_dim``) -> head -> logits

``augment`` holds one slot per level, ``nn.Identity`` unless ``feature_augment`` names DSU or
MixStyle (debatch.cnn.augment) and the levels to put it at. Those act only in training mode, so
embeddings (computed in eval mode) never see them; they have no parameters, and the constructor
arguments (stored in ``model.pt``) rebuild the network exactly. ``features_upto`` /
``features_from`` split the network at a level, for ABRA's perturbation of the statistics there.

Heads: ``linear`` (plain softmax classifier), ``cosface`` (additive cosine margin) and ``arcface``
(additive angular margin). Margins are applied only in training mode when labels are passed, so
predictions never depend on labels.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from debatch.cnn.augment import build_feature_augment

# Below this many channels in the first stage the network keeps the default memory layout:
# channels-last (faster: 1.3-1.8x per training step on CPU) crashes oneDNN's convolution
# backward pass on CPU for layers of fewer than 16 channels on inputs of 64 px and more (torch
# 2.13: a segmentation fault with width 8 on whole 128 px sites).
CHANNELS_LAST_MIN_WIDTH = 16


def memory_format(width: int) -> torch.memory_format:
    """The layout of a network whose first stage has ``width`` channels, and of its inputs."""
    return torch.channels_last if width >= CHANNELS_LAST_MIN_WIDTH else torch.contiguous_format


class _BasicBlock(nn.Module):
    """Two 3x3 convolutions with BN and an identity (or 1x1 projection) shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x), inplace=True)


class _LinearHead(nn.Linear):
    """Plain linear classifier (ERM). Accepts and ignores labels so every head has one signature."""

    def forward(self, embedding: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return super().forward(embedding)


class CosFaceHead(nn.Module):
    """Additive cosine margin head (CosFace / LMCL): logits = s * (cos(theta) - m * onehot).

    The margin is subtracted from the target-class cosine only in training mode with labels given;
    otherwise the logits are ``s * cos(theta)``, so predictions do not depend on the labels.
    """

    def __init__(self, embedding_dim: int, n_classes: int, s: float = 30.0, m: float = 0.2):
        super().__init__()
        self.s, self.m = float(s), float(m)
        self.weight = nn.Parameter(torch.empty(n_classes, embedding_dim))
        nn.init.xavier_uniform_(self.weight)

    def forward(self, embedding: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        cosine = F.linear(F.normalize(embedding, dim=1), F.normalize(self.weight, dim=1))
        if self.training and labels is not None:
            cosine = cosine - self.m * F.one_hot(labels, cosine.shape[1]).to(cosine.dtype)
        return self.s * cosine


class ArcFaceHead(CosFaceHead):
    """Additive angular margin head (ArcFace): target logit s * cos(theta + m), others s * cos.

    Past theta = pi - m, where cos(theta + m) would stop decreasing, the target logit continues
    as cos(theta) - m * sin(m) (the usual ArcFace fallback) so the loss stays monotonic.
    """

    def forward(self, embedding: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        cosine = F.linear(F.normalize(embedding, dim=1), F.normalize(self.weight, dim=1))
        if self.training and labels is not None:
            cosine = cosine.float()
            sine = (1 - cosine.square()).clamp_min(0).sqrt()
            shifted = cosine * math.cos(self.m) - sine * math.sin(self.m)
            shifted = torch.where(
                cosine > math.cos(math.pi - self.m), shifted, cosine - self.m * math.sin(self.m)
            )
            target = F.one_hot(labels, cosine.shape[1]).bool()
            cosine = torch.where(target, shifted, cosine)
        return self.s * cosine


_HEADS = {"linear": None, "cosface": CosFaceHead, "arcface": ArcFaceHead}


class CellResNet(nn.Module):
    """ResNet for C x S x S crops; see the module docstring for the layout.

    ``width`` is the stem/stage-0 channel count (doubled at each later stage), ``depth`` the number
    of residual blocks per stage, ``stages`` the number of stages (each halves the resolution).
    ``feature_augment``: None, or {"kind": "dsu" | "mixstyle", "levels": [...], **settings}.
    The constructor arguments are exactly what ``model.pt`` stores to rebuild the network.
    """

    def __init__(
        self,
        in_channels: int,
        n_classes: int,
        width: int = 32,
        depth: int = 2,
        stages: int = 3,
        embedding_dim: int = 128,
        head: str = "linear",
        head_s: float = 30.0,
        head_m: float = 0.2,
        feature_augment: dict | None = None,
    ):
        super().__init__()
        self.memory_format = memory_format(width)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, 1, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        )
        blocks, channels = [], width
        for i in range(stages):
            out = width * 2**i
            layers = [_BasicBlock(channels, out, stride=2)]
            layers += [_BasicBlock(out, out) for _ in range(depth - 1)]
            blocks.append(nn.Sequential(*layers))
            channels = out
        self.stages = nn.ModuleList(blocks)
        self.augment = nn.ModuleList(nn.Identity() for _ in range(stages + 1))
        if feature_augment:
            settings = dict(feature_augment)
            kind, levels = settings.pop("kind"), settings.pop("levels")
            for level in levels:
                if not 0 <= level <= stages:
                    raise ValueError(f"feature augmentation level {level} is outside 0..{stages}")
                self.augment[level] = build_feature_augment(kind, **settings)
        self.embedding = nn.Linear(channels, embedding_dim)
        if head not in _HEADS:
            raise ValueError(f"unknown head {head!r}; expected one of {sorted(_HEADS)}")
        self.head = (
            _LinearHead(embedding_dim, n_classes)
            if head == "linear"
            else _HEADS[head](embedding_dim, n_classes, head_s, head_m)
        )

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.stem(x.contiguous(memory_format=self.memory_format))

    @property
    def levels(self) -> int:
        """Number of feature levels (stem + stages)."""
        return len(self.augment)

    def features_upto(self, x: torch.Tensor, level: int) -> torch.Tensor:
        """Crops -> feature map at ``level`` (after that level's augment slot); level -1 is the
        input itself."""
        if level < 0:
            return x
        x = self.augment[0](self._stem(x))
        for i in range(level):
            x = self.augment[i + 1](self.stages[i](x))
        return x

    def features_from(self, h: torch.Tensor, level: int) -> torch.Tensor:
        """Feature map at ``level`` (-1: the input) -> embeddings (N, embedding_dim)."""
        if level < 0:
            h, level = self.augment[0](self._stem(h)), 0
        for i in range(level, len(self.stages)):
            h = self.augment[i + 1](self.stages[i](h))
        return self.embedding(torch.flatten(F.adaptive_avg_pool2d(h, 1), 1))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Crops (N, C, S, S) -> embeddings (N, embedding_dim)."""
        return self.features_from(self.features_upto(x, 0), 0)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Crops -> class logits; ``labels`` are used only by margin heads in training mode."""
        return self.head(self.forward_features(x), labels)
