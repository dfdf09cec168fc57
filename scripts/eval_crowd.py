"""Accuracy on crowds, side by side: the validation sets of the crowd recipe.

For each detector (our checkpoints, the third-party RetinaFace-MobileNet-0.25, YuNet):

* ``faces_mask/val.txt`` (171 crowd photos, 819 faces; never trained on): AP at IoU 0.5
  over all faces (detections at score >= 0.02), against the boxes as drawn (the
  issue's protocol: the numbers of its targets) and against the boxes mapped to
  RetinaFace's convention by the measured rule (``data/voc.py``: what the models
  are taught); and the recall at the default threshold 0.5 by the box's longer side
  (under 16 px, 16-32, 32-64, over 64 by the drawn box's longer side; a face counts as
  found when a detection overlaps its drawn or its mapped box at IoU 0.5, so the box
  convention does not decide a bucket).
* ``widerface_val_dev/`` (103 real WIDER FACE validation photos, 99 of them upscaled
  back from 416 px by their publisher): the official Easy / Medium / Hard AP (the
  default protocol of ``widerface_eval``) restricted to these photos. Use it to compare
  detectors with each other, not with published numbers. A second table gives, for the
  faces Easy counts and those Hard counts, the fraction found at the default threshold 0.5
  (IoU 0.5) by box height: where a detector loses what its AP misses.
* ``crowds_shanghaitech/`` (38 street crowds, no face labels): agreement with the
  two teachers' fused faces (``scripts/make_crowd_labels.py``): AP at IoU 0.5
  against the faces both teachers find (fused score >= 0.6). Circular for the
  teachers themselves (listed for reference), out-of-domain for ours as long as the
  recipe does not train on these photos (it does not).

``--size``: ``default`` (ours at the input size the checkpoint records, the others at
original size), ``original``, or a short side in pixels for every detector.

``--bootstrap N``: 95 % intervals of each detector's crowd AP50 (as drawn) from N resamples of
the 171 crowd photos, and of its WIDER dev Easy / Medium / Hard AP from N resamples of the 103
WIDER photos (seed 0, a photo drawn twice counts twice; the official protocol's matching and
score normalisation are the whole set's), and of each detector's difference from the first one
on the same resamples (paired): whether two detectors differ by more than the choice of photos
does.

``--tta flip`` / ``--tta paper``: our checkpoints and the MobileNet through the
test-time augmentation of :mod:`retinaface_polynl.tta` (``paper``: the supplementary's
five scales x four shifts x flip, box voting) instead of one pass and the small-face
zoom; YuNet has none and runs once. ``paper`` costs about 15 s per WIDER photo on two
CPU cores, so ``--sets wider`` (any of ``mask``, ``wider``, ``shanghai``) limits the run
to the sets you need. The size a JSON file records gains ``+tta-flip`` / ``+tta-paper``.

    python scripts/eval_crowd.py --model ours=weights/default.pth \\
        --mnet ../shared/data/weights_thirdparty/pytorch_retinaface/mobilenet0.25_Final.pth \\
        --yunet ../shared/data/weights_thirdparty/yunet/face_detection_yunet_2026may.onnx \\
        --markdown out.md --json out.json
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE / "scripts"))

from eval_fddb_holdout import YuNet, add_floor_args, describe_zoom, floor_options, interval, run_detector, size_tag  # noqa: E402

from retinaface_polynl import Detector  # noqa: E402
from retinaface_polynl.tta import TTA_PRESETS  # noqa: E402
from retinaface_polynl.data.generic import read_generic_json  # noqa: E402
from retinaface_polynl.data.voc import read_voc  # noqa: E402
from widerface_eval import average_precision, box_iou, evaluate_predictions, load_ground_truth  # noqa: E402
from widerface_eval import resampled_ap as wider_resampled_ap, resampled_average_precision  # noqa: E402

DATA = HERE.parent / "shared" / "data"
LOW_THRESHOLD = 0.02
WIDER_SETTINGS = ("easy", "medium", "hard")
DEFAULT_THRESHOLD = 0.5
SIZE_BUCKETS = ((0, 16), (16, 32), (32, 64), (64, 100000))
BUCKET_NAMES = ("<16", "16-32", "32-64", ">64")
# WIDER dev's faces by box height (the official boxes are x y w h; Easy's faces are 40 px and more)
HEIGHT_BUCKETS = ((0, 20), (20, 40), (40, 80), (80, 160), (160, 100000))
HEIGHT_NAMES = ("<20", "20-40", "40-80", "80-160", ">160")
RECALL_SETTINGS = ("easy", "hard")


def input_size(text: str):
    if text in ("default", "original"):
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size takes default, original or pixels, got {text!r}") from None
    if value < 32:
        raise argparse.ArgumentTypeError("--size must be at least 32 px")
    return value


def subset_ground_truth(gt, keys: list[str]):
    """The ground truth of the images ``event/name`` in ``keys`` only (faces of other images left out)."""
    index = {f"{e}/{n}": i for i, (e, n) in enumerate(zip(gt.events, gt.images))}
    missing = [k for k in keys if k not in index]
    if missing:
        raise ValueError(f"{len(missing)} images not in the ground truth, e.g. {missing[0]}")
    rows = [index[k] for k in keys]
    changes = {}
    for f in dataclasses.fields(gt):
        value = getattr(gt, f.name)
        if isinstance(value, list) and len(value) == len(gt.images):
            changes[f.name] = [value[i] for i in rows]
        elif isinstance(value, dict) and value and all(isinstance(v, list) and len(v) == len(gt.images)
                                                        for v in value.values()):
            changes[f.name] = {k: [v[i] for i in rows] for k, v in value.items()}
    return dataclasses.replace(gt, **changes)


def run(detect, paths: list[Path], desc: str):
    """{path: detect(image)} and the seconds per image (``eval_fddb_holdout.run_detector``)."""
    return run_detector(detect, {p: p for p in paths}, desc)


def best_iou(faces: np.ndarray, det: np.ndarray) -> np.ndarray:
    """Each face's largest IoU with any box of ``det`` (xyxy; 0 for every face when there is none)."""
    return box_iou(faces, det).max(1) if len(det) else np.zeros(len(faces))


def recall_by_size(dets: dict, drawn: dict, mapped: dict) -> dict[str, float]:
    hit, size = [], []
    for key, boxes in drawn.items():
        if not len(boxes):
            continue
        det, scores = dets[key]
        det = det[scores >= DEFAULT_THRESHOLD]
        hit.append(np.maximum(best_iou(boxes, det), best_iou(mapped[key], det)) >= 0.5)
        size.append(np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]))
    hit, size = np.concatenate(hit), np.concatenate(size)
    return {name: round(float(hit[(size >= lo) & (size < hi)].mean()), 4)
            for name, (lo, hi) in zip(BUCKET_NAMES, SIZE_BUCKETS)}


def mask_scores(dets: dict, sets: dict) -> dict:
    """faces_mask val AP50 against the boxes as drawn and as mapped, and recall by size (unrounded)."""
    return {"mask_ap50_drawn": average_precision(dets, sets["mask_drawn"]),
            "mask_ap50_mapped": average_precision(dets, sets["mask_mapped"]),
            "mask_recall": recall_by_size(dets, sets["mask_drawn"], sets["mask_mapped"])}


def paired_intervals(aps: dict[str, np.ndarray], key: str) -> dict[str, dict]:
    """``{name: {KEY_ci95: [lo, hi], KEY_diff_vs_first_ci95: [lo, hi]}}`` from each detector's values
    over the same resamples (the difference for every detector but the first)."""
    first = next(iter(aps.values()), None)
    out = {}
    for k, (name, ap) in enumerate(aps.items()):
        out[name] = {f"{key}_ci95": interval(ap)}
        if k:
            out[name][f"{key}_diff_vs_first_ci95"] = interval(ap - first)
    return out


def bootstrap_mask_ap(mask_dets: dict, gt: dict, resamples: int, seed: int = 0) -> dict[str, dict]:
    """``{name: {"mask_ap50_drawn_ci95": [lo, hi], "mask_ap50_drawn_diff_vs_first_ci95": ...}}``:
    each detector's crowd AP50 (as drawn) over ``resamples`` resamples of the photos, and its
    difference from the first detector's on the same resamples (every detector but the first)."""
    samples = np.random.default_rng(seed).integers(0, len(gt), (resamples, len(gt)))
    aps = {name: resampled_average_precision(dets, gt, samples) for name, dets in mask_dets.items()}
    return paired_intervals(aps, "mask_ap50_drawn")


def wider_predictions(dets: dict) -> dict[str, np.ndarray]:
    """``{photo path: (boxes xyxy, scores)}`` as the official protocol reads them: ``{stem: (N, 5) x y w h score}``."""
    preds = {}
    for path, (boxes, scores) in dets.items():
        xywh = boxes.astype(np.float64).copy()
        xywh[:, 2:] -= xywh[:, :2]
        preds[Path(path).stem] = np.concatenate([xywh, scores[:, None].astype(np.float64)], 1)
    return preds


def wider_recall_by_height(dets: dict, gt, setting: str) -> dict[str, float | None]:
    """The fraction of the faces ``setting`` counts that a detection at score >= 0.5 overlaps at
    IoU >= 0.5, by the face box's height (:data:`HEIGHT_NAMES`; ``None`` where the setting has no
    face of that height): where a detector loses the faces that its AP misses."""
    by_stem = {Path(path).stem: det for path, det in dets.items()}
    hit, height = [], []
    for image, boxes, keep in zip(gt.images, gt.boxes, gt.keep[setting]):
        faces = boxes[keep].astype(np.float64)
        if not len(faces):
            continue
        faces[:, 2:] += faces[:, :2]
        det, scores = by_stem[image]
        hit.append(best_iou(faces, det[scores >= DEFAULT_THRESHOLD]) >= 0.5)
        height.append(faces[:, 3] - faces[:, 1])
    hit, height = np.concatenate(hit or [np.zeros(0, bool)]), np.concatenate(height or [np.zeros(0)])
    out = {}
    for name, (lo, hi) in zip(HEIGHT_NAMES, HEIGHT_BUCKETS):
        inside = (height >= lo) & (height < hi)
        out[name] = round(float(hit[inside].mean()), 4) if inside.any() else None
    return out


def wider_dev_ap(dets: dict, gt) -> dict[str, float]:
    """Easy / Medium / Hard AP (official protocol) of ``{photo path: (boxes xyxy, scores)}``."""
    result = evaluate_predictions(wider_predictions(dets), gt)
    return {s: float(result[s]) for s in WIDER_SETTINGS}


def bootstrap_wider_ap(wider_dets: dict, gt, resamples: int, seed: int = 0) -> dict[str, dict]:
    """The same for WIDER dev's Easy / Medium / Hard AP (official protocol; keys ``wider_dev_easy_ci95``
    and so on): resamples of its photos, the matching and the scores' normalisation of the whole set
    (``widerface_eval.resampled_ap``)."""
    samples = np.random.default_rng(seed).integers(0, len(gt.images), (resamples, len(gt.images)))
    aps = {name: wider_resampled_ap(wider_predictions(dets), gt, samples) for name, dets in wider_dets.items()}
    out: dict[str, dict] = {name: {} for name in aps}
    for s in WIDER_SETTINGS:
        for name, extra in paired_intervals({name: ap[s] for name, ap in aps.items()}, f"wider_dev_{s}").items():
            out[name].update(extra)
    return out


def evaluate_detector(detect, data: Path, sets: dict, keep: dict | None = None) -> dict:
    """The scores of one detector on ``sets``; ``keep``, if given, receives its detections on the
    crowd photos under ``"mask"`` and on WIDER dev under ``"wider"`` (for the bootstrap)."""
    out = {}
    if sets.get("mask_drawn"):
        mask_dets, ms = run(detect, list(sets["mask_drawn"]), "faces_mask val")
        if keep is not None:
            keep["mask"] = mask_dets
        m = mask_scores(mask_dets, sets)
        out = {"mask_ap50_drawn": round(m["mask_ap50_drawn"], 4), "mask_ap50_mapped": round(m["mask_ap50_mapped"], 4),
               "mask_recall": m["mask_recall"], "ms_per_mask_image": round(ms * 1000, 1)}
    if sets.get("wider_paths"):
        dets, ms = run(detect, sets["wider_paths"], "widerface_val_dev")
        if keep is not None:
            keep["wider"] = dets
        out["wider_dev"] = {s: round(v, 4) for s, v in wider_dev_ap(dets, sets["wider_gt"]).items()}
        out["wider_recall"] = {s: wider_recall_by_height(dets, sets["wider_gt"], s) for s in RECALL_SETTINGS}
        out["ms_per_wider_image"] = round(ms * 1000, 1)
    if sets.get("shanghai"):
        dets, _ = run(detect, list(sets["shanghai"]), "shanghaitech")
        out["shanghai_agreement_ap50"] = round(average_precision(dets, sets["shanghai"]), 4)
    return out


SET_NAMES = ("mask", "wider", "shanghai")
BOOTSTRAP_COLUMNS = (("mask_ap50_drawn", "crowd AP50 (as drawn)"), ("wider_dev_easy", "WIDER dev Easy"),
                     ("wider_dev_medium", "Medium"), ("wider_dev_hard", "Hard"))


def set_names(text: str) -> tuple[str, ...]:
    """``--sets``: a comma-separated subset of :data:`SET_NAMES`."""
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in SET_NAMES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"--sets takes a comma-separated subset of {','.join(SET_NAMES)}, got {text!r}")
    return names


def load_sets(data: Path, shanghai_labels: Path | None, names: tuple[str, ...] = SET_NAMES) -> dict:
    """The validation sets named in ``names``; WIDER dev and ShanghaiTech are skipped when their
    files are absent, the crowd set is required."""
    sets = {}
    if "mask" in names:
        sets["mask_drawn"] = {r.path: r.boxes for r in read_voc(data / "faces_mask" / "val.txt", box_rule=None)}
        sets["mask_mapped"] = {r.path: r.boxes for r in read_voc(data / "faces_mask" / "val.txt")}
    dev = data / "widerface_val_dev"
    if "wider" in names and (dev / "LIST.json").is_file():
        keys = json.loads((dev / "LIST.json").read_text())
        sets["wider_gt"] = subset_ground_truth(load_ground_truth(data / "widerface_val_gt"), keys)
        sets["wider_paths"] = [dev / "images" / f"{k}.jpg" for k in keys]
    if "shanghai" in names and shanghai_labels is not None and shanghai_labels.is_file():
        sets["shanghai"] = {r.path: r.boxes.astype(np.float64) for r in read_generic_json(shanghai_labels)}
    return sets


def tta_tag(size, tta: str):
    """The size a JSON file records with ``--tta``: ``min480-cap1024+tta-paper`` (unchanged for ``none``)."""
    return size if tta == "none" else f"{size}+tta-{tta}"


def add_shanghai_labels_arg(p: argparse.ArgumentParser) -> None:
    """``--shanghai-labels`` (shared with zoom_sweep.py)."""
    p.add_argument("--shanghai-labels", type=Path, default=HERE / "runs" / "crowd" / "labels" / "shanghai.json",
                   help="the teachers' faces on the ShanghaiTech photos, from scripts/make_crowd_labels.py "
                   "(default: runs/crowd/labels/shanghai.json; skipped when absent)")


def markdown(results: dict, size, floor: dict | None = None, tta: str = "none") -> str:
    """The table; ``floor``: the ``Detector`` keywords of ``--min-size`` / ``--max-size``, if given;
    ``tta``: the ``--tta`` preset."""
    floor = floor or {}
    if floor.get("min_size") is not None:
        size = f"ours: short side at least {floor['min_size']} (never shrunk)" + (
            f", long side <= {floor['max_size']}" if floor["max_size"] else "")
    size = f"{size}{describe_zoom(floor)}"
    if tta != "none":
        size += (f"; test-time augmentation '{tta}' (retinaface_polynl.tta) for ours and the MobileNet, "
                 "no small-face zoom; YuNet one pass")
    lines = [f"Input size: {size}. faces_mask val.txt: 171 photos, 819 faces; AP50 at score >= {LOW_THRESHOLD}; "
             f"recall at score >= {DEFAULT_THRESHOLD} by the box's longer side. WIDER dev: official protocol on "
             "the 103 photos of widerface_val_dev. ShanghaiTech: AP50 against the teachers' agreed faces.", "",
             "| detector | mask AP50 (as drawn) | mask AP50 (mapped) | recall <16 | 16-32 | 32-64 | >64 | "
             "WIDER dev Easy | Medium | Hard | ShanghaiTech agreement | ms / WIDER photo |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        rec = r.get("mask_recall", {})
        wd = r.get("wider_dev", {})
        cells = [*(f"{100 * r[k]:.1f}" if k in r else "-" for k in ("mask_ap50_drawn", "mask_ap50_mapped")),
                 *(f"{rec[b]:.2f}" if b in rec else "-" for b in BUCKET_NAMES),
                 *(f"{100 * wd[s]:.1f}" if s in wd else "-" for s in ("easy", "medium", "hard")),
                 f"{100 * r['shanghai_agreement_ap50']:.1f}" if "shanghai_agreement_ap50" in r else "-",
                 f"{r['ms_per_wider_image']:.0f}" if "ms_per_wider_image" in r else "-"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    recall = [(name, r["wider_recall"]) for name, r in results.items() if "wider_recall" in r]
    if recall:
        lines += ["", f"WIDER dev: the faces each setting counts that a detection at score >= {DEFAULT_THRESHOLD} "
                  "overlaps at IoU 0.5, by box height (px; - where the setting has none):", "",
                  "| detector | faces of | " + " | ".join(HEIGHT_NAMES) + " |",
                  "|---|---|" + "---:|" * len(HEIGHT_NAMES)]
        for name, rec in recall:
            for setting in RECALL_SETTINGS:
                cells = ["-" if rec[setting][b] is None else f"{rec[setting][b]:.2f}" for b in HEIGHT_NAMES]
                lines.append(f"| {name} | {setting.capitalize()} | " + " | ".join(cells) + " |")
    boot = [(name, r) for name, r in results.items() if "bootstrap_resamples" in r]
    if boot:
        first = boot[0][0]
        lines += ["", f"Bootstrap: 95 % intervals from {boot[0][1]['bootstrap_resamples']} resamples of each set's "
                  f"photos (the same resamples for every detector), and of each detector minus {first}:", "",
                  "| detector | " + " | ".join(label for _, label in BOOTSTRAP_COLUMNS) + " |",
                  "|---|" + "---:|" * len(BOOTSTRAP_COLUMNS)]
        for name, r in boot:
            cells = []
            for key, _ in BOOTSTRAP_COLUMNS:
                cell = "-"
                if f"{key}_ci95" in r:
                    lo, hi = r[f"{key}_ci95"]
                    cell = f"{100 * lo:.1f} to {100 * hi:.1f}"
                    if f"{key}_diff_vs_first_ci95" in r:
                        dlo, dhi = r[f"{key}_diff_vs_first_ci95"]
                        cell += f" (diff. {100 * dlo:+.1f} to {100 * dhi:+.1f})"
                cells.append(cell)
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--data", type=Path, default=DATA, help=f"the shared data folder (default: {DATA})")
    p.add_argument("--model", action="append", default=[], metavar="NAME=CKPT",
                   help="one of our checkpoints (or an exported model); repeat for several")
    p.add_argument("--mnet", type=Path, help="the Pytorch_Retinaface MobileNet-0.25 checkpoint (a peer)")
    p.add_argument("--yunet", type=Path, help="the YuNet ONNX file (a peer, through cv2.FaceDetectorYN)")
    p.add_argument("--size", type=input_size, default="default",
                   help="default, original, or a short side in px for every detector (default: default)")
    add_floor_args(p)
    add_shanghai_labels_arg(p)
    p.add_argument("--tta", choices=tuple(TTA_PRESETS), default="none",
                   help="test-time augmentation for our checkpoints and the MobileNet (retinaface_polynl.tta; "
                   "replaces the small-face zoom; YuNet runs once) (default: none)")
    p.add_argument("--sets", type=set_names, default=SET_NAMES, metavar="NAMES",
                   help=f"which validation sets, comma-separated (default: {','.join(SET_NAMES)})")
    p.add_argument("--bootstrap", type=int, default=0, metavar="N",
                   help="95 %% intervals of the crowd AP50 and of WIDER dev's Easy / Medium / Hard AP from N resamples "
                   "of each set's photos, and of each detector's difference from the first one's (paired) "
                   "(default: 0, none)")
    p.add_argument("--json", type=Path, help="write the results as JSON")
    p.add_argument("--markdown", type=Path, help="write the table as Markdown")
    args = p.parse_args(argv)
    if args.bootstrap < 0 or (args.bootstrap and not {"mask", "wider"} & set(args.sets)):
        p.error("--bootstrap takes a positive number of resamples and needs the mask or the wider set in --sets")
    floor = floor_options(p, args)
    if args.tta != "none" and floor.get("zoom") not in (None, "off"):
        p.error("--tta replaces the small-face zoom: give --zoom on or --tta, not both")
    sets = load_sets(args.data, args.shanghai_labels, args.sets)
    fixed = args.size if isinstance(args.size, int) else None
    detectors = {}
    for spec in args.model:
        name, _, ckpt = spec.partition("=")
        if not ckpt:
            p.error(f"--model takes NAME=CKPT, got {spec!r}")
        det = Detector(weights=ckpt, threshold=LOW_THRESHOLD, size=fixed, **floor)
        if args.size == "original":
            det.recommended_size = det.recommended_max_size = None
        detectors[name] = det
    if args.mnet:
        detectors["retinaface-mnet0.25"] = Detector(weights=args.mnet, threshold=LOW_THRESHOLD, size=fixed)
    results, kept = {}, {}
    for name, det in detectors.items():
        def detect(image, det=det):
            d = det.detect(image, tta=None if args.tta == "none" else args.tta)
            return d.boxes, d.scores
        results[name] = evaluate_detector(detect, args.data, sets, kept.setdefault(name, {}))
        print(name, json.dumps(results[name]), flush=True)
    if args.yunet:
        yunet = YuNet(str(args.yunet), LOW_THRESHOLD, fixed)
        results["yunet"] = evaluate_detector(yunet.detect, args.data, sets, kept.setdefault("yunet", {}))
        print("yunet", json.dumps(results["yunet"]), flush=True)
    if args.bootstrap:
        if "mask" in args.sets:
            boot = bootstrap_mask_ap({name: k["mask"] for name, k in kept.items()}, sets["mask_drawn"], args.bootstrap)
            for name, extra in boot.items():
                results[name].update(extra)
        if "wider" in args.sets:
            boot = bootstrap_wider_ap({name: k["wider"] for name, k in kept.items()}, sets["wider_gt"], args.bootstrap)
            for name, extra in boot.items():
                results[name].update(extra)
        for name in results:
            results[name]["bootstrap_resamples"] = args.bootstrap
    table = markdown(results, args.size, floor, args.tta)
    print(table)
    if args.markdown:
        args.markdown.write_text(table)
    if args.json:
        args.json.write_text(json.dumps({"size": tta_tag(size_tag(args.size, floor), args.tta), "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
