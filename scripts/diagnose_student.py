"""Underfit or data? The shipped student against the faces its teachers taught it.

The crowd recipe teaches the student, on every training photo, the faces of the set's
annotation completed by the teachers (``scripts/make_crowd_labels.py``: RetinaFace-
MobileNet-0.25 and YuNet, each at 1x and, for small photos, 2x, fused; unannotated faces
with fused score >= 0.6 added, those in [0.15, 0.6) ignore regions).  This script builds
those same targets, by the same code and thresholds, on

* photos the student trained on: a sample of faces_mask ``train.txt``, FDDB folds 1-7 and
  Caltech Web Faces (the whole photos, at the shipped input rule);
* photos of the same sets it never trained on: faces_mask ``val.txt``, FDDB fold 8;
* photos of other kinds it never trained on: WIDER dev (``widerface_val_dev``, its official
  boxes as the annotation) and the 38 ShanghaiTech street crowds (teacher faces only),

and measures, by face size (the box's longer side) and by score, how much of what it is
taught the student reproduces, beside the two teachers alone (each teacher's own boxes;
for the faces the teachers added this is partly circular, so the annotated faces are also
given alone).  A student that reaches the teachers on its training photos and falls short
on WIDER's is short of data; one that falls short on its own training photos is short of
fitting (schedule, learning rate, capacity, loss balance).

Every face counts as found by a detector when one of its boxes at score >= 0.5 overlaps it
at IoU >= 0.5; "any score" counts boxes down to 0.02.  "Score gap" compares, on the faces
both the student (any score) and the fused teachers find, the student's score with the
teachers' fused score.  False positives per photo: boxes at score >= 0.5 that overlap no
target at IoU 0.5 and lie in no ignore region (IoU 0.3 or half covered).

    OMP_NUM_THREADS=1 nice -n 10 python scripts/diagnose_student.py --out /tmp/diag --per-set 100 \\
        --markdown weights/results/diagnosis_dec2026.md --json weights/results/diagnosis_dec2026.json

Teacher detections are cached in ``OUT/teacher_<set>.npz`` (the training sets under the
same names as ``make_crowd_labels.py``'s caches, so its ``--out`` folder can be given), the
student's in ``OUT/student_<set>.npz``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE / "scripts"))

import make_crowd_labels as mcl  # noqa: E402

from retinaface_polynl import Detector  # noqa: E402
from retinaface_polynl.data import load_annotations  # noqa: E402
from retinaface_polynl.data.records import ImageRecord  # noqa: E402
from widerface_eval import average_precision, box_iou, load_ground_truth  # noqa: E402

WHOLE_SETS = ("wider-dev", "shanghai")  # small enough to take whole (103 and 38 photos)
SIZE_EDGES = (0, 16, 32, 64, 128, 100000)
SIZE_NAMES = ("<16", "16-32", "32-64", "64-128", ">128")
THRESHOLD = 0.5
LOW = 0.02
# set name -> (what it is to the student, teacher cache name, upscale)
SETS = {
    "mask-train": ("trained on", "mask", True),
    "fddb-train": ("trained on", "fddb", False),
    "webfaces-train": ("trained on", "webfaces", True),
    "mask-val": ("held out, same set", "diag_mask_val", True),
    "fddb-val": ("held out, same set", "diag_fddb8", False),
    "wider-dev": ("never seen kind", "diag_wider_dev", True),
    "shanghai": ("never seen kind", "shanghai", True),
}


def set_records(name: str, data: Path) -> list[ImageRecord]:
    if name == "mask-train":
        return mcl.set_records("mask", data, "1-7")
    if name == "fddb-train":
        return mcl.set_records("fddb", data, "1-7")
    if name == "webfaces-train":
        return mcl.set_records("webfaces", data, "1-7")
    if name == "shanghai":
        return mcl.set_records("shanghai", data, "1-7")
    if name == "mask-val":
        return load_annotations(data / "faces_mask" / "val.txt")
    if name == "fddb-val":
        return load_annotations(data / "faces_fddb", folds="8")
    if name == "wider-dev":
        dev = data / "widerface_val_dev"
        keys = json.loads((dev / "LIST.json").read_text())
        gt = load_ground_truth(data / "widerface_val_gt")
        index = {f"{e}/{n}": i for i, (e, n) in enumerate(zip(gt.events, gt.images))}
        out = []
        for k in keys:
            b = gt.boxes[index[k]].astype(np.float32).copy()
            b[:, 2:] += b[:, :2]
            b = b[(b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])]
            out.append(ImageRecord.from_boxes(dev / "images" / f"{k}.jpg", b))
        return out
    raise ValueError(f"unknown set {name!r}; choose from {', '.join(SETS)}")


def run_student(name: str, records, out: Path, detector) -> dict:
    """{image path: (boxes, scores)} of the student, cached in OUT/student_<name>.npz."""
    cache = out / f"student_{name}.npz"
    done = {}
    if cache.is_file():
        with np.load(cache, allow_pickle=True) as z:
            done = z["dets"].item()
    todo = [r for r in records if str(r.path) not in done]
    for r in tqdm(todo, desc=f"student on {name}", unit="img", leave=False):
        image = cv2.imread(str(r.path))
        if image is None:
            continue
        d = detector.detect(image)
        done[str(r.path)] = (d.boxes.astype(np.float32), d.scores.astype(np.float32))
    if todo:
        np.savez(cache, dets=np.array(done, dtype=object))
    return done


def face_scores(targets: np.ndarray, boxes: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Each target's best score among ``boxes`` overlapping it at IoU >= 0.5 (0 when none)."""
    if not len(targets) or not len(boxes):
        return np.zeros(len(targets), np.float32)
    iou = box_iou(targets, boxes)
    return np.where(iou >= 0.5, scores[None, :], 0.0).max(1).astype(np.float32)


def false_positives(boxes: np.ndarray, scores: np.ndarray, targets: np.ndarray, ignore: np.ndarray) -> int:
    """Boxes at score >= 0.5 overlapping no target (IoU 0.5) and in no ignore region (IoU 0.3 or half covered)."""
    b = boxes[scores >= THRESHOLD]
    if not len(b):
        return 0
    bad = np.ones(len(b), bool)
    if len(targets):
        bad &= box_iou(b, targets).max(1) < 0.5
    if len(ignore):
        iou = box_iou(b, ignore).max(1)
        ix = np.clip(np.minimum(b[:, None, 2], ignore[None, :, 2]) - np.maximum(b[:, None, 0], ignore[None, :, 0]), 0, None)
        iy = np.clip(np.minimum(b[:, None, 3], ignore[None, :, 3]) - np.maximum(b[:, None, 1], ignore[None, :, 1]), 0, None)
        area = np.maximum((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]), 1e-6)
        covered = (ix * iy).max(1) / area
        bad &= (iou < 0.3) & (covered < 0.5)
    return int(bad.sum())


def analyse(records, teachers: dict, student: dict) -> dict:
    """The per-size recall table, score gap, false positives and AP50 of one set (see the docstring)."""
    rows = {k: [] for k in ("size", "annotated", "student", "mnet", "yunet", "fused")}
    fps = {"student": 0, "mnet": 0, "yunet": 0}
    ap_dets = {k: {} for k in fps}
    ap_gt = {}
    photos = 0
    for r in records:
        key = str(r.path)
        if key not in teachers or key not in student:
            continue
        det = teachers[key]
        entry = mcl.merge_record(r, det, 0.6, 0.15, mcl.DECEMBER_TEACHERS)
        targets = np.asarray(entry["boxes"], np.float32).reshape(-1, 4)
        ignore = np.asarray(entry["ignore"], np.float32).reshape(-1, 4)
        n_ann = len(r.boxes)
        fused = mcl.fuse(det, mcl.DECEMBER_TEACHERS)
        fb, fs = fused.boxes, fused.scores
        y = mcl.teacher_faces(det, "yunet")
        found = {"student": student[key], "mnet": (det["mb"], det["ms"]), "yunet": (y.boxes, y.scores)}
        photos += 1
        rows["size"].append(np.maximum(targets[:, 2] - targets[:, 0], targets[:, 3] - targets[:, 1]))
        rows["annotated"].append(np.arange(len(targets)) < n_ann)
        rows["fused"].append(face_scores(targets, fb, fs))
        for name, (b, s) in found.items():
            b = np.asarray(b, np.float32).reshape(-1, 4)
            s = np.asarray(s, np.float32).reshape(-1)
            rows[name].append(face_scores(targets, b, s))
            fps[name] += false_positives(b, s, targets, ignore)
            # AP50 against the targets, boxes in ignore regions left out
            keep = np.ones(len(b), bool)
            if len(ignore) and len(b):
                near_t = box_iou(b, targets).max(1) >= 0.5 if len(targets) else np.zeros(len(b), bool)
                keep = near_t | (box_iou(b, ignore).max(1) < 0.3)
            ap_dets[name][key] = (b[keep & (s >= LOW)], s[keep & (s >= LOW)])
        ap_gt[key] = targets
    cat = {k: np.concatenate(v) if v else np.zeros(0) for k, v in rows.items()}
    size, ann = cat["size"], cat["annotated"].astype(bool)
    out = {"photos": photos, "faces": int(len(size)), "annotated_faces": int(ann.sum()), "buckets": {},
           "annotated_buckets": {}}
    for label, mask_all in (("buckets", np.ones(len(size), bool)), ("annotated_buckets", ann)):
        for name, lo, hi in zip(SIZE_NAMES + ("all",), SIZE_EDGES[:-1] + (0,), SIZE_EDGES[1:] + (100000,)):
            m = mask_all & (size >= lo) & (size < hi)
            if not m.any():
                continue
            cell = {"faces": int(m.sum())}
            for det in ("student", "mnet", "yunet", "fused"):
                cell[f"{det}_recall"] = round(float((cat[det][m] >= THRESHOLD).mean()), 3)
            cell["student_any_score"] = round(float((cat["student"][m] >= LOW).mean()), 3)
            out[label][name] = cell
    both = (cat["student"] >= LOW) & (cat["fused"] > 0)
    if both.any():
        diff = cat["student"][both] - cat["fused"][both]
        out["score_gap"] = {"faces": int(both.sum()), "student_median": round(float(np.median(cat["student"][both])), 3),
                            "teachers_fused_median": round(float(np.median(cat["fused"][both])), 3),
                            "student_below_teachers_by_0.3": round(float((diff <= -0.3).mean()), 3),
                            "student_above_teachers_by_0.3": round(float((diff >= 0.3).mean()), 3)}
    # by score: of the faces the fused teachers score >= 0.5, where the student's score lies
    sure = cat["fused"] >= THRESHOLD
    if sure.any():
        s = cat["student"][sure]
        out["student_score_on_teacher_faces"] = {
            "faces": int(sure.sum()), "missed (<0.02)": round(float((s < LOW).mean()), 3),
            "0.02-0.2": round(float(((s >= LOW) & (s < 0.2)).mean()), 3),
            "0.2-0.5": round(float(((s >= 0.2) & (s < 0.5)).mean()), 3), ">=0.5": round(float((s >= 0.5).mean()), 3)}
    out["false_positives_per_photo"] = {k: round(v / max(photos, 1), 3) for k, v in fps.items()}
    out["ap50"] = {k: round(float(average_precision(ap_dets[k], ap_gt)), 4) for k in ap_dets}
    return out


def label_makers(records, teachers: dict, gt, student: dict | None = None) -> dict:
    """WIDER dev's official Easy / Medium / Hard AP and recall at 0.5 by height of each teacher alone (as it
    labels: its views voted, its rule applied), of the December 2026 fusion (MobileNet + YuNet), of all four
    fused, and of the student: how much of WIDER each label maker sees."""
    from eval_crowd import wider_dev_ap, wider_recall_by_height

    makers = {n: {} for n in ("student", *mcl.TEACHER_NAMES, "fused: mobilenet+yunet", "fused: all four")}
    for r in records:
        det = teachers[str(r.path)]
        if student is not None:
            makers["student"][str(r.path)] = student[str(r.path)]
        for n in mcl.TEACHER_NAMES:
            f = mcl.teacher_faces(det, n)
            makers[n][str(r.path)] = (f.boxes, f.scores)
        for name, names in (("fused: mobilenet+yunet", mcl.DECEMBER_TEACHERS), ("fused: all four", mcl.TEACHER_NAMES)):
            f = mcl.fuse(det, names)
            makers[name][str(r.path)] = (f.boxes, f.scores)
    return {name: {"wider_dev": {k: round(v, 4) for k, v in wider_dev_ap(d, gt).items()},
                   "recall_by_height": {s: wider_recall_by_height(d, gt, s) for s in ("easy", "hard")}}
            for name, d in makers.items() if d}


ADD_SCORES = (0.3, 0.4, 0.5, 0.6, 0.7)


def add_score_table(records, teachers: dict) -> dict:
    """For each fusion and each ``--add-score`` candidate: of the fused faces at that score, the share that
    overlaps an official WIDER dev face at IoU 0.5 (precision), and the share of the official faces so
    covered (recall): which threshold makes the four teachers' added faces as clean as the December pair's."""
    out = {}
    for name, names in (("mobilenet+yunet", mcl.DECEMBER_TEACHERS), ("all four", mcl.TEACHER_NAMES)):
        fused = [(r.boxes, mcl.fuse(teachers[str(r.path)], names)) for r in records]
        rows = {}
        for t in ADD_SCORES:
            tp = fp = found = total = 0
            for gt, f in fused:
                b = f.boxes[f.scores >= t]
                total += len(gt)
                if len(b) and len(gt):
                    iou = box_iou(b, gt)
                    tp += int((iou.max(1) >= 0.5).sum())
                    fp += int((iou.max(1) < 0.5).sum())
                    found += int((iou.max(0) >= 0.5).sum())
                else:
                    fp += len(b)
            rows[str(t)] = {"faces": tp + fp, "precision": round(tp / max(tp + fp, 1), 3), "recall": round(found / max(total, 1), 3)}
        out[name] = rows
    return out


def add_score_markdown(table: dict) -> str:
    lines = ["| fused score at least | " + " | ".join(f"{n}: faces, precision, recall" for n in table) + " |",
             "|---:|" + "---|" * len(table)]
    for t in ADD_SCORES:
        cells = [f"{r[str(t)]['faces']}, {r[str(t)]['precision']:.3f}, {r[str(t)]['recall']:.3f}" for r in table.values()]
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def label_makers_markdown(results: dict) -> str:
    lines = ["| label maker | WIDER dev Easy | Medium | Hard | Easy faces found at 0.5 by height <20 / 20-40 / 40-80 / "
             "80-160 / >160 px | Hard faces found, same heights |", "|---|---:|---:|---:|---|---|"]
    fmt = (lambda d: " / ".join("–" if v is None else f"{v:.2f}" for v in d.values()))
    for name, r in results.items():
        w = r["wider_dev"]
        lines.append(f"| {name} | {100 * w['easy']:.1f} | {100 * w['medium']:.1f} | {100 * w['hard']:.1f} | "
                     f"{fmt(r['recall_by_height']['easy'])} | {fmt(r['recall_by_height']['hard'])} |")
    return "\n".join(lines) + "\n"


def markdown(results: dict, meta: dict) -> str:
    lines = [f"Student: {meta['student']}. Teachers' targets: `make_crowd_labels.merge_record` (annotation + "
             "teacher faces with fused score >= 0.6; [0.15, 0.6) ignore regions). Found: a box at score >= 0.5 "
             "overlapping the face at IoU >= 0.5. Size: the target box's longer side. "
             f"Photos: every k-th of each set, about {meta['per_set']} a set; WIDER dev and ShanghaiTech whole.", ""]
    for label, title in (("buckets", "All taught faces (annotated + added by the teachers)"),
                         ("annotated_buckets", "Annotated faces only (the set's own boxes; WIDER dev: official boxes)")):
        lines += [f"### {title}", "",
                  "| set | photos | size | faces | student | student, any score | MobileNet | YuNet | fused teachers |",
                  "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
        for name, r in results.items():
            for b, c in r[label].items():
                lines.append(f"| {name} ({SETS[name][0]}) | {r['photos']} | {b} | {c['faces']} | {c['student_recall']:.2f} | "
                             f"{c['student_any_score']:.2f} | {c['mnet_recall']:.2f} | {c['yunet_recall']:.2f} | "
                             f"{c['fused_recall']:.2f} |")
        lines.append("")
    lines += ["### By score, and what else", "",
              "| set | AP50 student / MobileNet / YuNet | FP per photo student / MobileNet / YuNet | "
              "faces teachers score >= 0.5: student missed / 0.02-0.2 / 0.2-0.5 / >= 0.5 | "
              "score gap: student median vs fused median; student lower by >= 0.3 |",
              "|---|---|---|---|---|"]
    for name, r in results.items():
        ap, fp = r["ap50"], r["false_positives_per_photo"]
        s = r.get("student_score_on_teacher_faces", {})
        g = r.get("score_gap", {})
        lines.append(f"| {name} | {ap['student']:.3f} / {ap['mnet']:.3f} / {ap['yunet']:.3f} | "
                     f"{fp['student']:.2f} / {fp['mnet']:.2f} / {fp['yunet']:.2f} | "
                     f"{s.get('missed (<0.02)', 0):.2f} / {s.get('0.02-0.2', 0):.2f} / {s.get('0.2-0.5', 0):.2f} / "
                     f"{s.get('>=0.5', 0):.2f} | {g.get('student_median', 0):.2f} vs {g.get('teachers_fused_median', 0):.2f}; "
                     f"{g.get('student_below_teachers_by_0.3', 0):.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--data", type=Path, default=mcl.DATA, help=f"the shared data folder (default: {mcl.DATA})")
    p.add_argument("--out", type=Path, required=True, help="folder for the teacher and student caches")
    p.add_argument("--weights", help="the student checkpoint (default: the shipped weights, Detector()'s default)")
    p.add_argument("--per-set", type=int, default=100, help="photos per training or validation set, every k-th "
                   "(default: 100; 0: all); WIDER dev and ShanghaiTech are taken whole")
    p.add_argument("--sets", default=",".join(SETS), help=f"comma-separated, or 'none' (default: {','.join(SETS)})")
    p.add_argument("--threads", type=int, default=1, help="the student's threads (default: 1)")
    p.add_argument("--label-makers", action="store_true", help="also score every teacher alone and fused (two "
                   "and four teachers) on WIDER dev with the official protocol (runs SCRFD and CenterFace there)")
    p.add_argument("--json", type=Path)
    p.add_argument("--markdown", type=Path)
    args = p.parse_args(argv)
    args.data = args.data.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    names = [n.strip() for n in args.sets.split(",") if n.strip() and n.strip() != "none"]
    for n in names:
        if n not in SETS:
            p.error(f"unknown set {n!r}; choose from {', '.join(SETS)}")
    student = Detector(weights=args.weights, threshold=LOW, threads=args.threads)
    teachers_cache = {}

    def factory():
        if "t" not in teachers_cache:
            teachers_cache["t"] = mcl.Teachers(args.data)
        return teachers_cache["t"]

    results = {}
    t0 = time.time()
    for n in names:
        _, cache_name, upscale = SETS[n]
        records = mcl.sample_records(set_records(n, args.data), 0 if n in WHOLE_SETS else max(args.per_set, 0))
        teach = mcl.run_teachers(cache_name, records, args.out, factory, upscale=upscale)
        stud = run_student(n, records, args.out, student)
        results[n] = analyse(records, teach, stud)
        print(n, json.dumps(results[n]), flush=True)
    makers = makers_add = None
    if args.label_makers:
        from eval_crowd import load_sets

        records = set_records("wider-dev", args.data)
        teach = mcl.run_teachers("diag_wider_dev", records, args.out, lambda: mcl.Teachers(args.data), upscale=True,
                                 names=mcl.TEACHER_NAMES)
        stud = run_student("wider-dev", records, args.out, student)
        makers = label_makers(records, teach, load_sets(args.data, None, ("wider",))["wider_gt"], stud)
        makers_add = add_score_table(records, teach)
        print(label_makers_markdown(makers))
        print(add_score_markdown(makers_add))
    meta = {"student": args.weights or "Detector() default (the shipped weights and input rule)",
            "per_set": args.per_set, "seconds": round(time.time() - t0)}
    table = markdown(results, meta) if results else ""
    if makers:
        table += ("\n### Label makers on WIDER dev (official protocol, 103 photos; each teacher as it labels)\n\n"
                  + label_makers_markdown(makers)
                  + "\n### --add-score on WIDER dev: the fused faces against the official boxes (IoU 0.5)\n\n"
                  + add_score_markdown(makers_add))
    print(table)
    if args.markdown:
        args.markdown.write_text(table)
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "results": results, "label_makers": makers,
                                         "add_score": makers_add if makers else None}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
