"""FDDB: fold lists, ellipse annotations, and ellipse -> RetinaFace-style boxes.

FDDB annotates each face with an ellipse ``(major_radius, minor_radius,
angle, centre_x, centre_y)`` that runs from the top of the forehead to the chin.
A box detector trained on WIDER FACE (RetinaFace-style boxes: brows or upper
forehead to chin, about 1.34 times as tall as wide) should not be taught
FDDB's taller boxes, so we derive its boxes in two documented steps:

1. :func:`ellipse_bounding_box`: the ellipse's exact axis-aligned bounding box,
   half-width ``sqrt(a^2 cos^2 t + b^2 sin^2 t)``, half-height
   ``sqrt(a^2 sin^2 t + b^2 cos^2 t)`` (this is ``boxes_xyxy`` in
   ``faces_fddb/annotations.json``);
2. :func:`face_box_from_ellipse_box`: keep the centre-x, scale the width by
   ``width_scale``, move the top down by ``top_trim`` and the bottom up by
   ``bottom_trim`` (fractions of the ellipse box's height).

The defaults (``top_trim=0.16, bottom_trim=0.03, width_scale=0.90``) were
*measured*, not guessed: we ran a RetinaFace trained on WIDER FACE
(Pytorch_Retinaface MobileNet-0.25, score >= 0.8) on the first 400 FDDB images
of this folder, matched its boxes to the ellipse boxes (IoU >= 0.4, 686 faces)
and took the median of each relation: the detector's top edge sits 15.9% of
the ellipse-box height below the ellipse's top (quartiles 12-20%), its bottom
2.8% above the chin, its width is 0.90 of the ellipse box's, and its centre-x
agrees to 0.1% of the width.  The derived boxes have the aspect of WIDER boxes
(about 1.33).  Use ``top_trim=bottom_trim=0, width_scale=1`` for the exact
ellipse boxes.

Images listed in a fold but absent from ``originalPics`` are skipped with a
warning (77 of FDDB's 2,845 are missing in this copy).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from .records import ImageRecord, valid_box_mask

log = logging.getLogger(__name__)

FDDB_TOP_TRIM = 0.16
FDDB_BOTTOM_TRIM = 0.03
FDDB_WIDTH_SCALE = 0.90


def ellipse_bounding_box(ellipses) -> np.ndarray:
    """(N, 5) ``major_radius, minor_radius, angle(rad), cx, cy`` -> (N, 4) exact bounding boxes xyxy."""
    e = np.asarray(ellipses, np.float64).reshape(-1, 5)
    a, b, t, cx, cy = e.T
    hw = np.sqrt((a * np.cos(t)) ** 2 + (b * np.sin(t)) ** 2)
    hh = np.sqrt((a * np.sin(t)) ** 2 + (b * np.cos(t)) ** 2)
    return np.stack([cx - hw, cy - hh, cx + hw, cy + hh], axis=1).astype(np.float32)


def face_box_from_ellipse_box(
    boxes,
    top_trim: float = FDDB_TOP_TRIM,
    bottom_trim: float = FDDB_BOTTOM_TRIM,
    width_scale: float = FDDB_WIDTH_SCALE,
) -> np.ndarray:
    """Forehead-to-chin ellipse boxes (N, 4) -> RetinaFace-style boxes (N, 4).

    The centre-x is kept and the width multiplied by ``width_scale``; the top
    moves down by ``top_trim`` and the bottom up by ``bottom_trim``, both as
    fractions of the input box's height.  See the module docstring for how the
    defaults were measured.
    """
    if not (0 <= top_trim and 0 <= bottom_trim and top_trim + bottom_trim < 1 and width_scale > 0):
        raise ValueError("need top_trim, bottom_trim >= 0 with top_trim + bottom_trim < 1, and width_scale > 0")
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    cx = (b[:, 0] + b[:, 2]) / 2
    half_w = (b[:, 2] - b[:, 0]) * width_scale / 2
    h = b[:, 3] - b[:, 1]
    return np.stack([cx - half_w, b[:, 1] + top_trim * h, cx + half_w, b[:, 3] - bottom_trim * h], axis=1)


def ellipse_to_face_box(ellipses, **kwargs) -> np.ndarray:
    """FDDB ellipses (N, 5) -> RetinaFace-style boxes (N, 4); ``kwargs`` go to :func:`face_box_from_ellipse_box`."""
    return face_box_from_ellipse_box(ellipse_bounding_box(ellipses), **kwargs)


def parse_folds(spec: str | int | list[int] | None) -> list[int] | None:
    """``"1-7"``, ``"1,3,5-7"``, ``3`` or a list -> sorted fold numbers; ``None``/``"all"`` -> None."""
    if spec is None or spec == "all":
        return None
    if isinstance(spec, int):
        return [spec]
    if isinstance(spec, (list, tuple)):
        return sorted({int(s) for s in spec})
    folds: set[int] = set()
    for part in str(spec).split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            lo, hi = (int(p) for p in part.split("-", 1))
            if lo > hi:
                raise ValueError(f"bad fold range {part!r}")
            folds.update(range(lo, hi + 1))
        else:
            folds.add(int(part))
    if not folds or min(folds) < 1 or max(folds) > 10:
        raise ValueError(f"folds must be numbers 1-10, e.g. '1-7' or '1,3,5'; got {spec!r}")
    return sorted(folds)


def _records(images_dir: Path, ellipses_by_name, box_kwargs: dict, source) -> list[ImageRecord]:
    """(image name, (N, 5) ellipses) pairs -> records of the images that exist, with
    one warning naming ``source`` for those that do not."""
    records, missing = [], 0
    for name, ellipses in ellipses_by_name:
        path = images_dir / f"{name}.jpg"
        if not path.is_file():
            missing += 1
            continue
        ellipse_boxes = ellipse_bounding_box(ellipses)
        boxes = face_box_from_ellipse_box(ellipse_boxes, **box_kwargs) if len(ellipse_boxes) else ellipse_boxes
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        records.append(ImageRecord.from_boxes(path, boxes[valid_box_mask(boxes)]))
    if missing:
        log.warning("%s: %d listed image(s) not found under %s; skipped", source, missing, images_dir)
    return records


def read_fddb_annotations_json(
    json_file: str | Path, images_dir: str | Path | None = None, folds=None, **box_kwargs
) -> list[ImageRecord]:
    """``faces_fddb/annotations.json`` -> records of the chosen ``folds`` (all when None).

    ``images_dir`` defaults to the ``originalPics`` folder beside the JSON file.
    """
    json_file = Path(json_file)
    images_dir = Path(images_dir) if images_dir else json_file.parent / "originalPics"
    wanted = parse_folds(folds)
    data = json.loads(json_file.read_text(encoding="utf-8"))
    selected = (
        (name, np.asarray(entry.get("ellipses", []), np.float32).reshape(-1, 5))
        for name, entry in data.items()
        if wanted is None or int(entry.get("fold", 0)) in wanted
    )
    return _records(images_dir, selected, box_kwargs, json_file)


def read_fddb_ellipse_list(ellipse_file: str | Path) -> dict[str, np.ndarray]:
    """An ``FDDB-fold-XX-ellipseList.txt`` -> {image name: (N, 5) ellipses}."""
    lines = [ln.strip() for ln in open(ellipse_file, encoding="utf-8") if ln.strip()]
    out: dict[str, np.ndarray] = {}
    i = 0
    while i < len(lines):
        name, count = lines[i], int(lines[i + 1])
        rows = [[float(v) for v in ln.split()[:5]] for ln in lines[i + 2 : i + 2 + count]]
        out[name] = np.asarray(rows, np.float32).reshape(-1, 5)
        i += 2 + count
    return out


def fddb_fold_files(folder: str | Path, folds=None) -> list[Path]:
    """The ``FDDB-fold-XX-ellipseList.txt`` files of ``folder`` for the chosen folds."""
    folder = Path(folder)
    wanted = parse_folds(folds)
    files = sorted(folder.glob("FDDB-fold-*-ellipseList.txt"))
    if wanted is not None:
        files = [f for f in files if int(f.name.split("-")[2]) in wanted]
    if not files:
        raise FileNotFoundError(f"no FDDB-fold-XX-ellipseList.txt files for folds {folds} in {folder}")
    return files


def read_fddb_folds(
    path: str | Path, images_dir: str | Path | None = None, folds=None, **box_kwargs
) -> list[ImageRecord]:
    """FDDB fold files -> records.

    ``path`` is an ``FDDB-folds`` folder (``folds`` selects which), one
    ``-ellipseList.txt`` file, or a plain ``FDDB-fold-XX.txt`` name list (its
    ``-ellipseList.txt`` sibling is read).  ``images_dir`` defaults to
    ``originalPics`` beside the folds folder.
    """
    path = Path(path)
    if path.is_dir():
        files = fddb_fold_files(path, folds)
        folder = path
    else:
        if not path.name.endswith("-ellipseList.txt"):
            path = path.with_name(path.stem + "-ellipseList.txt")
        files, folder = [path], path.parent
    images_dir = Path(images_dir) if images_dir else folder.parent / "originalPics"
    pairs = (pair for f in files for pair in read_fddb_ellipse_list(f).items())
    return _records(images_dir, pairs, box_kwargs, path)


