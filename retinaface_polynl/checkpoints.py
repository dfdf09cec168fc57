"""Checkpoints: our own (configuration inside) and the Pytorch_Retinaface layout.

Our checkpoint is a dict::

    {"format": "retinaface_polynl", "version": 1,
     "config": ModelConfig.to_dict(), "model": state_dict, ...training state...}

so ``Detector(weights="file.pth")`` rebuilds the model with no preset.

The widely used Pytorch_Retinaface project saves a bare state dict with keys
``body.*``, ``fpn.output{1,2,3}.*``, ``fpn.merge{1,2}.*``, ``ssh{1,2,3}.*``,
``ClassHead.i.conv1x1.*``, ``BboxHead.i.conv1x1.*``, ``LandmarkHead.i.conv1x1.*``
(sometimes every key prefixed ``module.``).  :func:`convert_pytorch_retinaface`
renames those keys to ours with an explicit table; the backbone is recognised
from the keys and shapes.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .fileio import atomic_path
from .presets import ModelConfig, get_preset

log = logging.getLogger(__name__)

FORMAT = "retinaface_polynl"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the model."""


class CheckpointMismatchError(CheckpointError):
    def __init__(self, path: str | Path, missing: list[str], unexpected: list[str], looks_like: str, shape_errors=()):
        self.missing, self.unexpected, self.looks_like = missing, unexpected, looks_like
        parts = [f"{path}: checkpoint does not fit the model (it looks like {looks_like})."]
        if missing:
            parts.append(f"Missing keys ({len(missing)}): {_short(missing)}.")
        if unexpected:
            parts.append(f"Unexpected keys ({len(unexpected)}): {_short(unexpected)}.")
        if shape_errors:
            parts.append(f"Shape mismatches ({len(shape_errors)}): {_short(list(shape_errors))}.")
        super().__init__(" ".join(parts))


def _short(keys: list[str], n: int = 6) -> str:
    more = f", ... (+{len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


# Pytorch_Retinaface name -> our name (regular expressions, applied in order).
_PYTORCH_RETINAFACE_RENAMES = [
    (r"^fpn\.output(\d)\.", lambda m: f"fpn.lateral.{int(m.group(1)) - 1}."),
    (r"^fpn\.merge(\d)\.", lambda m: f"fpn.merge.{int(m.group(1)) - 1}."),
    (r"^ssh(\d)\.", lambda m: f"ssh.{int(m.group(1)) - 1}."),
    (r"^ClassHead\.(\d)\.conv1x1\.", lambda m: f"class_head.convs.{m.group(1)}."),
    (r"^BboxHead\.(\d)\.conv1x1\.", lambda m: f"box_head.convs.{m.group(1)}."),
    (r"^LandmarkHead\.(\d)\.conv1x1\.", lambda m: f"landmark_head.convs.{m.group(1)}."),
    (r"\.conv3X3\.", lambda m: ".conv3x3."),
    (r"\.conv5X5_(\d)\.", lambda m: f".conv5x5_{m.group(1)}."),
    (r"\.conv7X7_(\d)\.", lambda m: f".conv7x7_{m.group(1)}."),
]


def is_pytorch_retinaface_layout(state: dict[str, Any]) -> bool:
    return any(k.startswith(("ClassHead.", "BboxHead.", "LandmarkHead.")) for k in state)


def strip_module_prefix(state: dict[str, Any]) -> dict[str, Any]:
    """Remove a DataParallel/DDP ``module.`` prefix, only where every key has it."""
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module."):]: v for k, v in state.items()}
    return state


def convert_pytorch_retinaface(state: dict[str, Any]) -> dict[str, Any]:
    """Rename a Pytorch_Retinaface state dict to this package's parameter names."""
    out = {}
    for key, value in strip_module_prefix(state).items():
        new = key
        for pattern, repl in _PYTORCH_RETINAFACE_RENAMES:
            new = re.sub(pattern, repl, new)
        out[new] = value
    return out


def infer_config(state: dict[str, Any]) -> ModelConfig:
    """Recognise backbone, width and attention block from a state dict (our names)."""
    if "body.stage1.0.0.weight" in state:
        base = get_preset("mnet025")
    elif "body.layer1.0.conv3.weight" in state:
        base = get_preset("r50")
    elif "body.layer1.0.conv1.weight" in state and state["body.layer1.0.conv1.weight"].shape[0] == 16:
        base = get_preset("r18x025")
    else:
        raise CheckpointError(
            "cannot recognise the backbone from the checkpoint's keys: expected MobileNet-0.25 "
            "(body.stage1.*), ResNet-50 (body.layer*.conv3) or ResNet-18 x0.25 (body.layer1 with 16 channels)"
        )
    width_key = "fpn.lateral.0.0.weight"
    if width_key in state:
        base = base.replace(fpn_channels=int(state[width_key].shape[0]))
    head_key = "class_head.convs.0.weight"
    if head_key in state:
        a = int(state[head_key].shape[0]) // 2
        if a != base.anchors_per_location:
            raise CheckpointError(f"checkpoint predicts {a} anchors per location; the presets use {base.anchors_per_location}")
    return base


def describe(state: dict[str, Any]) -> str:
    try:
        c = infer_config(state)
        return f"a {c.backbone} RetinaFace with {c.fpn_channels}-channel FPN"
    except CheckpointError:
        return "no known RetinaFace layout"


@dataclass
class LoadedCheckpoint:
    model: nn.Module
    config: ModelConfig
    source_format: str  # "retinaface_polynl" or "pytorch_retinaface"
    initialised: list[str] = field(default_factory=list)  # parameter groups started fresh (e.g. an inserted block)
    extra: dict[str, Any] = field(default_factory=dict)


def _reason(exc: Exception) -> str:
    """One line of ``exc``'s message: torch's weights-only refusal spans paragraphs; keep what it refused."""
    text = str(exc).split("WeightsUnpickler error:", 1)[-1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else "unreadable"


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated/garbage file, or not a torch file at all
        raise CheckpointError(
            f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__}: {_reason(exc)})"
        ) from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict (state dict or checkpoint), found {type(obj).__name__}")
    return obj


def _state_and_config(obj: dict[str, Any], path: str | Path, config: ModelConfig | None):
    """From a read checkpoint: its state dict (our names), the model configuration it
    records or implies, its format and its extra entries (epoch, inference hint, ...)."""
    extra: dict[str, Any] = {}
    if obj.get("format") == FORMAT:
        state = obj["model"]
        saved = ModelConfig.from_dict(obj["config"])
        source = FORMAT
        extra = {k: v for k, v in obj.items() if k not in ("model", "config", "format", "version")}
    else:
        state = obj.get("state_dict", obj)
        state = strip_module_prefix(state)
        if not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise CheckpointError(f"{path}: no state dict found (keys: {_short(list(obj))})")
        if is_pytorch_retinaface_layout(state):
            state = convert_pytorch_retinaface(state)
            source = "pytorch_retinaface"
        else:
            source = FORMAT
        try:
            saved = infer_config(state)
        except CheckpointError as exc:
            raise CheckpointError(f"{path}: {exc}") from None
        if any(k.startswith("attention.") for k in state) and config is None:
            raise CheckpointError(
                f"{path}: has an attention block but no configuration saying which; pass a preset (e.g. r50_polynl)"
            )
    return state, saved, source, extra


def checkpoint_config(path: str | Path) -> ModelConfig:
    """The model configuration a checkpoint records (ours) or implies (a plain or
    Pytorch_Retinaface state dict), without building the model."""
    return _state_and_config(read_checkpoint(path), path, None)[1]


def load_model(
    path: str | Path, config: ModelConfig | None = None, device: str | torch.device = "cpu"
) -> LoadedCheckpoint:
    """Build the model a checkpoint describes and load its weights.

    ``config`` overrides what the checkpoint says (e.g. a preset with a Poly-NL
    block on top of a plain RetinaFace checkpoint: the block's parameters are then
    missing from the file, start as an identity, and are listed in
    ``LoadedCheckpoint.initialised``).  Any other missing, unexpected or mis-shaped
    key raises :class:`CheckpointMismatchError`.
    """
    from .models.retinaface import RetinaFace

    state, saved, source, extra = _state_and_config(read_checkpoint(path), path, config)
    config = config or saved
    model = RetinaFace(config)
    initialised = _load_state(model, state, path, looks_like=describe(state))
    if initialised:
        from .models.attention import ResidualAttention

        if isinstance(model.attention, ResidualAttention):
            how = "started as an identity (zero-initialised output branch), so the outputs are the checkpoint's"
        else:
            how = f"freshly initialised; a {config.attention} block is not an identity, so it changes the outputs"
        log.warning("%s: the %s block is not in the checkpoint; %s", path, config.attention, how)
    model.to(device).eval()
    return LoadedCheckpoint(model, config, source, initialised, extra)


def _load_state(model: nn.Module, state: dict[str, Any], path: str | Path, looks_like: str) -> list[str]:
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shape_errors = [
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    # A block the checkpoint lacks is fine when it starts as an identity: the attention block.
    tolerated = [k for k in missing if k.startswith("attention.")]
    real_missing = [k for k in missing if k not in tolerated]
    if real_missing or unexpected or shape_errors:
        raise CheckpointMismatchError(path, real_missing, unexpected, looks_like, shape_errors)
    model.load_state_dict(state, strict=False)
    return ["attention"] if tolerated else []


def save_checkpoint(path: str | Path, model: nn.Module, config: ModelConfig, **extra: Any) -> Path:
    """Write ``{format, version, config, model, **extra}`` atomically (temporary file, then rename)."""
    path = Path(path)
    module = model.module if hasattr(model, "module") else model
    payload = {"format": FORMAT, "version": VERSION, "config": config.to_dict(), "model": module.state_dict(), **extra}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path
