"""Teacher labels for the multi-set training recipe, and the box rules they measure.

For every training image of the sets below, two WIDER-trained teachers look at the
picture (at its own size, and, except for FDDB's news photos of large faces, enlarged
2x when its long side is under 1100 px, so that 10-20 px faces are seen too):

* RetinaFace-MobileNet-0.25 (Pytorch_Retinaface weights, through our Detector), with
  its five landmarks;
* YuNet (``cv2.FaceDetectorYN``), boxes mapped to RetinaFace's convention by the
  rule this script measures on faces both find.

Each teacher's views are merged by our box voting (``tta.box_vote``); the two teachers
are then fused face by face: a face both find (IoU >= 0.4) gets the mean of their
scores and the score-weighted mean box, a face one finds gets half its score (the
other teacher's vote is a zero).  Against the set's own annotation:

* an annotated face takes the MobileNet teacher's landmarks when one of its
  detections overlaps it at IoU >= 0.5 (and the face has none of its own);
* a teacher face overlapping no annotated face (IoU < 0.3) is *added* as a face when
  its fused score is >= ``--add-score`` (0.6: in practice both teachers agree), and
  becomes an *ignore region* when it is >= ``--ignore-score`` (0.15): a face the
  annotation missed is then never taught as background, and an uncertain one is not
  taught as a face either.

Sets (``--sets``, default all): ``fddb`` (folds ``--fddb-folds``, default 1-7; the
boxes derived from the ellipses), ``mask`` (faces_mask ``train.txt``), ``webfaces``
(Caltech Web Faces, boxes from the four points), ``shanghai`` (38 street crowds with
no face annotation: teacher faces only).  Validation images (faces_mask ``val.txt``,
FDDB fold 8, widerface_val_dev) are never read.

``--fit`` prints the box rules measured on the cached teacher detections (the numbers
in ``data/voc.py``, ``data/webfaces.py`` and here) and writes them to ``OUT/rules.json``:

* faces_mask: median ratios of the MobileNet box (score >= 0.8, IoU >= 0.4 with the
  VOC box, faces >= 20 px) to the VOC box: width, height, centre shift in box heights;
* Web Faces: median width / s, height / s, centre shift along (mouth - eyes) / s of
  the MobileNet box whose nose lies within s / 4 of the annotated nose
  (s = eye-to-mouth distance), and the mouth-corner half width in eye distances;
* YuNet -> RetinaFace: median ratios of the MobileNet box to the YuNet box on faces
  both find (IoU >= 0.5, both >= 0.8).

    python scripts/make_crowd_labels.py --out runs/crowd/labels            # cache + labels
    python scripts/make_crowd_labels.py --out runs/crowd/labels --fit      # + the rules

Teacher detections are cached per set (``OUT/teacher_<set>.npz``), so a second run (or
``--fit`` after the labels) only re-merges.  Writes ``OUT/<set>.json`` in the generic
JSON layout with ``ignore`` regions (``--labels OUT/mask.json`` trains on it).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from retinaface_polynl import Detector
from retinaface_polynl.data import load_annotations, summarize
from retinaface_polynl.data.voc import read_voc
from retinaface_polynl.data.webfaces import read_webfaces_points
from retinaface_polynl.media import ImageReadError, read_image
from retinaface_polynl.tta import box_vote
from widerface_eval import box_iou

HERE = Path(__file__).resolve().parents[1]
DATA = (HERE.parent / "shared" / "data").resolve()
MNET = "weights_thirdparty/pytorch_retinaface/mobilenet0.25_Final.pth"
YUNET = "weights_thirdparty/yunet/face_detection_yunet_2026may.onnx"
SETS = ("mask", "fddb", "webfaces", "shanghai")
TEACHER_THRESHOLD = 0.1
UPSCALE_BELOW = 1100  # long side (px) under which the teachers also see the picture enlarged 2x
# YuNet -> RetinaFace box rule (width, height, centre shift in YuNet box heights): --fit measured
# 0.995, 0.999, 0.005 over 12,986 faces both find, i.e. the same convention: no change
YUNET_RULE = (1.0, 1.0, 0.0)

log = logging.getLogger("make_crowd_labels")


def set_records(name: str, data: Path, fddb_folds: str):
    if name == "fddb":
        return load_annotations(data / "faces_fddb", folds=fddb_folds)
    if name == "mask":
        return load_annotations(data / "faces_mask" / "train.txt")
    if name == "webfaces":
        return load_annotations(data / "faces_webfaces" / "landmarks.txt")
    if name == "shanghai":
        from retinaface_polynl.data.records import ImageRecord

        return [ImageRecord.from_boxes(p, np.zeros((0, 4))) for p in sorted((data / "crowds_shanghaitech").glob("*.jpg"))]
    raise ValueError(f"unknown set {name!r}; choose from {', '.join(SETS)}")


class Teachers:
    def __init__(self, data: Path):
        self.upscale = True
        self.mnet = Detector(weights=data / MNET, threshold=TEACHER_THRESHOLD, size_limit=None)
        self.yunet = cv2.FaceDetectorYN.create(str(data / YUNET), "", (320, 320), TEACHER_THRESHOLD, 0.3, 5000)

    def views(self, image: np.ndarray):
        yield 1.0, image
        if self.upscale and max(image.shape[:2]) < UPSCALE_BELOW:
            yield 2.0, cv2.resize(image, None, fx=2.0, fy=2.0, interpolation=cv2.INTER_LINEAR)

    def __call__(self, image: np.ndarray):
        """(mnet boxes, scores, landmarks), (yunet boxes, scores): each teacher's views box-voted."""
        mb, ms, ml, yb, ys = [], [], [], [], []
        for scale, view in self.views(image):
            d = self.mnet.detect(view)
            mb.append(d.boxes / scale), ms.append(d.scores), ml.append(d.landmarks / scale)
            h, w = view.shape[:2]
            self.yunet.setInputSize((w, h))
            _, faces = self.yunet.detect(view)
            if faces is not None:
                b = faces[:, :4].copy()
                b[:, 2:] += b[:, :2]
                yb.append(b / scale), ys.append(faces[:, 14])
        m = box_vote(np.concatenate(mb), np.concatenate(ms), np.concatenate(ml), 0.4, score="max")
        y = box_vote(np.concatenate(yb) if yb else np.zeros((0, 4)), np.concatenate(ys) if ys else np.zeros(0),
                     None, 0.4, score="max")
        return (m[0], m[1], m[2]), (y[0], y[1])


def run_teachers(name: str, records, out: Path, teachers_factory) -> dict:
    """{image path: detections} for the set, cached in OUT/teacher_<name>.npz (resumable)."""
    cache = out / f"teacher_{name}.npz"
    done = {}
    if cache.is_file():
        with np.load(cache, allow_pickle=True) as z:
            done = z["dets"].item()
    todo = [r for r in records if str(r.path) not in done]
    if todo:
        teachers = teachers_factory()
        teachers.upscale = name != "fddb"
        for k, r in enumerate(tqdm(todo, desc=f"teachers on {name}", unit="img")):
            try:
                image = read_image(r.path)
            except ImageReadError as exc:
                log.warning("%s; skipped", exc)
                continue
            (mb, ms, ml), (yb, ys) = teachers(image)
            done[str(r.path)] = dict(mb=mb, ms=ms, ml=ml, yb=yb, ys=ys, hw=image.shape[:2])
            if (k + 1) % 200 == 0 or k + 1 == len(todo):
                tmp = cache.with_suffix(".tmp.npz")
                np.savez(tmp, dets=np.array(done, dtype=object))
                tmp.replace(cache)
    return done


def apply_box_rule(boxes: np.ndarray, rule) -> np.ndarray:
    from retinaface_polynl.data.voc import voc_to_face_box

    return voc_to_face_box(boxes, *rule)


def fuse(det: dict, yunet_rule) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Both teachers' faces -> (boxes, fused scores, landmarks, has landmarks): see the module docstring."""
    mb, ms, ml = det["mb"], det["ms"], det["ml"]
    yb, ys = apply_box_rule(det["yb"], yunet_rule), det["ys"]
    iou = box_iou(mb, yb) if len(mb) and len(yb) else np.zeros((len(mb), len(yb)))
    boxes, scores, lms, has = [], [], [], []
    used = np.zeros(len(yb), bool)
    for i in np.argsort(-ms):
        j = int(np.argmax(np.where(used, -1, iou[i]))) if len(yb) else -1
        if j >= 0 and iou[i, j] >= 0.4 and not used[j]:
            used[j] = True
            w = np.array([ms[i], ys[j]])
            boxes.append((mb[i] * w[0] + yb[j] * w[1]) / w.sum())
            scores.append(w.mean())
        else:
            boxes.append(mb[i])
            scores.append(ms[i] / 2)
        lms.append(ml[i])
        has.append(True)
    for j in np.flatnonzero(~used):
        boxes.append(yb[j]), scores.append(ys[j] / 2), lms.append(np.zeros((5, 2))), has.append(False)
    return (np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(scores, np.float32),
            np.asarray(lms, np.float32).reshape(-1, 5, 2), np.asarray(has, bool))


def merge_record(record, det: dict | None, add_score: float, ignore_score: float, yunet_rule):
    """The record's annotation completed by the teachers -> a generic-JSON entry."""
    boxes = record.boxes.copy()
    lms, has = record.landmarks.copy(), record.has_landmarks.copy()
    ignore = [record.ignore]
    if det is not None:
        mb, ml = det["mb"], det["ml"]
        if len(boxes) and len(mb):  # teacher landmarks for annotated faces without their own
            iou = box_iou(boxes, mb)
            best = iou.argmax(1)
            take = (iou.max(1) >= 0.5) & ~has
            lms[take], has[take] = ml[best[take]], True
        tb, ts, tl, th = fuse(det, yunet_rule)
        if len(tb):
            overlap = box_iou(tb, boxes).max(1) if len(boxes) else np.zeros(len(tb))
            new = overlap < 0.3
            add = new & (ts >= add_score)
            unsure = new & (ts < add_score) & (ts >= ignore_score)
            boxes = np.concatenate([boxes, tb[add]])
            lms, has = np.concatenate([lms, tl[add]]), np.concatenate([has, th[add]])
            ignore.append(tb[unsure])
    ignore = np.concatenate(ignore).reshape(-1, 4)
    return {"image": str(record.path), "boxes": boxes.round(2).tolist(),
            "landmarks": [lm.round(2).tolist() if h else None for lm, h in zip(lms, has)],
            "ignore": ignore.round(2).tolist()}


def _median(x) -> float:
    return float(np.median(np.asarray(x))) if len(x) else float("nan")


def matched_ratios(boxes: np.ndarray, teacher: np.ndarray, min_iou: float) -> tuple[list, list, list, list]:
    """For each box whose best teacher box overlaps it at ``min_iou``: the teacher box's width
    and height over the box's, the box's centre minus the teacher's in box heights, and the IoU."""
    ws, hs, cs, ious = [], [], [], []
    iou = box_iou(boxes, teacher)
    for g, j in enumerate(iou.argmax(1)):
        if iou[g, j] < min_iou:
            continue
        a, t = boxes[g], teacher[j]
        h = a[3] - a[1]
        ws.append((t[2] - t[0]) / (a[2] - a[0])), hs.append((t[3] - t[1]) / h)
        cs.append(((a[1] + a[3]) - (t[1] + t[3])) / 2 / h), ious.append(iou[g, j])
    return ws, hs, cs, ious


def fit_rules(data: Path, caches: dict[str, dict]) -> dict:
    """The box rules, measured on the cached teacher detections (see the module docstring)."""
    rules = {}
    if "mask" in caches:  # VOC box (as drawn) -> MobileNet box
        ws, hs, cs, ious = [], [], [], []
        for r in read_voc(data / "faces_mask" / "train.txt", box_rule=None):
            d = caches["mask"].get(str(r.path))
            if d is None or not len(r.boxes):
                continue
            mb = d["mb"][d["ms"] >= 0.8]
            big = np.minimum(r.boxes[:, 2] - r.boxes[:, 0], r.boxes[:, 3] - r.boxes[:, 1]) >= 20
            if not len(mb) or not big.any():
                continue
            for acc, new in zip((ws, hs, cs, ious), matched_ratios(r.boxes[big], mb, 0.4)):
                acc.extend(new)
        rules["mask"] = dict(width_scale=_median(ws), height_scale=_median(hs), centre_shift=_median(cs),
                             faces=len(ws), median_iou_as_drawn=_median(ious))
    if "webfaces" in caches:
        points = read_webfaces_points(data / "faces_webfaces" / "landmarks.txt")
        ws, hs, cs, mw = [], [], [], []
        for name, pts in points.items():
            d = caches["webfaces"].get(str(data / "faces_webfaces" / "images" / name))
            if d is None:
                continue
            keep = d["ms"] >= 0.8
            mb, ml = d["mb"][keep], d["ml"][keep]
            if not len(mb):
                continue
            for p in pts:
                eyes = (p[0] + p[1]) / 2
                down = p[3] - eyes
                s = float(np.linalg.norm(down))
                if s < 8:
                    continue
                dist = np.linalg.norm(ml[:, 2] - p[2], axis=1)
                j = int(dist.argmin())
                if dist[j] > s / 4:
                    continue
                t = mb[j]
                c = (t[:2] + t[2:]) / 2
                ws.append((t[2] - t[0]) / s), hs.append((t[3] - t[1]) / s)
                cs.append(float(np.dot(c - eyes, down)) / s**2)
                mw.append(np.linalg.norm(ml[j, 4] - ml[j, 3]) / 2 / max(np.linalg.norm(p[1] - p[0]), 1e-6))
        rules["webfaces"] = dict(width_scale=_median(ws), height_scale=_median(hs), centre_shift=_median(cs),
                                 mouth_half_width=_median(mw), faces=len(ws))
    ws, hs, cs = [], [], []  # YuNet -> MobileNet, over every cached set
    for cache in caches.values():
        for d in cache.values():
            mb, yb = d["mb"][d["ms"] >= 0.8], d["yb"][d["ys"] >= 0.8]
            if not len(mb) or not len(yb):
                continue
            for acc, new in zip((ws, hs, cs), matched_ratios(yb, mb, 0.5)):
                acc.extend(new)
    rules["yunet"] = dict(width_scale=_median(ws), height_scale=_median(hs), centre_shift=_median(cs), faces=len(ws))
    return rules


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--data", type=Path, default=DATA, help=f"the shared data folder (default: {DATA})")
    p.add_argument("--out", type=Path, required=True, help="folder for the caches, labels and rules")
    p.add_argument("--sets", default=",".join(SETS), help=f"comma-separated sets (default: {','.join(SETS)})")
    p.add_argument("--fddb-folds", default="1-7", help="FDDB training folds (default: 1-7; 8 is validation)")
    p.add_argument("--add-score", type=float, default=0.6, help="fused teacher score from which an unannotated "
                   "face is added (default: 0.6)")
    p.add_argument("--ignore-score", type=float, default=0.15, help="fused teacher score from which an "
                   "unannotated face becomes an ignore region (default: 0.15)")
    p.add_argument("--fit", action="store_true", help="also print and save the measured box rules")
    args = p.parse_args(argv)
    args.data = args.data.resolve()  # the caches are keyed by image path: one spelling of each
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    names = [s.strip() for s in args.sets.split(",") if s.strip()]
    for n in names:
        if n not in SETS:
            p.error(f"unknown set {n!r}; choose from {', '.join(SETS)}")
    factory_cache = {}

    def factory():
        if "t" not in factory_cache:
            factory_cache["t"] = Teachers(args.data)
        return factory_cache["t"]

    records = {n: set_records(n, args.data, args.fddb_folds) for n in names}
    caches = {n: run_teachers(n, records[n], args.out, factory) for n in names}
    rules_file = args.out / "rules.json"
    if args.fit:
        rules = fit_rules(args.data, caches)
        rules_file.write_text(json.dumps(rules, indent=2) + "\n")
        print(json.dumps(rules, indent=2))
    yunet_rule = YUNET_RULE
    for n in names:
        entries = [merge_record(r, caches[n].get(str(r.path)), args.add_score, args.ignore_score, yunet_rule)
                   for r in records[n] if str(r.path) in caches[n]]
        (args.out / f"{n}.json").write_text(json.dumps(entries) + "\n")
        faces = sum(len(e["boxes"]) for e in entries)
        extra = faces - sum(len(r) for r in records[n] if str(r.path) in caches[n])
        ignored = sum(len(e["ignore"]) for e in entries)
        print(f"{n}: {len(entries)} images, {faces} faces ({extra} added by the teachers), {ignored} ignore regions "
              f"-> {args.out / (n + '.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
