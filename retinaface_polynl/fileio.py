"""Atomic file writes: a reader never sees half a checkpoint, model or submission."""
from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp") -> Iterator[str]:
    """Yield a temporary file name beside ``path``; when the block succeeds, rename it
    over ``path`` (``os.replace``, atomic on one file system) with the permissions a plain
    ``open(path, "w")`` would leave (:func:`usual_mode`); the temporary file never
    survives, whatever happens."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, usual_mode(path))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def usual_mode(path: str | Path) -> int:
    """The permissions a plain write of ``path`` leaves: the existing file's, else 0666
    minus the umask.  (``tempfile.mkstemp`` creates files 0600, which left every model,
    checkpoint and submission written through :func:`atomic_path` unreadable to other
    users: a service account, a container's non-root user after ``COPY``.)"""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


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
