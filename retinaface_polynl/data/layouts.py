"""``--labels`` accepts any supported annotation layout: this module tells them apart
by their content (not their name) and dispatches to the right reader.

=====================  ==========================================================
layout                 recognised by
=====================  ==========================================================
``retinaface``         text whose first line starts with ``#`` (RetinaFace label.txt)
``wider``              a path line, a count line, then 10 numbers per face
``fddb``               a path line, a count line, then 6 numbers per face (ellipses);
                       a folder holding ``FDDB-fold-*-ellipseList.txt``; an
                       ``FDDB-fold-XX.txt`` name list; or the ``faces_fddb`` folder
``fddb_json``          JSON whose entries carry ``ellipses`` (faces_fddb/annotations.json)
``dlib``               XML (imglab ``<dataset>``)
``voc``                PASCAL VOC XML (``<annotation>``), a folder of them, or a
                       list of names beside an ``annotations/`` folder (faces_mask)
``webfaces``           lines of an image name and 8 numbers (Caltech Web Faces
                       ``landmarks.txt``: eyes, nose, mouth centre)
``json``               any other JSON (the generic layout, see :mod:`.generic`)
``csv``                comma-separated text with an ``image`` header column
``yolo``               a folder of ``.txt`` files of ``class cx cy w h`` lines, 0-1
                       (YOLO / yolov5-face labels, see :mod:`.yolo`)
=====================  ==========================================================
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from .dlib_xml import read_dlib_xml
from .fddb import read_fddb_annotations_json, read_fddb_folds
from .generic import read_generic_csv, read_generic_json
from .records import ImageRecord, summarize
from .validate import drop_bad_boxes
from .voc import is_voc_name_list, is_voc_xml, read_voc
from .webfaces import is_webfaces_file, read_webfaces
from .wider import read_retinaface_labels, read_wider_bbx_gt
from .yolo import is_yolo_folder, read_yolo

log = logging.getLogger(__name__)

LAYOUTS = ("retinaface", "wider", "fddb", "fddb_json", "dlib", "voc", "webfaces", "json", "csv", "yolo")


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def detect_layout(path: str | Path) -> str:
    """The annotation layout of ``path`` (one of :data:`LAYOUTS`), from its content."""
    path = Path(path)
    if path.is_dir():
        if any(path.glob("FDDB-fold-*-ellipseList.txt")):
            return "fddb"
        if (path / "annotations.json").is_file():
            return detect_layout(path / "annotations.json")
        if (path / "FDDB-folds").is_dir():
            return "fddb"
        first_xml = next(iter(sorted(path.glob("*.xml"))), None)
        if first_xml is not None and is_voc_xml(first_xml):
            return "voc"
        if is_yolo_folder(path):
            return "yolo"
        raise ValueError(f"{path}: a folder, but neither FDDB-folds, a faces_fddb folder, VOC XML files nor "
                         "YOLO label files")
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    with open(path, encoding="utf-8", errors="replace") as f:
        head = f.read(65536)
    text = head.lstrip("\ufeff").lstrip()
    if not text:
        raise ValueError(f"{path}: empty annotation file")
    if text.startswith("<"):
        return "voc" if is_voc_xml(path) else "dlib"
    if text[0] in "[{":
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and data and all(isinstance(v, dict) and "ellipses" in v for v in list(data.values())[:5]):
            return "fddb_json"
        return "json"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if lines[0].startswith("#"):
        return "retinaface"
    if is_webfaces_file(path, text):
        return "webfaces"
    if len(lines[0].split()) == 1 and is_voc_name_list(path):
        return "voc"
    if "," in lines[0] and "image" in [c.strip() for c in lines[0].split(",")]:
        return "csv"
    if len(lines) >= 3 and lines[1].isdigit():
        count = int(lines[1])
        numbers = lines[2].split()
        if all(_is_number(v) for v in numbers):
            if len(numbers) >= 10:
                return "wider"
            if len(numbers) == 6 or (count > 0 and len(numbers) == 5):
                return "fddb"
    if not _is_number(lines[0].split()[0]) and not path.name.endswith("-ellipseList.txt"):
        sibling = path.with_name(path.stem + "-ellipseList.txt")
        if sibling.is_file():
            return "fddb"
    raise ValueError(
        f"{path}: unrecognised annotation layout; expected RetinaFace label.txt, wider_face_*_bbx_gt.txt, "
        "FDDB folds/annotations.json, dlib XML, VOC XML (or a name list beside annotations/), Web Faces "
        "landmarks.txt, or the generic JSON/CSV (see retinaface_polynl.data.generic)"
    )


def load_annotations(
    labels: str | Path,
    images: str | Path | None = None,
    folds=None,
    layout: str | None = None,
    min_size: float = 1.0,
    check: bool = True,
) -> list[ImageRecord]:
    """Read any supported layout into records.

    Args:
        labels: the annotation file (or FDDB folder).
        images: the image root; defaults depend on the layout (WIDER needs it;
            FDDB uses ``originalPics`` beside the annotations; the others the
            annotation file's folder).
        folds: FDDB fold selection (``"1-7"``, ``"1,3"``, a list); ignored otherwise.
        layout: force a layout instead of detecting it.
        min_size: WIDER boxes smaller than this (pixels) are dropped.
        check: drop the boxes and ignore regions that cannot be faces (outside their image, or of
            non-positive width or height) with one warning per annotation file naming its lines
            (:mod:`.validate`; the image sizes come from the files' headers).
    """
    labels = Path(labels)
    if labels.is_dir() and not any(labels.glob("FDDB-fold-*-ellipseList.txt")):
        if (labels / "annotations.json").is_file():  # the faces_fddb folder
            labels = labels / "annotations.json"
        elif (labels / "FDDB-folds").is_dir():
            labels = labels / "FDDB-folds"
    layout = layout or detect_layout(labels)
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    if layout in ("retinaface", "wider"):
        root = Path(images) if images else labels.parent / "images"
        if layout == "retinaface":
            records = read_retinaface_labels(labels, root, min_size=min_size)
        else:
            records = read_wider_bbx_gt(labels, root, min_size=min_size)
    elif layout == "fddb":
        records = read_fddb_folds(labels, images, folds)
    elif layout == "fddb_json":
        records = read_fddb_annotations_json(labels, images, folds)
    elif layout == "dlib":
        records = read_dlib_xml(labels, images)
    elif layout == "voc":
        records = read_voc(labels, images)
    elif layout == "webfaces":
        records = read_webfaces(labels, images)
    elif layout == "json":
        records = read_generic_json(labels, images)
    elif layout == "yolo":
        records = read_yolo(labels, images)
    else:
        records = read_generic_csv(labels, images)
    if not records:
        raise ValueError(f"{labels}: no images found in the annotations (layout {layout})")
    if check:
        records = drop_bad_boxes(records, labels)
    log.info("%s (%s): %s", labels, layout, summarize(records))
    return records
