#!/usr/bin/env python
"""Training throughput (images per second, data loading included) per preset and crop size.

Runs the real training loop (``retinaface_polynl.train.Trainer``: worker
processes reading and augmenting real photos, forward, loss, backward, SGD
step) for ``--warmup + --iters`` iterations and times the last ``--iters``.
Prints a Markdown table.  Default photos: FDDB fold 1 from ../shared/data
(any layout that ``--labels`` accepts works).

    python scripts/bench_train.py            # the three light presets, on CPU and (if present) CUDA
    python scripts/bench_train.py --devices cuda --presets r18x025,r18x025_polynl,mnet025,r50
"""
from __future__ import annotations

import argparse
import logging
import platform
import sys
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from retinaface_polynl.data import load_annotations  # noqa: E402
from retinaface_polynl.train.config import TrainConfig  # noqa: E402
from retinaface_polynl.train.distributed import DistInfo  # noqa: E402
from retinaface_polynl.train.loop import Trainer  # noqa: E402

DEFAULT_LABELS = REPO.parent / "shared" / "data" / "faces_fddb"


def bench_one(preset: str, size: int, records, args, device: str) -> float:
    config = TrainConfig(preset=preset, image_size=size, batch_size=args.batch_size, workers=args.workers,
                         max_iters=args.warmup + args.iters, lr=1e-3, log_every=1, keep_checkpoints=1, seed=0,
                         amp=not args.no_amp)
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(config, records, out, progress=False, dist_info=DistInfo(device=torch.device(device)))
        history = [h for h in trainer.fit().history if h["type"] == "train"]
    t0, t1 = history[args.warmup - 1]["time"], history[-1]["time"]
    return args.iters * args.batch_size / max(t1 - t0, 1e-9)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", default="r18x025,r18x025_polynl,mnet025")
    p.add_argument("--sizes", default="320,480,640")
    p.add_argument("--labels", default=str(DEFAULT_LABELS), help="training annotations (any layout)")
    p.add_argument("--folds", default="1", help="FDDB folds when --labels is FDDB")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--iters", type=int, default=5, help="timed iterations")
    p.add_argument("--warmup", type=int, default=2, help="untimed iterations first")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--devices", default="cpu,cuda", help="devices to measure (cuda skipped when absent)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: PyTorch's default)")
    p.add_argument("--no-amp", action="store_true")
    args = p.parse_args()
    if args.warmup < 1:
        p.error("--warmup must be at least 1")
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    records = load_annotations(args.labels, folds=args.folds)
    presets = [s for s in args.presets.split(",") if s]
    sizes = [int(s) for s in args.sizes.split(",") if s]
    devices = [d for d in args.devices.split(",") if d and (not d.startswith("cuda") or torch.cuda.is_available())]
    for device in devices:
        name = torch.cuda.get_device_name() if device.startswith("cuda") else (platform.processor() or "cpu")
        print(f"device: {device} ({name}), torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
              f"batch {args.batch_size}, {args.workers} workers, {args.iters} timed iterations after "
              f"{args.warmup}, {len(records)} images from {args.labels}\n")
        print("| preset | " + " | ".join(f"{s} px (img/s)" for s in sizes) + " |")
        print("|---|" + "---:|" * len(sizes))
        for preset in presets:
            rates = [bench_one(preset, s, records, args, device) for s in sizes]
            print(f"| {preset} | " + " | ".join(f"{r:.1f}" for r in rates) + " |", flush=True)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
