#!/usr/bin/env python
"""Mix a fine-tuned checkpoint's weights back towards the one it started from (WiSE-FT,
``retinaface_polynl.train.wise``) and write the result as a checkpoint that keeps the
fine-tuned file's inference hints (input size, small-face zoom):

    python scripts/mix_weights.py runs/crowd/phase6/last.pth START.pth --alpha 0.9 --out mixed.pth

``--alpha 1`` is the fine-tuned model, ``--alpha 0`` the starting one.
"""
from __future__ import annotations

import argparse
import sys

from retinaface_polynl.checkpoints import CheckpointError, save_checkpoint
from retinaface_polynl.train.wise import mix_checkpoints


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("fine_tuned", help="the fine-tuned checkpoint (its inference hints are kept)")
    p.add_argument("start", help="the checkpoint the fine-tuning started from (the same network)")
    p.add_argument("--alpha", type=float, required=True, help="weight of the fine-tuned model, in [0, 1]")
    p.add_argument("--out", required=True, help="where to write the mixed checkpoint")
    args = p.parse_args(argv)
    try:
        mixed = mix_checkpoints(args.fine_tuned, args.start, args.alpha)
    except (CheckpointError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    keep = {k: v for k, v in mixed.extra.items() if k in ("inference", "recipe")}
    save_checkpoint(args.out, mixed.model, mixed.config, mixed_from={"fine_tuned": str(args.fine_tuned),
                    "start": str(args.start), "alpha": args.alpha}, **keep)
    print(f"{args.out}: {args.alpha:g} x {args.fine_tuned} + {1 - args.alpha:g} x {args.start}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
