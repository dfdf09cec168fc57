"""Can the student fit the hands it fires on? A capacity check on photos with complete annotations.

``pick DIR``: two disjoint sets of 48 WIDER FACE train photos (complete annotations; every hand
there is background in the loss), every 20th label file ("fit") and every 20th from the tenth
("other"), as YOLO folders of links under DIR/{fit,other}/{images,labels}/train.

``measure NAME=CKPT ... --sets DIR``: for each model and set, at the shipped input rule,
boxes at >= 0.3 / >= 0.5 that overlap no annotated face (IoU < 0.3), those 20 px or wider
(what the FDDB tail's hands are), and the annotated faces of 20 px or more found at 0.5 (IoU 0.5).
WIDER leaves faces out of dense crowds, so an off-face box may be a face: "no face" counts those
that also overlap no face SCRFD-2.5G or CenterFace finds at >= 0.3 (IoU < 0.4, false_boxes.py's
rule and code; the teachers' faces cached in DIR/teachers.json).
``loss NAME=CKPT ... --sets DIR``: the classification loss on "fit" split as the trainer computes it
(each photo's whole-short-side square crop at 480 px, no other augmentation, the model in eval mode,
batches of 16): the positives' cross-entropy and the hard negatives' (three per positive), each per
positive, and the background anchors scored 0.3 or more.  A fit can lower the first and not the second.

A model trained for long on "fit" alone (no teacher, so nothing holds a hand up) that keeps its
off-face boxes there cannot fit them; one that loses them there but not on "other" can, and the
hands are a matter of examples and steps.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[4] / "scripts"))
from false_boxes import TEACHER_IOU, teacher_boxes  # noqa: E402
from mine_negatives import not_seen_by  # noqa: E402
from retinaface_polynl import Detector  # noqa: E402
from retinaface_polynl.data.yolo import read_yolo  # noqa: E402
from widerface_eval import box_iou  # noqa: E402


def pick(src: Path, out: Path) -> None:
    files = sorted((src / "labels" / "train").glob("*.txt"))
    for name, start in (("fit", 0), ("other", 10)):
        for kind in ("images", "labels"):
            (out / name / kind / "train").mkdir(parents=True, exist_ok=True)
        for f in files[start::20][:48]:
            image = src / "images" / "train" / (f.stem + ".jpg")
            for link, target in ((out / name / "labels" / "train" / f.name, f),
                                 (out / name / "images" / "train" / image.name, image)):
                if not link.exists():
                    os.symlink(target, link)


def measure(detector: Detector, labels: Path, teachers: dict[str, np.ndarray]) -> dict:
    out = {"photos": 0, "faces >= 20 px": 0, "found at 0.5": 0, "off >= 0.3": 0, "off >= 0.5": 0,
           "off >= 0.3, >= 20 px": 0, "off >= 0.5, >= 20 px": 0, "no face >= 0.3": 0, "no face >= 0.5": 0,
           "no face >= 0.3, >= 20 px": 0}
    for record in read_yolo(labels):
        image = cv2.imread(str(record.path))
        faces = record.boxes
        det = detector.detect(image, threshold=0.3)
        iou = box_iou(faces, det.boxes) if len(faces) and len(det) else np.zeros((len(faces), len(det)))
        off = iou.max(0) < 0.3 if len(faces) else np.ones(len(det), bool)
        wide = (det.boxes[:, 2] - det.boxes[:, 0]) >= 20
        sure = det.scores >= 0.5
        big = (faces[:, 3] - faces[:, 1]) >= 20 if len(faces) else np.zeros(0, bool)
        out["photos"] += 1
        out["faces >= 20 px"] += int(big.sum())
        out["found at 0.5"] += int((big & (iou[:, sure].max(1) >= 0.5 if sure.any() else False)).sum())
        out["off >= 0.3"] += int(off.sum())
        out["off >= 0.5"] += int((off & sure).sum())
        out["off >= 0.3, >= 20 px"] += int((off & wide).sum())
        out["off >= 0.5, >= 20 px"] += int((off & wide & sure).sum())
        none = off & not_seen_by(det.boxes, teachers[record.path.name], TEACHER_IOU)
        out["no face >= 0.3"] += int(none.sum())
        out["no face >= 0.5"] += int((none & sure).sum())
        out["no face >= 0.3, >= 20 px"] += int((none & wide).sum())
    return out


def loss_parts(ckpt: str, labels: Path) -> dict:
    import torch
    import torch.nn.functional as F

    from retinaface_polynl.checkpoints import load_model
    from retinaface_polynl.data.augment import TrainAugment
    from retinaface_polynl.data.dataset import FaceDataset
    from retinaface_polynl.train.loss import POSITIVE, MultiBoxLoss

    data = FaceDataset(list(read_yolo(labels)), TrainAugment(480, (1.0,), False, 0.0, 2.0), seed=17)
    model = load_model(ckpt).model.eval()
    loss = MultiBoxLoss(model.box_coder, model.landmark_coder)
    anchors = model.anchor_generator.for_image(480, 480)
    sums = dict.fromkeys(("positives", "positive CE", "hard negative CE", "background >= 0.3"), 0.0)
    sizes = anchors[:, 2].round().int()  # (A,) anchor side: 16 / 32 at stride 8, 64 / 128, 256 / 512
    by_size = {int(k): [0, 0.0] for k in sizes.unique()}
    with torch.no_grad():
        for start in range(0, len(data), 16):
            batch = [data[i] for i in range(start, min(start + 16, len(data)))]
            out = model(torch.stack([b[0] for b in batch]))
            a = loss.assign(anchors, [b[1] for b in batch])
            ce = F.cross_entropy(out.class_logits.flatten(0, 1), a.labels.clamp(min=0).flatten(),
                                 reduction="none").view(a.labels.shape)
            pos = a.labels == POSITIVE
            hard = loss.hard_negatives(out.class_logits, a.labels)
            face = torch.sigmoid(out.class_logits[..., 1] - out.class_logits[..., 0])
            sums["positives"] += int(pos.sum())
            sums["positive CE"] += float(ce[pos].sum())
            sums["hard negative CE"] += float(ce[hard].sum())
            sums["background >= 0.3"] += int(((a.labels == 0) & (face >= 0.3)).sum())
            for k in by_size:
                at = pos & (sizes == k)[None]
                by_size[k][0] += int(at.sum())
                by_size[k][1] += float(ce[at].sum())
    n = int(sums["positives"])
    shares = {f"positives' CE share, {k} px anchors": round(v[1] / sums["positive CE"], 3) for k, v in by_size.items()}
    return shares | {"positives": n, "positive CE per positive": round(sums["positive CE"] / n, 3),
            "hard negative CE per positive": round(sums["hard negative CE"] / n, 3),
            "background anchors >= 0.3": int(sums["background >= 0.3"])}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("pick")
    a.add_argument("src", help="the WIDER train folder (images/train, labels/train)")
    a.add_argument("out")
    b = sub.add_parser("measure")
    b.add_argument("models", nargs="+", metavar="NAME=CKPT")
    b.add_argument("--sets", required=True)
    b.add_argument("--json")
    b.add_argument("--size", type=int, help="detect at this short side, one pass (default: the recorded rule)")
    b.add_argument("--data", default=str(Path(__file__).resolve().parents[4].parent / "shared" / "data"))
    c = sub.add_parser("loss")
    c.add_argument("models", nargs="+", metavar="NAME=CKPT")
    c.add_argument("--sets", required=True)
    c.add_argument("--json")
    args = p.parse_args()
    if args.cmd == "pick":
        pick(Path(args.src), Path(args.out))
        return 0
    if args.cmd == "loss":
        parts = {}
        for spec in args.models:
            name, ckpt = spec.split("=", 1)
            parts[name] = loss_parts(ckpt, Path(args.sets) / "fit" / "labels" / "train")
            print(name, parts[name], flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(parts, indent=1))
        return 0
    sets = Path(args.sets)
    photos = {r.path.name: r.path for s in ("fit", "other") for r in read_yolo(sets / s / "labels" / "train")}
    teachers = teacher_boxes(photos, Path(args.data), sets / "teachers.json")
    results = {}
    for spec in args.models:
        name, ckpt = spec.split("=", 1)
        # --size: the short side exactly, one pass (the training crops' scale: a whole-short-side
        # crop is shown at 480 px); default: the input rule the checkpoint records
        detector = Detector(weights=ckpt, backend="torch", **({"size": args.size, "zoom": False} if args.size else {}))
        for s in ("fit", "other"):
            key = f"{name} / {s}" + (f" @ {args.size}" if args.size else "")
            results[key] = measure(detector, sets / s / "labels" / "train", teachers)
            print(name, s, results[key], flush=True)
    keys = list(next(iter(results.values())))
    print("| model / set | " + " | ".join(keys) + " |")
    print("|---|" + "---:|" * len(keys))
    for k, v in results.items():
        print(f"| {k} | " + " | ".join(str(v[c]) for c in keys) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
