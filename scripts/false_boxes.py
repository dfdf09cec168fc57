"""What the false boxes are that outrank a detector's last FDDB faces (issue 40's FDDB bar).

FDDB fold 8's AP50 is lost in the tail of the ranking (``eval_fddb_holdout.py``'s precision-tail
table): when the ranked detections reach recall 0.94, the shipped file has one false box for
every 1.6 faces. This script says what those false boxes are. For each model, at its recorded
input rule and a score floor of 0.02:

- the detections are matched to fold 8's face boxes in score order (each to the best face still
  free, at IoU 0.5), and the score at which the ranking first reaches ``--recall`` is the cut;
- every false box scoring at least the cut is put in one class: a *second box* on an annotated
  face (IoU >= 0.5 with a face already taken), a *loose box* (IoU 0.3-0.5 with a face), an
  *unannotated face* (SCRFD-2.5G or CenterFace, the two strongest label makers, find a face there
  at >= 0.3 with IoU >= 0.4: FDDB leaves small and background faces out), or *no face* (neither
  the annotation nor either teacher);
- each class is split by box width (< 20, 20-40, >= 40 px), and the *no face* boxes are drawn
  on a contact sheet (``--sheets DIR``: the highest-scored first, each in three times its box),
  for a person to say what they are.

``--train-photos DIR`` (a YOLO label folder of photos the model trained on, with complete
annotations: the 1,000 WIDER FACE train photos of docs/data_sources.md) also counts the boxes
scoring >= 0.3 and >= 0.5 that lie off every annotated face there, on ``--train-limit`` of them:
a model that keeps such boxes on its own training photos has not learnt them as background.

    OMP_NUM_THREADS=2 python scripts/false_boxes.py --model shipped=weights/default.pth \\
        --model crowd=/path/to/crowd_release.pth --sheets runs/false_boxes \\
        --train-photos /tmp/wider_train/labels/train --markdown runs/false_boxes/table.md
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_fddb_holdout import fddb_face_boxes, greedy_match  # noqa: E402

from retinaface_polynl import Detector  # noqa: E402
from widerface_eval import box_iou, load_fddb_annotations  # noqa: E402

CLASSES = ("second box", "loose box", "unannotated face", "no face")
WIDTHS = ((0, 20), (20, 40), (40, None))
TEACHER_SCORE = 0.3  # a teacher's face at this score or more
TEACHER_IOU = 0.4  # ... overlapping the false box this much makes it an unannotated face


def classify(best_gt_iou: float, teacher_iou: float) -> str:
    if best_gt_iou >= 0.5:
        return "second box"
    if best_gt_iou >= 0.3:
        return "loose box"
    return "unannotated face" if teacher_iou >= TEACHER_IOU else "no face"


def width_bin(width: float) -> str:
    for lo, hi in WIDTHS:
        if hi is None or width < hi:
            return f"{lo}-{hi}" if hi else f"{lo}+"
    raise AssertionError


def teacher_boxes(images: dict[str, Path], data: Path, cache: Path | None) -> dict[str, np.ndarray]:
    """SCRFD-2.5G's and CenterFace's faces at >= TEACHER_SCORE on each photo of ``images`` (name ->
    path), by name (cached as JSON)."""
    if cache and cache.is_file():
        return {k: np.asarray(v, np.float32).reshape(-1, 4) for k, v in json.loads(cache.read_text()).items()}
    from retinaface_polynl.train.teachers import CenterFaceTeacher, ScrfdTeacher

    third = data / "weights_thirdparty"
    teachers = [ScrfdTeacher(third / "scrfd" / "scrfd_2.5g_kps-opt2.param", threshold=TEACHER_SCORE),
                CenterFaceTeacher(third / "centerface" / "centerface.onnx", threshold=TEACHER_SCORE)]
    out = {}
    for n, path in tqdm(images.items(), desc="teachers", leave=False):
        image = cv2.imread(str(path))
        out[n] = np.concatenate([t(image).boxes.reshape(-1, 4) for t in teachers]).astype(np.float32)
    if cache:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps({k: v.round(1).tolist() for k, v in out.items()}))
    return out


def false_boxes(detector, fddb: Path, gt: dict, teachers: dict, recall: float) -> dict:
    """The false boxes at or above the score where ``detector`` first reaches ``recall`` on ``gt``."""
    found = []  # (score, true, best gt IoU, teacher IoU, width, name, box)
    for n, faces in tqdm(gt.items(), desc="detect", leave=False):
        det = detector.detect(cv2.imread(str(fddb / "originalPics" / f"{n}.jpg")))
        true, best = greedy_match(faces, det.boxes, det.scores)
        t = teachers.get(n, np.zeros((0, 4), np.float32))
        tiou = box_iou(t, det.boxes).max(0) if len(t) and len(det) else np.zeros(len(det))
        for k in range(len(det)):
            b = det.boxes[k]
            found.append((float(det.scores[k]), bool(true[k]), float(best[k]), float(tiou[k]),
                          float(b[2] - b[0]), n, b.round(1).tolist()))
    found.sort(key=lambda r: -r[0])
    faces = sum(len(v) for v in gt.values())
    tp, cut = 0, found[-1][0] if found else 0.0
    for r in found:
        tp += r[1]
        if tp >= recall * faces:
            cut = r[0]
            break
    above = [r for r in found if r[0] >= cut]
    false = [r for r in above if not r[1]]
    counts = {c: {width_bin(w): 0 for w in (0, 20, 40)} for c in CLASSES}
    for r in false:
        counts[classify(r[2], r[3])][width_bin(r[4])] += 1
    return {"faces": faces, "detections": len(found), "cut": round(cut, 4), "true above cut": len(above) - len(false),
            "false above cut": len(false), "classes": counts,
            "no face boxes": [{"score": round(r[0], 3), "image": r[5], "box": r[6]} for r in false
                              if classify(r[2], r[3]) == "no face"]}


def contact_sheet(boxes: list[dict], path: Path, image_of, count: int = 48, side: int = 160) -> None:
    """The first ``count`` boxes (``{"box", "score", ...}``; ``image_of(box)``: its photo's path), each cut
    out at three times its side, in rows of 8: a PNG for a person to say what they are."""
    tiles = []
    for b in boxes[:count]:
        image = cv2.imread(str(image_of(b)))
        x1, y1, x2, y2 = b["box"]
        m = max(x2 - x1, y2 - y1)
        X1, Y1 = int(max(0, x1 - m)), int(max(0, y1 - m))
        X2, Y2 = int(min(image.shape[1], x2 + m)), int(min(image.shape[0], y2 + m))
        crop = image[Y1:Y2, X1:X2].copy()
        cv2.rectangle(crop, (int(x1 - X1), int(y1 - Y1)), (int(x2 - X1), int(y2 - Y1)), (0, 0, 255), 1)
        crop = cv2.resize(crop, (side, side))
        cv2.putText(crop, f"{b['score']:.2f} {int(x2 - x1)}px", (2, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (0, 255, 255), 1)
        tiles.append(crop)
    if not tiles:
        return
    while len(tiles) % 8:
        tiles.append(np.zeros((side, side, 3), np.uint8))
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.vstack([np.hstack(tiles[i:i + 8]) for i in range(0, len(tiles), 8)]))


def off_faces_on_train(detector, labels: Path, limit: int) -> dict:
    """Boxes at >= 0.3 / >= 0.5 overlapping no annotated face (IoU < 0.3) on training photos."""
    from retinaface_polynl.data.yolo import read_yolo

    files = sorted(labels.glob("*.txt"))  # every step-th label file, as recorded in false_boxes.md
    picked = set(files[:: max(1, len(files) // limit)][:limit])
    records = [r for r in read_yolo(labels) if r.source in picked]
    out = {"photos": 0, "faces": 0, "off faces >= 0.3": 0, "off faces >= 0.5": 0}
    for record in tqdm(records, desc="train photos", leave=False):
        image = cv2.imread(str(record.path))
        if image is None:
            continue
        faces = record.boxes
        det = detector.detect(image, threshold=0.3)
        off = box_iou(faces, det.boxes).max(0) < 0.3 if len(faces) and len(det) else np.ones(len(det), bool)
        out["photos"] += 1
        out["faces"] += len(faces)
        out["off faces >= 0.3"] += int(off.sum())
        out["off faces >= 0.5"] += int((off & (det.scores >= 0.5)).sum())
    return out


def table(results: dict, recall: float) -> str:
    bins = [width_bin(w) for w in (0, 20, 40)]
    head = ["model", "faces found above the cut", "cut", "false boxes"] + [f"{c} ({'/'.join(bins)} px)" for c in CLASSES]
    lines = [f"FDDB fold 8: the false boxes scoring at least the score where the ranking first reaches recall "
             f"{recall:g} (matched at IoU 0.5; unannotated face: SCRFD-2.5G or CenterFace at >= {TEACHER_SCORE:g} "
             f"with IoU >= {TEACHER_IOU:g}; no face: neither the annotation nor either teacher)", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in results.items():
        f = r["fddb"]
        cells = [name, str(f["true above cut"]), f"{f['cut']:.3f}", str(f["false above cut"])]
        cells += [f"{sum(f['classes'][c].values())} ({'/'.join(str(f['classes'][c][b]) for b in bins)})" for c in CLASSES]
        lines.append("| " + " | ".join(cells) + " |")
    train = {n: r["train"] for n, r in results.items() if r.get("train")}
    if train:
        lines += ["", "Training photos with complete annotations (WIDER FACE train): boxes overlapping no annotated "
                  "face (IoU < 0.3)", "", "| model | photos | faces | boxes >= 0.3 off every face | >= 0.5 |",
                  "|---|---:|---:|---:|---:|"]
        for n, t in train.items():
            lines.append(f"| {n} | {t['photos']} | {t['faces']} | {t['off faces >= 0.3']} | {t['off faces >= 0.5']} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"),
                   help="the shared data folder (FDDB, the teachers' files)")
    p.add_argument("--model", action="append", default=[], metavar="NAME=CKPT",
                   help="a checkpoint at its recorded input rule (default: the shipped weights)")
    p.add_argument("--fold", default="8")
    p.add_argument("--recall", type=float, default=0.94, help="the recall whose score is the cut (default 0.94)")
    p.add_argument("--teacher-cache", help="JSON file for the teachers' faces (made if missing)")
    p.add_argument("--sheets", help="folder for each model's contact sheet of 'no face' boxes (PNG)")
    p.add_argument("--train-photos", help="YOLO label folder of training photos with complete annotations")
    p.add_argument("--train-limit", type=int, default=100, help="training photos looked at (evenly spaced)")
    p.add_argument("--json", help="write all numbers (and every 'no face' box) here")
    p.add_argument("--markdown", help="also write the table here")
    args = p.parse_args(argv)
    warnings.simplefilter("ignore")
    data = Path(args.data)
    fddb = data / "faces_fddb"
    if not fddb.is_dir():
        raise SystemExit(f"{fddb}: no FDDB folder (give --data, the shared data folder)")
    annotations = load_fddb_annotations(fddb, folds=args.fold)
    gt = {n: b for n, b in fddb_face_boxes(annotations).items() if (fddb / "originalPics" / f"{n}.jpg").is_file()}
    teachers = teacher_boxes({n: fddb / "originalPics" / f"{n}.jpg" for n in gt}, data,
                             Path(args.teacher_cache) if args.teacher_cache else None)
    models = [m.partition("=")[::2] for m in args.model] or [("shipped", None)]
    results = {}
    for name, ckpt in models:
        detector = Detector(weights=ckpt, threshold=0.02) if ckpt else Detector(threshold=0.02)
        results[name] = {"checkpoint": ckpt or "shipped", "fddb": false_boxes(detector, fddb, gt, teachers, args.recall)}
        if args.train_photos:
            results[name]["train"] = off_faces_on_train(detector, Path(args.train_photos), args.train_limit)
        if args.sheets:
            contact_sheet(results[name]["fddb"]["no face boxes"], Path(args.sheets) / f"{name}_no_face.png",
                          lambda b: fddb / "originalPics" / f"{b['image']}.jpg")
    text = table(results, args.recall)
    print(text)
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(text)
    if args.json:
        Path(args.json).write_text(json.dumps({"recall": args.recall, "fold": args.fold, "models": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
