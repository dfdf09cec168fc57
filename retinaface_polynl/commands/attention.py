"""``retinaface-polynl attention``: the supplementary's §5 attention figures for one image."""
from __future__ import annotations

import argparse

from .common import add_model_args, add_size_args, build_detector


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "attention",
        help="draw the attention block's X, Y and Z maps over an image",
        description="For one image, the norm per position of the attention block's input X, its attention "
        "contribution Y and its output Z = X + Y (Poly-NL supplementary, section 5), as heat maps over "
        "the picture side by side, saved as PNG. The model must have an attention block (a checkpoint "
        "with one, or --preset NAME, e.g. r18x025_polynl, mnet025_polynl).",
        epilog="example:\n  retinaface-polynl attention photo.jpg --weights polynl.pth --output maps.png",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("image", metavar="IMAGE", help="an image file")
    add_model_args(p, engines=False)  # the maps come from the PyTorch model's attention block
    add_size_args(p)
    p.add_argument("--output", "-o", metavar="PNG", default="attention.png", help="output file (default: attention.png)")
    p.add_argument("--height", type=int, default=360, metavar="PX", help="panel height in pixels (default: 360)")
    return p


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..media import read_image, write_image
    from ..visualize import attention_maps, render_attention_figure

    image = read_image(args.image)
    detector = build_detector(args, size=args.size, max_size=args.max_size)
    maps = attention_maps(detector, image)
    figure = render_attention_figure(image, maps, panel_height=args.height)
    out = Path(args.output)
    if out.suffix.lower() != ".png":
        out = out.with_suffix(".png")
    write_image(out, figure)
    stats = ", ".join(f"|{k}| {maps[k].mean():.3g} (max {maps[k].max():.3g})" for k in ("X", "Y", "Z"))
    print(f"{out}: {maps['X'].shape[1]}x{maps['X'].shape[0]} positions at stride {maps['stride']}; {stats}")
    return 0
