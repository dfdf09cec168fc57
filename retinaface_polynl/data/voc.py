"""PASCAL VOC XML boxes (``<annotation><object><bndbox>``), e.g. the face-mask crowd set.

``--labels`` takes one VOC ``.xml`` file, a folder of them, or a text file of
image names (one a line, no extension: ``faces_mask/train.txt``) beside an
``annotations/`` folder of ``NAME.xml`` and an ``images/`` folder.  Every
``<object>`` is a face whatever its ``<name>`` (the mask set's three classes
``con_mascarilla``, ``sin_mascarilla``, ``mascarilla_mal_puesta`` are all faces);
an object marked ``<difficult>1</difficult>`` becomes an ignore region.

Box convention.  VOC boxes are whatever their annotators drew.  The mask set's
are tight around the visible head *with the mask and chin*: they sit lower on
the face than RetinaFace-style boxes (brows to chin).  :func:`voc_to_face_box`
maps them by the rule measured with ``scripts/make_crowd_labels.py --fit`` against the
WIDER-trained RetinaFace-MobileNet-0.25 (score >= 0.8, IoU >= 0.4) on the faces of
20 px and more of ``train.txt`` (the validation split is never looked at):
keep the centre-x, scale the width by :data:`MASK_WIDTH_SCALE`, the height by
:data:`MASK_HEIGHT_SCALE`, and move the centre up by :data:`MASK_CENTRE_SHIFT`
box heights (medians over 1,605 matched faces: 0.956, 1.091, 0.147; the boxes as
drawn overlap the teacher's at a median IoU of 0.68).  ``box_rule=None`` keeps the
boxes as drawn.
"""
from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from .records import ImageRecord

log = logging.getLogger(__name__)

# measured on faces_mask/train.txt by scripts/make_crowd_labels.py --fit (median of matched pairs)
MASK_WIDTH_SCALE = 0.96
MASK_HEIGHT_SCALE = 1.09
MASK_CENTRE_SHIFT = 0.15
MASK_RULE = (MASK_WIDTH_SCALE, MASK_HEIGHT_SCALE, MASK_CENTRE_SHIFT)


def voc_to_face_box(boxes, width_scale: float, height_scale: float, centre_shift: float) -> np.ndarray:
    """(N, 4) boxes -> RetinaFace-style boxes: centre-x kept, width x ``width_scale``, height x
    ``height_scale``, centre moved up by ``centre_shift`` of the input box's height."""
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    cx = (b[:, 0] + b[:, 2]) / 2
    cy = (b[:, 1] + b[:, 3]) / 2 - centre_shift * h
    hw, hh = w * width_scale / 2, h * height_scale / 2
    return np.stack([cx - hw, cy - hh, cx + hw, cy + hh], axis=1)


def is_voc_xml(path: Path) -> bool:
    """Whether ``path`` is a VOC annotation (root element ``<annotation>``)."""
    try:
        for _, elem in ET.iterparse(path, events=("start",)):
            return elem.tag == "annotation"
    except ET.ParseError:
        return False
    return False


def read_voc_xml(xml_file: Path, images_dir: Path | None = None, box_rule=MASK_RULE) -> ImageRecord:
    """One VOC file -> its record; the image is ``images_dir / <filename>`` (default: an
    ``images`` folder beside the XML's folder, else the XML's own folder)."""
    try:
        root = ET.parse(xml_file).getroot()
    except ET.ParseError as exc:
        raise ValueError(f"{xml_file}: not valid XML ({exc})") from None
    name = (root.findtext("filename") or "").strip()
    if not name:
        raise ValueError(f"{xml_file}: no <filename>")
    if images_dir is None:
        beside = xml_file.parent.parent / "images"
        images_dir = beside if (beside / name).exists() else xml_file.parent
    boxes, ignore = [], []
    for obj in root.iter("object"):
        bb = obj.find("bndbox")
        if bb is None:
            continue
        try:
            box = [float(bb.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")]
        except (TypeError, ValueError):
            raise ValueError(f"{xml_file}: an <object> with a non-numeric <bndbox>") from None
        (ignore if (obj.findtext("difficult") or "0").strip() == "1" else boxes).append(box)
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    ignore = np.asarray(ignore, np.float32).reshape(-1, 4)
    if box_rule is not None:
        boxes, ignore = voc_to_face_box(boxes, *box_rule), voc_to_face_box(ignore, *box_rule)
    return ImageRecord.from_boxes(Path(images_dir) / name, boxes, ignore=ignore, source=xml_file)


def is_voc_name_list(path: Path) -> bool:
    """A text file of bare names with an ``annotations/`` folder of ``NAME.xml`` beside it."""
    folder = path.parent / "annotations"
    if not folder.is_dir():
        return False
    with open(path, encoding="utf-8", errors="replace") as f:
        first = next((ln.strip() for ln in f if ln.strip()), "")
    return bool(first) and (folder / f"{Path(first).stem}.xml").is_file()


def read_voc(labels: str | Path, images: str | Path | None = None, box_rule=MASK_RULE) -> list[ImageRecord]:
    """A VOC file, a folder of them, or a name list beside ``annotations/`` -> records."""
    labels = Path(labels)
    images_dir = Path(images) if images else None
    if labels.is_dir():
        files = sorted(labels.glob("*.xml"))
    elif labels.suffix.lower() == ".xml":
        files = [labels]
    else:
        names = [ln.strip() for ln in labels.read_text(encoding="utf-8").splitlines() if ln.strip()]
        files = [labels.parent / "annotations" / f"{Path(n).stem}.xml" for n in names]
        if images_dir is None and (labels.parent / "images").is_dir():
            images_dir = labels.parent / "images"
        missing = [f for f in files if not f.is_file()]
        if missing:
            raise FileNotFoundError(f"{labels}: {len(missing)} listed annotations not found, e.g. {missing[0]}")
    return [read_voc_xml(f, images_dir, box_rule) for f in files]
