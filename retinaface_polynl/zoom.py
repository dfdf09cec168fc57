"""Small-face zoom: a second, enlarged pass for pictures whose first pass finds small faces.

A detector is reliable over a range of face sizes; below it, faces are found late or not
at all, and enlarging the picture moves them into the range.  Enlarging every picture
costs every picture (a VGA webcam frame at 2x is 4x the work) and loses the largest
faces, which leave the anchors' range.  So the picture is enlarged only when the first
pass says it holds small faces (the idea of scale-aware face detection, Hao et al.,
CVPR 2017, which predicts the faces' scales before choosing the input scale):

    first pass at the input rule's scale s
    -> any face scoring >= ``score`` shorter than ``below`` network-input pixels?
       no:  the first pass is the answer
       yes: second pass at ``factor`` * s (long side <= ``max_size``); its faces, plus
            the first pass's faces at least ``keep_above`` input pixels tall (which the
            enlarged picture may push past the largest anchors), merged by NMS

The rule the shipped weights record (``inference["zoom"]``) was chosen on the validation
sets (faces_mask val, widerface_val_dev, ShanghaiTech, FDDB fold 8): see
docs/benchmarks.md "Small-face zoom".  Plain functions over :class:`Detections`; the
:class:`~retinaface_polynl.detector.Detector` runs the passes.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torchvision.ops import nms

from .pipeline import Detections

__all__ = ["ZoomRule", "merge_zoom", "needs_zoom", "resolve_zoom", "zoom_scale"]


@dataclass(frozen=True)
class ZoomRule:
    """When and how far a picture is enlarged for a second pass.

    Attributes:
        below: a face shorter than this, in network-input pixels of the first pass,
            calls for the second pass.
        score: only faces scoring at least this count as found (independent of the
            caller's threshold, so a low evaluation threshold does not zoom on noise).
        factor: the second pass's scale, as a multiple of the first pass's.
        max_size: cap on the second pass's long side (memory and time guard).
        keep_above: first-pass faces at least this tall (input pixels) are kept, since
            the second pass may enlarge them past the largest anchors.
    """

    below: float = 48.0
    score: float = 0.5
    factor: float = 2.0
    max_size: int = 2048
    keep_above: float = 128.0

    def __post_init__(self) -> None:
        if not self.below > 0 or not self.keep_above > 0:
            raise ValueError(f"zoom below and keep_above must be positive pixel sizes, got {self.below}, {self.keep_above}")
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"zoom score must be between 0 and 1, got {self.score}")
        if not self.factor > 1.0:
            raise ValueError(f"zoom factor must be greater than 1, got {self.factor}")
        if int(self.max_size) != self.max_size or self.max_size < 32:
            raise ValueError(f"zoom max_size must be a whole number of pixels >= 32, got {self.max_size}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, hint: dict[str, Any]) -> "ZoomRule":
        known = set(cls.__dataclass_fields__)
        unknown = set(hint) - known
        if unknown:
            raise ValueError(f"unknown zoom setting(s) {sorted(unknown)}; known: {sorted(known)}")
        return cls(**hint)

    def describe(self) -> str:
        """``zoom x2 when a face is under 48 px``, for summaries."""
        return f"zoom x{self.factor:g} when a face is under {self.below:g} px"


def resolve_zoom(zoom: "bool | str | ZoomRule | dict | None", recorded: "ZoomRule | None") -> "ZoomRule | None":
    """A caller's ``zoom`` against the rule a checkpoint records: ``None``/"auto" -> the
    recorded rule (``None`` if it records none); ``False``/"off" -> no zoom; ``True``/"on" ->
    the recorded rule, else the default :class:`ZoomRule`; a rule or a dict -> that rule."""
    if zoom is None or (isinstance(zoom, str) and zoom.strip().lower() == "auto"):
        return recorded
    if isinstance(zoom, str):
        key = zoom.strip().lower()
        if key == "off":
            return None
        if key == "on":
            return recorded or ZoomRule()
        raise ValueError(f"zoom must be auto, on or off, got {zoom!r}")
    if isinstance(zoom, bool):
        return (recorded or ZoomRule()) if zoom else None
    if isinstance(zoom, ZoomRule):
        return zoom
    if isinstance(zoom, dict):
        return ZoomRule.from_dict(zoom)
    raise TypeError(f"zoom must be None, a bool, 'auto'/'on'/'off', a ZoomRule or a dict, got {type(zoom).__name__}")


def needs_zoom(det: Detections, scale: float, rule: ZoomRule) -> bool:
    """Whether a first pass (``det`` in original pixels, run at ``scale``) found a face
    scoring at least ``rule.score`` shorter than ``rule.below`` input pixels."""
    found = det.scores >= rule.score
    if not found.any():
        return False
    heights = (det.boxes[found, 3] - det.boxes[found, 1]) * scale
    return bool((heights < rule.below).any())


def zoom_scale(height: int, width: int, scale: float, rule: ZoomRule,
               max_hw: tuple[int, int] | None = None) -> float | None:
    """The second pass's scale for a picture of ``height`` x ``width`` first run at ``scale``:
    ``rule.factor`` times it, capped so the long side stays within ``rule.max_size`` (and,
    with ``max_hw``, the network input within (H, W): a TensorRT engine's profile);
    ``None`` when the caps leave no enlargement worth a pass (under 1.1x the first)."""
    second = min(scale * rule.factor, rule.max_size / max(height, width))
    if max_hw is not None:
        second = min(second, max_hw[0] / height, max_hw[1] / width)
    return second if second >= 1.1 * scale else None


def merge_zoom(first: Detections, second: Detections, first_scale: float, rule: ZoomRule,
               nms_threshold: float, max_detections: int) -> Detections:
    """The second pass's faces plus the first pass's large ones (``rule.keep_above`` input
    pixels or taller), merged by NMS (both in original pixels); scores descending."""
    large = (first.boxes[:, 3] - first.boxes[:, 1]) * first_scale >= rule.keep_above
    boxes = np.concatenate([second.boxes, first.boxes[large]])
    scores = np.concatenate([second.scores, first.scores[large]])
    landmarks = np.concatenate([second.landmarks, first.landmarks[large]])
    if not len(scores):
        return Detections.empty()
    keep = nms(torch.from_numpy(boxes).float(), torch.from_numpy(scores).float(), nms_threshold)[:max_detections].numpy()
    return Detections(boxes[keep], scores[keep], landmarks[keep])
