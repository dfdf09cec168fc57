"""One annotated training image: the common currency of every annotation reader.

Every reader in this package (WIDER ``label.txt`` and ``bbx_gt.txt``, FDDB,
dlib's imglab XML, the generic JSON/CSV layout) returns a list of
:class:`ImageRecord`; the dataset and the augmentation only ever see these.

Conventions (those of :mod:`retinaface_polynl.anchors`):
    * boxes are ``(x1, y1, x2, y2)`` in the image's pixels, ``x2 = x + w``;
    * landmarks are ``(N, 5, 2)``: left eye, right eye, nose, left and right
      mouth corners, "left" meaning the image's left;
    * ``ignore`` boxes mark regions that hold faces the annotation does not
      give (the unannotated back rows of a group photo, a face a teacher is
      unsure of): anchors there are neither positives nor negatives;
    * ``negatives`` boxes mark regions known to hold no face (a hand, a fist, lettering
      that a detector mistook for one, confirmed by people or by stronger detectors):
      anchors there are background and always among the taught negatives;
    * a face without landmarks has ``has_landmarks[i] = False`` (its landmark
      values are zeros and never read), never a magic ``-1`` label;
    * ``source`` and ``lines`` say where the faces were read (the annotation file,
      each face's line in it), for the warnings of :mod:`.validate`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

NUM_LANDMARKS = 5


@dataclass
class ImageRecord:
    """An image file and its faces.

    Attributes:
        path: the image file.
        boxes: (N, 4) float32 ``x1, y1, x2, y2``.
        landmarks: (N, 5, 2) float32 pixel coordinates (zeros where absent).
        has_landmarks: (N,) bool, whether face ``i`` has landmarks.
        ignore: (M, 4) float32 ``x1, y1, x2, y2`` regions neither face nor background.
        negatives: (K, 4) float32 ``x1, y1, x2, y2`` regions known to be background.
        source: the annotation file the record was read from (``None``: unknown).
        lines: (N,) int, the line of each face in ``source`` (``None``: not known; an
            entry of a JSON layout gives every face its entry's line).
    """

    path: Path
    boxes: np.ndarray
    landmarks: np.ndarray
    has_landmarks: np.ndarray
    ignore: np.ndarray | None = None
    source: Path | None = None
    lines: np.ndarray | None = None
    negatives: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self.boxes = np.asarray(self.boxes, np.float32).reshape(-1, 4)
        n = len(self.boxes)
        self.landmarks = np.asarray(self.landmarks, np.float32).reshape(n, NUM_LANDMARKS, 2)
        self.has_landmarks = np.asarray(self.has_landmarks, bool).reshape(n)
        self.ignore = np.asarray([] if self.ignore is None else self.ignore, np.float32).reshape(-1, 4)
        self.negatives = np.asarray([] if self.negatives is None else self.negatives, np.float32).reshape(-1, 4)
        if self.source is not None:
            self.source = Path(self.source)
        if self.lines is not None:
            self.lines = np.asarray(self.lines, np.int64).reshape(n)

    @classmethod
    def from_boxes(cls, path: str | Path, boxes, landmarks=None, has_landmarks=None, ignore=None, source=None,
                   lines=None, negatives=None) -> "ImageRecord":
        """A record from boxes, with optional landmarks (all faces, or flagged per face), ignore regions,
        where it was read (``source`` file, each face's ``lines``) and negative regions."""
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        n = len(boxes)
        if landmarks is None:
            landmarks = np.zeros((n, NUM_LANDMARKS, 2), np.float32)
            has_landmarks = np.zeros(n, bool)
        elif has_landmarks is None:
            has_landmarks = np.ones(n, bool)
        return cls(Path(path), boxes, landmarks, has_landmarks, ignore, source, lines, negatives)

    def __len__(self) -> int:
        return len(self.boxes)


def valid_box_mask(boxes: np.ndarray, min_size: float = 1.0) -> np.ndarray:
    """Boxes whose width and height are both at least ``min_size`` pixels."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    return ((boxes[:, 2] - boxes[:, 0]) >= min_size) & ((boxes[:, 3] - boxes[:, 1]) >= min_size)


def too_small_mask(boxes: np.ndarray, min_size: float) -> np.ndarray:
    """Boxes with a positive width and height of which one is under ``min_size`` pixels (a reader's
    own size floor; boxes of non-positive size are :mod:`.validate`'s, dropped with a warning)."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return (w > 0) & (h > 0) & ((w < min_size) | (h < min_size))


def summarize(records: list[ImageRecord]) -> str:
    """``"N images, M faces (K with landmarks)"``."""
    faces = sum(len(r) for r in records)
    with_lm = sum(int(r.has_landmarks.sum()) for r in records)
    return f"{len(records)} images, {faces} faces ({with_lm} with landmarks)"
