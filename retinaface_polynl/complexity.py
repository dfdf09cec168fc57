"""Parameter and FLOP counts of a configuration (FLOPs by ``torch.utils.flop_counter``).

The model is built and run on PyTorch's ``meta`` device: shapes only, no memory,
no arithmetic, so counting even ResNet-50 at VGA takes a fraction of a second.
FLOPs are those ``FlopCounterMode`` attributes to convolutions and matrix
products (one multiply-add = 2 FLOPs); element-wise work is not counted.
"""
from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from .presets import ModelConfig


def count_parameters(config: ModelConfig) -> int:
    from .models.retinaface import RetinaFace

    with torch.device("meta"):
        model = RetinaFace(config)
    return sum(p.numel() for p in model.parameters())


def count_flops(config: ModelConfig, height: int = 480, width: int = 640) -> int:
    """FLOPs of one forward pass (network and heads, no decoding/NMS) at ``height x width``."""
    from .models.retinaface import RetinaFace

    with torch.device("meta"):
        model = RetinaFace(config).eval()
        x = torch.empty(1, 3, height, width)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    return int(counter.get_total_flops())
