"""FDDB training labels with landmark pseudo-labels from a teacher RetinaFace.

FDDB annotates faces with ellipses and has no landmarks.  This script turns the
folds in ``faces_fddb/annotations.json`` into RetinaFace ``label.txt`` files
(one for training folds, one for the held-out fold) in which

* every FDDB face's box is derived from its ellipse
  (``retinaface_polynl.data.fddb.ellipse_to_face_box``: ellipse bounding box,
  top moved down 16 % and bottom up 3 % of its height, width x 0.90 — measured
  against a WIDER-trained detector; see that module);
* its five landmarks come from a teacher detector (the third-party
  Pytorch_Retinaface MobileNet-0.25 checkpoint) when the teacher finds that face
  (one-to-one Hungarian match at IoU >= ``--match-iou``); otherwise the face has
  no landmarks (``-1``) and the landmark loss ignores it;
* optionally (``--extra-min-score``, training folds only), faces the teacher finds
  with high confidence that FDDB leaves unannotated (IoU < 0.3 with every FDDB
  face) are added as extra targets with the teacher's box and landmarks, as in
  knowledge distillation, so the student is not taught that those faces are
  background.  FDDB's own protocol counts such detections as false positives;
  the held-out fold's labels never contain extras.

    python scripts/make_fddb_pseudo_labels.py --fddb ../shared/data/faces_fddb \\
        --teacher ../shared/data/weights_thirdparty/pytorch_retinaface/mobilenet0.25_Final.pth \\
        --train-folds 1-7 --val-folds 8 --out runs/fddb_labels
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment
from tqdm import tqdm

from retinaface_polynl import Detector
from retinaface_polynl.data.fddb import ellipse_to_face_box, parse_folds
from widerface_eval import box_iou


def face_line(box, landmarks=None, score: float = 1.0) -> str:
    x1, y1, x2, y2 = (float(v) for v in box)
    values = [x1, y1, x2 - x1, y2 - y1]
    if landmarks is None:
        values += [-1.0] * 15
    else:
        for x, y in landmarks:
            values += [float(x), float(y), 0.0]
    values.append(score)
    return " ".join(f"{v:.2f}" if i < 4 or i == 19 else f"{v:.3f}" for i, v in enumerate(values))


def label_image(det, faces: np.ndarray, match_iou: float, extra_min_score: float | None):
    """-> (lines, matched count, extra count) for one image's FDDB faces and teacher detections."""
    lines, matched = [], 0
    landmarks_of = {}
    if len(faces) and len(det):
        iou = box_iou(faces, det.boxes)
        rows, cols = linear_sum_assignment(-iou)
        for r, c in zip(rows, cols):
            if iou[r, c] >= match_iou:
                landmarks_of[r] = det.landmarks[c]
    for i, box in enumerate(faces):
        lines.append(face_line(box, landmarks_of.get(i)))
        matched += i in landmarks_of
    extras = 0
    if extra_min_score is not None and len(det):
        overlap = box_iou(det.boxes, faces).max(axis=1) if len(faces) else np.zeros(len(det))
        for box, score, marks, ov in zip(det.boxes, det.scores, det.landmarks, overlap):
            if score >= extra_min_score and ov < 0.3:
                lines.append(face_line(box, marks))
                extras += 1
    return lines, matched, extras


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fddb", required=True, help="faces_fddb folder (annotations.json, originalPics/)")
    p.add_argument("--teacher", required=True, help="teacher RetinaFace checkpoint")
    p.add_argument("--train-folds", default="1-7")
    p.add_argument("--val-folds", default="8")
    p.add_argument("--out", required=True, help="output folder for train_label.txt / val_label.txt")
    p.add_argument("--match-iou", type=float, default=0.5)
    p.add_argument("--teacher-threshold", type=float, default=0.5)
    p.add_argument("--extra-min-score", type=float, default=None, help="add unannotated teacher faces above this score")
    args = p.parse_args(argv)

    fddb = Path(args.fddb)
    annotations = json.loads((fddb / "annotations.json").read_text())
    teacher = Detector(weights=args.teacher, threshold=args.teacher_threshold)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = {}
    for split, folds, extra in (("train", args.train_folds, args.extra_min_score), ("val", args.val_folds, None)):
        wanted = set(parse_folds(folds))
        names = sorted(n for n, e in annotations.items() if int(e["fold"]) in wanted)
        faces_total = matched_total = extras_total = 0
        with open(out / f"{split}_label.txt", "w", encoding="utf-8") as f:
            for name in tqdm(names, desc=f"{split} folds {folds}"):
                path = fddb / "originalPics" / f"{name}.jpg"
                if not path.is_file():
                    continue
                ellipses = np.asarray(annotations[name]["ellipses"], np.float32).reshape(-1, 5)
                faces = ellipse_to_face_box(ellipses) if len(ellipses) else np.zeros((0, 4), np.float32)
                det = teacher.detect(str(path))
                lines, matched, extras = label_image(det, faces, args.match_iou, extra)
                f.write(f"# {name}.jpg\n" + "".join(line + "\n" for line in lines))
                faces_total += len(faces)
                matched_total += matched
                extras_total += extras
        summary[split] = {"folds": folds, "images": len(names), "fddb_faces": faces_total,
                          "with_teacher_landmarks": matched_total, "extra_teacher_faces": extras_total}
        print(f"{split}: {summary[split]}")
    (out / "labels_summary.json").write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
