"""Measure the defaults of ``retinaface-polynl anonymize`` on real photos (docs/anonymize.md).

With the shipped weights (``Detector()``, single scale), on

- ``faces_mask/val.txt`` (171 crowd photos, 4,072 faces in the whole set: tight head boxes,
  many faces small and masked):
  * threshold: for each candidate, the share of annotated faces that end up masked (at
    least 90 % of the annotated box inside the union of masked regions), by face size,
    and the masked regions per image that touch no annotated face;
  * scale / shape: the share of detected faces (matched to an annotation, IoU >= 0.3) whose
    whole annotated head box (>= 95 % of it) lies inside the face's own region;
  * strength: re-running the detector on the anonymised photos, the share of faces it had
    found (>= 24 px) that it still finds (IoU >= 0.3): a blurred face the detector can
    still find has kept its face-like structure;
- FDDB fold 8 (271 photos, 511 faces; held out of the shipped model's training, ``faces_fddb/annotations.json``): per threshold,
  the share of annotated faces detected and the regions per photo that touch no face; the
  share of detected faces whose whole forehead-to-chin ellipse (>= 95 % of its pixels) lies
  inside the region, per scale and shape.

    OMP_NUM_THREADS=1 python scripts/measure_anonymize_defaults.py [--data ../shared/data] [--json out.json]
    OMP_NUM_THREADS=1 python scripts/measure_anonymize_defaults.py --markdown docs/tables   # the tables docs/anonymize.md quotes

``--markdown DIR`` writes ``anonymize_threshold.md``, ``anonymize_scale.md`` and
``anonymize_strength.md`` there (the defaults in bold); ``--from-json FILE`` writes them from
an earlier ``--json`` without measuring again.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from retinaface_polynl import Detector  # noqa: E402
from retinaface_polynl.anonymize import anonymize, face_regions, region_mask  # noqa: E402
from torchvision.ops import box_iou  # noqa: E402
import torch  # noqa: E402

THRESHOLDS = (0.5, 0.4, 0.3, 0.2, 0.1)
SCALES = (1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6)
STRENGTHS = [("blur", 1 / 16), ("blur", 1 / 12), ("blur", 1 / 8), ("blur", 1 / 6), ("pixelate", 16),
             ("pixelate", 12), ("pixelate", 8), ("solid", None)]


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _bold(cells: list[str], on: bool) -> list[str]:
    return [f"**{c}**" for c in cells] if on else cells


def markdown_tables(results: dict) -> dict[str, str]:
    """The three tables of docs/anonymize.md from :func:`main`'s results (defaults in bold)."""
    from retinaface_polynl.anonymize import ANONYMIZE_THRESHOLD, BLUR_SIGMA, DEFAULT_SCALE, PIXELATE_BLOCKS

    tables = {}
    if "threshold" in results and "threshold_fddb" in results:
        lines = ["| threshold | FDDB fold 8: faces found | stray regions / photo | faces_mask val: faces masked "
                 "| of them < 20 px | ≥ 20 px | stray regions / photo |", "|---|---|---|---|---|---|---|"]
        fddb = {r["threshold"]: r for r in results["threshold_fddb"]}
        for r in results["threshold"]:
            f = fddb[r["threshold"]]
            cells = [f"{r['threshold']:g}", _pct(f["detected (IoU >= 0.3)"]), f"{f['regions on no face per image']:.2f}",
                     _pct(r["masked all"]), _pct(r["masked <20px"]), _pct(r["masked >=20px"]),
                     f"{r['regions on no face per image']:.2f}"]
            lines.append("| " + " | ".join(_bold(cells, r["threshold"] == ANONYMIZE_THRESHOLD)) + " |")
        tables["anonymize_threshold.md"] = "\n".join(lines) + "\n"
    if "scale_fddb" in results and "scale_faces_mask" in results:
        def share(rows, key):
            return {(r["shape"], r["scale"]): r[key] for r in rows}

        fddb, mask = share(results["scale_fddb"], "ellipse covered"), share(results["scale_faces_mask"], "head box covered")
        lines = ["| scale | ellipse: FDDB ellipse | box: FDDB ellipse | ellipse: faces_mask head box "
                 "| box: faces_mask head box |", "|---|---|---|---|---|"]
        for s in sorted({k[1] for k in fddb}):
            cells = [f"{s:g}", _pct(fddb[("ellipse", s)]), _pct(fddb[("box", s)]), _pct(mask[("ellipse", s)]),
                     _pct(mask[("box", s)])]
            lines.append("| " + " | ".join(_bold(cells, abs(s - DEFAULT_SCALE) < 1e-9)) + " |")
        tables["anonymize_scale.md"] = "\n".join(lines) + "\n"
    if results.get("strength"):
        faces = results["strength"][0]["faces"]
        lines = [f"| method ({faces} faces of 24 px and more found before) | still found |", "|---|---|"]
        for r in results["strength"]:
            if r["method"] == "blur":
                label, default = f"blur, sigma 1/{round(1 / r['value'])} of the region", abs(r["value"] - BLUR_SIGMA) < 1e-9
            elif r["method"] == "pixelate":
                label, default = f"pixelate, {r['value']} blocks", r["value"] == PIXELATE_BLOCKS
            else:
                label, default = r["method"], False
            label += " (default)" if default else ""
            lines.append("| " + " | ".join(_bold([label, _pct(r["still found"])], default)) + " |")
        tables["anonymize_strength.md"] = "\n".join(lines) + "\n"
    return tables


def voc_boxes(xml: Path) -> np.ndarray:
    root = ET.parse(xml).getroot()
    boxes = [[float(o.find("bndbox").findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")]
             for o in root.iter("object") if o.find("bndbox") is not None]
    return np.asarray(boxes, np.float32).reshape(-1, 4)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    return box_iou(torch.from_numpy(a).float(), torch.from_numpy(b).float()).numpy()


def inside_share(mask: np.ndarray, box) -> float:
    """Share of a box's pixels that the mask holds."""
    h, w = mask.shape
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
    if x2 <= x1 or y2 <= y1:
        return 1.0
    return float(mask[y1:y2, x1:x2].mean())


def match(det_boxes, gt, min_iou=0.3):
    """Greedy one-to-one pairs (det index, gt index) by IoU."""
    m = iou(det_boxes, gt)
    pairs = []
    while m.size and m.max() >= min_iou:
        i, j = np.unravel_index(m.argmax(), m.shape)
        pairs.append((i, j))
        m[i, :] = -1
        m[:, j] = -1
    return pairs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--json", help="write the numbers here too")
    p.add_argument("--only", nargs="+", choices=("threshold", "scale", "strength"),
                   help="measure only these (default: all)")
    p.add_argument("--fddb-images", type=int, default=271, help="photos of FDDB fold 8 (default: all 271)")
    p.add_argument("--markdown", type=Path, metavar="DIR", help="write the docs' three tables into this folder")
    p.add_argument("--from-json", type=Path, metavar="FILE", help="make the --markdown tables from an earlier --json")
    args = p.parse_args()
    if args.from_json:
        if not args.markdown:
            p.error("--from-json needs --markdown DIR")
        write_tables(json.loads(args.from_json.read_text()), args.markdown)
        return
    parts = set(args.only or ("threshold", "scale", "strength"))
    data = Path(args.data)
    detector = Detector(threshold=min(THRESHOLDS))
    results: dict = {}

    # -- faces_mask val ------------------------------------------------------------------
    mask_dir = data / "faces_mask"
    names = (mask_dir / "val.txt").read_text().split()
    photos = []
    for name in tqdm(names, desc="faces_mask val"):
        image = cv2.imread(str(mask_dir / "images" / f"{name}.jpg"))
        gt = voc_boxes(mask_dir / "annotations" / f"{name}.xml")
        photos.append((image, gt, detector.detect(image)))

    rows = []
    for t in THRESHOLDS if "threshold" in parts else ():
        covered = {"all": [0, 0], "<20px": [0, 0], ">=20px": [0, 0]}
        spurious = found = 0
        for image, gt, det in photos:
            d = det.select(det.scores >= t)
            found += len(match(d.boxes, gt))
            mask = region_mask(image.shape, d)
            for box in gt:
                size = "<20px" if max(box[2] - box[0], box[3] - box[1]) < 20 else ">=20px"
                ok = inside_share(mask, box) >= 0.9
                for key in ("all", size):
                    covered[key][0] += ok
                    covered[key][1] += 1
            if len(d):
                touching = iou(face_regions(d), gt).max(axis=1) if len(gt) else np.zeros(len(d))
                spurious += int((touching <= 0).sum())
        row = {"threshold": t, **{f"masked {k}": round(v[0] / max(v[1], 1), 4) for k, v in covered.items()},
               "faces": covered["all"][1], "detected (IoU >= 0.3)": round(found / max(covered["all"][1], 1), 4),
               "regions on no face per image": round(spurious / len(photos), 3)}
        rows.append(row)
        print(row)
    if rows:
        results["threshold"] = rows

    def scale_table(pairs_of, label):
        table = []
        for shape in ("ellipse", "box"):
            for s in SCALES:
                ok = n = 0
                for image, boxes, wants in pairs_of:
                    for box, want in zip(boxes, wants):
                        mask = region_mask(image.shape, box[None], shape=shape, scale=s)
                        ok += want(mask) >= 0.95
                        n += 1
                table.append({"shape": shape, "scale": s, f"{label} covered": round(ok / max(n, 1), 4), "faces": n})
                print(table[-1])
        return table

    matched = []
    for image, gt, det in photos if "scale" in parts else ():
        d = det.select(det.scores >= 0.3)
        pairs = match(d.boxes, gt)
        matched.append((image, np.asarray([d.boxes[i] for i, _ in pairs]).reshape(-1, 4),
                        [lambda m, b=gt[j]: inside_share(m, b) for _, j in pairs]))
    if matched:
        results["scale_faces_mask"] = scale_table(matched, "head box")

    # -- FDDB ellipses ---------------------------------------------------------------------
    fddb = data / "faces_fddb"
    annotations = json.loads((fddb / "annotations.json").read_text())
    chosen = [(k, v) for k, v in annotations.items() if v["fold"] == 8][: args.fddb_images]
    if not parts & {"threshold", "scale"}:
        chosen = []
    fddb_pairs, fddb_found = [], []
    for key, rec in tqdm(chosen, desc="FDDB fold 8"):
        image = cv2.imread(str(fddb / "originalPics" / f"{key}.jpg"))
        if image is None:
            continue
        everything = detector.detect(image)
        gt = np.asarray(rec["boxes_xyxy"], np.float32).reshape(-1, 4)
        fddb_found.append((everything, gt))
        d = everything.select(everything.scores >= 0.3)
        wants, boxes = [], []
        for i, j in match(d.boxes, gt):
            major, minor, angle, cx, cy = rec["ellipses"][j][:5]
            ell = np.zeros(image.shape[:2], np.uint8)
            cv2.ellipse(ell, (round(cx), round(cy)), (round(major), round(minor)), np.degrees(angle), 0, 360, 1, -1)
            pixels = ell.astype(bool)
            wants.append(lambda m, e=pixels: float(m[e].mean()) if e.any() else 1.0)
            boxes.append(d.boxes[i])
        fddb_pairs.append((image, np.asarray(boxes).reshape(-1, 4), wants))
    rows = []
    for t in THRESHOLDS if "threshold" in parts else ():
        found = faces = spurious = 0
        for det, gt in fddb_found:
            d = det.select(det.scores >= t)
            found += len(match(d.boxes, gt))
            faces += len(gt)
            if len(d):
                spurious += int((iou(face_regions(d), gt).max(axis=1) <= 0).sum()) if len(gt) else len(d)
        rows.append({"threshold": t, "faces": faces, "detected (IoU >= 0.3)": round(found / max(faces, 1), 4),
                     "regions on no face per image": round(spurious / max(len(fddb_found), 1), 3)})
        print(rows[-1])
    if rows:
        results["threshold_fddb"] = rows
    if "scale" in parts:
        results["scale_fddb"] = scale_table(fddb_pairs, "ellipse")

    # -- strength: does the detector still find the anonymised faces? -----------------------
    anon = importlib.import_module("retinaface_polynl.anonymize")  # the module (the package exports the function)

    strength = []
    for method, value in STRENGTHS if "strength" in parts else ():
        if method == "blur":
            anon.BLUR_SIGMA = value
        elif method == "pixelate":
            anon.PIXELATE_BLOCKS = value
        found = n = 0
        for image, gt, det in tqdm(photos, desc=f"{method} {value}"):
            d = det.select((det.scores >= 0.3) & (np.maximum(det.boxes[:, 2] - det.boxes[:, 0],
                                                              det.boxes[:, 3] - det.boxes[:, 1]) >= 24))
            if not len(d):
                continue
            again = detector.detect(anonymize(image, d, method=method), threshold=0.3)
            m = iou(d.boxes, again.boxes)
            found += int((m.max(axis=1) >= 0.3).sum()) if m.size else 0
            n += len(d)
        row = {"method": method, "value": value, "still found": round(found / max(n, 1), 4), "faces": n}
        strength.append(row)
        print(row)
    if strength:
        results["strength"] = strength
    results["setup"] = {"detector": detector.describe(), "input": detector.describe_input()}
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    if args.markdown:
        write_tables(results, args.markdown)


def write_tables(results: dict, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in markdown_tables(results).items():
        (folder / name).write_text(text, encoding="utf-8")
        print(f"wrote {folder / name}")


if __name__ == "__main__":
    main()
