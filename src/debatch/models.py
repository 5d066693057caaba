"""Small ResNet-style CNN for single-cell crops, with hooks for feature-statistics augmentation.

Layout (``CellResNet``)::

    stem (3x3 conv, BN, ReLU; full resolution)
    stage 0 .. stages-1  each: ``depth`` residual blocks, the first one downsamples by 2 and
                         (after stage 0) doubles the width; then ``augment[i]``
    global average pool -> linear -> embedding (``embedding_dim``) -> head -> logits

``augment`` is an ``nn.ModuleList`` with one slot per stage, ``nn.Identity`` by default. Methods
that perturb per-channel feature statistics during training (DSU, MixStyle, ABRA) replace a slot,
e.g. ``model.augment[1] = MixStyle(...)``; such modules must act only when ``self.training`` is
true, so embeddings (computed in eval mode) never see them.

Heads: ERM uses the plain linear head (``head="linear"``). ``CosFaceHead`` (additive cosine
margin, ``head="cosface"``) is available for margin-based training; its margin is applied only in
training mode when labels are passed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class BasicBlock(nn.Module):
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
                nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x), inplace=True)


class LinearHead(nn.Linear):
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


class CellResNet(nn.Module):
    """ResNet for C x S x S crops; see the module docstring for the layout.

    ``width`` is the stem/stage-0 channel count (doubled at each later stage), ``depth`` the number
    of residual blocks per stage, ``stages`` the number of stages (each halves the resolution).
    The constructor arguments are exactly what ``model.pt`` stores to rebuild the network.
    """

    def __init__(self, in_channels: int, n_classes: int, width: int = 32, depth: int = 2,
                 stages: int = 3, embedding_dim: int = 128, head: str = "linear",
                 head_s: float = 30.0, head_m: float = 0.2):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, 1, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True))
        blocks, channels = [], width
        for i in range(stages):
            out = width * 2 ** i
            layers = [BasicBlock(channels, out, stride=2)]
            layers += [BasicBlock(out, out) for _ in range(depth - 1)]
            blocks.append(nn.Sequential(*layers))
            channels = out
        self.stages = nn.ModuleList(blocks)
        self.augment = nn.ModuleList(nn.Identity() for _ in range(stages))
        self.embedding = nn.Linear(channels, embedding_dim)
        if head == "linear":
            self.head = LinearHead(embedding_dim, n_classes)
        elif head == "cosface":
            self.head = CosFaceHead(embedding_dim, n_classes, head_s, head_m)
        else:
            raise ValueError(f"unknown head {head!r}; expected 'linear' or 'cosface'")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Crops (N, C, S, S) -> embeddings (N, embedding_dim)."""
        x = self.stem(x)
        for stage, augment in zip(self.stages, self.augment):
            x = augment(stage(x))
        return self.embedding(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Crops -> class logits; ``labels`` are used only by margin heads in training mode."""
        return self.head(self.forward_features(x), labels)
