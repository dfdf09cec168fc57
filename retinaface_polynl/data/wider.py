"""WIDER FACE training annotations, in the two layouts people use.

* The RetinaFace ``label.txt`` (from the RetinaFace / Pytorch_Retinaface
  release)::

      # 0--Parade/0_Parade_marchingband_1_849.jpg
      449 330 122 149 488.906 373.643 0.0 542.089 376.442 0.0 515.031 412.83 0.0 485.174 425.893 0.0 538.357 431.491 0.0 0.82

  one ``# path`` line per image, then one line per face: ``x y w h``, five
  landmarks as ``x y flag`` and a score; landmark values are ``-1`` where the
  face has none.
* The official ``wider_face_train_bbx_gt.txt``: the image path, the number of
  faces, then ``x y w h blur expression illumination invalid occlusion pose``
  per face; a count of 0 is followed by one line of zeros.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .records import ImageRecord, too_small_mask

log = logging.getLogger(__name__)


def _records_from_faces(path: Path, faces: list[list[float]], min_size: float, source: Path | None = None,
                        lines: list[int] | None = None) -> ImageRecord:
    """One image's face rows -> its record; boxes of positive size under ``min_size`` px are dropped here,
    those of non-positive size are left to :mod:`.validate` (dropped with a warning naming the line)."""
    arr = np.asarray(faces, np.float32).reshape(-1, len(faces[0]) if faces else 4)
    boxes = arr[:, :4].copy()
    boxes[:, 2:] += boxes[:, :2]
    landmarks = np.zeros((len(arr), 5, 2), np.float32)
    has = np.zeros(len(arr), bool)
    if arr.shape[1] >= 19:
        pts = arr[:, 4:19].reshape(-1, 5, 3)
        landmarks = pts[:, :, :2].copy()
        has = (pts[:, :, :2] >= 0).all(axis=(1, 2))
        landmarks[~has] = 0
    keep = ~too_small_mask(boxes, min_size)
    line_numbers = None if lines is None else np.asarray(lines, np.int64).reshape(-1)[keep]
    return ImageRecord(path, boxes[keep], landmarks[keep], has[keep], None, source, line_numbers)


def read_retinaface_labels(label_file: str | Path, images_dir: str | Path, min_size: float = 1.0) -> list[ImageRecord]:
    """RetinaFace ``label.txt`` -> records (paths joined to ``images_dir``).

    Boxes narrower or shorter than ``min_size`` pixels are dropped.
    """
    label_file, images_dir = Path(label_file), Path(images_dir)
    records: list[ImageRecord] = []
    current: str | None = None
    faces: list[list[float]] = []
    lines: list[int] = []
    with open(label_file, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            if line.startswith("#"):
                if current is not None:
                    records.append(_records_from_faces(images_dir / current, faces, min_size, label_file, lines))
                current, faces, lines = line[1:].strip(), [], []
                continue
            if current is None:
                raise ValueError(f"{label_file}:{lineno}: face line before the first '# path' line")
            values = [float(v) for v in line.split()]
            if len(values) < 4:
                raise ValueError(f"{label_file}:{lineno}: expected 'x y w h ...', got {line!r}")
            if len(values) < 19:  # a box without the landmark fields
                values = values[:4] + [-1.0] * 15
            faces.append(values[:19])
            lines.append(lineno)
    if current is not None:
        records.append(_records_from_faces(images_dir / current, faces, min_size, label_file, lines))
    return records


def read_wider_bbx_gt(
    gt_file: str | Path, images_dir: str | Path, min_size: float = 1.0, keep_invalid: bool = False
) -> list[ImageRecord]:
    """Official ``wider_face_*_bbx_gt.txt`` -> records (no landmarks).

    Faces flagged ``invalid`` are dropped unless ``keep_invalid``; boxes smaller
    than ``min_size`` pixels are dropped.
    """
    gt_file, images_dir = Path(gt_file), Path(images_dir)
    with open(gt_file, encoding="utf-8") as f:
        numbered = [(k, ln.strip()) for k, ln in enumerate(f, 1) if ln.strip()]  # (line number, text)
    records: list[ImageRecord] = []
    i = 0
    while i < len(numbered):
        name = numbered[i][1]
        try:
            count = int(numbered[i + 1][1])
        except (IndexError, ValueError):
            raise ValueError(f"{gt_file}: expected a face count after {name!r} (line {i + 2})") from None
        face_rows = numbered[i + 2 : i + 2 + count]
        i += 2 + max(count, 1)
        faces, face_lines = [], []
        for lineno, row in face_rows:
            v = [float(x) for x in row.split()]
            if len(v) < 4:
                raise ValueError(f"{gt_file}: bad face line {row!r} for {name}")
            invalid = len(v) >= 8 and v[7] == 1
            if invalid and not keep_invalid:
                continue
            faces.append(v[:4])
            face_lines.append(lineno)
        records.append(_records_from_faces(images_dir / name, faces, min_size, gt_file, face_lines))
    return records
