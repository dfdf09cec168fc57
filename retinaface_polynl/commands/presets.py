"""``retinaface-polynl presets``: the named configurations, with parameters and FLOPs."""
from __future__ import annotations

import argparse
import json


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "presets",
        help="list the model presets with parameters and FLOPs",
        description="List the named model configurations with their parameter count and the FLOPs "
        "of one forward pass at VGA (640x480), counted by torch.utils.flop_counter.",
    )
    p.add_argument("names", nargs="*", help="only these presets (default: all)")
    p.add_argument("--size", default="640x480", metavar="WxH", help="input size for FLOPs (default: 640x480)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return p


def run(args: argparse.Namespace) -> int:
    from ..complexity import count_flops, count_parameters
    from ..presets import get_preset, presets

    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise ValueError(f"--size must look like 640x480, got {args.size!r}") from None
    if width < 1 or height < 1:
        raise ValueError(f"--size must be positive, got {args.size!r}")
    names = args.names or list(presets())
    rows = []
    for name in names:
        c = get_preset(name)
        rows.append(
            {
                "name": name,
                "backbone": c.backbone,
                "attention": c.attention or "-",
                "stage": c.attention_stage if c.attention else "-",
                "fpn": c.fpn_channels,
                "params_M": round(count_parameters(c) / 1e6, 3),
                "gflops": round(count_flops(c, height, width) / 1e9, 2),
            }
        )
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    header = f"{'preset':<22} {'backbone':<15} {'attention':<12} {'stage':<6} {'fpn':>4} {'params (M)':>11} {'GFLOPs@' + args.size:>16}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['name']:<22} {r['backbone']:<15} {r['attention']:<12} {r['stage']:<6} {r['fpn']:>4} "
            f"{r['params_M']:>11.3f} {r['gflops']:>16.2f}"
        )
    return 0
