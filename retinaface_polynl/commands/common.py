"""Options shared by the commands that run a detector."""
from __future__ import annotations

import argparse


def add_model_args(parser: argparse.ArgumentParser, threshold: float = 0.5, engines: bool = True) -> None:
    """``engines=False`` for commands that need the PyTorch model itself (no --backend/--threads)."""
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
    if engines:
        g.add_argument(
            "--backend",
            choices=("auto", "torch", "onnxruntime", "tensorrt"),
            default="auto",
            help="inference engine (default: auto: the fastest that finds the same faces; the shipped weights on a "
            "CPU run on onnxruntime from the ONNX file shipped beside them, on CUDA on TensorRT or PyTorch in "
            "float16; another .pth on PyTorch, an .onnx file on onnxruntime, an engine on tensorrt). torch forces "
            "PyTorch; onnxruntime with a .pth exports it once into ~/.cache/retinaface_polynl; tensorrt with an "
            ".onnx file builds and caches an engine",
        )
        g.add_argument("--threads", type=int, metavar="N",
                       help="intra-op threads of whichever engine runs (default: torch's count: the number of "
                       "cores, or OMP_NUM_THREADS)")
    g.add_argument(
        "--threshold", type=float, default=threshold, help=f"minimum face score to keep (default: {threshold})"
    )
    g.add_argument("--nms-threshold", type=float, default=0.4, help="NMS IoU threshold (default: 0.4)")


def build_detector(args: argparse.Namespace, **overrides):
    from ..detector import Detector

    kwargs = dict(
        weights=args.weights,
        preset=args.preset,
        device=args.device,
        threshold=args.threshold,
        nms_threshold=args.nms_threshold,
        # commands without --backend (attention) need the PyTorch model itself
        backend=getattr(args, "backend", "torch"),
        threads=getattr(args, "threads", None),
    )
    kwargs.update(overrides)
    return Detector(**kwargs)


SIZE_HELP = (
    "Input size: by default the network sees each picture at the input size its checkpoint records "
    "as the scale it was trained for (the shipped weights: short side 640 px, long side at most "
    "1365 px), or at its original size when the checkpoint records none (pictures whose long side "
    "exceeds 4096 px are then downscaled to it, with a warning); --size resizes the short side, "
    "--max-size caps the long side, and either replaces the checkpoint's choice.  Images are read as "
    "BGR, as OpenCV does (gray, RGBA, 16-bit and EXIF-rotated files are converted)."
)


def add_size_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("input size", SIZE_HELP)
    g.add_argument("--size", type=int, metavar="PX", help="resize the short side to PX pixels (default: the checkpoint's "
                   "recorded input size, 640 for the shipped weights, else original size)")
    g.add_argument("--max-size", type=int, metavar="PX", help="cap the long side at PX pixels (default: the checkpoint's "
                   "recorded cap, 1365 for the shipped weights, else none)")


def add_tta_args(parser: argparse.ArgumentParser, default: str = "none") -> None:
    g = parser.add_argument_group(
        "test-time augmentation",
        "none: single scale (fast). flip: the picture and its mirror image, box-voted (one forward pass "
        "of 2). paper: the Poly-NL supplementary's WIDER FACE test setting: short side 500, 800, 1100, "
        "1400, 1700 px (long side capped by --tta-max-size), shifted by 4 px in (0,0) (0,1) (1,0) (1,1), "
        "and flipped, 40 views in 5 forward passes, merged by box voting.",
    )
    g.add_argument("--tta", choices=("none", "flip", "paper"), default=default, help=f"(default: {default})")
    g.add_argument(
        "--tta-scales",
        metavar="PX,PX,...",
        help="override the TTA short-side scales, e.g. 500,800 ('0' = the single-scale size)",
    )
    g.add_argument("--tta-max-size", type=int, metavar="PX", help="cap on the long side of a TTA view (default: 2000)")


def tta_config(args: argparse.Namespace):
    """The TTAConfig (or None) that ``--tta``, ``--tta-scales`` and ``--tta-max-size`` describe."""
    from ..tta import TTA_PRESETS, resolve_tta

    name = getattr(args, "tta", "none") or "none"
    scales = getattr(args, "tta_scales", None)
    cap = getattr(args, "tta_max_size", None)
    if cap is not None and cap < 1:
        raise ValueError(f"--tta-max-size must be >= 1, got {cap}")
    config = resolve_tta(name)
    if config is None and (scales or cap):
        config = TTA_PRESETS["none"]
    if config is None:
        return None
    changes = {}
    if scales:
        try:
            values = tuple(int(v) for v in scales.split(",") if v.strip())
        except ValueError:
            raise ValueError(f"--tta-scales must be comma-separated integers, got {scales!r}") from None
        changes["scales"] = tuple(None if v == 0 else v for v in values)
    if cap:
        changes["max_size"] = cap
    return config.replace(**changes) if changes else config
