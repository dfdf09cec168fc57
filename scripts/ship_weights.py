#!/usr/bin/env python
"""Write a recipe's final checkpoint as a shipped weights file: the model and its architecture
only (no optimiser, scheduler or random state), with the recipe that made it and how it is run
recorded for ``Detector`` (``inference``: a floor on the short side, so smaller photos are
enlarged and larger ones kept, a cap on the long side, and the small-face zoom's rule):

    python scripts/ship_weights.py runs/crowd/phase6_wise0.9.pth weights/default.pth --min-size 480
    python scripts/ship_weights.py runs/crowd_baseline/phase6_wise0.9.pth weights/baseline/r18x025.pth

Step 5 of ``scripts/train_crowd.sh`` runs it (``SHIP=1``, ``SHIP_TO``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from retinaface_polynl.checkpoints import CheckpointError, load_model, save_checkpoint
from retinaface_polynl.zoom import ZoomRule


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("final", help="the recipe's final checkpoint (a training checkpoint or a mixed one)")
    p.add_argument("out", type=Path, help="the weights file to write (its folder is made)")
    p.add_argument("--min-size", type=int, default=480, metavar="PX",
                   help="short side the detector enlarges smaller photos to, never shrinking larger ones (default: 480)")
    p.add_argument("--max-size", type=int, default=1024, metavar="PX", help="cap on the long side (default: 1024)")
    p.add_argument("--no-zoom", action="store_true", help="record no small-face zoom (default: the default ZoomRule)")
    p.add_argument("--zoom-factor", type=float, metavar="F",
                   help="the recorded zoom's second pass at F times the first's scale (default: the default "
                   "ZoomRule's, 2); choose it with scripts/zoom_sweep.py --weights FINAL")
    p.add_argument("--recipe", default="scripts/train_crowd.sh",
                   help="the recipe recorded as the file's origin (default: scripts/train_crowd.sh)")
    args = p.parse_args(argv)
    if args.min_size < 1 or args.max_size < args.min_size:
        p.error(f"--min-size must be positive and at most --max-size, got {args.min_size} and {args.max_size}")
    if args.no_zoom and args.zoom_factor is not None:
        p.error("--zoom-factor and --no-zoom exclude each other")
    try:
        rule = ZoomRule() if args.zoom_factor is None else ZoomRule(factor=args.zoom_factor)
    except ValueError as exc:
        p.error(f"--zoom-factor: {exc}")
    try:
        loaded = load_model(args.final)
    except (CheckpointError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    inference = {"min_size": args.min_size, "max_size": args.max_size}
    if not args.no_zoom:
        inference["zoom"] = rule.to_dict()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(args.out, loaded.model, loaded.config, recipe=args.recipe, inference=inference)
    zoom = "no small-face zoom" if args.no_zoom else rule.describe()
    print(f"{args.out}: {args.final} ({loaded.config.name}) at a short side of at least {args.min_size} px, "
          f"long side at most {args.max_size}, {zoom}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
