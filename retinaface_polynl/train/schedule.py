"""Learning-rate schedule: linear warm-up, then step or cosine decay.

:func:`lr_factor` is a pure function of the iteration; :func:`build_scheduler`
wraps it in a ``LambdaLR`` stepped once per iteration, whose state (the
iteration count) goes into the checkpoint.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def lr_factor(
    iteration: int,
    total_iters: int,
    iters_per_epoch: int,
    schedule: str = "step",
    milestones: Sequence[float] = (),
    gamma: float = 0.1,
    warmup_iters: int = 0,
    warmup_factor: float = 0.001,
    min_lr_ratio: float = 0.0,
) -> float:
    """Multiplier of the base learning rate at ``iteration`` (0-based).

    Warm-up rises linearly from ``warmup_factor`` to 1 over ``warmup_iters``.
    ``step`` multiplies by ``gamma`` at each milestone (in epochs, i.e. at
    ``milestone * iters_per_epoch`` iterations); ``cosine`` decays from 1 to
    ``min_lr_ratio`` over ``total_iters``.
    """
    warm = 1.0
    if warmup_iters > 0 and iteration < warmup_iters:
        warm = warmup_factor + (1.0 - warmup_factor) * iteration / warmup_iters
    if schedule == "step":
        passed = sum(iteration >= round(m * iters_per_epoch) for m in milestones)
        decay = gamma**passed
    elif schedule == "cosine":
        progress = min(max(iteration, 0) / max(total_iters, 1), 1.0)
        decay = min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
    else:
        raise ValueError(f"unknown schedule {schedule!r}")
    return warm * decay


def build_scheduler(optimizer: torch.optim.Optimizer, config, total_iters: int, iters_per_epoch: int):
    """A per-iteration ``LambdaLR`` following ``config`` (a :class:`~.config.TrainConfig`)."""
    warmup = config.warmup_iters if config.warmup_iters is not None else round(config.warmup_epochs * iters_per_epoch)
    warmup = min(warmup, max(total_iters - 1, 0))

    def factor(it: int) -> float:
        return lr_factor(it, total_iters, iters_per_epoch, config.schedule, config.milestones, config.gamma,
                         warmup, config.warmup_factor, config.min_lr_ratio)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
