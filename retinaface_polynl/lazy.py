"""Names a package exports but loads on first use (PEP 562), so importing the package imports
only what a caller asks for: PyTorch, onnx and SciPy stay unloaded on the light install's paths.

    __getattr__, __dir__ = lazy_exports(__name__, {"Detector": ".detector", ...})
"""
from __future__ import annotations

import importlib
import sys
from collections.abc import Callable

__all__ = ["lazy_exports"]


def lazy_exports(package: str, homes: dict[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``: each name of ``homes`` (name -> the
    module that defines it, relative to ``package``: ``".detector"``) is imported from its module
    when first looked up, then kept in the package's namespace."""

    def __getattr__(name: str):
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home, package), name)
        vars(sys.modules[package])[name] = value  # looked up once
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(homes))

    return __getattr__, __dir__
