"""Mine a detector's confirmed non-faces on its training photos, as ``negatives`` in label files.

Issue 40's diagnosis (``weights/results/teachers4_dec2026/false_boxes.md``) found the false boxes
that cost FDDB its tail to be hands, fists, handshakes and held things, and found the student
keeping them on its own training photos. This script writes them down where they are, so that
training teaches them as background on every draw of their photo (``negatives`` in the generic
JSON layout: ``retinaface_polynl/data/generic.py``; ``train/loss.py`` always puts their anchors
among the taught negatives and keeps the distilled teacher off them).

For every photo of each ``--labels`` set (any layout ``train`` reads), a detector box is a
negative when all of these hold:

- it scores at least ``--score`` (0.3) with the detector's own input rule;
- it is at least ``--min-size`` (16) px wide and tall;
- it overlaps no annotated face and no ignore region (IoU < ``--max-iou``, 0.2), and no annotated
  face's centre lies inside it (a loose box on a face is a localisation error, not a non-face);
- neither SCRFD-2.5G nor CenterFace, the two strongest label makers here, finds a face at
  ``--teacher-score`` (0.1) with IoU >= ``--max-iou`` on the whole photo;
- nor in the box's own patch (a 25 % margin), enlarged so that its long side is at least 200 px
  and padded: a face too small for the teachers at the photo's scale is found there.

The output, one ``OUT/<name>.json`` per set in the ``made_by`` form, holds every photo with its
faces, landmarks and ignore regions as read, plus ``negatives`` and their ``negative_scores``; image
paths are absolute. Use it in place of the set: ``train --labels OUT/<name>.json``. A set whose file
exists is skipped (rerun to resume after an interruption; delete the file to redo it). Beside it,
``OUT/<name>_negatives.png`` shows the highest-scored negatives (``false_boxes.py``'s contact sheet),
for a person to check that they are not faces.

    OMP_NUM_THREADS=2 python scripts/mine_negatives.py --out runs/negatives \\
        --labels ../shared/data/faces_fddb --folds 1-7 --labels ../shared/data/faces_mask/train.txt \\
        --labels /tmp/wider_train/labels/train --names fddb,mask,wider_train
"""
from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from false_boxes import contact_sheet  # noqa: E402

from retinaface_polynl.boxes import box_iou  # noqa: E402
from retinaface_polynl.data import load_annotations  # noqa: E402
from retinaface_polynl.data.generic import write_labelled_json  # noqa: E402
from retinaface_polynl.data.records import ImageRecord  # noqa: E402
from retinaface_polynl.media import ImageReadError, read_image  # noqa: E402
from retinaface_polynl.pipeline import BGR_MEAN  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PATCH_MARGIN = 0.25  # of the box's long side, on every side
PATCH_MIN_SIDE = 200  # a patch is enlarged until its long side is at least this (at most 4x)
PATCH_PAD = 32


def off_face_candidates(boxes: np.ndarray, scores: np.ndarray, faces: np.ndarray, ignore: np.ndarray,
                        score: float, min_size: float, max_iou: float) -> np.ndarray:
    """Indices of the detector boxes that may be non-faces: scored >= ``score``, at least
    ``min_size`` wide and tall, IoU < ``max_iou`` with every face and ignore region, and no face's
    centre inside."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    keep = (np.asarray(scores) >= score) & (w >= min_size) & (h >= min_size)
    known = np.concatenate([np.asarray(faces, np.float32).reshape(-1, 4), np.asarray(ignore, np.float32).reshape(-1, 4)])
    if len(known) and len(boxes):
        keep &= box_iou(known, boxes).max(0) < max_iou
    faces = np.asarray(faces, np.float32).reshape(-1, 4)
    if len(faces) and len(boxes):
        c = (faces[:, :2] + faces[:, 2:]) / 2
        inside = ((c[:, None, 0] >= boxes[None, :, 0]) & (c[:, None, 0] <= boxes[None, :, 2])
                  & (c[:, None, 1] >= boxes[None, :, 1]) & (c[:, None, 1] <= boxes[None, :, 3]))
        keep &= ~inside.any(0)
    return np.flatnonzero(keep)


def not_seen_by(boxes: np.ndarray, teacher_boxes: np.ndarray, max_iou: float) -> np.ndarray:
    """(N,) bool: boxes that overlap every teacher box by IoU < ``max_iou``."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    teacher_boxes = np.asarray(teacher_boxes, np.float32).reshape(-1, 4)
    if not len(teacher_boxes) or not len(boxes):
        return np.ones(len(boxes), bool)
    return box_iou(teacher_boxes, boxes).max(0) < max_iou


def patch(image: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The box with a :data:`PATCH_MARGIN` margin, enlarged to :data:`PATCH_MIN_SIDE` (at most 4x) and
    padded with :data:`PATCH_PAD` px of the training mean colour."""
    h, w = image.shape[:2]
    m = PATCH_MARGIN * float(max(box[2] - box[0], box[3] - box[1]))
    x1, y1 = int(max(0, np.floor(box[0] - m))), int(max(0, np.floor(box[1] - m)))
    x2, y2 = int(min(w, np.ceil(box[2] + m))), int(min(h, np.ceil(box[3] + m)))
    p = image[y1:y2, x1:x2]
    f = min(4.0, max(1.0, PATCH_MIN_SIDE / max(1, max(p.shape[:2]))))
    if f > 1:
        p = cv2.resize(p, None, fx=f, fy=f, interpolation=cv2.INTER_LINEAR)
    return cv2.copyMakeBorder(p, PATCH_PAD, PATCH_PAD, PATCH_PAD, PATCH_PAD, cv2.BORDER_CONSTANT, value=BGR_MEAN)


class Miner:
    """The detector and the two teachers, and the rule above on one photo at a time."""

    def __init__(self, weights: str | None, scrfd: Path, centerface: Path, score: float = 0.3,
                 min_size: float = 16.0, max_iou: float = 0.2, teacher_score: float = 0.1) -> None:
        from retinaface_polynl import Detector
        from retinaface_polynl.train.teachers import CenterFaceTeacher, ScrfdTeacher

        self.detector = Detector(weights, threshold=score)
        self.teachers = (ScrfdTeacher(scrfd, threshold=teacher_score), CenterFaceTeacher(centerface, threshold=teacher_score))
        self.score, self.min_size, self.max_iou = score, min_size, max_iou

    def teacher_boxes(self, image: np.ndarray) -> np.ndarray:
        return np.concatenate([t(image).boxes.reshape(-1, 4) for t in self.teachers]).astype(np.float32)

    def __call__(self, record: ImageRecord, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(negatives (K, 4), their scores (K,)) on ``record``'s photo."""
        found = self.detector.detect(image)
        cand = off_face_candidates(found.boxes, found.scores, record.boxes, record.ignore, self.score, self.min_size,
                                   self.max_iou)
        if not len(cand):
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        boxes, scores = found.boxes[cand], found.scores[cand]
        keep = not_seen_by(boxes, self.teacher_boxes(image), self.max_iou)
        for i in np.flatnonzero(keep):
            if len(self.teacher_boxes(patch(image, boxes[i]))):
                keep[i] = False
        return boxes[keep].astype(np.float32), scores[keep].astype(np.float32)


def entry(record: ImageRecord, negatives: np.ndarray, scores: np.ndarray) -> dict:
    r1 = lambda a: np.round(np.asarray(a, np.float64), 1).tolist()  # noqa: E731
    lms = [r1(l) if has else None for l, has in zip(record.landmarks, record.has_landmarks)]
    return {"image": str(record.path.resolve()), "boxes": r1(record.boxes), "landmarks": lms, "ignore": r1(record.ignore),
            "negatives": r1(negatives), "negative_scores": np.round(scores.astype(np.float64), 3).tolist()}


def mine_set(records: list[ImageRecord], miner: Miner, desc: str = "") -> list[dict]:
    out = []
    for r in tqdm(records, desc=desc, unit="photo"):
        try:
            image = read_image(r.path)
        except ImageReadError as exc:
            logging.warning("%s; left out", exc)
            continue
        out.append(entry(r, *miner(r, image)))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--labels", action="append", required=True, metavar="FILE",
                   help="a training set, any layout `train --labels` reads (repeat for several)")
    p.add_argument("--names", help="comma-separated output names, one per --labels (default: set1, set2, ...)")
    p.add_argument("--folds", help="FDDB folds for the FDDB sets, e.g. 1-7 (never the held-out fold)")
    p.add_argument("--out", required=True, type=Path, help="folder for the OUT/<name>.json label files")
    p.add_argument("--weights", help="the detector whose false boxes are mined (default: the shipped weights)")
    p.add_argument("--score", type=float, default=0.3, help="detector score from which a box may be a negative (0.3)")
    p.add_argument("--min-size", type=float, default=16.0, help="smallest negative, width and height in px (16)")
    p.add_argument("--max-iou", type=float, default=0.2, help="IoU below which a box is off a face, an ignore region "
                   "or a teacher's face (0.2)")
    p.add_argument("--teacher-score", type=float, default=0.1, help="teacher score from which a face vetoes (0.1)")
    p.add_argument("--scrfd", type=Path, default=DATA / "weights_thirdparty/scrfd/scrfd_2.5g_kps-opt2.param")
    p.add_argument("--centerface", type=Path, default=DATA / "weights_thirdparty/centerface/centerface.onnx")
    args = p.parse_args(argv)
    names = args.names.split(",") if args.names else [f"set{k + 1}" for k in range(len(args.labels))]
    if len(names) != len(args.labels):
        p.error(f"{len(names)} --names for {len(args.labels)} --labels")
    for flag, path in (("--scrfd", args.scrfd), ("--centerface", args.centerface)):
        if not path.is_file():
            p.error(f"{flag} {path}: no such file (the teachers veto the faces the annotation leaves out)")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    warnings.simplefilter("ignore")
    args.out.mkdir(parents=True, exist_ok=True)
    miner = Miner(args.weights, args.scrfd, args.centerface, args.score, args.min_size, args.max_iou, args.teacher_score)
    made_by = {"script": "scripts/mine_negatives.py", "weights": args.weights or "shipped", "score": args.score,
               "min_size": args.min_size, "max_iou": args.max_iou, "teacher_score": args.teacher_score,
               "teachers": [args.scrfd.name, args.centerface.name],
               "patch": f"margin {PATCH_MARGIN}, long side >= {PATCH_MIN_SIDE} px (at most 4x), pad {PATCH_PAD}"}
    for name, labels in zip(names, args.labels):
        target = args.out / f"{name}.json"
        if target.exists():
            print(f"{target} exists; skipped")
            continue
        records = load_annotations(labels, folds=args.folds)
        entries = mine_set(records, miner, name)
        write_labelled_json(target, entries, {**made_by, "labels": str(labels), "folds": args.folds})
        mined = sorted(({"path": e["image"], "box": b, "score": sc} for e in entries
                        for b, sc in zip(e["negatives"], e["negative_scores"])), key=lambda b: -b["score"])
        contact_sheet(mined, args.out / f"{name}_negatives.png", lambda b: b["path"], count=96)
        n = sum(len(e["negatives"]) for e in entries)
        print(f"{name}: {len(entries)} photos, {n} negatives on {sum(bool(e['negatives']) for e in entries)} of them "
              f"-> {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
