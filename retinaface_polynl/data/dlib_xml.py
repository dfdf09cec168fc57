"""dlib's imglab XML (``<box top left width height>``, optional 68 ``<part>`` points).

With the iBUG 68-point scheme (``*_with_face_landmarks.xml``) the five
RetinaFace landmarks are: left eye = mean of points 36-41, right eye = mean of
42-47, nose tip = 30, mouth corners = 48 and 54 (points 36-41 and 48 lie on
the image's left).  Boxes marked ``ignore='1'`` are dropped.  dlib's boxes are
square and tight (brows to chin), a little smaller than RetinaFace-style boxes;
``box_scale`` optionally enlarges them about their centre.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from .records import ImageRecord

IBUG68_TO_FIVE = ((36, 37, 38, 39, 40, 41), (42, 43, 44, 45, 46, 47), (30,), (48,), (54,))


def five_from_68(points: np.ndarray) -> np.ndarray:
    """(68, 2) iBUG points -> (5, 2) RetinaFace landmarks."""
    return np.stack([points[list(group)].mean(axis=0) for group in IBUG68_TO_FIVE]).astype(np.float32)


def read_dlib_xml(xml_file: str | Path, images_dir: str | Path | None = None, box_scale: float = 1.0) -> list[ImageRecord]:
    """imglab XML -> records; ``images_dir`` defaults to the XML's folder."""
    xml_file = Path(xml_file)
    images_dir = Path(images_dir) if images_dir else xml_file.parent
    root = ET.parse(xml_file).getroot()
    records = []
    for image in root.iter("image"):
        boxes, landmarks, has = [], [], []
        for box in image.iter("box"):
            if box.get("ignore") == "1":
                continue
            top, left = float(box.get("top")), float(box.get("left"))
            w, h = float(box.get("width")), float(box.get("height"))
            cx, cy = left + w / 2, top + h / 2
            w, h = w * box_scale, h * box_scale
            boxes.append([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
            parts = {int(p.get("name")): (float(p.get("x")), float(p.get("y"))) for p in box.iter("part")}
            if len(parts) >= 68:
                pts = np.asarray([parts[i] for i in range(68)], np.float32)
                landmarks.append(five_from_68(pts))
                has.append(True)
            else:
                landmarks.append(np.zeros((5, 2), np.float32))
                has.append(False)
        records.append(ImageRecord(images_dir / image.get("file"), np.asarray(boxes, np.float32).reshape(-1, 4),
                                   np.asarray(landmarks, np.float32).reshape(-1, 5, 2), np.asarray(has, bool)))
    return records
