"""Named model configurations.

A preset is a :class:`ModelConfig`: a small, validated, typed description of the
architecture (backbone, attention block and the stage it follows, FPN/SSH
width, anchors).  It is saved inside every checkpoint so that a ``.pth`` file is
enough to rebuild its model.  Runtime knobs (thresholds, device) are not part of
it: they are arguments of :class:`retinaface_polynl.Detector`.

The presets follow the Poly-NL paper and the RetinaFace models people know:

==================  ======================  ==================  ==============
name                backbone                attention (stage)   FPN/SSH width
==================  ======================  ==================  ==============
``r50``             ResNet-50               none                256
``r50_polynl``      ResNet-50               Poly-NL (res4)      256
``r18x025``         ResNet-18, 1/4 width    none                64
``r18x025_polynl``  ResNet-18, 1/4 width    Poly-NL (res4)      64
``mnet025``         MobileNet-0.25          none                64
==================  ======================  ==================  ==============

plus one preset per comparator block of the paper's ablations for both
ResNets (``r18x025_nonlocal``, ``r50_gc``, ...).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

BACKBONES = ("resnet50", "resnet18_x0.25", "mobilenet0.25")
STAGES = ("res3", "res4", "res5")
# names accepted by ``models.attention.build_attention`` (besides None / "none"); here, below the
# models, so that the configuration never imports the modules that build from it
ATTENTION_BLOCKS: tuple[str, ...] = ("polynl", "polynl2", "nonlocal", "gc", "se", "latentgnn", "efficientnl")


def dataclass_from_dict(cls, d: dict[str, Any], what: str):
    """``cls(**d)``, refusing keys ``cls`` does not have (a config from a newer or other tool)."""
    unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ValueError(f"unknown {what} keys: {', '.join(sorted(unknown))}")
    return cls(**d)


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of one RetinaFace detector.

    Attributes:
        name: preset name this configuration came from (informative only).
        backbone: one of :data:`BACKBONES`.
        attention: attention block name (see ``retinaface_polynl.ATTENTION_BLOCKS``)
            or ``None`` for the plain RetinaFace.
        attention_stage: backbone stage the block follows: ``res3``, ``res4``
            (the paper's choice) or ``res5``.
        attention_kwargs: extra keyword arguments for the block.
        fpn_channels: width of the FPN outputs, the SSH modules and the heads' input.
        min_sizes: anchor sizes in pixels, one tuple per pyramid level (strides 8/16/32).
        steps: pyramid strides.
        variances: box/landmark encoding variances (centre, size).
    """

    name: str = "custom"
    backbone: str = "resnet18_x0.25"
    attention: str | None = None
    attention_stage: str = "res4"
    attention_kwargs: dict[str, Any] = field(default_factory=dict)
    fpn_channels: int = 64
    min_sizes: tuple[tuple[int, ...], ...] = ((16, 32), (64, 128), (256, 512))
    steps: tuple[int, ...] = (8, 16, 32)
    variances: tuple[float, float] = (0.1, 0.2)

    def __post_init__(self) -> None:
        # Normalise containers so that configs read back from JSON/checkpoints compare equal.
        object.__setattr__(self, "min_sizes", tuple(tuple(int(s) for s in level) for level in self.min_sizes))
        object.__setattr__(self, "steps", tuple(int(s) for s in self.steps))
        object.__setattr__(self, "variances", tuple(float(v) for v in self.variances))
        object.__setattr__(self, "attention_kwargs", dict(self.attention_kwargs))
        if self.attention in ("", "none", "None"):
            object.__setattr__(self, "attention", None)
        self.validate()

    def validate(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {self.backbone!r}; choose one of {', '.join(BACKBONES)}")
        if self.attention_stage not in STAGES:
            raise ValueError(f"unknown attention stage {self.attention_stage!r}; choose one of {', '.join(STAGES)}")
        if self.attention is not None:
            if self.attention not in ATTENTION_BLOCKS:
                raise ValueError(
                    f"unknown attention block {self.attention!r}; choose one of {', '.join(ATTENTION_BLOCKS)} or none"
                )
        if len(self.min_sizes) != len(self.steps):
            raise ValueError(
                f"min_sizes has {len(self.min_sizes)} levels but steps has {len(self.steps)}; they must match"
            )
        if len({len(level) for level in self.min_sizes}) != 1:
            raise ValueError("every pyramid level needs the same number of anchors (min_sizes of equal length)")
        if self.steps != (8, 16, 32):
            raise ValueError(f"steps must be (8, 16, 32): the backbones emit strides 8/16/32, got {self.steps}")
        if self.fpn_channels <= 0 or self.fpn_channels % 4:
            raise ValueError(f"fpn_channels must be a positive multiple of 4 (SSH splits it), got {self.fpn_channels}")
        if len(self.variances) != 2 or min(self.variances) <= 0:
            raise ValueError(f"variances must be two positive numbers, got {self.variances}")

    @property
    def anchors_per_location(self) -> int:
        return len(self.min_sizes[0])

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["min_sizes"] = [list(level) for level in self.min_sizes]
        d["steps"] = list(self.steps)
        d["variances"] = list(self.variances)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        return dataclass_from_dict(cls, d, "model configuration")

    def replace(self, **overrides: Any) -> "ModelConfig":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **overrides)


def _base_presets() -> dict[str, ModelConfig]:
    r50 = ModelConfig(name="r50", backbone="resnet50", fpn_channels=256)
    r18 = ModelConfig(name="r18x025", backbone="resnet18_x0.25", fpn_channels=64)
    mnet = ModelConfig(name="mnet025", backbone="mobilenet0.25", fpn_channels=64)
    presets = {"r50": r50, "r18x025": r18, "mnet025": mnet}
    for base in (r50, r18):
        for block in ATTENTION_BLOCKS:
            name = f"{base.name}_{block}"
            presets[name] = base.replace(name=name, attention=block, attention_stage="res4")
    presets["mnet025_polynl"] = mnet.replace(name="mnet025_polynl", attention="polynl", attention_stage="res4")
    return presets


_PRESETS: dict[str, ModelConfig] | None = None


def presets() -> dict[str, ModelConfig]:
    """All named presets, by name."""
    global _PRESETS
    if _PRESETS is None:
        _PRESETS = _base_presets()
    return dict(_PRESETS)


def get_preset(name: str, **overrides: Any) -> ModelConfig:
    """The preset called ``name``, with any field overridden (e.g. ``attention_stage="res3"``)."""
    table = presets()
    if name not in table:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(sorted(table))}")
    config = table[name]
    return config.replace(**overrides) if overrides else config
