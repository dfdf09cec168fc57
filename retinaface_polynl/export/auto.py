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

import logging
import os
from pathlib import Path
from typing import Any

from .cache import SOURCE_KEY, cache_dir, cached_onnx, export_checkpoint, file_sha256  # noqa: F401 (re-exported)

log = logging.getLogger(__name__)

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


def is_shipped_default(weights: str | Path, default: str | Path | None = None) -> bool:
    """Whether ``weights`` is the checkpoint shipped with the package (same file), or ``default``."""
    from ..shipped import default_weights_path

    default = Path(default) if default is not None else default_weights_path()
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


def recorded_source(backend: Any) -> str | None:
    """The ``source_sha256`` a loaded ONNX/TensorRT backend's metadata records, if any."""
    from .format import META_PREFIX

    metadata = getattr(backend, "metadata", None)
    raw = getattr(metadata, "raw", None) or {}
    return raw.get(META_PREFIX + SOURCE_KEY)


def auto_backend(
    weights: str | Path,
    device: Any,
    threads: int | None = None,
    providers: list | None = None,
    precision: str = "auto",
    default_weights: str | Path | None = None,
) -> Any | None:
    """The exported-model backend ``backend="auto"`` picks for a checkpoint, or ``None`` for PyTorch.

    ``default_weights``: the shipped checkpoint to compare ``weights`` with (``Detector`` passes
    the one it resolved); ``None``: :func:`retinaface_polynl.shipped.default_weights_path`.

    Only the shipped checkpoint gets one (see the module table), and only at the precision
    asked for (``"auto"``; ``"fp32"`` on CPU, ``"fp16"`` on CUDA); any failure to get it (no
    onnxruntime, no TensorRT, a stale shipped file and an unwritable cache) means PyTorch,
    with the reason logged.
    """
    from ..device import Device

    if not is_shipped_default(weights, default_weights):
        return None
    dev = Device.parse(device)
    if precision not in ("auto", "fp32" if dev.type == "cpu" else "fp16"):
        return None
    if dev.type == "cpu":
        if providers is None and not onnxruntime_available():
            log.info("onnxruntime is not installed: the shipped model runs on PyTorch (pip install onnxruntime "
                     "for about twice the speed)")
            return None
        from .runtime import OnnxRuntimeBackend

        # Trusted without torch: the file's recorded SHA-256 of the checkpoint it came from (and the
        # input rule and zoom it records) is all that ties it to default.pth.
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
        except (ValueError, OSError, ImportError) as exc:  # ImportError: no torch/onnx to export with
            log.warning("cannot export %s for onnxruntime (%s): running it on PyTorch", weights, exc)
            return None
        return OnnxRuntimeBackend(path, device=dev, providers=providers, intra_op_threads=threads)
    if dev.type == "cuda" and tensorrt_available():
        from .tensorrt import ShapeProfile, TensorRTBackend

        # portrait and landscape pictures up to 1920 px on either side (the shipped size cap is 1024)
        profile = ShapeProfile(max_batch=8, opt_hw=(480, 640), max_hw=(1920, 1920))
        try:
            return TensorRTBackend.from_onnx(cached_onnx(weights, half=True), device=dev.torch(), profile=profile)
        except (ValueError, OSError, RuntimeError) as exc:
            log.warning("TensorRT engine for %s not available (%s): running PyTorch in float16", weights, exc)
    return None
