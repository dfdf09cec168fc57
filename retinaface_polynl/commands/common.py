"""Options shared by the commands that run a detector."""
from __future__ import annotations

import argparse


def add_model_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("model")
    g.add_argument(
        "--weights",
        metavar="FILE",
        help="checkpoint: ours (configuration inside) or a Pytorch_Retinaface .pth; "
        "default: the weights shipped with the package",
    )
    g.add_argument(
        "--preset",
        metavar="NAME",
        help="architecture preset (see 'retinaface-polynl presets'); with --weights it overrides "
        "the checkpoint's own, e.g. to add a Poly-NL block to a plain RetinaFace checkpoint",
    )
    g.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    g.add_argument("--threshold", type=float, default=0.5, help="minimum face score to keep (default: 0.5)")
    g.add_argument("--nms-threshold", type=float, default=0.4, help="NMS IoU threshold (default: 0.4)")


def build_detector(args: argparse.Namespace, **overrides):
    from ..detector import Detector

    kwargs = dict(
        weights=args.weights,
        preset=args.preset,
        device=args.device,
        threshold=args.threshold,
        nms_threshold=args.nms_threshold,
    )
    kwargs.update(overrides)
    return Detector(**kwargs)
