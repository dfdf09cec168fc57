"""The export cache: a checkpoint exported to ONNX once, named by its SHA-256, reused after.

``backend="onnxruntime"`` / ``"tensorrt"`` with a ``.pth`` (:func:`~retinaface_polynl.export.runtime.load_backend`)
and ``backend="auto"`` (:mod:`retinaface_polynl.export.auto`) both run such a cached export.
"""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["SOURCE_KEY", "cache_dir", "cached_onnx", "export_checkpoint", "file_sha256"]

SOURCE_KEY = "source_sha256"
"""Metadata entry (``retinaface_polynl.source_sha256``): SHA-256 of the checkpoint a file was exported from."""


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cache_dir() -> Path:
    """``$RETINAFACE_POLYNL_CACHE``, else ``$XDG_CACHE_HOME/retinaface_polynl``, else ``~/.cache/retinaface_polynl``."""
    explicit = os.environ.get("RETINAFACE_POLYNL_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "retinaface_polynl"


def export_checkpoint(checkpoint: str | Path, output: str | Path, half: bool = False, **options: Any) -> Path:
    """Export a ``.pth`` to ONNX with our exporter, recording what a runtime needs to behave as the
    checkpoint does: its ``inference`` input-size hint and its SHA-256 (``source_sha256``)."""
    from ..checkpoints import load_model
    from .onnx import export_onnx

    loaded = load_model(checkpoint)
    extra = {SOURCE_KEY: file_sha256(checkpoint)}
    if loaded.extra.get("inference"):
        extra["inference"] = loaded.extra["inference"]
    return export_onnx(loaded.model, output, loaded.config, half=half, extra_metadata=extra, **options)


def cached_onnx(checkpoint: str | Path, half: bool = False, folder: str | Path | None = None) -> Path:
    """An ONNX export of ``checkpoint`` in the cache (:func:`cache_dir` ``/onnx``), made on first use.

    The name holds the checkpoint's SHA-256, so a retrained file gets a new export and an
    unchanged one is never exported twice.  Raises :class:`~.onnx.ExportError` (a ValueError)
    when the cache folder cannot be written.
    """
    digest = file_sha256(checkpoint)
    folder = Path(folder) if folder else cache_dir() / "onnx"
    path = folder / f"{Path(checkpoint).stem}-{digest[:16]}{'-fp16' if half else ''}.onnx"
    if path.is_file():
        return path
    log.info("exporting %s to %s (once; later runs reuse it)", checkpoint, path)
    return export_checkpoint(checkpoint, path, half=half)
