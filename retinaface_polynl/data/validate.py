"""Training labels checked as they are read: boxes that cannot be faces are dropped, and said so.

A face box (or an ignore region) is dropped when

* its width or height is not positive (``x2 <= x1`` or ``y2 <= y1``, e.g. ``w = 0`` in WIDER's
  ``x y w h``), or a coordinate is not a finite number;
* it lies wholly outside its image (no pixel of the box inside ``[0, width] x [0, height]``).
  A box partly outside is kept as it is: faces cut by the border are real faces, and the
  augmentation clips every box to the crop it draws.

Each annotation file gets *one* warning, naming it and the lines of the dropped boxes (or the
image, for layouts without lines: the XML ones and FDDB's derived boxes), however many boxes it
drops: a long training log shows a bad label file once, not once per face or per epoch.
The image size is read from the file's header (Pillow), not by decoding it; an image that
cannot be opened is left to the training's own check (a missing one stops the run, naming it).
"""
from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path

import numpy as np

from .records import ImageRecord

log = logging.getLogger(__name__)

SHOWN = 5  # dropped boxes listed in a warning; the rest are counted


def image_size(path: str | Path) -> tuple[int, int] | None:
    """``(width, height)`` as :func:`~retinaface_polynl.media.read_image` decodes the file (EXIF
    orientation applied), from its header; ``None`` when it cannot be opened."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow comes with matplotlib, a dependency
        import cv2

        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        return None if image is None else (image.shape[1], image.shape[0])
    try:
        with Image.open(path) as im:
            w, h = im.size
            turned = im.getexif().get(0x0112, 1) in (5, 6, 7, 8)  # EXIF orientation: a quarter turn
    except (OSError, ValueError, SyntaxError):
        return None
    return (h, w) if turned else (w, h)


def bad_box_mask(boxes: np.ndarray, size: tuple[int, int] | None) -> tuple[np.ndarray, list[str]]:
    """Which of ``boxes`` (x1 y1 x2 y2) to drop, and why (see the module docstring)."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    finite = np.isfinite(b).all(1)
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    empty = ~finite | ~(w > 0) | ~(h > 0)
    outside = np.zeros(len(b), bool)
    if size is not None:
        W, H = size
        outside = ~empty & ((b[:, 2] <= 0) | (b[:, 3] <= 0) | (b[:, 0] >= W) | (b[:, 1] >= H))
    why = ["non-positive width or height" if e else f"outside the {size[0]}x{size[1]} image" if o else ""
           for e, o in zip(empty, outside)]
    return empty | outside, why


REGIONS = {"ignore": "ignore region", "negatives": "negative region"}  # a record's regions, and their names in warnings


def drop_bad_boxes(records: list[ImageRecord], source: str | Path | None = None,
                   check_images: bool = True) -> list[ImageRecord]:
    """``records`` without the boxes, ignore regions and negative regions that cannot be faces (outside
    their image, or of non-positive size), with one warning per annotation file (a record's own
    ``source`` first, else ``source``) naming it and the lines."""
    dropped: dict[str, list[str]] = defaultdict(list)
    counts: dict[str, int] = defaultdict(int)
    for r in records:
        if not len(r.boxes) and not any(len(getattr(r, attr)) for attr in REGIONS):
            continue
        size = image_size(r.path) if check_images else None
        bad, why = bad_box_mask(r.boxes, size)
        regions = {attr: bad_box_mask(getattr(r, attr), size) for attr in REGIONS}
        if not bad.any() and not any(m.any() for m, _ in regions.values()):
            continue
        where = str(r.source or source or "the annotations")
        for i in np.flatnonzero(bad):
            at = f"line {int(r.lines[i])}" if r.lines is not None else r.path.name
            dropped[where].append(f"{at} ({r.path.name}: box {np.round(r.boxes[i], 1).tolist()}, {why[i]})")
        counts[where] += int(bad.sum())
        for attr, (bad_region, why_region) in regions.items():
            boxes = getattr(r, attr)
            for i in np.flatnonzero(bad_region):
                dropped[where].append(f"{r.path.name}: {REGIONS[attr]} {np.round(boxes[i], 1).tolist()}, {why_region[i]}")
            counts[where] += int(bad_region.sum())
            setattr(r, attr, boxes[~bad_region])
        keep = ~bad
        r.boxes, r.landmarks, r.has_landmarks = r.boxes[keep], r.landmarks[keep], r.has_landmarks[keep]
        if r.lines is not None:
            r.lines = r.lines[keep]
    for where, items in dropped.items():
        more = f"; and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
        log.warning("%s: dropped %d box(es) that cannot be faces (outside the image or with non-positive width or "
                    "height): %s%s", where, counts[where], "; ".join(items[:SHOWN]), more)
    return records
