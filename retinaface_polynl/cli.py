"""The ``retinaface-polynl`` command line: a thin layer over the Python API.

Each sub-command lives in ``retinaface_polynl/commands/<name>.py`` with two
functions, ``add_parser(subparsers)`` and ``run(args) -> int``; this file only
collects them.  Command modules import heavy libraries inside ``run`` so that
``--help`` is instant, and a command that needs an optional library the install lacks
(PyTorch, onnx, scipy: the package's extras) says in one line which extra brings it.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

from . import commands

# Order in --help; any other module in commands/ (but common) is listed after these.
COMMAND_ORDER = ("detect", "anonymize", "submit", "evaluate", "train", "export", "webcam", "attention", "presets")

# Optional libraries -> (their name for people, the extra of pyproject.toml that installs them);
# tests/test_light_install.py checks that each extra named here lists the library.
OPTIONAL = {
    "torch": ("PyTorch", "train"),
    "torchvision": ("torchvision", "train"),
    "onnx": ("onnx", "export"),
    "onnxscript": ("onnxscript", "export"),
    "scipy": ("SciPy", "eval"),
    "matplotlib": ("matplotlib", "eval"),
}
# Commands whose PyTorch need is a different extra's (export also needs onnx: one extra for both).
COMMAND_EXTRA = {"export": "export"}


def command_names() -> list[str]:
    found = {m.name for m in pkgutil.iter_modules(commands.__path__) if m.name != "common"}
    return [n for n in COMMAND_ORDER if n in found] + sorted(found - set(COMMAND_ORDER))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="retinaface-polynl",
        description="RetinaFace face detection with Poly-NL attention: detect, anonymize, evaluate, train, export.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run 'retinaface-polynl COMMAND --help' for the options of a command.",
    )
    from . import __version__  # the installed distribution's, from its metadata

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in command_names():
        module = importlib.import_module(f".commands.{name}", __package__)
        sub_parser = module.add_parser(sub)
        sub_parser.set_defaults(_run=module.run)
    return parser


def missing_extra(command: str, exc: ModuleNotFoundError) -> str | None:
    """The one-line error for ``command`` stopped because an optional library is not installed, or
    ``None`` when ``exc`` is about anything else.  A failed import names the missing module
    (``exc.name``): an extra's library gets the line below.  The package's own checks (PyTorch for a
    ``.pth``, SciPy for ``.mat`` files) raise with no module name and a message written for people
    that names the extra: that message is the line."""
    if exc.name is None:
        return f"error: {exc}"
    if exc.name not in OPTIONAL:  # e.g. 'torch._dynamo' missing from an installed torch: a real error
        return None
    library, extra = OPTIONAL[exc.name]
    if exc.name in ("torch", "torchvision"):
        extra = COMMAND_EXTRA.get(command, extra)
    return f"error: 'retinaface-polynl {command}' needs {library}: pip install 'retinaface-polynl[{extra}]'"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s: %(message)s")
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except ModuleNotFoundError as exc:
        message = missing_extra(args.command, exc)
        if message is None:
            raise
        print(message, file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError, OSError) as exc:
        # Expected failures (bad input, wrong checkpoint, missing file): one line, no stack trace.
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
