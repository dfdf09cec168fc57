"""Where a checkpoint's WIDER dev AP goes: false positives by size, and what the small-face zoom does.

For each ``--model NAME=CKPT``, on the 103 photos of ``widerface_val_dev`` (official protocol, as
``scripts/eval_crowd.py`` scores them), at the input rule the checkpoint records and detections
down to score 0.02, once per zoom setting (one pass; the recorded rule; the default rule at each
``--factors`` value):

* Easy / Medium / Hard AP;
* false positives: boxes scoring >= 0.5 that overlap no annotated face of their photo at IoU 0.5
  (every face, whatever the setting: these are false in all three), by the box's longer side;
* what-if rows: Easy / Medium / Hard AP with every box under 16 px, or under 32 px, dropped: how much
  of a loss sits in small boxes ranked above the faces a setting counts (a diagnosis, not a rule to
  ship: dropping them costs Hard far more);
* ``--mosaic DIR``: the 40 highest-scoring false positives of each run, 96 px tiles with score and size.

Written for the December 2026 diagnosis (``weights/results/teachers4_dec2026/``): the ShanghaiTech-
tuned student's Easy loss was small boxes from the x2 second pass, not large ones.

    OMP_NUM_THREADS=1 python scripts/wider_errors.py --model shipped=weights/default.pth \\
        --model sht=runs/teachers4/train/last.pth --factors 1.5 --markdown /tmp/errors.md --mosaic /tmp/fp

About 1 minute per model and setting on one thread.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE / "scripts"))

from eval_crowd import LOW_THRESHOLD, best_iou, load_sets, wider_dev_ap  # noqa: E402

from retinaface_polynl import Detector  # noqa: E402
from retinaface_polynl.data.augment import face_sizes  # noqa: E402  (each box's longer side)
from retinaface_polynl.zoom import ZoomRule  # noqa: E402

DATA = HERE.parent / "shared" / "data"
SIZE_EDGES = (16, 32, 64, 128)
SIZE_NAMES = ("<16", "16-32", "32-64", "64-128", ">=128")
FP_SCORE = 0.5
DROP_BELOW = (16, 32)


def annotated_faces(gt) -> dict[str, np.ndarray]:
    """``{photo stem: every annotated face, xyxy}`` (all settings' faces, the ignored ones too)."""
    out = {}
    for image, boxes in zip(gt.images, gt.boxes):
        xyxy = boxes.astype(np.float64).copy()
        xyxy[:, 2:] += xyxy[:, :2]
        out[image] = xyxy
    return out


def false_positives(dets: dict, faces: dict[str, np.ndarray], score: float = FP_SCORE) -> list[tuple]:
    """``(score, longer side, stem, box)`` of every box scoring >= ``score`` that overlaps no face of
    its photo at IoU 0.5, highest score first.  ``dets``: ``{photo path or stem: (boxes xyxy, scores)}``."""
    out = []
    for key, (boxes, scores) in dets.items():
        stem = Path(key).stem
        keep = scores >= score
        boxes, scores = np.asarray(boxes)[keep], np.asarray(scores)[keep]
        if not len(boxes):
            continue
        iou = best_iou(boxes.astype(np.float64), faces[stem]) if len(faces[stem]) else np.zeros(len(boxes))
        for box, s, size, o in zip(boxes, scores, face_sizes(boxes), iou):
            if o < 0.5:
                out.append((float(s), float(size), stem, np.asarray(box, np.float64)))
    return sorted(out, key=lambda r: -r[0])


def by_size(fps: list[tuple]) -> dict[str, int]:
    sizes = np.array([r[1] for r in fps])
    bucket = np.searchsorted(SIZE_EDGES, sizes, side="right") if len(sizes) else np.zeros(0, int)
    return {name: int((bucket == i).sum()) for i, name in enumerate(SIZE_NAMES)}


def drop_small(dets: dict, below: float) -> dict:
    """The same detections without the boxes whose longer side is under ``below`` px."""
    out = {}
    for key, (boxes, scores) in dets.items():
        keep = face_sizes(np.asarray(boxes).reshape(-1, 4)) >= below
        out[key] = (np.asarray(boxes)[keep], np.asarray(scores)[keep])
    return out


def mosaic(fps: list[tuple], images: dict[str, np.ndarray], out: Path, count: int = 40, tile: int = 96) -> None:
    """The ``count`` first false positives (:func:`false_positives`) as tiles cut from ``images``
    (``{photo stem: BGR array}``, the photos already decoded), eight a row, written to ``out``."""
    tiles = []
    for score, size, stem, box in fps[:count]:
        image = images[stem]
        x0, y0, x1, y1 = np.round(box).astype(int)
        pad = int(0.3 * max(x1 - x0, y1 - y0))
        crop = image[max(0, y0 - pad):max(0, y1 + pad), max(0, x0 - pad):max(0, x1 + pad)]
        crop = cv2.resize(crop, (tile, tile)) if crop.size else np.zeros((tile, tile, 3), np.uint8)
        cv2.putText(crop, f"{score:.2f} {size:.0f}px", (2, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 255, 255), 1)
        tiles.append(crop)
    while not tiles or len(tiles) % 8:
        tiles.append(np.zeros((tile, tile, 3), np.uint8))
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), np.vstack([np.hstack(tiles[i:i + 8]) for i in range(0, len(tiles), 8)]))


def settings(factors: list[float]) -> list[tuple[str, object]]:
    """(name, Detector zoom=) of each run: one pass, the recorded rule, the default rule at each factor."""
    return [("one pass", "off"), ("recorded zoom", "auto")] + [(f"zoom x{f:g}", ZoomRule(factor=f)) for f in factors]


def analyse(dets: dict, gt, faces: dict) -> tuple[dict, list[tuple]]:
    """One run's table row and its false positives (:func:`false_positives`)."""
    fps = false_positives(dets, faces)
    row = {"ap": {k: round(100 * v, 1) for k, v in wider_dev_ap(dets, gt).items()},
           "false_positives": by_size(fps), "false_positives_total": len(fps)}
    for below in DROP_BELOW:
        row[f"ap_without_under_{below}px"] = {k: round(100 * v, 1) for k, v in wider_dev_ap(drop_small(dets, below), gt).items()}
    return row, fps


def markdown(results: dict) -> str:
    ap = lambda a: f"{a['easy']:.1f} / {a['medium']:.1f} / {a['hard']:.1f}"  # noqa: E731
    lines = ["| model | zoom | Easy / Medium / Hard | false positives at 0.5: " + " / ".join(SIZE_NAMES) + " px | "
             + " | ".join(f"without boxes under {b} px" for b in DROP_BELOW) + " |",
             "|---|---|---|---|" + "---|" * len(DROP_BELOW)]
    for model, runs in results.items():
        for setting, r in runs.items():
            fp = " / ".join(str(r["false_positives"][n]) for n in SIZE_NAMES)
            lines.append(f"| {model} | {setting} | {ap(r['ap'])} | {fp} (total {r['false_positives_total']}) | "
                         + " | ".join(ap(r[f"ap_without_under_{b}px"]) for b in DROP_BELOW) + " |")
    return "\n".join(lines) + "\n"


def factor_list(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
        for v in values:
            ZoomRule(factor=v)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--factors takes numbers above 1, comma-separated: {exc}") from None
    return values


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", action="append", required=True, metavar="NAME=CKPT", help="a checkpoint (repeatable)")
    p.add_argument("--data", type=Path, default=DATA, help=f"the shared data folder (default: {DATA})")
    p.add_argument("--factors", type=factor_list, default=[], metavar="F,F",
                   help="also the default zoom rule at these factors (default: none)")
    p.add_argument("--threads", type=int, default=1, help="engine threads (default: 1)")
    p.add_argument("--mosaic", type=Path, metavar="DIR", help="write each run's top false positives here as JPEG")
    p.add_argument("--markdown", type=Path)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    models = []
    for spec in args.model:
        name, _, ckpt = spec.partition("=")
        if not name or not ckpt:
            p.error(f"--model takes NAME=CKPT, got {spec!r}")
        models.append((name, ckpt))
    if not (args.data / "widerface_val_dev" / "LIST.json").is_file():
        p.error(f"{args.data}: no widerface_val_dev/LIST.json (pass --data, the shared data folder)")
    sets = load_sets(args.data, None, ("wider",))
    gt, paths = sets["wider_gt"], {q.stem: q for q in sets["wider_paths"]}
    faces = annotated_faces(gt)
    images = {stem: cv2.imread(str(q)) for stem, q in paths.items()}
    results: dict = {}
    for name, ckpt in models:
        for setting, zoom in settings(args.factors):
            det = Detector(weights=ckpt, threshold=LOW_THRESHOLD, threads=args.threads, zoom=zoom)
            dets = {}
            for stem, image in tqdm(images.items(), desc=f"{name}, {setting}", unit="photo", file=sys.stderr):
                d = det.detect(image)
                dets[stem] = (d.boxes, d.scores)
            row, fps = analyse(dets, gt, faces)
            results.setdefault(name, {})[setting] = row
            if args.mosaic:
                mosaic(fps, images, args.mosaic / f"{name}_{setting.replace(' ', '_')}.jpg")
    table = markdown(results)
    print(table)
    if args.markdown:
        args.markdown.write_text(table, encoding="utf-8")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
