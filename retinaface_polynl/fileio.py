"""Atomic file writes: a reader never sees half a checkpoint, model or submission."""
from __future__ import annotations

import glob
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class PendingFile:
    """A temporary file beside ``path`` (same folder, so the rename is atomic; its name ends in
    ``suffix``, so a writer that picks its format from the extension picks the right one):
    :meth:`commit` renames it over ``path`` (or over another name, e.g. a ``.partial`` one) with
    the permissions a plain ``open(path, "w")`` would leave, :meth:`discard` deletes it.  For a
    file written over a long time (a video), where a ``with`` block does not fit."""

    def __init__(self, path: str | Path, suffix: str = ".tmp") -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=suffix, dir=self.path.parent)
        os.close(fd)
        self.done = False

    def commit(self, to: str | Path | None = None) -> Path:
        target = Path(to) if to is not None else self.path
        os.chmod(self.tmp, usual_mode(target))
        os.replace(self.tmp, target)
        self.done = True
        return target

    def discard(self) -> None:
        self.done = True
        if os.path.exists(self.tmp):
            os.unlink(self.tmp)


@contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp") -> Iterator[str]:
    """Yield a temporary file name beside ``path``; when the block succeeds, rename it
    over ``path`` (``os.replace``, atomic on one file system) with the permissions a plain
    ``open(path, "w")`` would leave (:func:`usual_mode`); the temporary file never
    survives, whatever happens (a SIGKILL aside: then it stays, under its hidden name
    ``.<name>.<random><suffix>``, and ``path`` is untouched)."""
    pending = PendingFile(path, suffix)
    try:
        yield pending.tmp
        pending.commit()
    finally:
        if not pending.done:
            pending.discard()


def stale_temporaries(path: str | Path, suffix: str = ".tmp") -> list[Path]:
    """Temporary files that :func:`atomic_path` / :class:`PendingFile` left for ``path`` in a run
    that was killed (oldest first)."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    found = [p for p in path.parent.glob(f".{glob.escape(path.name)}.*{glob.escape(suffix)}")
             if p.is_file() and len(p.name) == len(path.name) + len(suffix) + 10]  # mkstemp: 8 random chars
    return sorted(found, key=lambda p: p.stat().st_mtime)


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
