"""``retinaface-polynl evaluate``: WIDER FACE (Easy/Medium/Hard AP) or FDDB (ROC, AP) evaluation.

The same options as ``python -m widerface_eval``, which implements it:
``--protocol matlab`` (default: the official MATLAB toolkit bit for bit,
int32 rule included), ``python-port`` (the widely used Python port) or
``both``; see ``docs/evaluation.md``.
"""
from __future__ import annotations

import argparse


def add_parser(sub) -> argparse.ArgumentParser:
    from widerface_eval.cli import DESCRIPTION, EPILOG, build_parser

    p = sub.add_parser(
        "evaluate",
        help="WIDER FACE AP (official MATLAB toolkit or Python port protocol) / FDDB ROC evaluation",
        description=DESCRIPTION,
        epilog=EPILOG.replace("python -m widerface_eval", "retinaface-polynl evaluate"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[build_parser()],
        conflict_handler="resolve",
    )
    p.set_defaults(_evaluate_parser=p)  # usage errors then name 'retinaface-polynl evaluate'
    return p


def run(args: argparse.Namespace) -> int:
    from widerface_eval.cli import build_parser, execute

    return execute(getattr(args, "_evaluate_parser", None) or build_parser(), args)
