"""A simple layout for your own faces: a JSON or CSV file beside a folder of images.

JSON, any of::

    [{"image": "a.jpg", "boxes": [[x1, y1, x2, y2], ...],
      "landmarks": [[[x, y] x 5], ...]}, ...]          # landmarks optional
    {"a.jpg": [[x1, y1, x2, y2], ...], ...}
    {"a.jpg": {"boxes": [...], "landmarks": [...]}, ...}

or the list form inside an object that says how the labels were made (what
``scripts/make_crowd_labels.py`` writes, one image a line)::

    {"made_by": {...}, "images": [{"image": "a.jpg", "boxes": [...]}, ...]}

An optional ``"ignore": [[x1, y1, x2, y2], ...]`` (list or dict entries) marks regions
that hold faces left unannotated: training treats anchors there as neither face nor
background.  An optional ``"negatives": [[x1, y1, x2, y2], ...]`` marks regions known to hold
no face (a hand a detector took for one): anchors there are background and always among the
negatives training teaches (``scripts/mine_negatives.py`` writes them).  A face whose landmarks
are ``null`` (or an image without a ``landmarks`` key) has no landmarks.  CSV, with a header
row, one face per row (an image with no face: one row with empty box fields)::

    image,x1,y1,x2,y2            (or image,x,y,w,h)
    a.jpg,10,20,110,140

optionally followed by ``lx1,ly1,...,lx5,ly5`` landmark columns (empty when absent).
Image paths are relative to ``--images`` (default: the annotation file's folder).
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from ..fileio import atomic_path
from .records import ImageRecord

LANDMARK_COLUMNS = tuple(f"{a}{i}" for i in range(1, 6) for a in ("lx", "ly"))


def _face_landmarks(entries, n: int) -> tuple[np.ndarray, np.ndarray]:
    lms = np.zeros((n, 5, 2), np.float32)
    has = np.zeros(n, bool)
    if entries is None:
        return lms, has
    if len(entries) != n:
        raise ValueError(f"{len(entries)} landmark entries for {n} boxes")
    for i, e in enumerate(entries):
        if e is not None:
            lms[i] = np.asarray(e, np.float32).reshape(5, 2)
            has[i] = True
    return lms, has


def _list_entry_lines(text: str, start: int) -> list[int]:
    """The line (1-based) on which each element of the JSON array opening at ``text[start]`` begins."""
    decoder = json.JSONDecoder()
    out, i = [], start + 1
    while True:
        while i < len(text) and text[i] in " \t\r\n,":
            i += 1
        if i >= len(text) or text[i] == "]":
            return out
        out.append(text.count("\n", 0, i) + 1)
        _, i = decoder.raw_decode(text, i)


def json_entry_lines(text: str, data) -> list[int] | None:
    """The line of each image entry of a generic JSON file's ``text`` (parsed as ``data``), in the
    order :func:`records_from_json_object` reads them; ``None`` when they cannot be placed."""
    try:
        if isinstance(data, list):
            return _list_entry_lines(text, text.index("["))
        if isinstance(data, dict) and is_labelled_list(data):
            key = text.index('"images"')
            return _list_entry_lines(text, text.index("[", key))
        if isinstance(data, dict):
            out, pos = [], 0
            for name in data:
                pos = text.index(json.dumps(name), pos)
                out.append(text.count("\n", 0, pos) + 1)
                pos += 1
            return out
    except ValueError:
        return None
    return None


def is_labelled_list(data) -> bool:
    """Whether ``data`` is the ``{"made_by": ..., "images": [...]}`` form."""
    return (isinstance(data, dict) and isinstance(data.get("images"), list) and "made_by" in data
            and all(isinstance(e, dict) for e in data["images"]))


def records_from_json_object(data, images_dir: Path, source: Path | None = None,
                             lines: list[int] | None = None) -> list[ImageRecord]:
    """The parsed generic JSON (list, dict or ``made_by`` form) -> records; ``source`` and ``lines`` (each
    entry's line, :func:`json_entry_lines`) say where each came from, for the warnings of :mod:`.validate`."""
    items = []
    if is_labelled_list(data):
        data = data["images"]
    if isinstance(data, list):
        for e in data:
            if not isinstance(e, dict) or "image" not in e:
                raise ValueError("generic JSON list entries need an 'image' key")
            items.append((e["image"], e.get("boxes", []), e.get("landmarks"), e.get("ignore"), e.get("negatives")))
    elif isinstance(data, dict):
        for name, v in data.items():
            if isinstance(v, dict):
                items.append((name, v.get("boxes", []), v.get("landmarks"), v.get("ignore"), v.get("negatives")))
            else:
                items.append((name, v, None, None, None))
    else:
        raise ValueError("generic JSON must be a list of {image, boxes} or a {image: boxes} mapping")
    if lines is not None and len(lines) != len(items):
        lines = None
    records = []
    for k, (name, boxes, landmarks, ignore, negatives) in enumerate(items):
        b = np.asarray(boxes, np.float32).reshape(-1, 4)
        lms, has = _face_landmarks(landmarks, len(b))
        records.append(ImageRecord(images_dir / name, b, lms, has, ignore, source,
                                   None if lines is None else np.full(len(b), lines[k]), negatives))
    return records


def write_labelled_json(path: str | Path, entries: list[dict], made_by: dict) -> None:
    """The ``{"made_by": {...}, "images": [...]}`` form, one image a line (so that a reader's warnings
    can name the line), written whole or not at all (a temporary file renamed over ``path``)."""
    lines = ['{"made_by": ' + json.dumps(made_by) + ",", ' "images": [']
    lines += [json.dumps(e) + ("," if k + 1 < len(entries) else "") for k, e in enumerate(entries)]
    with atomic_path(path) as tmp:
        Path(tmp).write_text("\n".join(lines + ["]}"]) + "\n", encoding="utf-8")


def read_generic_json(json_file: str | Path, images_dir: str | Path | None = None) -> list[ImageRecord]:
    json_file = Path(json_file)
    images_dir = Path(images_dir) if images_dir else json_file.parent
    text = json_file.read_text(encoding="utf-8")
    data = json.loads(text)
    return records_from_json_object(data, images_dir, json_file, json_entry_lines(text, data))


def read_generic_csv(csv_file: str | Path, images_dir: str | Path | None = None) -> list[ImageRecord]:
    csv_file = Path(csv_file)
    images_dir = Path(images_dir) if images_dir else csv_file.parent
    with open(csv_file, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        fields = set(reader.fieldnames or [])
        xywh = {"x", "y", "w", "h"} <= fields
        if "image" not in fields or not (xywh or {"x1", "y1", "x2", "y2"} <= fields):
            raise ValueError(f"{csv_file}: need a header 'image,x1,y1,x2,y2' or 'image,x,y,w,h'")
        has_lm_cols = set(LANDMARK_COLUMNS) <= fields
        faces: dict[str, list] = {}
        for row in reader:
            entry = faces.setdefault(row["image"], [])
            lineno = reader.line_num
            keys = ("x", "y", "w", "h") if xywh else ("x1", "y1", "x2", "y2")
            if any((row.get(k) or "").strip() == "" for k in keys):
                continue  # an image without faces
            b = [float(row[k]) for k in keys]
            if xywh:
                b = [b[0], b[1], b[0] + b[2], b[1] + b[3]]
            lm = None
            if has_lm_cols and all((row.get(k) or "").strip() for k in LANDMARK_COLUMNS):
                lm = [float(row[k]) for k in LANDMARK_COLUMNS]
            entry.append((b, lm, lineno))
    records = []
    for name, entries in faces.items():
        boxes = np.asarray([b for b, _, _ in entries], np.float32).reshape(-1, 4)
        lms, has = _face_landmarks([lm for _, lm, _ in entries] if entries else None, len(boxes))
        records.append(ImageRecord(images_dir / name, boxes, lms, has, None, csv_file, [n for _, _, n in entries]))
    return records
