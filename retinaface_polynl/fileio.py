"""Atomic file writes: a reader never sees half a checkpoint, model or submission."""
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp") -> Iterator[str]:
    """Yield a temporary file name beside ``path``; when the block succeeds, rename it
    over ``path`` (``os.replace``, atomic on one file system); the temporary file never
    survives, whatever happens."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def scratch_path(folder: str | Path, prefix: str, suffix: str) -> Iterator[str]:
    """Yield a temporary file name in ``folder`` for intermediate output (an exporter's or
    quantiser's file); it and its ``.data`` side file (ONNX external data) are removed
    afterwards, whatever happens."""
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
    os.close(fd)
    try:
        yield tmp
    finally:
        for leftover in (tmp, tmp + ".data"):
            if os.path.exists(leftover):
                os.unlink(leftover)
