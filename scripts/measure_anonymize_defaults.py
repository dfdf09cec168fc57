"""Measure the defaults of ``retinaface-polynl anonymize`` on real photos (docs/anonymize.md).

With the shipped weights (``Detector()``, single scale), on

- ``faces_mask/train.txt`` (682 crowd photos, all of them; 4,072 faces in the whole set: tight head
  boxes, many faces small and masked). These tables chose defaults, so they measure on the split
  allowed for tuning, never on ``val.txt`` (the crowd validation set, /work/shared/data/README.md):
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

Issue 38's comparison with ``deface`` 1.5.0 (``--only defaults``, and ``--only large`` for big photos):

- photos: FDDB folds 1-8 (2,241), the 103 WIDER dev photos (``widerface_val_dev``, faces from the
  official ground truth; the 4 not stretched by their publisher also on their own row), and the
  crowd set's ``train.txt`` (682; never its ``val.txt``); ``--limit N`` takes every k-th photo of
  each set for sweeps;
- both tools anonymise the same decoded pixels, and both outputs are scored the same way, from the
  pixels alone: a face (annotated, 24 px tall or more; WIDER's invalid ones left out) is *covered*
  when 90 % of its face ellipse changed (FDDB: the annotated ellipse; WIDER, crowd: the ellipse
  inscribed in the box); the *background change* of a photo is the mean absolute change, in 0-255
  levels over the three channels, of its pixels outside every annotated face's box grown 2x about
  its centre (so masking a face's hair and neck costs nothing, a box on a hand does); the table
  gives its mean over the photos, and the share of photos changed by more than 10 levels;
- ``deface`` runs in its own environment (``--deface-python``, default ``/tmp/deface-venv/bin/python``;
  ``python -m venv /tmp/deface-venv && /tmp/deface-venv/bin/pip install deface==1.5.0``) with its
  command line's defaults (CenterFace at the original size, threshold 0.2, mask scale 1.3, blurred
  ellipses), its output kept losslessly (deface itself writes a JPEG);
- ours: :func:`retinaface_polynl.anonymize.find_faces_for_anonymization` with the package's
  defaults, then :func:`anonymize`; ``--sweep`` also scores the other operating points (the lowest
  score, the score a box needs per unit of its extent, the turned passes' threshold) from one set of
  passes per photo.

``--only large`` pastes real FDDB faces of 24-300 px into 4000 x 3000 photos and compares, for
time and faces masked, the input rule alone (long side 1024), higher caps (2048, 4000) and tiles.

    OMP_NUM_THREADS=1 nice -n 10 python scripts/measure_anonymize_defaults.py --only defaults \
        --markdown docs/tables                  # docs/tables/anonymize_vs_deface.md
    OMP_NUM_THREADS=1 nice -n 10 python scripts/measure_anonymize_defaults.py --only defaults --sweep --limit 300

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
from retinaface_polynl.anonymize import DEFAULT_SCALE, anonymize, face_regions, region_mask  # noqa: E402
from widerface_eval.groundtruth import load_text_ground_truth  # noqa: E402
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
        lines = ["| threshold | FDDB fold 8: faces found | stray regions / photo | faces_mask train: faces masked "
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
    if results.get("defaults"):
        tables["anonymize_vs_deface.md"] = defaults_table(results["defaults"])
        if results["defaults"].get("sweep"):
            tables["anonymize_sweep.md"] = sweep_table(results["defaults"])
    if results.get("large"):
        tables["anonymize_large_photos.md"] = large_table(results["large"])
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



# == issue 38: the defaults against deface 1.5.0 ===================================================
MIN_HEIGHT = 24  # faces scored: annotated, at least this tall
COVERED = 0.9  # share of a face's ellipse that must change
ALLOWANCE = 2.0  # annotated boxes grown this much about their centre are not background
DEFACE_WORKER = r"""
import json, sys, time
import cv2, numpy as np
from deface.centerface import CenterFace
from deface.deface import anonymize_frame
jobs = json.load(open(sys.argv[1]))
centerface = CenterFace(in_shape=None, backend='auto')   # deface's command line: original size
times = []
for src, dst in jobs:
    bgr = cv2.imread(src, cv2.IMREAD_COLOR)
    frame = np.ascontiguousarray(bgr[:, :, ::-1])            # deface reads RGB (imageio)
    t = time.perf_counter()
    dets, _ = centerface(frame, threshold=0.2)               # deface's defaults: --thresh 0.2
    anonymize_frame(dets, frame, mask_scale=1.3, replacewith='blur', ellipse=True, draw_scores=False,
                    replaceimg=None, mosaicsize=20)
    times.append(time.perf_counter() - t)
    cv2.imwrite(dst, frame[:, :, ::-1])
json.dump({'seconds': times}, open(sys.argv[2], 'w'))
"""


class Photo:
    """One scored photo: its path, all annotated boxes (the background allowance) and the face
    ellipses scored for coverage (a boolean mask each, built lazily)."""

    def __init__(self, set_name: str, path: Path, boxes: np.ndarray, scored: list, tags=(), turn: int = 0):
        self.set, self.path, self.boxes, self.scored, self.tags = set_name, path, boxes, scored, set(tags)
        self.turn = turn  # quarter turns counter-clockwise (np.rot90's k): a sideways copy of the photo

    def image(self) -> np.ndarray:
        return np.ascontiguousarray(np.rot90(cv2.imread(str(self.path), cv2.IMREAD_COLOR), self.turn))

    def turned(self, set_name: str, turn: int) -> "Photo":
        """This photo turned ``turn`` quarters counter-clockwise, faces and allowance with it."""
        return Photo(set_name, self.path, self.boxes, self.scored, (), turn)

    def _upright_shape(self, shape):
        return (shape[1], shape[0]) if self.turn % 2 else tuple(shape[:2])

    def allowance(self, shape) -> np.ndarray:
        return np.rot90(self._upright_allowance(self._upright_shape(shape)), self.turn)

    def ellipses(self, shape) -> list[np.ndarray]:
        return [np.rot90(e, self.turn) for e in self._upright_ellipses(self._upright_shape(shape))]

    def _upright_allowance(self, shape) -> np.ndarray:
        mask = np.zeros(shape[:2], bool)
        h, w = shape[:2]
        for x1, y1, x2, y2 in self.boxes:
            cx, cy, hw, hh = (x1 + x2) / 2, (y1 + y2) / 2, ALLOWANCE * (x2 - x1) / 2, ALLOWANCE * (y2 - y1) / 2
            mask[max(0, int(cy - hh)):min(h, int(np.ceil(cy + hh))), max(0, int(cx - hw)):min(w, int(np.ceil(cx + hw)))] = True
        return mask

    def _upright_ellipses(self, shape) -> list[np.ndarray]:
        out = []
        for kind, *geometry in self.scored:
            if kind == "ellipse":  # FDDB: major, minor, angle (radians), cx, cy
                major, minor, angle, cx, cy = geometry
                m = np.zeros(shape[:2], np.uint8)
                cv2.ellipse(m, (round(cx), round(cy)), (max(1, round(major)), max(1, round(minor))),
                            float(np.degrees(angle)), 0, 360, 1, -1)
                out.append(m.astype(bool))
            else:
                out.append(region_mask(shape, np.asarray(geometry, np.float32)[None], scale=1.0))
        return out


def fddb_photos(data: Path) -> list[Photo]:
    fddb = data / "faces_fddb"
    photos = []
    for key, rec in json.loads((fddb / "annotations.json").read_text()).items():
        path = fddb / "originalPics" / f"{key}.jpg"
        if not path.exists():
            continue
        boxes = np.asarray(rec["boxes_xyxy"], np.float32).reshape(-1, 4)
        scored = [("ellipse", *e[:5]) for e, b in zip(rec["ellipses"], boxes) if b[3] - b[1] >= MIN_HEIGHT]
        photos.append(Photo("FDDB folds 1-8", path, boxes, scored,
                            tags=["fold 8, held out of training"] if rec["fold"] == 8 else []))
    return photos


def wider_photos(data: Path) -> list[Photo]:
    dev = data / "widerface_val_dev"
    keys = json.loads((dev / "LIST.json").read_text())
    sources = json.loads((dev / "SOURCES.json").read_text())
    gt = load_text_ground_truth(data / "widerface_val_gt" / "wider_face_val_bbx_gt.txt", warn=False)
    index = {f"{e}/{n}": i for i, (e, n) in enumerate(zip(gt.events, gt.images))}
    photos = []
    for key in keys:
        i = index.get(key)
        xywh = gt.boxes[i] if i is not None else np.zeros((0, 4))
        invalid = gt.attributes["invalid"][i] if i is not None else np.zeros(0, np.int64)
        boxes = np.asarray(np.c_[xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], np.float32).reshape(-1, 4)
        # invalid faces are not scored, only allowed for
        scored = [("box", *b) for b, (_, _, _, h), bad in zip(boxes.tolist(), xywh, invalid) if not bad and h >= MIN_HEIGHT]
        tags = ["sharp"] if sources.get(key, {}).get("kind") == "original" else []
        photos.append(Photo("WIDER dev", dev / "images" / f"{key}.jpg", boxes, scored, tags))
    return photos


def crowd_photos(data: Path) -> list[Photo]:
    mask_dir = data / "faces_mask"
    photos = []
    for name in (mask_dir / "train.txt").read_text().split():  # never val.txt: it judges, it does not tune
        boxes = voc_boxes(mask_dir / "annotations" / f"{name}.xml")
        scored = [("box", *b) for b in boxes if b[3] - b[1] >= MIN_HEIGHT]
        photos.append(Photo("crowd (faces_mask train)", mask_dir / "images" / f"{name}.jpg", boxes, scored))
    return photos


def sideways_photos(data: Path) -> list[Photo]:
    """Sideways copies (a photo held sideways without EXIF, people lying down): every 2nd photo of
    FDDB fold 8 and of WIDER dev turned a quarter, alternately each way, faces turned with it."""
    fold8 = [p for p in fddb_photos(data) if p.tags][::2]
    wider = wider_photos(data)[::2]
    return ([p.turned("FDDB fold 8, turned a quarter", 1 if k % 2 else 3) for k, p in enumerate(fold8)]
            + [p.turned("WIDER dev, turned a quarter", 1 if k % 2 else 3) for k, p in enumerate(wider)])


def score(photo: Photo, image: np.ndarray, out: np.ndarray, masks=None) -> tuple[int, int, float]:
    """(faces covered, faces scored, background change) of one anonymised photo; ``masks``: the
    photo's ``(ellipses, background)`` when already computed."""
    ellipses, background = masks or scoring_masks(photo, image.shape)
    change = np.abs(out.astype(np.int16) - image.astype(np.int16))
    changed = change.max(axis=2) > 0
    covered = sum(float(changed[e].mean()) >= COVERED for e in ellipses)
    bg = float(change.mean(axis=2)[background].mean()) if background.any() else 0.0
    return covered, len(ellipses), bg


def scoring_masks(photo: Photo, shape) -> tuple[list[np.ndarray], np.ndarray]:
    return [e for e in photo.ellipses(shape) if e.any()], ~photo.allowance(shape)


def run_deface(photos: list[Photo], python: str, workdir: Path) -> tuple[list[Path], list[float]]:
    """deface 1.5.0's output for each photo (lossless PNG files) and its seconds per photo."""
    import subprocess

    workdir.mkdir(parents=True, exist_ok=True)
    jobs = []
    for i, p in enumerate(photos):
        source = p.path
        if p.turn:  # deface reads files: the sideways copy, written losslessly
            source = workdir / f"{i:05d}_in.png"
            cv2.imwrite(str(source), p.image())
        jobs.append((str(source), str(workdir / f"{i:05d}.png")))
    (workdir / "jobs.json").write_text(json.dumps(jobs))
    subprocess.run([python, "-c", DEFACE_WORKER, str(workdir / "jobs.json"), str(workdir / "times.json")], check=True)
    return [Path(d) for _, d in jobs], json.loads((workdir / "times.json").read_text())["seconds"]


def sweep_configs() -> list[dict]:
    """The operating points ``--sweep`` scores (the package's defaults among them): the lowest score
    (small boxes), the score per unit of extent (long side / the picture's short side) a box needs,
    the most any box needs, and the turned passes' own threshold; then the defaults' faces with a
    lower threshold for the turned passes, and masked with larger regions (``--scale``, ``--shape``)."""
    configs = []
    for t in (0.03, 0.05, 0.1, 0.2):
        for per_extent in (0.0, 1.0, 1.25, 1.5, 2.0):
            for top in ((0.8,) if per_extent else (1.0,)):
                for rot in (None, 0.9):
                    configs.append({"threshold": t, "per_extent": per_extent, "max_required": top, "rotated": rot})
    configs.append(default_config())
    configs.append({**default_config(), "rotated": 0.8, "default": False})
    for scale, shape in ((1.6, "ellipse"), (1.8, "ellipse"), (1.5, "box"), (1.7, "box")):
        configs.append({**default_config(), "scale": scale, "shape": shape, "default": False})
    return configs


def default_config() -> dict:
    A = importlib.import_module("retinaface_polynl.anonymize")

    return {"threshold": A.MIN_SCORE, "per_extent": A.SCORE_PER_EXTENT, "max_required": A.MAX_REQUIRED_SCORE,
            "rotated": A.ROTATED_THRESHOLD if A.ROTATIONS else None, "default": True}


def describe(cfg: dict) -> str:
    if cfg["per_extent"]:
        s = (f"score >= {cfg['per_extent']:g} x extent, in [{cfg['threshold']:g}, {cfg['max_required']:g}]")
    else:
        s = f"score >= {cfg['threshold']:g} for every box"
    s += (f", turned >= {cfg['rotated']:g} (not inside a surer upright face)" if cfg["rotated"] is not None
          else ", upright only")
    if "scale" in cfg:
        s += f"; masked: {cfg['shape']} x{cfg['scale']:g}"
    return s


def ours_faces(passes: dict, shape, cfg: dict):
    from retinaface_polynl.anonymize import choose_faces

    chosen = {k: v for k, v in passes.items() if cfg["rotated"] is not None or not k.startswith("turned")}
    return choose_faces(chosen, shape, cfg["threshold"], rotated_threshold=cfg["rotated"] or 1.0,
                        score_per_extent=cfg["per_extent"], max_required=cfg["max_required"])


def measure_defaults(args, data: Path) -> dict:
    """Coverage and background change of ours (defaults, and ``--sweep``'s points) and deface 1.5.0."""
    import tempfile
    import time

    A = importlib.import_module("retinaface_polynl.anonymize")

    sets = {"fddb": fddb_photos, "wider": wider_photos, "crowd": crowd_photos, "sideways": sideways_photos}
    photos = []
    for name in args.sets:
        every = sets[name](data)
        step = max(1, len(every) // args.limit) if args.limit else 1
        photos += every[::step]
    detector = Detector()
    configs = sweep_configs() if args.sweep else [default_config()]
    tally: dict = {}  # (config index or "deface", set, tag) -> [covered, faces, [bg per photo]]
    seconds = {"ours": []}

    def add(key, photo, result):
        for tag in [None, *photo.tags]:
            row = tally.setdefault((key, photo.set, tag), [0, 0, []])
            row[0] += result[0]
            row[1] += result[1]
            row[2].append(result[2])

    for photo in tqdm(photos, desc="ours"):
        image = photo.image()
        t = time.perf_counter()
        faces = A.find_faces_for_anonymization(detector, image)
        out = anonymize(image, faces)
        seconds["ours"].append(time.perf_counter() - t)
        masks = scoring_masks(photo, image.shape)
        add("ours", photo, score(photo, image, out, masks))
        if args.sweep:
            low = min(c["threshold"] for c in configs)
            passes = A.detection_passes(detector, image, low, rotations=(90, 270))
            seen: dict = {}  # many points choose the same faces on a photo: score each set once
            for k, cfg in enumerate(configs):
                faces = ours_faces(passes, image.shape, cfg)
                region = {"scale": cfg.get("scale", DEFAULT_SCALE), "shape": cfg.get("shape", "ellipse")}
                key = (faces.boxes.tobytes(), region["scale"], region["shape"])
                if key not in seen:
                    seen[key] = score(photo, image, anonymize(image, faces, **region), masks)
                add(k, photo, seen[key])
    if not args.no_deface:
        with tempfile.TemporaryDirectory(prefix="deface-") as tmp:
            outs, seconds["deface"] = run_deface(photos, args.deface_python, Path(tmp))
            for photo, out_path in tqdm(list(zip(photos, outs)), desc="deface scored"):
                add("deface", photo, score(photo, photo.image(), cv2.imread(str(out_path), cv2.IMREAD_COLOR)))
    groups = sorted({(s, t) for _, s, t in tally}, key=lambda g: (g[0], g[1] or ""))
    rows = []
    for key in ["ours", "deface", *range(len(configs) if args.sweep else 0)]:
        for set_name, tag in groups:
            r = tally.get((key, set_name, tag))
            if r is None:
                continue
            bg = np.asarray(r[2])
            label = {"ours": "ours, defaults", "deface": "deface 1.5.0"}.get(key) or describe(configs[key])
            rows.append({"tool": label, "set": set_name + (f" ({tag})" if tag else ""), "photos": len(bg),
                         "faces": r[1], "covered": round(r[0] / max(r[1], 1), 4),
                         "background change": round(float(bg.mean()), 3),
                         "photos changed > 10": round(float((bg > 10).mean()), 4)})
            if key in ("ours", "deface"):
                print(rows[-1])
    result = {"rows": rows, "seconds per photo": {k: round(float(np.mean(v)), 4) for k, v in seconds.items() if v},
              "defaults": describe(default_config()), "limit": args.limit, "sweep": bool(args.sweep)}
    if args.sweep:  # best points per set: coverage at a background change no worse than deface's
        for set_name, tag in groups:
            if tag:
                continue
            ref = next((r for r in rows if r["tool"] == "deface 1.5.0" and r["set"] == set_name), None)
            cands = [r for r in rows if r["set"] == set_name and r["tool"] not in ("deface 1.5.0",)]
            cands.sort(key=lambda r: (-r["covered"], r["background change"]))
            print(f"\n{set_name}: deface {ref and (ref['covered'], ref['background change'])}")
            for r in cands[:40]:
                print(f"  {r['covered']:.4f}  bg {r['background change']:.3f}  {r['tool']}")
    return result


def pasted_faces_photo(data: Path, height: int, width: int, heights, seed: int):
    """A real photo without faces (dlib's dogs) stretched to ``height`` x ``width`` with real FDDB faces
    pasted at ``heights`` px (the face box's height), each in its own cell of a grid; returns the
    photo and the pasted face boxes."""
    fddb = data / "faces_fddb"
    annotations = json.loads((fddb / "annotations.json").read_text())
    rng = np.random.default_rng(seed)
    single = [(k, r) for k, r in sorted(annotations.items())
              if len(r["boxes_xyxy"]) == 1 and r["boxes_xyxy"][0][3] - r["boxes_xyxy"][0][1] >= 130]
    picks = rng.choice(len(single), size=len(heights), replace=False)
    canvas = cv2.resize(cv2.imread(str(data / "faces_dlib" / "dogs.jpg")), (width, height))
    cols = int(np.ceil(np.sqrt(len(heights) * width / height)))
    rows = int(np.ceil(len(heights) / cols))
    boxes = []
    for k, (pick, fh) in enumerate(zip(picks, heights)):
        key, rec = single[pick]
        image = cv2.imread(str(fddb / "originalPics" / f"{key}.jpg"))
        x1, y1, x2, y2 = rec["boxes_xyxy"][0]
        cx, cy, hw, hh = (x1 + x2) / 2, (y1 + y2) / 2, 0.8 * (x2 - x1), 0.8 * (y2 - y1)
        c1, r1 = int(max(0, cx - hw)), int(max(0, cy - hh))
        crop = image[r1:int(min(image.shape[0], cy + hh)), c1:int(min(image.shape[1], cx + hw))]
        s = fh / (y2 - y1)
        crop = cv2.resize(crop, (max(1, round(crop.shape[1] * s)), max(1, round(crop.shape[0] * s))),
                          interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
        cw, ch = width // cols, height // rows
        x = (k % cols) * cw + int(rng.integers(0, max(1, cw - crop.shape[1])))
        y = (k // cols) * ch + int(rng.integers(0, max(1, ch - crop.shape[0])))
        crop = crop[:height - y, :width - x]
        canvas[y:y + crop.shape[0], x:x + crop.shape[1]] = crop
        boxes.append(np.asarray([x1 - c1, y1 - r1, x2 - c1, y2 - r1], np.float32) * s + [x, y, x, y])
    return canvas, np.asarray(boxes, np.float32)


def faces_masked(shape, found, boxes) -> list[bool]:
    """Whether each of ``boxes`` is masked: :data:`COVERED` of it inside the union of ``found``'s regions."""
    mask = region_mask(shape, found)  # the union, drawn once for all the boxes
    return [float(mask[region_mask(shape, b[None], scale=1.0)].mean()) >= COVERED for b in boxes]


def measure_large(args, data: Path) -> dict:
    """Big photos: the input rule alone, higher caps and tiles (time, faces masked); and what the
    turned passes cost per video frame."""
    import time

    A = importlib.import_module("retinaface_polynl.anonymize")
    detector = Detector()
    heights = np.geomspace(24, 300, 20)
    photos = [pasted_faces_photo(data, 3000, 4000, heights, seed) for seed in range(3)]
    low = A.MIN_SCORE

    def one_pass(**size):  # one pass at a given input size, then the defaults' rule
        return lambda im: A.choose_faces({"upright": detector.detect(im, threshold=low, **size)}, im.shape)

    ways = [("input rule (long side 1024)", one_pass()),
            ("long side 2048", one_pass(max_size=2048)),
            ("original size (4000)", one_pass(size=3000, max_size=4000)),
            *[(f"tiles {side} px, overlap {A.TILE_OVERLAP}, + input rule",
               lambda im, side=side: A.choose_faces(A.detection_passes(detector, im, low, rotations=(), tiles=True,
                                                                       tile=side), im.shape))
              for side in (1024, 1536, 2048)],
            ("defaults (tiles + turned passes)", lambda im: A.find_faces_for_anonymization(detector, im))]
    rows = []
    for label, run in ways:
        masked, faces, small, small_n, seconds = 0, 0, 0, 0, []
        for image, boxes in photos:
            t = time.perf_counter()
            found = run(image)
            seconds.append(time.perf_counter() - t)
            for b, ok in zip(boxes, faces_masked(image.shape, found, boxes)):
                masked += ok
                faces += 1
                if b[3] - b[1] < 48:
                    small += ok
                    small_n += 1
        rows.append({"way": label, "faces": faces, "masked": round(masked / faces, 4),
                     "masked 24-48 px": round(small / max(small_n, 1), 4), "seconds": round(float(np.mean(seconds)), 2)})
        print(rows[-1])
    # the 48-megapixel photo of the issue, with the defaults
    image, boxes = pasted_faces_photo(data, 6000, 8000, np.linspace(80, 300, 16), 7)
    t = time.perf_counter()
    found = A.find_faces_for_anonymization(detector, image)
    big = {"seconds": round(time.perf_counter() - t, 1), "faces": len(boxes),
           "masked": int(sum(faces_masked(image.shape, found, boxes)))}
    print("48 MP", big)
    # video frames: what the turned passes (and flip) cost per frame
    frame_src = cv2.imread(str(data / "faces_dlib" / "2008_002470.jpg"))
    video = []
    for w, h in ((1280, 720), (1920, 1080)):
        frame = cv2.resize(frame_src, (w, h))
        tiled = " + tiles" if A.needs_tiles(detector, h, w) else ""
        for label, kw in (("upright" + tiled, {"rotations": ()}), ("upright + turned 90/270" + tiled, {}),
                          ("upright, no tiles", {"rotations": (), "tiles": False})):
            A.find_faces_for_anonymization(detector, frame, **kw)
            t = time.perf_counter()
            for _ in range(5):
                A.find_faces_for_anonymization(detector, frame, **kw)
            video.append({"frame": f"{w}x{h}", "passes": label, "ms per frame": round((time.perf_counter() - t) / 5 * 1000)})
            print(video[-1])
    return {"rows": rows, "48 MP": big, "video": video}


def large_table(result: dict) -> str:
    lines = ["| 3 photos of 4000 x 3000, 20 real faces of 24-300 px each | faces masked | of them 24-48 px "
             "| seconds per photo |", "|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['way']} | {_pct(r['masked'])} | {_pct(r['masked 24-48 px'])} | {r['seconds']:.1f} |")
    big = result["48 MP"]
    lines += ["", f"8000 x 6000 photo, {big['faces']} real faces of 80-300 px, defaults: {big['masked']} of "
              f"{big['faces']} masked in {big['seconds']:.0f} s.", "",
              "| video frame | passes | ms per frame |", "|---|---|---|"]
    for v in result["video"]:
        lines.append(f"| {v['frame']} | {v['passes']} | {v['ms per frame']} |")
    return "\n".join(lines) + "\n"


def sweep_table(result: dict) -> str:
    """Every operating point ``--sweep`` scored, one row each, the most WIDER faces covered first."""
    sets = ("FDDB folds 1-8", "WIDER dev", "crowd (faces_mask train)", "FDDB fold 8, turned a quarter",
            "WIDER dev, turned a quarter")
    sets = tuple(s for s in sets if any(r["set"] == s for r in result["rows"]))
    cells: dict = {}
    for r in result["rows"]:
        if r["set"] in sets:
            cells.setdefault(r["tool"], {})[r["set"]] = r
    head = " | ".join(f"{s}: covered | background" for s in sets)
    lines = [f"| operating point | {head} |", "|---" * (1 + 2 * len(sets)) + "|"]
    order = sorted(cells, key=lambda t: -cells[t].get("WIDER dev", {}).get("covered", 0))
    for tool in order:
        row = [tool]
        for s in sets:
            r = cells[tool].get(s)
            row += [_pct(r["covered"]), f"{r['background change']:.2f}"] if r else ["-", "-"]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def defaults_table(result: dict) -> str:
    lines = ["| set | photos | faces ≥ 24 px | ours: covered | ours: background change | ours: photos changed > 10 "
             "| deface 1.5.0: covered | deface: background change | deface: photos changed > 10 |",
             "|---|---|---|---|---|---|---|---|---|"]
    rows = result["rows"]
    for r in sorted(rows, key=lambda r: "turned a quarter" in r["set"]):  # the sideways copies last
        if r["tool"] != "ours, defaults":
            continue
        d = next((x for x in rows if x["tool"] == "deface 1.5.0" and x["set"] == r["set"]), None)
        cells = [r["set"], str(r["photos"]), str(r["faces"]), _pct(r["covered"]), f"{r['background change']:.2f}",
                 _pct(r["photos changed > 10"]), _pct(d["covered"]) if d else "-",
                 f"{d['background change']:.2f}" if d else "-", _pct(d["photos changed > 10"]) if d else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    secs = result["seconds per photo"]
    lines.append("")
    lines.append(f"Ours: {result['defaults']}. Seconds per photo (1 thread, shared CPU): "
                 + ", ".join(f"{k} {v:.3f}" for k, v in secs.items()) + ".")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--json", help="write the numbers here too")
    p.add_argument("--only", nargs="+", choices=("threshold", "scale", "strength", "defaults", "large"),
                   help="measure only these (default: threshold, scale and strength)")
    p.add_argument("--sets", nargs="+", choices=("fddb", "wider", "crowd", "sideways"),
                   default=["fddb", "wider", "crowd", "sideways"],
                   help="defaults: the photo sets (default: all four; sideways: every 2nd photo of FDDB fold 8 "
                   "and WIDER dev turned a quarter)")
    p.add_argument("--limit", type=int, default=0, help="defaults: about this many photos of each set (every k-th)")
    p.add_argument("--sweep", action="store_true", help="defaults: score the other operating points too")
    p.add_argument("--no-deface", action="store_true", help="defaults: ours only")
    p.add_argument("--deface-python", default="/tmp/deface-venv/bin/python",
                   help="defaults: a Python with deface 1.5.0 installed (default: /tmp/deface-venv/bin/python)")
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
    results: dict = {}
    if "defaults" in parts:
        results["defaults"] = measure_defaults(args, data)
        print(defaults_table(results["defaults"]))
    if "large" in parts:
        results["large"] = measure_large(args, data)
        print(large_table(results["large"]))
    if not parts & {"threshold", "scale", "strength"}:
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1))
        if args.markdown:
            write_tables(results, args.markdown)
        return
    detector = Detector(threshold=min(THRESHOLDS))

    # -- faces_mask train (never val.txt: these tables choose defaults) ---------------------
    mask_dir = data / "faces_mask"
    names = (mask_dir / "train.txt").read_text().split()
    photos = []
    for name in tqdm(names, desc="faces_mask train"):
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

    strength, defaults = [], (anon.BLUR_SIGMA, anon.PIXELATE_BLOCKS)  # put back after the sweep
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
    anon.BLUR_SIGMA, anon.PIXELATE_BLOCKS = defaults
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
