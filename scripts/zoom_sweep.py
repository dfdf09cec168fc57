"""Choose the small-face zoom rule on the validation sets: one table, every candidate rule.

Each candidate rule runs as ``Detector(zoom=ZoomRule(...))`` (the checkpoint's input rule for
the first pass, detections kept down to score 0.02) over the photos of the validation sets,
so each row is what that Detector returns:

* faces_mask ``val.txt`` (171 crowd photos, never trained on): AP50 and recall by face size,
  as ``scripts/eval_crowd.py`` measures them;
* ``widerface_val_dev`` (103 WIDER FACE validation photos): Easy / Medium / Hard AP, official
  protocol restricted to these photos;
* ShanghaiTech (38 street crowds): AP50 against the teachers' agreed faces (skipped when the
  labels file of ``scripts/make_crowd_labels.py`` is absent);
* FDDB fold 8 (AP50 on face boxes, TPR at 100 false positives) and dlib's ``testing.xml``
  (faces found and false positives at 0.5), as ``scripts/eval_fddb_holdout.py`` measures them.

"zoomed" is the share of each set's photos that took the second pass; "ms" the mean time per
photo of a set (both passes where taken), sequential, on this machine, the photos decoded
beforehand.

    OMP_NUM_THREADS=2 python scripts/zoom_sweep.py --threads 2 --markdown docs/tables/zoom_rules.md

About 8 minutes on a 2-core CPU.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "scripts"))

from eval_crowd import LOW_THRESHOLD, add_shanghai_labels_arg, load_sets, mask_scores, wider_dev_ap  # noqa: E402
from eval_fddb_holdout import dlib_boxes, dlib_score, fddb_face_boxes  # noqa: E402

from retinaface_polynl import Detector  # noqa: E402
from retinaface_polynl.pipeline import Detections  # noqa: E402
from retinaface_polynl.zoom import ZoomRule  # noqa: E402
from widerface_eval import average_precision, evaluate_fddb, load_fddb_annotations  # noqa: E402

DATA = HERE.parent / "shared" / "data"
BELOW = (32.0, 48.0, 64.0)
MARGINS = (2.0, 4.0)
SCORES = (0.5, 0.3)  # the recorded rule's 0.4 is the rows above
FACTORS = (1.25, 1.5, 1.75)  # gentler second passes: a student that finds small faces itself needs less


def collect_photos(data: Path, shanghai_labels: Path) -> tuple[dict, dict[str, list[Path]]]:
    """The sets' ground truth and, per set, its photo paths."""
    sets = load_sets(data, shanghai_labels)
    ann = load_fddb_annotations(data / "faces_fddb", folds="8")
    sets["fddb"] = ann
    sets["fddb_paths"] = {n: data / "faces_fddb" / "originalPics" / f"{n}.jpg" for n in ann}
    sets["fddb_boxes"] = fddb_face_boxes(ann)
    sets["dlib"] = dlib_boxes(data / "faces_dlib" / "testing.xml")
    photos = {"crowd": list(sets["mask_drawn"]), "wider": list(sets.get("wider_paths", [])),
              "shanghai": list(sets.get("shanghai", {})), "fddb": list(sets["fddb_paths"].values()),
              "dlib": [data / "faces_dlib" / n for n in sets["dlib"]]}
    return sets, photos


def run_rule(det: Detector, images: dict[str, np.ndarray]) -> dict[str, tuple[Detections, float, bool]]:
    """``{photo: (Detections, seconds, zoomed?)}`` of ``det`` on every photo."""
    out = {}
    for key, image in tqdm(images.items(), desc=det.describe_zoom(), unit="photo", file=sys.stderr, leave=False):
        before = det.timings.zoomed
        t = time.perf_counter()
        d = det.detect(image)
        out[key] = (d, time.perf_counter() - t, det.timings.zoomed > before)
    return out


def metrics(picked: dict, sets: dict, photos: dict) -> dict:
    """The table's numbers from ``{photo path: (Detections, seconds, zoomed?)}``."""
    def pair(path) -> tuple[np.ndarray, np.ndarray]:
        """(boxes, scores) of ``path``'s detections, as the scoring functions take them."""
        d = picked[str(path)][0]
        return d.boxes, d.scores

    boxes = lambda paths: {p: pair(p) for p in paths}  # noqa: E731
    out = {}
    crowd = mask_scores(boxes(photos["crowd"]), sets)
    out["crowd_ap50"], out["crowd_recall"] = crowd["mask_ap50_drawn"], crowd["mask_recall"]
    if photos["wider"]:
        out["wider"] = list(wider_dev_ap(boxes(photos["wider"]), sets["wider_gt"]).values())
    if photos["shanghai"]:
        out["shanghai_ap50"] = average_precision(boxes(photos["shanghai"]), sets["shanghai"])
    fddb = {n: pair(p) for n, p in sets["fddb_paths"].items()}
    out["fddb"] = (average_precision(fddb, sets["fddb_boxes"], iou=0.5), evaluate_fddb(fddb, sets["fddb"]).tpr_at(100))
    dlib = {p.name: pair(p) for p in photos["dlib"]}
    out["dlib"] = dlib_score(dlib, sets["dlib"], 0.5)
    out["zoomed"] = {s: float(np.mean([picked[str(p)][2] for p in ps])) if ps else float("nan")
                     for s, ps in photos.items()}
    out["ms"] = {s: 1000 * float(np.mean([picked[str(p)][1] for p in ps])) if ps else float("nan")
                 for s, ps in photos.items()}
    return out


def candidates() -> list[tuple[str, ZoomRule | None]]:
    """(row name, rule); ``None``: one pass."""
    rows: list[tuple[str, ZoomRule | None]] = [("one pass (zoom off)", None)]
    rows.append(("x2, whole picture, whenever a face is found", ZoomRule(below=1e6, margin=None)))
    for below in BELOW:
        rows.append((f"x2, whole picture, when a face is under {below:g} px", ZoomRule(below=below, margin=None)))
    rows.append(("x1.5, whole picture, when a face is under 48 px", ZoomRule(factor=1.5, margin=None)))
    for margin in MARGINS:
        rows.append((f"x2, region (margin {margin:g}), when a face is under 48 px", ZoomRule(margin=margin)))
    for score in SCORES:
        rows.append((f"x2, region (margin 4), when a face scoring >= {score:g} is under 48 px", ZoomRule(score=score)))
    for factor in FACTORS:
        rows.append((f"x{factor:g}, region (margin 4), when a face is under 48 px", ZoomRule(factor=factor)))
    return rows


def markdown(results: list[tuple[str, dict]], chosen: str, caption: str) -> str:
    lines = [caption, "",
             "| rule | zoomed: crowd / WIDER / FDDB | crowd AP50 | crowd recall <16 / 16-32 / 32-64 / >64 | "
             "WIDER dev Easy / Medium / Hard | ShanghaiTech | FDDB AP50 / TPR @ 100 FP | dlib found / FP | "
             "ms per photo: crowd / WIDER / FDDB |",
             "|---|---|---:|---|---|---:|---|---|---|"]
    for name, r in results:
        label = f"**{name} (recorded)**" if name == chosen else name
        z, ms = r["zoomed"], r["ms"]
        wider = " / ".join(f"{100 * v:.1f}" for v in r["wider"]) if "wider" in r else "–"
        sh = f"{100 * r['shanghai_ap50']:.1f}" if "shanghai_ap50" in r else "–"
        lines.append(
            f"| {label} | {z['crowd']:.2f} / {z['wider']:.2f} / {z['fddb']:.2f} | {100 * r['crowd_ap50']:.1f} | "
            + " / ".join(f"{v:.2f}" for v in r["crowd_recall"].values())
            + f" | {wider} | {sh} | {r['fddb'][0]:.3f} / {r['fddb'][1]:.3f} | {r['dlib'][0]}/{r['dlib'][1]}, "
            f"{r['dlib'][2]} | {ms['crowd']:.0f} / {ms['wider']:.0f} / {ms['fddb']:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--weights", type=Path, help="checkpoint or exported file (default: the shipped weights)")
    p.add_argument("--data", type=Path, default=DATA, help=f"the shared data folder (default: {DATA})")
    add_shanghai_labels_arg(p)
    p.add_argument("--threads", type=int, help="engine threads (default: torch's count)")
    p.add_argument("--markdown", type=Path, help="write the table here (for docs/benchmarks.md: scripts/sync_docs.py)")
    args = p.parse_args(argv)
    if not (args.data / "faces_mask" / "val.txt").is_file():
        p.error(f"{args.data}: no faces_mask/val.txt (pass --data, the shared data folder)")
    sets, photos = collect_photos(args.data, args.shanghai_labels)
    images = {}
    for q in tqdm([q for ps in photos.values() for q in ps], desc="decode", unit="photo", file=sys.stderr):
        image = cv2.imread(str(q))
        if image is None:
            raise SystemExit(f"{q}: cannot be read")
        images[str(q)] = image
    results = []
    for name, rule in candidates():
        det = Detector(weights=args.weights, threads=args.threads, threshold=LOW_THRESHOLD,
                       zoom=False if rule is None else rule)
        results.append((name, metrics(run_rule(det, images), sets, photos)))
        print(name, flush=True, file=sys.stderr)
    # the rule the weights record (bold in the table when it is a candidate); the caption's fixed settings
    chosen = det.recommended_zoom or ZoomRule()
    chosen_name = next((name for name, rule in candidates() if rule == chosen), None)
    caption = (f"{det.describe()}; first pass: input {det.describe_input()}; second pass at the factor times "
               f"the first's scale, long side <= {chosen.max_size}, on the whole picture or on the region around "
               f"the small faces (their union grown on each side by the margin times the tallest of them; the "
               f"whole picture when that covers over {chosen.region_max:.0%} of it); the first pass's faces of "
               f"{chosen.keep_above:g} px and more, and those outside the region, kept; 'under N px': a face "
               f"scoring >= {chosen.score:g} (unless the row says otherwise) shorter than N network-input pixels "
               f"in the first pass.")
    table = markdown(results, chosen_name, caption)
    print(table)
    if args.markdown:
        args.markdown.write_text(table, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
