"""The shared steps between an image and its detections, below everything that uses them.

    image (BGR uint8) -> resize_scale / preprocess (resize, minus BGR_MEAN, CHW float32)
    -> pad_batch (zero = mean colour, to a multiple of STRIDE) -> [a backend: the network]
    -> postprocess (score threshold, top-k, NMS: :mod:`retinaface_polynl.boxes`) -> scale_back (original-image pixels)
    -> Detections

``Detector`` (:mod:`retinaface_polynl.detector`), test-time augmentation
(:mod:`retinaface_polynl.tta`), training and validation (:mod:`retinaface_polynl.data`,
:mod:`retinaface_polynl.train`) and export calibration (:mod:`retinaface_polynl.export`)
all import these from here; this module imports none of them, so data flows one way.
"""
from __future__ import annotations

import operator
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np

from .boxes import nms

__all__ = [
    "BGR_MEAN",
    "STRIDE",
    "Detections",
    "Face",
    "InputRule",
    "hint_rule",
    "merge_nms",
    "pad_batch",
    "postprocess",
    "preprocess",
    "resize_scale",
    "scale_back",
]

BGR_MEAN = (104.0, 117.0, 123.0)
STRIDE = 32  # the coarsest pyramid stride: batches are padded to a multiple of it


class Face(NamedTuple):
    """One face of a :class:`Detections`: ``box`` (4,) ``x1, y1, x2, y2``, ``score``,
    ``landmarks`` (5, 2), in the image's pixels."""

    box: np.ndarray
    score: float
    landmarks: np.ndarray


@dataclass
class Detections:
    """Faces found in one image, in that image's pixels.

    Attributes:
        boxes: (N, 4) float32 ``x1, y1, x2, y2``.
        scores: (N,) float32 face probability, descending.
        landmarks: (N, 5, 2) float32: left eye, right eye, nose, left and right
            mouth corners (left/right as seen in the image).
    """

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray

    @classmethod
    def empty(cls) -> "Detections":
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0, 5, 2), np.float32))

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def __getitem__(self, i: int) -> Face:
        """The ``i``-th face (scores descending) as a :class:`Face`; :meth:`select` takes masks and index arrays."""
        try:
            i = operator.index(i)
        except TypeError:
            raise TypeError(f"a face index must be an integer, got {type(i).__name__}; "
                            "use .select(mask_or_indices) for several faces") from None
        return Face(self.boxes[i], float(self.scores[i]), self.landmarks[i])

    def __iter__(self) -> Iterator[Face]:
        """``for face in detections``: each :class:`Face`, best first."""
        return (self[i] for i in range(len(self)))

    def select(self, keep: np.ndarray) -> "Detections":
        """The faces picked by a boolean mask or index array, e.g. ``d.select(d.scores >= 0.8)``."""
        return Detections(self.boxes[keep], self.scores[keep], self.landmarks[keep])

    def to_dict(self) -> dict[str, list]:
        """Plain Python: ``{"boxes": [[x1, y1, x2, y2], ...], "scores": [...], "landmarks": [[[x, y] x5], ...]}``."""
        return {
            "boxes": np.round(self.boxes.astype(float), 2).tolist(),
            "scores": np.round(self.scores.astype(float), 5).tolist(),
            "landmarks": np.round(self.landmarks.astype(float), 2).tolist(),
        }

    def to_xywh(self) -> np.ndarray:
        """Boxes as ``x, y, w, h`` (the WIDER FACE submission layout)."""
        b = self.boxes.copy()
        b[:, 2:] -= b[:, :2]
        return b

    def align(self, image: np.ndarray, size: int = 112) -> np.ndarray:
        """Aligned face crops (N, size, size, 3) of ``image`` (the picture these faces were found
        in): the five landmarks mapped onto the ArcFace template, see :mod:`retinaface_polynl.align`."""
        from .align import align_faces

        return align_faces(image, self.landmarks, size)


class InputRule(NamedTuple):
    """How big a picture enters the network: the one input-size policy, used by ``Detector``,
    test-time augmentation, the small-face zoom and export checks alike.

    ``size``: the short side in pixels (with ``upscale_only``, a floor: smaller pictures are
    enlarged to it, larger ones keep their size); ``max_size``: a cap on the long side (it wins
    over ``size``); both ``None``: the original size.  A tuple ``(size, max_size,
    upscale_only)``, so it unpacks and compares as the tuple it replaced.
    """

    size: int | None = None
    max_size: int | None = None
    upscale_only: bool = False

    @classmethod
    def from_hint(cls, inference: dict | None) -> "InputRule":
        """A checkpoint's ``inference`` hint: ``{"min_size": S, "max_size": N}`` is a floor (smaller
        pictures enlarged to a short side of S, larger ones kept), ``{"size": S, "max_size": N}`` the
        short side exactly; no hint, the original size."""
        hint = inference or {}
        if hint.get("min_size") is not None:
            return cls(hint["min_size"], hint.get("max_size"), True)
        return cls(hint.get("size"), hint.get("max_size"), False)

    def scale(self, height: int, width: int, limit: int | None = None) -> float:
        """The resize factor for a picture of ``height`` x ``width``; ``limit``: a safety cap on
        the long side that applies only when the rule sets no ``max_size`` (``Detector.size_limit``)."""
        scale = resize_scale(height, width, self.size, self.max_size, self.upscale_only)
        if self.max_size is None and limit is not None and max(height, width) * scale > limit:
            scale = limit / max(height, width)
        return scale

    def exceeds(self, height: int, width: int, limit: int | None) -> bool:
        """Whether the safety ``limit`` shrinks this picture below what the rule alone asks."""
        return self.scale(height, width, limit) < self.scale(height, width)

    def describe(self) -> str:
        """The rule in words, for summaries: ``short side at least 480, long side <= 1024``."""
        if self.size is None and self.max_size is None:
            return "original size"
        parts = []
        if self.size is not None:
            parts.append(f"short side {'at least ' if self.upscale_only else ''}{self.size}")
        if self.max_size is not None:
            parts.append(f"long side <= {self.max_size}")
        return ", ".join(parts)


def hint_rule(inference: dict | None) -> InputRule:
    """A checkpoint's ``inference`` hint as ``(short side, long-side cap, upscale_only)``:
    :meth:`InputRule.from_hint`."""
    return InputRule.from_hint(inference)


def resize_scale(height: int, width: int, size: int | None, max_size: int | None,
                 upscale_only: bool = False) -> float:
    """Scale factor that brings the short side to ``size`` and keeps the long side <= ``max_size``.

    ``upscale_only``: ``size`` is a floor, not a target: a picture whose short side is
    already ``size`` or more keeps its own size (still capped by ``max_size``)."""
    scale = 1.0
    if size is not None:
        scale = size / min(height, width)
        if upscale_only:
            scale = max(scale, 1.0)
    if max_size is not None and max(height, width) * scale > max_size:
        scale = max_size / max(height, width)
    return scale


def preprocess(image_bgr: np.ndarray, scale: float = 1.0, multiple: int | None = None) -> np.ndarray:
    """BGR uint8 (H, W, 3) -> float32 (3, H', W'), resized by ``scale``, minus the BGR mean.

    ``multiple``: also pad the result with zeros (the mean colour) at the bottom and right to
    sides that are multiples of it, as :func:`pad_batch` would, without a second copy."""
    if scale != 1.0:
        h, w = image_bgr.shape[:2]
        new = (max(1, round(w * scale)), max(1, round(h * scale)))
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        image_bgr = cv2.resize(image_bgr, new, interpolation=interp)
    # One pass per channel, straight from HWC uint8 into CHW float32 (about 6x faster at
    # VGA than converting, subtracting and transposing as three whole-image steps).  When no
    # padding is needed, OpenCV splits the channels and subtracts into the output planes
    # (0.8 ms at VGA against numpy's 1.2 ms on strided channels; the same numbers).
    h, w = image_bgr.shape[:2]
    ph, pw = (-(-h // multiple) * multiple, -(-w // multiple) * multiple) if multiple else (h, w)
    if (ph, pw) == (h, w) and image_bgr.ndim == 3 and image_bgr.shape[2] == 3:
        x = np.empty((3, h, w), np.float32)
        for c, channel in enumerate(cv2.split(image_bgr)):
            cv2.subtract(channel, BGR_MEAN[c], dst=x[c], dtype=cv2.CV_32F)
        return x
    x = np.zeros((3, ph, pw), np.float32)
    for c, mean in enumerate(BGR_MEAN):
        np.subtract(image_bgr[:, :, c], np.float32(mean), out=x[c, :h, :w], dtype=np.float32)
    return x


def pad_batch(arrays: Sequence[np.ndarray], multiple: int = STRIDE) -> np.ndarray:
    """Stack (3, h, w) arrays into (B, 3, H, W), zero-padded (i.e. mean-coloured) at the bottom/right.
    One array whose sides are already multiples of ``multiple`` comes back as a view, uncopied."""
    h = max(a.shape[1] for a in arrays)
    w = max(a.shape[2] for a in arrays)
    h, w = -(-h // multiple) * multiple, -(-w // multiple) * multiple
    if len(arrays) == 1 and arrays[0].shape[1:] == (h, w):
        return arrays[0][None]
    out = np.zeros((len(arrays), 3, h, w), np.float32)
    for i, a in enumerate(arrays):
        out[i, :, : a.shape[1], : a.shape[2]] = a
    return out


def postprocess(
    boxes: np.ndarray,
    scores: np.ndarray,
    landmarks: np.ndarray,
    threshold: float,
    nms_threshold: float,
    top_k: int,
    max_detections: int,
) -> Detections:
    """One image's decoded anchors (numpy: boxes (A, 4), scores (A,), landmarks (A, 5, 2), input
    pixels) -> thresholded, NMS-ed detections, scores descending."""
    keep = np.flatnonzero(scores > threshold)
    boxes, scores, landmarks = boxes[keep], scores[keep], landmarks[keep]
    if scores.shape[0] > top_k:
        order = np.argsort(-scores, kind="stable")[:top_k]
        boxes, scores, landmarks = boxes[order], scores[order], landmarks[order]
    keep = nms(boxes, scores, nms_threshold)[:max_detections]
    return Detections(
        np.asarray(boxes[keep], np.float32), np.asarray(scores[keep], np.float32), np.asarray(landmarks[keep], np.float32)
    )


def merge_nms(parts: Sequence[Detections], nms_threshold: float, max_detections: int) -> Detections:
    """Several sets of faces of one picture (the same pixels) -> one, by NMS, scores descending
    (test-time views merged without voting, the small-face zoom's two passes).  A single
    non-empty set is returned as it is: it has been through NMS already."""
    parts = [d for d in parts if len(d)]
    if not parts:
        return Detections.empty()
    if len(parts) == 1:
        return parts[0]
    boxes = np.concatenate([d.boxes for d in parts])
    scores = np.concatenate([d.scores for d in parts])
    landmarks = np.concatenate([d.landmarks for d in parts])
    keep = nms(boxes.astype(np.float32), scores.astype(np.float32), nms_threshold)[:max_detections]
    return Detections(boxes[keep], scores[keep], landmarks[keep])


def scale_back(det: Detections, scale: float, height: int, width: int) -> Detections:
    """Input-pixel detections -> original-image pixels (boxes clipped to the image)."""
    boxes = det.boxes / scale
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, width)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, height)
    return Detections(boxes.astype(np.float32), det.scores, (det.landmarks / scale).astype(np.float32))
