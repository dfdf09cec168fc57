"""Weight-space mixing of a fine-tuned model with the model it started from.

WiSE-FT (Wortsman et al., "Robust fine-tuning of zero-shot models", CVPR 2022): fine-tuning
moves the weights along a path on which the loss stays low, and the point

    theta = alpha * theta_fine_tuned + (1 - alpha) * theta_start

between the two often keeps most of what the fine-tuning taught and gives back some of what
it cost away from its training data.  Here the crowd recipe fine-tunes the FDDB-trained
release on crowd sets; mixed back a little, the model does better on the photos neither was
trained on (WIDER FACE, FDDB) for a little of the in-domain crowd set (weights/README.md).

Every floating-point tensor is mixed, batch-norm statistics included; integer buffers
(batch-norm's step counters) are the fine-tuned model's.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from ..checkpoints import CheckpointError, LoadedCheckpoint, load_model


def mix_state_dicts(fine_tuned: dict[str, torch.Tensor], start: dict[str, torch.Tensor],
                    alpha: float) -> dict[str, torch.Tensor]:
    """``alpha * fine_tuned + (1 - alpha) * start`` tensor by tensor (integer tensors: fine_tuned's)."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    if fine_tuned.keys() != start.keys():
        only = sorted(set(fine_tuned) ^ set(start))
        raise ValueError(f"the two models differ in {len(only)} tensors, e.g. {only[:4]}")
    mixed = {}
    for key, a in fine_tuned.items():
        b = start[key]
        if a.shape != b.shape:
            raise ValueError(f"{key}: shape {tuple(a.shape)} against {tuple(b.shape)}")
        mixed[key] = alpha * a + (1.0 - alpha) * b.to(a.dtype) if a.is_floating_point() else a.clone()
    return mixed


def mix_checkpoints(fine_tuned: str | Path, start: str | Path, alpha: float) -> LoadedCheckpoint:
    """The fine-tuned checkpoint's model with its weights mixed towards ``start``'s (same
    architecture: a :class:`~..checkpoints.CheckpointError` names both files otherwise)."""
    a, b = load_model(fine_tuned), load_model(start)
    if dataclasses.replace(a.config, name="") != dataclasses.replace(b.config, name=""):
        raise CheckpointError(f"{fine_tuned} ({a.config.backbone}, {a.config.attention or 'no'} attention) and "
                              f"{start} ({b.config.backbone}, {b.config.attention or 'no'} attention) are different "
                              "networks and cannot be mixed")
    a.model.load_state_dict(mix_state_dicts(a.model.state_dict(), b.model.state_dict(), alpha))
    return a
