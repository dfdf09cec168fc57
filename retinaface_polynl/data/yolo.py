"""YOLO text labels: one ``.txt`` per image, one face a line, coordinates normalised to 0-1.

The layout Ultralytics' YOLO and yolov5-face train on, and the one many public face sets are
converted to (WIDER FACE among them)::

    dataset/images/train/0_Parade_Parade_0_1014.jpg
    dataset/labels/train/0_Parade_Parade_0_1014.txt     0 0.124 0.527 0.0098 0.0164
                                                         class  cx  cy  w  h  [x1 y1 ... x5 y5]

Each line is ``class cx cy w h``, the box's centre and size as fractions of the image's width
and height, optionally followed by yolov5-face's five landmarks (left eye, right eye, nose,
left and right mouth corner; ``x y`` fractions, ``-1`` where a face has none). Every class is
read as a face: a face set has one. ``--labels`` names the folder of ``.txt`` files; the images
are the files of the same name in the folder whose path has ``images`` where the labels' has
``labels`` (YOLO's own rule), or in ``--images``. An image without a label file has no faces
and is not read (YOLO's background images need a label file, empty, to be listed here).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..media import IMAGE_EXTENSIONS
from .records import ImageRecord
from .validate import image_size

log = logging.getLogger(__name__)


def _yolo_numbers(line: str) -> list[float] | None:
    parts = line.split()
    if len(parts) not in (5, 15):
        return None
    try:
        return [float(v) for v in parts]
    except ValueError:
        return None


def is_yolo_folder(path: Path) -> bool:
    """Whether ``path`` is a folder of YOLO label files: ``.txt`` files whose first non-empty lines
    hold 5 (or 15) numbers, the first an integer class, the next four in [0, 1]."""
    files = sorted(path.glob("*.txt"))[:20]
    if not files:
        return False
    seen = 0
    for f in files:
        for line in f.read_text(encoding="utf-8", errors="replace").splitlines():
            if not line.strip():
                continue
            v = _yolo_numbers(line)
            if v is None or v[0] != int(v[0]) or not all(0.0 <= x <= 1.0 for x in v[1:5]):
                return False
            seen += 1
            break
    return seen > 0


def images_folder(labels: Path) -> Path:
    """YOLO's rule: the last ``labels`` component of the path becomes ``images``."""
    parts = list(labels.parts)
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "labels":
            parts[i] = "images"
            return Path(*parts)
    raise ValueError(f"{labels}: no 'labels' folder in the path to replace by 'images'; give --images")


def _images_by_stem(folder: Path) -> dict[str, Path]:
    """The folder's image files (any extension OpenCV reads, any case) by file name without it; of two
    with one name (``a.jpg``, ``a.png``) the first in sorted order."""
    found: dict[str, Path] = {}
    if folder.is_dir():
        for f in sorted(folder.iterdir()):
            if f.suffix.lower() in IMAGE_EXTENSIONS and f.is_file():
                found.setdefault(f.stem, f)
    return found


def read_yolo(labels: str | Path, images: str | Path | None = None) -> list[ImageRecord]:
    """Every label file of the folder ``labels`` with its image -> records in pixels.

    Lines that are not 5 or 15 numbers are skipped with one warning per file naming them; a
    label file without its image is skipped with one warning for all of them."""
    labels = Path(labels)
    root = Path(images) if images else images_folder(labels)
    images = _images_by_stem(root)
    records, missing = [], []
    for f in sorted(labels.glob("*.txt")):
        image = images.get(f.stem)
        if image is None:
            missing.append(f.name)
            continue
        size = image_size(image)
        if size is None:
            missing.append(f.name)
            continue
        w, h = size
        rows, lines, bad = [], [], []
        for n, line in enumerate(f.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if not line.strip():
                continue
            v = _yolo_numbers(line)
            if v is None:
                bad.append(n)
                continue
            rows.append(v)
            lines.append(n)
        if bad:
            log.warning("%s: lines %s are not 'class cx cy w h [10 landmark values]'; skipped", f,
                        ", ".join(map(str, bad[:5])) + (f" and {len(bad) - 5} more" if len(bad) > 5 else ""))
        arr = np.asarray(rows, np.float64).reshape(-1, len(rows[0]) if rows else 5)
        scale = np.array([w, h], np.float64)
        centre, extent = arr[:, 1:3] * scale, arr[:, 3:5] * scale
        boxes = np.concatenate([centre - extent / 2, centre + extent / 2], axis=1)
        landmarks = np.zeros((len(arr), 5, 2), np.float64)
        has = np.zeros(len(arr), bool)
        if arr.shape[1] == 15:
            points = arr[:, 5:15].reshape(-1, 5, 2)
            has = (points >= 0).all(axis=(1, 2))
            landmarks[has] = points[has] * scale
        records.append(ImageRecord(image, boxes, landmarks, has, None, f, np.asarray(lines, np.int64)))
    if missing:
        log.warning("%s: %d label files have no readable image in %s (e.g. %s); skipped", labels, len(missing),
                    root, ", ".join(missing[:3]))
    return records
