"""Training configuration: a typed, validated dataclass with per-preset defaults.

The model architecture is the preset's :class:`~retinaface_polynl.presets.ModelConfig`;
everything about *how* it is trained lives here (optimiser, schedule, batch,
resolution, loss weights, augmentation, checkpointing).  A ``TrainConfig`` is
saved into every checkpoint and as ``config.json`` in the output folder.

Per-preset defaults follow the RetinaFace recipes (Pytorch_Retinaface's
``cfg_mnet`` / ``cfg_re50``: SGD lr 1e-3, momentum 0.9, weight decay 5e-4,
batch 32 at 640 px for 250 epochs with steps at 190/220 for the light models;
batch 24 at 840 px for 100 epochs with steps at 70/90 for ResNet-50), with a
linear warm-up; the loss weights are RetinaFace's (box 2, class 1, landmark 1).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..presets import dataclass_from_dict

SCHEDULES = ("step", "cosine")
CLS_LOSSES = ("ohem", "focal")  # the classification losses of ``loss.MultiBoxLoss``


@dataclass
class TrainConfig:
    """How one detector is trained.  ``batch_size`` is per process (the global batch is
    ``batch_size * world_size``); ``epochs`` is ignored when ``max_iters`` is set."""

    preset: str = "r18x025_polynl"
    attention_stage: str | None = None  # override the preset's stage (res3/res4/res5)
    # schedule
    epochs: int = 250
    max_iters: int | None = None
    batch_size: int = 32
    image_size: int = 640
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "step"
    milestones: tuple[float, ...] = (190, 220)  # epochs (fractions allowed)
    gamma: float = 0.1
    min_lr_ratio: float = 0.0  # cosine: final lr / lr
    warmup_epochs: float = 1.0
    warmup_iters: int | None = None  # overrides warmup_epochs
    warmup_factor: float = 0.001
    grad_clip: float | None = None  # max gradient norm
    amp: bool = True  # mixed precision, CUDA only
    sync_bn: bool = False
    freeze_bn: bool = False  # BatchNorm layers in eval mode (running statistics frozen)
    freeze_epochs: int = 0  # train only the attention block and the heads for these first epochs
    # loss
    box_weight: float = 2.0
    class_weight: float = 1.0
    landmark_weight: float = 1.0
    iou_threshold: float = 0.35
    neg_pos_ratio: float = 3.0
    # "ohem": cross-entropy over positives and neg_pos_ratio hard negatives; "focal": RetinaNet's
    # focal loss over every anchor not ignored (``loss.MultiBoxLoss``)
    cls_loss: str = "ohem"
    # weight of the background anchors' classification terms, the positives' being 1: the shipped
    # student's loss is three quarters positives (docs/training.md)
    negative_weight: float = 1.0
    # score distillation from a teacher with the same anchors (``.distill``); None: off
    distill_teacher: str | None = None
    distill_weight: float = 1.0
    distill_temperature: float = 1.0
    # True: no distillation on anchors matched to an annotated face, where the label stands
    # (``distill.distillation_loss``'s ``exclude``)
    distill_skip_faces: bool = False
    # True: on those anchors, distil only where the teacher scores the face higher than the
    # student (the teacher may raise a labelled face, never hold it down; ``raise_only``)
    distill_raise_faces: bool = False
    # on anchors not matched to a face, the teacher may lift the student's face score only where
    # its own is at least this (``distillation_loss``'s ``raise_min``); 0: everywhere
    distill_raise_min: float = 0.0
    # weight of the teacher's feature imitation (``distill.FeatureImitation``); 0: off
    distill_features: float = 0.0
    # augmentation
    crop_scales: tuple[float, ...] = (0.3, 0.45, 0.6, 0.8, 1.0)
    distort: bool = True
    mirror_prob: float = 0.5
    expand_prob: float = 0.0  # zoom out (SSD "expand") before the crop, for small faces
    expand_ratio: float = 2.0
    small_face_prob: float = 0.0  # data-anchor sampling towards small faces (``data.augment.small_face_crop``)
    small_face_range: tuple[float, float] = (6.0, 40.0)  # longer side of the drawn face, px at image_size
    # lower-quality copies (``data.augment.degrade``): shrunk by up to degrade_max and enlarged back
    degrade_prob: float = 0.0
    degrade_max: float = 3.0
    # tilted heads (``data.augment.rotate``, up to rotate_max degrees either way) and motion blur
    # (``data.augment.motion_blur``, a line of 3 to motion_blur_max pixels at image_size)
    rotate_prob: float = 0.0
    rotate_max: float = 30.0
    motion_blur_prob: float = 0.0
    motion_blur_max: float = 9.0
    # faces partly hidden (``data.augment.occlude``: sunglasses, hands, hats, hair, other heads),
    # each face of 16 px or more with this probability
    occlude_prob: float = 0.0
    min_face_size: float = 2.0
    # several training sets at once (``--labels`` given more than once): their draw weights
    # (empty: in proportion to their sizes) and the draws per epoch (None: all their images)
    mix: tuple[float, ...] = ()
    epoch_size: int | None = None
    # runtime
    workers: int = 4
    seed: int = 0
    deterministic: bool = False
    save_every: int = 0  # iterations between checkpoints; 0: at each epoch's end
    keep_checkpoints: int = 3
    log_every: int = 10
    val_every: int = 1  # epochs
    val_size: int | None = None  # short side at validation (None: original size)
    val_max_size: int | None = 1024

    def __post_init__(self) -> None:
        self.milestones = tuple(float(m) for m in self.milestones)
        self.crop_scales = tuple(float(s) for s in self.crop_scales)
        self.small_face_range = tuple(float(s) for s in self.small_face_range)
        self.mix = tuple(float(m) for m in self.mix)
        self.validate()

    def validate(self) -> None:
        from ..presets import get_preset

        get_preset(self.preset)  # raises ValueError on an unknown preset
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; choose {' or '.join(SCHEDULES)}")
        for name in ("epochs", "batch_size", "image_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.image_size < 32:
            raise ValueError(f"image_size must be at least 32 (the coarsest stride), got {self.image_size}")
        if self.max_iters is not None and self.max_iters <= 0:
            raise ValueError(f"max_iters must be positive, got {self.max_iters}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")
        if any(not 0 < s <= 1 for s in self.crop_scales):
            raise ValueError(f"crop scales must lie in (0, 1], got {self.crop_scales}")
        if not 0 <= self.mirror_prob <= 1:
            raise ValueError(f"mirror_prob must lie in [0, 1], got {self.mirror_prob}")
        if not 0 <= self.expand_prob <= 1 or self.expand_ratio < 1:
            raise ValueError(f"expand_prob must lie in [0, 1] and expand_ratio be >= 1, got {self.expand_prob}, {self.expand_ratio}")
        if self.distill_weight < 0 or self.distill_temperature <= 0:
            raise ValueError(f"distill_weight must be >= 0 and distill_temperature > 0, got {self.distill_weight}, "
                             f"{self.distill_temperature}")
        if not 0 <= self.distill_raise_min <= 1:
            raise ValueError(f"distill_raise_min is a probability in [0, 1], got {self.distill_raise_min}")
        if self.distill_raise_min and not self.distill_teacher:
            raise ValueError("distill_raise_min limits a teacher's distillation: give the teacher (--distill TEACHER)")
        if self.distill_features < 0:
            raise ValueError(f"distill_features must be >= 0, got {self.distill_features}")
        if self.distill_features and not self.distill_teacher:
            raise ValueError("distill_features imitates a teacher's features: give the teacher (--distill TEACHER)")
        if self.distill_skip_faces and self.distill_raise_faces:
            raise ValueError("distill_skip_faces and distill_raise_faces exclude each other (skip: no distillation "
                             "on labelled faces; raise: only where the teacher scores them higher)")
        if not 0 <= self.small_face_prob <= 1:
            raise ValueError(f"small_face_prob must lie in [0, 1], got {self.small_face_prob}")
        lo_hi = self.small_face_range
        if len(lo_hi) != 2 or not 1 <= lo_hi[0] <= lo_hi[1] or (self.small_face_prob > 0 and lo_hi[1] >= self.image_size):
            raise ValueError(f"small_face_range must be two sizes 1 <= lo <= hi (and hi < image_size when "
                             f"small_face_prob > 0), got {lo_hi}")
        if not 0 <= self.degrade_prob <= 1 or self.degrade_max < 1:
            raise ValueError(f"degrade_prob must lie in [0, 1] and degrade_max be >= 1, got {self.degrade_prob}, "
                             f"{self.degrade_max}")
        if not 0 <= self.rotate_prob <= 1 or not 0 <= self.rotate_max <= 180:
            raise ValueError(f"rotate_prob must lie in [0, 1] and rotate_max in [0, 180] degrees, got "
                             f"{self.rotate_prob}, {self.rotate_max}")
        if not 0 <= self.motion_blur_prob <= 1 or self.motion_blur_max < 3:
            raise ValueError(f"motion_blur_prob must lie in [0, 1] and motion_blur_max be >= 3 px, got "
                             f"{self.motion_blur_prob}, {self.motion_blur_max}")
        if not 0 <= self.occlude_prob <= 1:
            raise ValueError(f"occlude_prob must lie in [0, 1], got {self.occlude_prob}")
        if self.cls_loss not in CLS_LOSSES:
            raise ValueError(f"cls_loss must be one of {CLS_LOSSES}, got {self.cls_loss!r}")
        if not self.negative_weight > 0:
            raise ValueError(f"negative_weight must be positive, got {self.negative_weight}")
        if not self.neg_pos_ratio > 0:
            raise ValueError(f"neg_pos_ratio must be positive (hard negatives per positive anchor), got {self.neg_pos_ratio}")
        if any(m < 0 for m in self.mix) or (self.mix and not sum(self.mix) > 0):
            raise ValueError(f"mix weights must be >= 0 with a positive sum, got {self.mix}")
        if self.epoch_size is not None and self.epoch_size <= 0:
            raise ValueError(f"epoch_size must be positive, got {self.epoch_size}")
        if self.keep_checkpoints < 1:
            raise ValueError("keep_checkpoints must be at least 1")

    def model_config(self):
        """The preset's ModelConfig, with this run's overrides."""
        from ..presets import get_preset

        overrides = {"attention_stage": self.attention_stage} if self.attention_stage else {}
        return get_preset(self.preset, **overrides)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["milestones"] = list(self.milestones)
        d["crop_scales"] = list(self.crop_scales)
        d["small_face_range"] = list(self.small_face_range)
        d["mix"] = list(self.mix)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        return dataclass_from_dict(cls, d, "training configuration")

    def replace(self, **overrides: Any) -> "TrainConfig":
        return dataclasses.replace(self, **overrides)

    def write_json(self, path: str | Path, **extra: Any) -> None:
        Path(path).write_text(json.dumps({**self.to_dict(), **extra}, indent=2) + "\n", encoding="utf-8")


def default_train_config(preset: str, **overrides: Any) -> TrainConfig:
    """Sensible defaults for ``preset`` (ResNet-50 recipe for ``r50*``, the light recipe
    otherwise), with any field overridden."""
    if preset.startswith("r50"):
        base = dict(epochs=100, batch_size=24, image_size=840, milestones=(70, 90), lr=1e-3)
    else:
        base = dict(epochs=250, batch_size=32, image_size=640, milestones=(190, 220), lr=1e-3)
    base.update(overrides)
    return TrainConfig(preset=preset, **base)
