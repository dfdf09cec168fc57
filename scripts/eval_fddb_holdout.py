"""Accuracy on the held-out FDDB fold and on dlib's annotated photos, side by side.

For each detector (our checkpoints, the third-party RetinaFace-MobileNet-0.25, YuNet):

* FDDB fold (default 8, never trained on): AP at IoU 0.5 against the ellipses'
  bounding boxes (FDDB's boxes) and against RetinaFace-style boxes derived from the
  ellipses (the convention the models are trained on: ``ellipse_to_face_box``), and
  the official discrete-ROC true-positive rate at a fixed number of false positives
  (region overlap with the ellipse > 0.5, Hungarian matching; ``widerface_eval.fddb``).
  Detections at score >= 0.02, original image size (``--size S``: every detector sees
  the image with its short side resized to S pixels, boxes mapped back; ``--size
  default``: each detector at its own default, i.e. our checkpoints at the input size
  they record, ``Detector.recommended_size``, the others at original size).
* the same fold's recall by face width (face boxes narrower than 40 px, 40-80 px, wider),
  at the default threshold 0.5 and IoU 0.5: where a detector loses faces.
* dlib ``testing.xml`` (5 photos, 25 faces): faces found (IoU >= 0.4 with dlib's
  tight square boxes) and false positives at the default threshold 0.5.

Our detectors run single-scale and with each ``--tta`` preset given.  ``--bootstrap N``
adds 95 % confidence intervals from N paired resamples of the fold's images (the same
resampled images for every detector): for each detector's AP50 (face boxes) and TPR, and
for its difference from the first detector listed, so a gap of half a point can be read
against the noise of a 271-photo fold.

    python scripts/eval_fddb_holdout.py --model ours=weights/default.pth \\
        --model baseline=runs/default_weights/r18x025/best.pth \\
        --model retinaface-mnet0.25=../shared/data/weights_thirdparty/pytorch_retinaface/mobilenet0.25_Final.pth \\
        --yunet ../shared/data/weights_thirdparty/yunet/face_detection_yunet_2026may.onnx --tta flip --json out.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from retinaface_polynl import Detector
from retinaface_polynl.detector import resize_scale
from retinaface_polynl.data.dlib_xml import read_dlib_xml
from retinaface_polynl.data.fddb import ellipse_to_face_box
from retinaface_polynl.zoom import ZoomRule
from widerface_eval import average_precision, box_iou, evaluate_fddb, load_fddb_annotations, resampled_average_precision
from widerface_eval.fddb import fddb_image_tables, merge_fddb_tables
from markdown_report import tee_stdout  # noqa: E402

LOW_THRESHOLD = 0.02


def add_floor_args(p: argparse.ArgumentParser) -> None:
    """``--min-size`` / ``--max-size``: our checkpoints under a short-side floor (shared with eval_crowd.py)."""
    p.add_argument("--min-size", type=int, metavar="PX", help="our checkpoints with a floor on the short side "
                   "instead (Detector(min_size=PX): smaller photos enlarged, none shrunk; the peers at original "
                   "size); recorded as size 'minPX' (with --max-size, 'minPX-capN')")
    p.add_argument("--max-size", type=int, metavar="PX", help="with --min-size: the long-side cap")
    p.add_argument("--zoom", choices=("auto", "on", "off"), default="auto",
                   help="our checkpoints' small-face zoom (retinaface_polynl.zoom): auto as each records, on "
                   "(the recorded rule, else the default ZoomRule; recorded as '+zoom' in the size), off "
                   "(one pass; '+nozoom') (default: auto)")
    p.add_argument("--zoom-factor", type=float, metavar="F",
                   help="with --zoom on: the default ZoomRule with its second pass at F times the first's scale "
                   "instead of the recorded rule (a candidate for scripts/ship_weights.py --zoom-factor; recorded "
                   "as '+zoomxF')")


def floor_options(p: argparse.ArgumentParser, args: argparse.Namespace) -> dict:
    """Check ``--min-size`` / ``--max-size`` against ``--size``, record the rule as ``args.size``
    (``min480-cap1024``) and return the ``Detector`` keywords for our checkpoints (with ``zoom``
    for ``--zoom on/off``)."""
    if args.max_size is not None and args.min_size is None:
        p.error("--max-size goes with --min-size")
    if args.min_size is not None:
        if isinstance(args.size, int):
            p.error("--min-size replaces a short side in --size: give one of them")
        args.size = f"min{args.min_size}" + (f"-cap{args.max_size}" if args.max_size else "")
    options = dict(min_size=args.min_size, max_size=args.max_size) if args.min_size is not None else {}
    zoom = getattr(args, "zoom", "auto")
    factor = getattr(args, "zoom_factor", None)
    if factor is not None:
        if zoom != "on":
            p.error("--zoom-factor goes with --zoom on")
        try:
            zoom = ZoomRule(factor=factor)
        except ValueError as exc:
            p.error(f"--zoom-factor: {exc}")
    if zoom != "auto":
        options["zoom"] = zoom
    return options


def size_tag(size, floor: dict) -> str | int:
    """The size a JSON file records: ``--size`` / the floor rule, plus ``+zoom`` / ``+nozoom`` for
    ``--zoom on/off`` (``summary_table.py`` looks rows up by it: ``crowd@min480-cap1024+zoom``)."""
    zoom = floor.get("zoom")
    if isinstance(zoom, ZoomRule):
        return f"{size}+zoomx{zoom.factor:g}"
    return size if zoom is None else f"{size}+{'zoom' if zoom == 'on' else 'nozoom'}"


def describe_zoom(floor: dict) -> str:
    """Words for the tables' headers: what ``--zoom`` chose."""
    zoom = floor.get("zoom")
    if isinstance(zoom, ZoomRule):
        return f", small-face zoom x{zoom.factor:g}"
    return {"on": ", small-face zoom on", "off": ", no small-face zoom"}.get(zoom, "")


class YuNet:
    """OpenCV's YuNet through cv2.FaceDetectorYN, returning (boxes xyxy, scores); ``size``
    resizes the short side first (boxes mapped back), as ``Detector(size=...)`` does."""

    def __init__(self, model: str, threshold: float, size: int | None = None):
        self.detector = cv2.FaceDetectorYN.create(model, "", (320, 320), threshold, 0.3, 5000)
        self.size = size

    def detect(self, image: np.ndarray):
        scale = resize_scale(*image.shape[:2], self.size, None)
        if scale != 1.0:
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        h, w = image.shape[:2]
        self.detector.setInputSize((w, h))
        _, faces = self.detector.detect(image)
        if faces is None:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        boxes = faces[:, :4].copy()
        boxes[:, 2:] += boxes[:, :2]
        return (boxes / scale).astype(np.float32), faces[:, 14].astype(np.float32)


def dlib_boxes(xml_path: Path) -> dict[str, np.ndarray]:
    return {r.path.name: r.boxes for r in read_dlib_xml(xml_path)}


def fddb_face_boxes(annotations: dict) -> dict[str, np.ndarray]:
    """FDDB's ellipses as the face boxes the models are trained on (``ellipse_to_face_box``)."""
    return {n: ellipse_to_face_box(a.ellipses) if len(a.ellipses) else np.zeros((0, 4), np.float32)
            for n, a in annotations.items()}


def dlib_score(dets: dict[str, tuple[np.ndarray, np.ndarray]], gt: dict[str, np.ndarray],
               threshold: float) -> tuple[int, int, int]:
    """``(found, faces, false positives)`` on dlib's ``testing.xml`` at ``threshold``."""
    found = false = 0
    for n, faces in gt.items():
        boxes, scores = dets[n]
        keep = scores >= threshold
        f, fp = found_and_false(faces, boxes[keep], scores[keep])
        found, false = found + f, false + fp
    return found, int(sum(len(g) for g in gt.values())), false


def greedy_match(gt: np.ndarray, boxes: np.ndarray, scores: np.ndarray, iou: float = 0.5):
    """Greedy one-to-one match in score order, each detection to the best face still free: per
    detection (in the given order) whether it is a true positive, and its best IoU with any face."""
    true = np.zeros(len(boxes), bool)
    ious = box_iou(gt, boxes) if len(gt) and len(boxes) else np.zeros((len(gt), len(boxes)))
    best = ious.max(0) if len(gt) else np.zeros(len(boxes))
    taken = np.zeros(len(gt), bool)
    for d in np.argsort(-scores, kind="stable") if len(gt) else ():
        free = np.where(taken, -1.0, ious[:, d])
        g = int(free.argmax())
        if free[g] >= iou:
            taken[g] = True
            true[d] = True
    return true, best


def found_and_false(gt: np.ndarray, boxes: np.ndarray, scores: np.ndarray, iou: float = 0.4) -> tuple[int, int]:
    """(faces found, false positives) of :func:`greedy_match`."""
    found = int(greedy_match(gt, boxes, scores, iou)[0].sum())
    return found, len(boxes) - found


WIDTH_BINS = ((0, 40), (40, 80), (80, 100000))


def recall_by_width(dets: dict, gt: dict[str, np.ndarray], threshold: float, iou: float = 0.5) -> dict[str, float]:
    """Share of ground-truth faces, per width bin, that some detection at ``threshold`` covers at ``iou``."""
    hit, width = [], []
    for name, boxes in gt.items():
        if not len(boxes):
            continue
        det, scores = dets[name]
        det = det[scores >= threshold]
        best = box_iou(boxes, det).max(1) if len(det) else np.zeros(len(boxes))
        hit.append(best >= iou)
        width.append(boxes[:, 2] - boxes[:, 0])
    hit, width = np.concatenate(hit), np.concatenate(width)
    out = {}
    for lo, hi in WIDTH_BINS:
        sel = (width >= lo) & (width < hi)
        key = f"recall_w{lo}-{hi}" if hi < 100000 else f"recall_w{lo}+"
        out[key] = round(float(hit[sel].mean()), 4) if sel.any() else float("nan")
    return out


TAIL_RECALLS = (0.90, 0.92, 0.94, 0.95)


def precision_tail(dets: dict, gt: dict[str, np.ndarray]) -> dict:
    """Where AP50 is won or lost near the end of the ranking: the precision (and the score reached)
    when the ranked detections first reach each recall of ``TAIL_RECALLS``, and how many
    detections there are at all. A detector whose last faces score as low as a flood of false
    boxes loses AP there, however many faces it finds."""
    _, recall, precision, scores = average_precision(dets, gt, iou=0.5, return_curve=True)
    out = {"detections": int(sum(len(s) for _, s in dets.values()))}
    for r in TAIL_RECALLS:
        i = int(np.searchsorted(recall, r))
        out[f"precision_at_recall_{r:g}"] = round(float(precision[i]), 4) if i < len(precision) else 0.0
        out[f"score_at_recall_{r:g}"] = round(float(scores[i]), 4) if i < len(scores) else None
    return out


def run_detector(detect, images: dict[str, Path], desc: str):
    out, seconds = {}, 0.0
    for name, path in tqdm(images.items(), desc=desc, leave=False):
        image = cv2.imread(str(path))
        if image is None:
            raise SystemExit(f"{path}: cannot be read")
        t = time.perf_counter()
        out[name] = detect(image)
        seconds += time.perf_counter() - t
    return out, seconds / max(1, len(images))


def bootstrap_metrics(dets: dict, annotations: dict, face_boxes: dict, samples: np.ndarray, fp: int) -> np.ndarray:
    """(AP50 on face boxes, discrete-ROC TPR at ``fp`` false positives) of each resample:
    ``samples`` (R, n) indexes the fold's images; an image drawn twice counts twice."""
    names = list(annotations)
    tables = fddb_image_tables(dets, annotations)
    out = np.zeros((len(samples), 2))
    out[:, 0] = resampled_average_precision(dets, {n: face_boxes[n] for n in names}, samples, iou=0.5)
    for r, idx in enumerate(samples):
        drawn = [names[i] for i in idx]
        _, tpd, _, fps = merge_fddb_tables(tables[n] for n in drawn if n in tables)
        faces = sum(len(annotations[n].ellipses) for n in drawn)
        ok = fps <= fp
        out[r, 1] = tpd[ok].max() / faces if ok.any() and faces else 0.0
    return out


def interval(values: np.ndarray) -> list[float]:
    return [round(float(v), 4) for v in np.percentile(values, [2.5, 97.5])]


def input_size(text: str) -> int | str:
    """``--size``: a positive pixel count, ``original`` or ``default``."""
    if text in ("original", "default"):
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a pixel count, 'original' or 'default', got {text!r}")
    return value


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fddb", default="../shared/data/faces_fddb")
    p.add_argument("--fold", default="8")
    p.add_argument("--dlib", default="../shared/data/faces_dlib")
    p.add_argument("--model", action="append", default=[], metavar="NAME=CKPT")
    p.add_argument("--yunet", help="YuNet ONNX file (cv2.FaceDetectorYN)")
    p.add_argument("--tta", action="append", default=[], help="also evaluate our models with this TTA preset")
    p.add_argument("--size", type=input_size, default="original",
                   help="short side every detector sees: N pixels, 'original' (the default), or 'default' "
                        "(our checkpoints at the input size they record, the others at original size)")
    add_floor_args(p)
    p.add_argument("--fp", type=int, default=100, help="false positives at which the ROC's TPR is reported")
    p.add_argument("--threshold", type=float, default=0.5, help="score threshold for the dlib count")
    p.add_argument("--bootstrap", type=int, default=0, metavar="N",
                   help="95%% confidence intervals from N paired resamples of the fold's images (e.g. 1000)")
    p.add_argument("--json", help="write all numbers here")
    p.add_argument("--markdown", help="also write the printed tables here (for the pages that quote them: "
                   "scripts/sync_docs.py)")
    args = p.parse_args(argv)
    floor = floor_options(p, args)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    warnings.simplefilter("ignore")

    fddb = Path(args.fddb)
    annotations = load_fddb_annotations(fddb, folds=args.fold)
    fddb_images = {n: fddb / "originalPics" / f"{n}.jpg" for n in annotations}
    fddb_images = {n: p for n, p in fddb_images.items() if p.is_file()}
    face_boxes = fddb_face_boxes(annotations)
    dlib_gt = dlib_boxes(Path(args.dlib) / "testing.xml")
    dlib_images = {n: Path(args.dlib) / n for n in dlib_gt}

    fixed = args.size if isinstance(args.size, int) else None
    detectors = []  # (row name, detect(image) -> (boxes, scores))
    for spec in args.model:
        name, _, ckpt = spec.partition("=")
        det = Detector(weights=ckpt, threshold=LOW_THRESHOLD, size=fixed, **floor)
        if args.size == "original":  # ignore the checkpoint's recommended input size
            det.recommended_size = det.recommended_max_size = None
        for tta in [None, *args.tta]:
            label = name if tta is None else f"{name} + TTA {tta}"
            detectors.append((label, lambda im, d=det, t=tta: (lambda r: (r.boxes, r.scores))(d.detect(im, tta=t))))
    if args.yunet:
        yunet = YuNet(args.yunet, LOW_THRESHOLD, fixed)
        detectors.append(("YuNet (OpenCV)", yunet.detect))

    rows, boot = [], []
    samples = np.random.default_rng(0).integers(0, len(annotations), (args.bootstrap, len(annotations)))
    for label, detect in detectors:
        fddb_dets, sec = run_detector(detect, fddb_images, f"{label} on FDDB fold {args.fold}")
        result = evaluate_fddb(fddb_dets, annotations)
        ap_face = average_precision(fddb_dets, face_boxes, iou=0.5)
        dlib_dets, _ = run_detector(detect, dlib_images, f"{label} on dlib")
        found, faces, false = dlib_score(dlib_dets, dlib_gt, args.threshold)
        row = {
            "detector": label,
            "fddb_ap50_ellipse_boxes": round(result.ap50, 4),
            "fddb_ap50_face_boxes": round(float(ap_face), 4),
            f"fddb_tpr_at_{args.fp}fp": round(result.tpr_at(args.fp), 4),
            "fddb_tpr_at_1000fp": round(result.tpr_at(1000), 4),
            "dlib_found": found,
            "dlib_faces": faces,
            "dlib_false_positives": false,
            "ms_per_fddb_image": round(1000 * sec, 1),
            **recall_by_width(fddb_dets, face_boxes, args.threshold),
            "tail": precision_tail(fddb_dets, face_boxes),
        }
        if args.bootstrap:
            boot.append(bootstrap_metrics(fddb_dets, annotations, face_boxes, samples, args.fp))
            row["bootstrap_ap50_face_boxes_ci95"] = interval(boot[-1][:, 0])
            row[f"bootstrap_tpr_at_{args.fp}fp_ci95"] = interval(boot[-1][:, 1])
            if len(boot) > 1:
                diff = boot[-1] - boot[0]
                row["bootstrap_ap50_diff_vs_first_ci95"] = interval(diff[:, 0])
                row["bootstrap_tpr_diff_vs_first_ci95"] = interval(diff[:, 1])
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)

    with tee_stdout(args.markdown):  # the tables, printed and kept for --markdown
        n_img, n_faces = len(annotations), sum(len(a.ellipses) for a in annotations.values())
        at = {"original": ", original size", "default": ", each detector's default input size"}.get(
            args.size, f", short side resized to {args.size} px")
        if args.min_size is not None:
            at = (f", ours with a short side of at least {args.min_size} px (never shrunk)"
                  + (f", long side <= {args.max_size}" if args.max_size else "") + ", the others at original size")
        at += describe_zoom(floor)
        print(f"\nFDDB fold {args.fold} ({n_img} images, {n_faces} faces) and dlib testing.xml (25 faces){at}\n")
        print(f"| detector | FDDB AP50 (ellipse boxes) | FDDB AP50 (face boxes) | FDDB TPR @ {args.fp} FP | "
              f"dlib found (thr {args.threshold}) | dlib false pos. | ms / FDDB image |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            print(f"| {r['detector']} | {r['fddb_ap50_ellipse_boxes']:.3f} | {r['fddb_ap50_face_boxes']:.3f} | "
                  f"{r[f'fddb_tpr_at_{args.fp}fp']:.3f} | {r['dlib_found']}/{r['dlib_faces']} | "
                  f"{r['dlib_false_positives']} | {r['ms_per_fddb_image']:.1f} |")
        keys = [k for k in rows[0] if k.startswith("recall_w")] if rows else []
        print(f"\nFDDB fold {args.fold}: recall at threshold {args.threshold}, IoU 0.5, by face-box width (px)\n")
        print("| detector | " + " | ".join(k.removeprefix("recall_w") for k in keys) + " |")
        print("|---|" + "---:|" * len(keys))
        for r in rows:
            print(f"| {r['detector']} | " + " | ".join(f"{r[k]:.3f}" for k in keys) + " |")
        print(f"\nFDDB fold {args.fold}: precision (face boxes, IoU 0.5) when the ranked detections first reach "
              f"each recall, with the score reached there; detections at score >= {LOW_THRESHOLD}\n")
        print("| detector | detections | " + " | ".join(f"recall {r:g}" for r in TAIL_RECALLS) + " |")
        print("|---|---:|" + "---:|" * len(TAIL_RECALLS))
        for r in rows:
            t = r["tail"]
            cells = [f"{t[f'precision_at_recall_{x:g}']:.3f}"
                     + (f" (at {t[f'score_at_recall_{x:g}']:.2f})" if t[f"score_at_recall_{x:g}"] is not None else "")
                     for x in TAIL_RECALLS]
            print(f"| {r['detector']} | {t['detections']} | " + " | ".join(cells) + " |")
        if args.bootstrap:
            first = rows[0]["detector"]
            print(f"\nFDDB fold {args.fold}: 95 % intervals from {args.bootstrap} paired resamples of its images "
                  f"(differences: detector minus {first})\n")
            print(f"| detector | AP50 (face boxes) | TPR @ {args.fp} FP | AP50 difference | TPR difference |")
            print("|---|---:|---:|---:|---:|")
            fmt = lambda ci: f"[{ci[0]:+.3f}, {ci[1]:+.3f}]"  # noqa: E731
            for r in rows:
                ap, tpr = r["bootstrap_ap50_face_boxes_ci95"], r[f"bootstrap_tpr_at_{args.fp}fp_ci95"]
                d_ap, d_tpr = r.get("bootstrap_ap50_diff_vs_first_ci95"), r.get("bootstrap_tpr_diff_vs_first_ci95")
                print(f"| {r['detector']} | {ap[0]:.3f}–{ap[1]:.3f} | {tpr[0]:.3f}–{tpr[1]:.3f} | "
                      f"{fmt(d_ap) if d_ap else '—'} | {fmt(d_tpr) if d_tpr else '—'} |")
    if args.json:
        record = {"fold": args.fold, "size": size_tag(args.size, floor), "rows": rows}
        Path(args.json).write_text(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
