#!/usr/bin/env python
"""Re-encode training sets under a byte budget, so that they travel with a command to a lent GPU.

A lent machine takes at most 64 MiB with each call (tracked files, and the ignored folders
named to travel with it), and has no network.  This script writes every set given with
``--labels`` (any layout ``train --labels`` reads) as JPEGs shrunk to ``--long-side`` at
``--quality``, with its faces, landmarks and ignore regions scaled to match, into
``OUTPUT/<set>/`` and ``OUTPUT/<set>.json`` (the generic JSON layout, its ``made_by`` saying
where it came from).  Each set gets ``--share`` of ``--budget-mib`` (label file included), and
takes photos in a seeded random order until its share is spent, so a pack holds a fair sample
of every set rather than all of the first.  Prints a Markdown table of what each set kept.

    python scripts/pack_training_set.py --labels runs/t4/labels/shanghaitech.json \\
        --labels runs/t4/labels/webfaces.json --share 0.6,0.4 --budget-mib 48 --output runs/pack
    # then: train --labels runs/pack/shanghaitech.json --labels runs/pack/webfaces.json ...

The photos are scaled so their long side is at most ``--long-side`` (never enlarged); train
crops at 480 px by default, so 640 keeps the crops close to what the CPU runs see.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from retinaface_polynl.data import load_annotations  # noqa: E402
from retinaface_polynl.data.generic import write_labelled_json  # noqa: E402
from retinaface_polynl.data.records import ImageRecord  # noqa: E402
from retinaface_polynl.media import read_image  # noqa: E402

MIB = 1 << 20


def shrink(record: ImageRecord, long_side: int) -> tuple[np.ndarray, float]:
    """The record's photo with its long side at most ``long_side``, and the scale applied."""
    image = read_image(record.path)
    h, w = image.shape[:2]
    scale = min(1.0, long_side / max(h, w))
    if scale < 1.0:
        image = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    return image, scale


def entry(name: str, record: ImageRecord, scale: float) -> dict:
    """The generic JSON entry of ``record`` scaled by ``scale``, coordinates to 0.1 px."""
    r1 = (lambda a: np.round(np.asarray(a, np.float64) * scale, 1).tolist())
    return {"image": name, "boxes": r1(record.boxes),
            "landmarks": [r1(lm) if has else None for lm, has in zip(record.landmarks, record.has_landmarks)],
            "ignore": r1(record.ignore), "negatives": r1(record.negatives)}


def pack_set(records: list[ImageRecord], folder: Path, budget: int, long_side: int, quality: int,
             seed: int) -> tuple[list[dict], int]:
    """Photos in a seeded random order, written until ``budget`` bytes (JPEGs plus their JSON lines)."""
    folder.mkdir(parents=True, exist_ok=True)
    order = np.random.default_rng(seed).permutation(len(records))
    entries, used = [], 0
    for k in order:
        record = records[k]
        image, scale = shrink(record, long_side)
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise RuntimeError(f"{record.path}: JPEG encoding failed")
        name = f"{folder.name}/{len(entries):05d}.jpg"
        e = entry(name, record, scale)
        cost = data.nbytes + len(json.dumps(e)) + 2
        if used + cost > budget:
            break
        (folder.parent / name).write_bytes(data.tobytes())
        e["from"] = str(record.path)
        entries.append(e)
        used += cost + len(str(record.path)) + 12
    return entries, used


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--labels", type=Path, action="append", required=True,
                   help="a training set (any layout train reads); give it once per set")
    p.add_argument("--images", type=Path, action="append", help="image root, once per --labels (default: the layout's)")
    p.add_argument("--folds", help="FDDB folds for FDDB sets, e.g. 1-7")
    p.add_argument("--share", help="each set's share of the budget, e.g. 0.6,0.4 (default: equal)")
    p.add_argument("--budget-mib", type=float, default=48.0,
                   help="MiB for all sets together, photos and label files (default: 48, leaving room "
                        "in a 64 MiB carry for the repository)")
    p.add_argument("--long-side", type=int, default=640, help="largest photo side in pixels (default: 640)")
    p.add_argument("--quality", type=int, default=85, help="JPEG quality (default: 85)")
    p.add_argument("--seed", type=int, default=0, help="seed of the photo order (default: 0)")
    p.add_argument("--output", type=Path, required=True, help="folder to write (must not exist or be empty)")
    args = p.parse_args(argv)
    if args.images and len(args.images) != len(args.labels):
        p.error("give --images once per --labels, or not at all")
    shares = [1.0] * len(args.labels) if not args.share else [float(s) for s in args.share.split(",")]
    if len(shares) != len(args.labels) or min(shares) <= 0:
        p.error(f"--share needs {len(args.labels)} positive numbers, got {args.share!r}")
    if args.output.exists() and any(args.output.iterdir()):
        p.error(f"--output {args.output}: exists and is not empty; choose a new folder")
    names = [label.stem for label in args.labels]
    if len(set(names)) != len(names):
        p.error(f"the --labels files need distinct names (they name the packed sets): {', '.join(names)}")
    budget = args.budget_mib * MIB
    print(f"| set | photos kept | of | faces | MiB |\n|---|---:|---:|---:|---:|")
    total = 0
    for i, (label, name) in enumerate(zip(args.labels, names)):
        records = load_annotations(label, args.images[i] if args.images else None, folds=args.folds)
        share = int(budget * shares[i] / sum(shares))
        entries, used = pack_set(records, args.output / name, share, args.long_side, args.quality, args.seed + i)
        made_by = {"script": "scripts/pack_training_set.py", "from": str(label), "long_side": args.long_side,
                   "quality": args.quality, "seed": args.seed + i, "photos": f"{len(entries)} of {len(records)}"}
        write_labelled_json(args.output / f"{name}.json", entries, made_by)
        size = sum(f.stat().st_size for f in (args.output / name).iterdir()) + (args.output / f"{name}.json").stat().st_size
        total += size
        print(f"| {name} | {len(entries)} | {len(records)} | {sum(len(e['boxes']) for e in entries)} | "
              f"{size / MIB:.1f} |", flush=True)
    print(f"\n{total / MIB:.1f} MiB in {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
