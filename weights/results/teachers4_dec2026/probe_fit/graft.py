"""The capacity probe: the shipped backbone under a neck and heads of another width.

``graft.py make SRC OUT --fpn-channels W``: the model SRC records with its FPN/SSH/head width set
to W, its backbone and attention block copied from SRC, the neck and heads freshly initialised (so
a control at SRC's own width starts from the same state as a wider one), SRC's inference settings
kept.  ``graft.py train --fpn-channels W [train options]``: the train command on such a file
(``--weights OUT``); the width variant exists only as this probe's preset, ``<SRC's preset>_fpnW``.
"""
from __future__ import annotations

import argparse
import importlib
import sys

import torch

from retinaface_polynl.checkpoints import load_model, save_checkpoint
from retinaface_polynl.models.retinaface import RetinaFace

BASE = "r18x025_polynl"  # the shipped file's preset
# the module, not the package's ``presets()`` of the same name
preset_table = importlib.import_module("retinaface_polynl.presets")


def width_preset(width: int, base: str = BASE):
    """Register ``<base>_fpn<width>`` for this process (the probe's own preset) and return it."""
    preset_table.presets()  # builds the table
    config = preset_table.get_preset(base).replace(name=f"{base}_fpn{width}", fpn_channels=width)
    preset_table._PRESETS[config.name] = config
    return config


def make(src: str, out: str, width: int, seed: int) -> None:
    loaded = load_model(src)
    if loaded.config.name != BASE:
        raise SystemExit(f"{src}: a {loaded.config.name} model; this probe grafts {BASE}")
    config = width_preset(width)
    torch.manual_seed(seed)
    model = RetinaFace(config)
    kept = {k: v for k, v in loaded.model.state_dict().items() if k.startswith(("body.", "attention."))}
    missing, unexpected = model.load_state_dict(kept, strict=False)
    assert not unexpected and not any(k.startswith(("body.", "attention.")) for k in missing)
    extra = {"inference": loaded.extra["inference"]} if "inference" in loaded.extra else {}
    save_checkpoint(out, model, config, **extra)
    fresh = sum(p.numel() for k, p in model.named_parameters() if not k.startswith(("body.", "attention.")))
    print(f"{out}: {config.name}, {len(kept)} tensors kept, neck and heads fresh ({fresh:,} parameters)")


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "train":
        p = argparse.ArgumentParser(prog="graft.py train")
        p.add_argument("--fpn-channels", type=int, required=True)
        args, rest = p.parse_known_args(sys.argv[2:])
        config = width_preset(args.fpn_channels)
        from retinaface_polynl.cli import main as cli
        return cli(["train", "--preset", config.name, *rest])
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("src")
    m.add_argument("out")
    m.add_argument("--fpn-channels", type=int, required=True)
    m.add_argument("--seed", type=int, default=17)
    args = p.parse_args()
    make(args.src, args.out, args.fpn_channels, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
