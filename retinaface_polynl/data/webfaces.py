"""Caltech 10,000 Web Faces: four points a face (eyes, nose, mouth centre), no boxes.

``landmarks.txt``: one face a line, ``picNNNNN.jpg lex ley rex rey nx ny mx my``
(left eye, right eye, nose, mouth centre in pixels; "left" is the image's left,
as in our landmarks).  Images are in ``images/`` beside the file.

Boxes (:func:`face_boxes_from_points`).  With ``e`` the eyes' midpoint, ``m``
the mouth centre and ``s = |m - e|`` (the eye-to-mouth distance, which changes
little when the head turns, unlike the eye distance), a RetinaFace-style box is
``WEBFACES_WIDTH_SCALE * s`` wide and ``WEBFACES_HEIGHT_SCALE * s`` tall, centred
at ``e + WEBFACES_CENTRE_SHIFT * (m - e)`` across and down.  The three numbers
were measured by ``scripts/make_crowd_labels.py --fit``: medians over the 4,060 Web
Faces faces that the WIDER-trained RetinaFace-MobileNet-0.25 also finds (score >= 0.8,
its nose within a quarter of ``s`` of the annotated nose): 2.05, 2.67, 0.27.

Landmarks.  The eyes and the nose are the annotation's.  Our fifth and fourth
points are the mouth *corners*, which the set does not give: they are placed on
the line through the mouth centre parallel to the eyes, at
``WEBFACES_MOUTH_HALF_WIDTH`` eye distances either side (also measured against
the teacher's mouth corners).  The mouth centre itself is used only for that and
for the box.

Incomplete annotation.  In group photos the back rows often carry no points, so
an unannotated face there is not background: training adds the teachers' faces
or ignore regions (``scripts/make_crowd_labels.py``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .records import ImageRecord

# measured by scripts/make_crowd_labels.py --fit (see the module docstring)
WEBFACES_WIDTH_SCALE = 2.05
WEBFACES_HEIGHT_SCALE = 2.67
WEBFACES_CENTRE_SHIFT = 0.27
WEBFACES_MOUTH_HALF_WIDTH = 0.42


def is_webfaces_file(path: Path, head: str) -> bool:
    """Lines of an image name and exactly eight numbers."""
    for line in head.splitlines()[:5]:
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 9 or "." not in parts[0]:
            return False
        try:
            [float(v) for v in parts[1:]]
        except ValueError:
            return False
    return any(ln.strip() for ln in head.splitlines())


def face_boxes_from_points(points: np.ndarray, width_scale: float = WEBFACES_WIDTH_SCALE,
                           height_scale: float = WEBFACES_HEIGHT_SCALE,
                           centre_shift: float = WEBFACES_CENTRE_SHIFT) -> np.ndarray:
    """(N, 4, 2) left eye, right eye, nose, mouth centre -> (N, 4) boxes xyxy (see the module docstring)."""
    p = np.asarray(points, np.float32).reshape(-1, 4, 2)
    eyes = (p[:, 0] + p[:, 1]) / 2
    down = p[:, 3] - eyes
    s = np.linalg.norm(down, axis=1)
    centre = eyes + centre_shift * down
    hw, hh = width_scale * s / 2, height_scale * s / 2
    return np.stack([centre[:, 0] - hw, centre[:, 1] - hh, centre[:, 0] + hw, centre[:, 1] + hh], axis=1)


def five_landmarks_from_points(points: np.ndarray, mouth_half_width: float = WEBFACES_MOUTH_HALF_WIDTH) -> np.ndarray:
    """(N, 4, 2) -> (N, 5, 2): eyes and nose as given, mouth corners beside the mouth centre
    along the eye direction, ``mouth_half_width`` eye distances either side."""
    p = np.asarray(points, np.float32).reshape(-1, 4, 2)
    across = p[:, 1] - p[:, 0]  # left eye -> right eye
    offset = mouth_half_width * across
    return np.stack([p[:, 0], p[:, 1], p[:, 2], p[:, 3] - offset, p[:, 3] + offset], axis=1)


def read_webfaces_points(path: str | Path, lines: dict[str, list[int]] | None = None) -> dict[str, np.ndarray]:
    """``landmarks.txt`` -> {image name: (N, 4, 2) points}, in file order (``lines``, if given, receives
    each face's line number, image by image)."""
    path = Path(path)
    faces: dict[str, list] = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 9:
                raise ValueError(f"{path}:{number}: expected an image name and 8 numbers, got {len(parts)} fields")
            try:
                values = [float(v) for v in parts[1:]]
            except ValueError:
                raise ValueError(f"{path}:{number}: non-numeric point in {line.strip()!r}") from None
            faces.setdefault(parts[0], []).append(values)
            if lines is not None:
                lines.setdefault(parts[0], []).append(number)
    return {name: np.asarray(v, np.float32).reshape(-1, 4, 2) for name, v in faces.items()}


def read_webfaces(labels: str | Path, images: str | Path | None = None) -> list[ImageRecord]:
    """``landmarks.txt`` -> records with derived boxes and five landmarks per face."""
    labels = Path(labels)
    root = Path(images) if images else labels.parent / "images"
    records, lines = [], {}
    for name, points in read_webfaces_points(labels, lines).items():
        records.append(ImageRecord.from_boxes(root / name, face_boxes_from_points(points),
                                              five_landmarks_from_points(points), source=labels, lines=lines[name]))
    return records
