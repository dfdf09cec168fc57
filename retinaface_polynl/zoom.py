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
       yes: the region around those small faces (their union, grown on each side by
            ``margin`` times the tallest of them; the whole picture when that would cover
            more than ``region_max`` of it, or when ``margin`` is None) runs again at
            ``factor`` * s (long side <= ``max_size``); its faces (less those cut by the
            region's inner edges), plus the first pass's faces outside the region or at
            least ``keep_above`` input pixels tall (which the enlarged picture may push past
            the largest anchors), merged by NMS

Zooming the region rather than the picture keeps the cost of one small face in a webcam frame
small (a 40 px face: a 360 px square at 2x, under twice a VGA frame's pixels, where the whole
frame at 2x is four times them).

The rule the shipped weights record (``inference["zoom"]``) was chosen on the validation
sets (faces_mask val, widerface_val_dev, ShanghaiTech, FDDB fold 8): see
docs/benchmarks.md "Small-face zoom".  Plain functions over :class:`Detections`; the
:class:`~retinaface_polynl.detector.Detector` runs the passes.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .pipeline import Detections, merge_nms

__all__ = ["ZoomRule", "cut_by_region", "merge_zoom", "needs_zoom", "resolve_zoom", "shift", "zoom_region",
           "zoom_scale"]


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
        margin: the second pass runs on the small faces' union grown on each side by this
            many times the tallest of them; ``None``: always on the whole picture.
        region_max: a region covering more than this share of the picture's area becomes
            the whole picture (a crowd: little to save, and no inner edges to cut faces).
    """

    below: float = 48.0
    score: float = 0.4
    factor: float = 2.0
    max_size: int = 2048
    keep_above: float = 128.0
    margin: float | None = 4.0
    region_max: float = 0.5

    def __post_init__(self) -> None:
        if not self.below > 0 or not self.keep_above > 0:
            raise ValueError(f"zoom below and keep_above must be positive pixel sizes, got {self.below}, {self.keep_above}")
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"zoom score must be between 0 and 1, got {self.score}")
        if not self.factor > 1.0:
            raise ValueError(f"zoom factor must be greater than 1, got {self.factor}")
        if int(self.max_size) != self.max_size or self.max_size < 32:
            raise ValueError(f"zoom max_size must be a whole number of pixels >= 32, got {self.max_size}")
        if self.margin is not None and self.margin < 0:
            raise ValueError(f"zoom margin must be >= 0 (or None: the whole picture), got {self.margin}")
        if not 0.0 <= self.region_max <= 1.0:
            raise ValueError(f"zoom region_max must be a share of the picture, 0 to 1, got {self.region_max}")

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

    def is_small(self, det: Detections, scale: float) -> np.ndarray:
        """Which faces of a first pass (original pixels, run at ``scale``) call for a zoom."""
        return (det.scores >= self.score) & ((det.boxes[:, 3] - det.boxes[:, 1]) * scale < self.below)


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
    return bool(rule.is_small(det, scale).any())


def zoom_region(det: Detections, scale: float, rule: ZoomRule, height: int, width: int) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)``, original pixels: where the second pass runs.  The union of the
    small faces grown on each side by ``rule.margin`` times the tallest of them, within the
    picture; the whole picture when ``rule.margin`` is None, when nothing is small, or when
    the region would cover more than ``rule.region_max`` of the picture."""
    whole = (0, 0, int(width), int(height))
    small = rule.is_small(det, scale)
    if rule.margin is None or not small.any():
        return whole
    boxes = det.boxes[small]
    grow = rule.margin * float((boxes[:, 3] - boxes[:, 1]).max())
    x0 = max(0, int(np.floor(boxes[:, 0].min() - grow)))
    y0 = max(0, int(np.floor(boxes[:, 1].min() - grow)))
    x1 = min(int(width), int(np.ceil(boxes[:, 2].max() + grow)))
    y1 = min(int(height), int(np.ceil(boxes[:, 3].max() + grow)))
    if x1 <= x0 or y1 <= y0 or (x1 - x0) * (y1 - y0) > rule.region_max * height * width:
        return whole
    return x0, y0, x1, y1


def shift(det: Detections, dx: float, dy: float) -> Detections:
    """Detections of a crop moved into the picture's pixels (the crop's corner at ``dx, dy``)."""
    if dx == 0 and dy == 0:
        return det
    offset = np.array([dx, dy], np.float32)
    return Detections(det.boxes + np.tile(offset, 2), det.scores, det.landmarks + offset)


def cut_by_region(det: Detections, region: tuple[int, int, int, int], height: int, width: int,
                  tolerance: float = 2.0) -> np.ndarray:
    """Which faces (picture pixels) touch an inner edge of ``region`` (an edge that is not the
    picture's own): a face the crop cut in two, which the second pass cannot be trusted on."""
    x0, y0, x1, y1 = region
    b = det.boxes
    return (((b[:, 0] <= x0 + tolerance) & (x0 > 0)) | ((b[:, 1] <= y0 + tolerance) & (y0 > 0))
            | ((b[:, 2] >= x1 - tolerance) & (x1 < width)) | ((b[:, 3] >= y1 - tolerance) & (y1 < height)))


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
               nms_threshold: float, max_detections: int,
               region: tuple[int, int, int, int] | None = None) -> Detections:
    """The second pass's faces plus the first pass's large ones (``rule.keep_above`` input
    pixels or taller) and, when the second pass ran on ``region`` only, the first pass's
    faces not wholly inside it; merged by NMS (all in original pixels); scores descending.
    ``second`` should already be without the faces the region cut (:func:`cut_by_region`)."""
    keep = (first.boxes[:, 3] - first.boxes[:, 1]) * first_scale >= rule.keep_above
    if region is not None:
        x0, y0, x1, y1 = region
        b = first.boxes
        keep |= ~((b[:, 0] >= x0) & (b[:, 1] >= y0) & (b[:, 2] <= x1) & (b[:, 3] <= y1))
    return merge_nms([second, first.select(keep)], nms_threshold, max_detections)
