"""What ``backend="auto"`` runs: the fastest engine that finds the same faces, per device.

=======  ==============================  =====================================================
device   weights                         engine
=======  ==============================  =====================================================
cpu      the shipped ``default.pth``     onnxruntime on ``weights/default.onnx`` (fp32), made
         (``Detector()``, the CLI)       from ``default.pth`` by our own exporter and checked
                                         against PyTorch by ``scripts/ship_default_onnx.py``
cpu      any other ``.pth``              PyTorch (``backend="onnxruntime"`` exports it once
                                         into the cache, :func:`cached_onnx`, and runs that)
cuda     the shipped ``default.pth``     a TensorRT float16 engine when ``tensorrt`` imports
                                         (built once, cached), else as below
cuda     any ``.pth``                    PyTorch, network in float16 (autocast), decoding in
                                         float32
any      ``.onnx`` / engine file         onnxruntime / TensorRT, as the file says
=======  ==============================  =====================================================

Without onnxruntime the CPU rows fall back to PyTorch.  ``backend="torch"`` always runs
PyTorch: that is what attention maps, training and fine-tuning need (``Detector.model``).

The shipped ONNX file is tied to the checkpoint it came from: it records the SHA-256 of
that ``.pth`` (metadata ``retinaface_polynl.source_sha256``).  When the two differ (new
weights shipped without re-running ``scripts/ship_default_onnx.py``), the stale file is not
used: the checkpoint is exported into the cache instead, with a warning.

Why fp32 and not INT8 by default: INT8 is faster, but on the shipped check photos it loses
or gains faces against PyTorch (``docs/benchmarks.md``); the issue's rule is INT8 by
default only where it agrees within the INT8 tolerances everywhere, and it does not.
"""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SOURCE_KEY = "source_sha256"
"""Metadata entry (``retinaface_polynl.source_sha256``): SHA-256 of the checkpoint a file was exported from."""
SHIPPED_ONNX = "default.onnx"


def onnxruntime_available() -> bool:
    """Whether ``import onnxruntime`` works here (a test simulates its absence by
    setting ``sys.modules["onnxruntime"] = None``)."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def tensorrt_available() -> bool:
    """Whether ``import tensorrt`` works (nothing else is checked: a GPU is the caller's condition)."""
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    return True


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


def is_shipped_default(weights: str | Path) -> bool:
    """Whether ``weights`` is the checkpoint shipped with the package (same file)."""
    from ..detector import default_weights_path

    default = default_weights_path()
    if default is None:
        return False
    try:
        return Path(weights).resolve() == default.resolve() or os.path.samefile(weights, default)
    except OSError:
        return False


def shipped_onnx(checkpoint: str | Path) -> Path | None:
    """The ONNX file shipped beside ``checkpoint`` (``default.onnx`` next to ``default.pth``), if any."""
    candidate = Path(checkpoint).with_name(SHIPPED_ONNX)
    return candidate if candidate.is_file() else None


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


def recorded_source(backend: Any) -> str | None:
    """The ``source_sha256`` a loaded ONNX/TensorRT backend's metadata records, if any."""
    from .onnx import META_PREFIX

    metadata = getattr(backend, "metadata", None)
    raw = getattr(metadata, "raw", None) or {}
    return raw.get(META_PREFIX + SOURCE_KEY)


def auto_backend(
    weights: str | Path,
    device: Any,
    threads: int | None = None,
    providers: list | None = None,
    precision: str = "auto",
) -> Any | None:
    """The exported-model backend ``backend="auto"`` picks for a checkpoint, or ``None`` for PyTorch.

    Only the shipped checkpoint gets one (see the module table), and only at the precision
    asked for (``"auto"``; ``"fp32"`` on CPU, ``"fp16"`` on CUDA); any failure to get it (no
    onnxruntime, no TensorRT, a stale shipped file and an unwritable cache) means PyTorch,
    with the reason logged.
    """
    import torch

    if not is_shipped_default(weights):
        return None
    dev = torch.device(device)
    if precision not in ("auto", "fp32" if dev.type == "cpu" else "fp16"):
        return None
    if dev.type == "cpu":
        if providers is None and not onnxruntime_available():
            log.info("onnxruntime is not installed: the shipped model runs on PyTorch (pip install onnxruntime "
                     "for about twice the speed)")
            return None
        from .runtime import OnnxRuntimeBackend

        digest = file_sha256(weights)
        path = shipped_onnx(weights)
        if path is not None:
            backend = OnnxRuntimeBackend(path, device=dev, providers=providers, intra_op_threads=threads)
            if recorded_source(backend) == digest:
                return backend
            log.warning("%s was not exported from %s (its recorded checksum differs); exporting the checkpoint "
                        "into the cache instead (run scripts/ship_default_onnx.py to ship a matching file)",
                        path, weights)
        try:
            path = cached_onnx(weights)
        except (ValueError, OSError, ImportError) as exc:
            log.warning("cannot export %s for onnxruntime (%s): running it on PyTorch", weights, exc)
            return None
        return OnnxRuntimeBackend(path, device=dev, providers=providers, intra_op_threads=threads)
    if dev.type == "cuda" and tensorrt_available():
        from .tensorrt import ShapeProfile, TensorRTBackend

        # portrait and landscape pictures up to 1920 px on either side (the shipped size cap is 1365)
        profile = ShapeProfile(max_batch=8, opt_hw=(480, 640), max_hw=(1920, 1920))
        try:
            return TensorRTBackend.from_onnx(cached_onnx(weights, half=True), device=dev, profile=profile)
        except (ValueError, OSError, RuntimeError) as exc:
            log.warning("TensorRT engine for %s not available (%s): running PyTorch in float16", weights, exc)
    return None
