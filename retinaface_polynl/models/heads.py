"""Prediction heads: face/background classification, box offsets, 5 landmarks.

One 1x1 convolution per pyramid level and per task, as in RetinaFace.  Output
widths are derived from the number of anchors per location and from what each
coder produces (2 classes, 4 box offsets, 10 landmark offsets), and outputs are
flattened level by level in the anchors' order: ``(B, H*W*A, k)``.
"""
from __future__ import annotations

import math

import torch
from torch import nn


class LevelHeads(nn.Module):
    """``num_levels`` 1x1 convolutions predicting ``values_per_anchor`` numbers per anchor."""

    def __init__(self, in_channels: int, num_levels: int, anchors_per_location: int, values_per_anchor: int) -> None:
        super().__init__()
        self.values_per_anchor = values_per_anchor
        self.convs = nn.ModuleList(
            nn.Conv2d(in_channels, anchors_per_location * values_per_anchor, kernel_size=1) for _ in range(num_levels)
        )
        for conv in self.convs:
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        outs = []
        for conv, f in zip(self.convs, features):
            y = conv(f).permute(0, 2, 3, 1)  # (B, H, W, A*k)
            outs.append(y.reshape(y.shape[0], -1, self.values_per_anchor))
        return torch.cat(outs, dim=1)


class ClassHeads(LevelHeads):
    """Two logits (background, face) per anchor; the face logit starts at a prior
    probability of 0.01 so that training begins without a flood of positives."""

    def __init__(self, in_channels: int, num_levels: int, anchors_per_location: int, prior: float = 0.01) -> None:
        super().__init__(in_channels, num_levels, anchors_per_location, 2)
        for conv in self.convs:
            with torch.no_grad():
                conv.bias.view(anchors_per_location, 2)[:, 1] = math.log(prior / (1 - prior))
