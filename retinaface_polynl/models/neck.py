"""The neck: a feature pyramid (FPN) over C3..C5, then an SSH context module per level.

Layer for layer the RetinaFace neck: 1x1 lateral convolutions to a common width,
top-down nearest upsampling and addition, a 3x3 "merge" convolution on the two
finer levels, then SSH (Najibi et al., ICCV 2017): parallel 3x3, 5x5 and 7x7
receptive fields built from stacked 3x3 convolutions, concatenated to the same
width.  As in RetinaFace, the activations are leaky (slope 0.1) when the width is
64 or less and plain ReLU otherwise.
"""
from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops.misc import Conv2dNormActivation


def _leaky_slope(channels: int) -> float:
    return 0.1 if channels <= 64 else 0.0


def conv_bn(in_ch: int, out_ch: int, kernel: int = 3, leaky: float | None = 0.0) -> Conv2dNormActivation:
    """Conv + BatchNorm (+ leaky ReLU unless ``leaky`` is None), "same" padding."""
    act = None if leaky is None else partial(nn.LeakyReLU, negative_slope=leaky)
    return Conv2dNormActivation(in_ch, out_ch, kernel_size=kernel, activation_layer=act, inplace=True)


class FPN(nn.Module):
    """Top-down feature pyramid over three levels (strides 8, 16, 32)."""

    def __init__(self, in_channels: list[int], out_channels: int) -> None:
        super().__init__()
        leaky = _leaky_slope(out_channels)
        self.lateral = nn.ModuleList(conv_bn(c, out_channels, kernel=1, leaky=leaky) for c in in_channels)
        # merge[i] refines level i after the coarser level was added (the coarsest has none)
        self.merge = nn.ModuleList(conv_bn(out_channels, out_channels, leaky=leaky) for _ in in_channels[:-1])

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        laterals = [lat(f) for lat, f in zip(self.lateral, features)]
        outputs = [laterals[-1]]
        for i in range(len(laterals) - 2, -1, -1):
            up = F.interpolate(outputs[0], size=laterals[i].shape[-2:], mode="nearest")
            outputs.insert(0, self.merge[i](laterals[i] + up))
        return outputs


class SSH(nn.Module):
    """Single Stage Headless context module: 3x3 | 5x5 | 7x7 branches, concatenated."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        if out_channels % 4:
            raise ValueError(f"SSH width must be a multiple of 4, got {out_channels}")
        leaky = _leaky_slope(out_channels)
        quarter = out_channels // 4
        self.conv3x3 = conv_bn(in_channels, out_channels // 2, leaky=None)
        self.conv5x5_1 = conv_bn(in_channels, quarter, leaky=leaky)
        self.conv5x5_2 = conv_bn(quarter, quarter, leaky=None)
        self.conv7x7_2 = conv_bn(quarter, quarter, leaky=leaky)
        self.conv7x7_3 = conv_bn(quarter, quarter, leaky=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.conv3x3(x)
        t = self.conv5x5_1(x)
        b5 = self.conv5x5_2(t)
        b7 = self.conv7x7_3(self.conv7x7_2(t))
        return F.relu(torch.cat([b3, b5, b7], dim=1))
