"""Backbones: ResNet-50, ResNet-18 at a quarter of the width, MobileNet-0.25.

Each backbone is an ``nn.Module`` whose parameters carry the names of the
checkpoints people already have (torchvision's ResNet names, the MobileNetV1
names of the Pytorch_Retinaface project), and which exposes its stages in order
through :meth:`stages`, named by the paper's convention (``res2`` .. ``res5``,
strides 4 .. 32).  The detector runs the stages itself so that an attention
block can be inserted after any of them without renaming a single parameter.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path

import torch
from torch import nn
from torchvision.models import resnet as tv_resnet
from torchvision.ops.misc import Conv2dNormActivation


class Backbone(nn.Module):
    """Base class: ``stem`` then named stages; ``out_channels`` per stage name."""

    out_channels: dict[str, int]

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def stages(self) -> list[tuple[str, nn.Module]]:
        raise NotImplementedError


class ResNetBackbone(Backbone):
    """A torchvision ResNet body without its classifier.

    Parameter names are torchvision's (``conv1``, ``bn1``, ``layer1`` .. ``layer4``),
    so torchvision ImageNet weights and Pytorch_Retinaface's ResNet-50
    checkpoints load unchanged.
    """

    def __init__(self, block: type[nn.Module], layers: list[int], widths: tuple[int, int, int, int]) -> None:
        super().__init__()
        expansion = block.expansion
        stem_width = widths[0]
        self.conv1 = nn.Conv2d(3, stem_width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        in_ch = stem_width
        for i, (n, width) in enumerate(zip(layers, widths)):
            stride = 1 if i == 0 else 2
            layer, in_ch = _make_resnet_layer(block, in_ch, width, n, stride)
            setattr(self, f"layer{i + 1}", layer)
        self.out_channels = {f"res{i + 2}": w * expansion for i, w in enumerate(widths)}
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def stages(self) -> list[tuple[str, nn.Module]]:
        return [("res2", self.layer1), ("res3", self.layer2), ("res4", self.layer3), ("res5", self.layer4)]


def _make_resnet_layer(
    block: type[nn.Module], in_ch: int, width: int, blocks: int, stride: int
) -> tuple[nn.Sequential, int]:
    out_ch = width * block.expansion
    downsample = None
    if stride != 1 or in_ch != out_ch:
        downsample = nn.Sequential(
            nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(out_ch)
        )
    layers = [block(in_ch, width, stride, downsample)]
    layers += [block(out_ch, width) for _ in range(1, blocks)]
    return nn.Sequential(*layers), out_ch


def resnet50() -> ResNetBackbone:
    """torchvision's ResNet-50 body (C2..C5 = 256, 512, 1024, 2048)."""
    return ResNetBackbone(tv_resnet.Bottleneck, [3, 4, 6, 3], (64, 128, 256, 512))


def resnet18_x025() -> ResNetBackbone:
    """ResNet-18 with a quarter of the channels (C2..C5 = 16, 32, 64, 128), the
    Poly-NL supplementary's lightweight detector backbone."""
    return ResNetBackbone(tv_resnet.BasicBlock, [2, 2, 2, 2], (16, 32, 64, 128))


def _conv_bn(in_ch: int, out_ch: int, stride: int = 1, leaky: float = 0.0, groups: int = 1, kernel: int = 3):
    return Conv2dNormActivation(
        in_ch,
        out_ch,
        kernel_size=kernel,
        stride=stride,
        groups=groups,
        activation_layer=partial(nn.LeakyReLU, negative_slope=leaky),
        inplace=True,
    )


def _conv_dw(in_ch: int, out_ch: int, stride: int, leaky: float = 0.1) -> nn.Sequential:
    """Depthwise 3x3 then pointwise 1x1, each with BN and leaky ReLU (indices 0..5,
    as in the Pytorch_Retinaface checkpoints)."""
    dw = _conv_bn(in_ch, in_ch, stride, leaky, groups=in_ch)
    pw = _conv_bn(in_ch, out_ch, 1, leaky, kernel=1)
    return nn.Sequential(*dw, *pw)


class MobileNetV1x025(Backbone):
    """MobileNetV1 at 0.25 width as used by the community RetinaFace (3 stages,
    strides 8/16/32, 64/128/256 channels)."""

    def __init__(self) -> None:
        super().__init__()
        self.stage1 = nn.Sequential(
            _conv_bn(3, 8, 2, leaky=0.1),
            _conv_dw(8, 16, 1),
            _conv_dw(16, 32, 2),
            _conv_dw(32, 32, 1),
            _conv_dw(32, 64, 2),
            _conv_dw(64, 64, 1),
        )
        self.stage2 = nn.Sequential(_conv_dw(64, 128, 2), *[_conv_dw(128, 128, 1) for _ in range(5)])
        self.stage3 = nn.Sequential(_conv_dw(128, 256, 2), _conv_dw(256, 256, 1))
        self.out_channels = {"res3": 64, "res4": 128, "res5": 256}

    def stages(self) -> list[tuple[str, nn.Module]]:
        return [("res3", self.stage1), ("res4", self.stage2), ("res5", self.stage3)]


def build_backbone(name: str, pretrained: str | Path | None = None) -> Backbone:
    """Backbone by name; ``pretrained`` is an optional local state-dict file
    (e.g. torchvision's ImageNet ResNet-50 weights), loaded non-strictly so a
    classifier's ``fc.*`` keys are ignored.  Nothing is ever downloaded."""
    if name == "resnet50":
        backbone: Backbone = resnet50()
    elif name == "resnet18_x0.25":
        backbone = resnet18_x025()
    elif name == "mobilenet0.25":
        backbone = MobileNetV1x025()
    else:
        raise ValueError(f"unknown backbone {name!r}; choose resnet50, resnet18_x0.25 or mobilenet0.25")
    if pretrained is not None:
        state = torch.load(pretrained, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state) if isinstance(state, dict) else state
        missing, _unexpected = backbone.load_state_dict(state, strict=False)
        if missing:
            raise ValueError(f"{pretrained}: not a {name} checkpoint; missing keys: {', '.join(missing[:8])}")
    return backbone
