"""Opening the engine that runs the network: one function, :func:`open_backend`.

    opened = open_backend(weights, backend="auto", device="cpu", precision="auto", threads=None)
    opened.backend(batch)   # float32 (B, 3, H, W), BGR minus the mean
        -> boxes (B, A, 4), scores (B, A), landmarks (B, A, 5, 2): float32 numpy, input pixels
    opened.config           # the ModelConfig the weights record
    opened.rule, opened.zoom  # the input rule and small-face zoom the weights record

Every backend speaks numpy at its boundary; torch lives inside the PyTorch and TensorRT
backends only, so the default path (the shipped ``default.onnx`` on onnxruntime) needs numpy,
OpenCV and onnxruntime alone.  What ``backend="auto"`` picks per device and file is
:mod:`retinaface_polynl.export.auto`'s table.

=====================  ==========================================================
weights                backend
=====================  ==========================================================
``model=`` (in memory)  PyTorch
preset, no weights     PyTorch, untrained (benchmarks, training)
``.onnx``              onnxruntime (``"tensorrt"``: an engine built from it, cached)
TensorRT engine        TensorRT
``.pth``               ``"auto"``: see :func:`retinaface_polynl.export.auto.auto_backend`
                       (the shipped checkpoint: ``default.onnx`` on onnxruntime when its
                       recorded SHA-256 is the checkpoint's; any other: PyTorch);
                       ``"onnxruntime"`` / ``"tensorrt"``: exported once into the cache
=====================  ==========================================================
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .device import Device, default_threads, require_torch
from .export.runtime import BACKENDS, detect_format, load_backend
from .pipeline import InputRule
from .presets import ModelConfig, get_preset
from .zoom import ZoomRule

log = logging.getLogger(__name__)

__all__ = ["BACKENDS", "PRECISIONS", "Device", "OpenedBackend", "default_threads", "open_backend", "require_torch"]

PRECISIONS = ("auto", "fp32", "fp16")


@dataclass
class OpenedBackend:
    """A backend ready to run, with what its weights record.  ``model``: the PyTorch model
    when the backend is PyTorch's (attention maps, fine-tuning), else ``None``."""

    backend: Any
    config: ModelConfig
    rule: InputRule
    zoom: ZoomRule | None
    model: Any = None

    @classmethod
    def recorded(cls, backend: Any, config: ModelConfig, inference: dict | None, model: Any = None) -> "OpenedBackend":
        zoom = (inference or {}).get("zoom")
        return cls(backend, config, InputRule.from_hint(inference), ZoomRule.from_dict(zoom) if zoom else None, model)


def _exported(path: Path) -> bool:
    return path.is_file() and detect_format(path) != "torch"


def open_backend(
    weights: str | Path | None = None,
    backend: str = "auto",
    device: "str | Device | Any" = "cpu",
    precision: str = "auto",
    threads: int | None = None,
    providers: list | None = None,
    config: ModelConfig | str | None = None,
    model: Any = None,
    shipped: str | Path | None = None,
) -> OpenedBackend:
    """The engine for ``weights`` (a checkpoint, an ``.onnx`` file, an engine file; or
    ``model=`` in memory; or ``config=`` alone, an untrained network), on ``device``, with
    ``threads`` intra-op threads (default :func:`default_threads`, only where an engine needs
    a number), at ``precision`` (``auto``: float16 for PyTorch on CUDA, float32 otherwise; an
    exported file runs at the precision it was exported in).  ``providers``: onnxruntime's.
    ``shipped``: the checkpoint that counts as the shipped one for ``backend="auto"`` (default:
    :func:`retinaface_polynl.shipped.default_weights_path`).

    Raises ValueError (with the reason) for a combination that cannot work; a missing optional
    library (torch for a ``.pth`` on PyTorch) gives a one-line error naming the extra.
    """
    dev = Device.parse(device)
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose {', '.join(BACKENDS[:-1])} or {BACKENDS[-1]}")
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose {', '.join(PRECISIONS[:-1])} or {PRECISIONS[-1]}")
    config = get_preset(config) if isinstance(config, str) else config
    if model is not None and (weights is not None or config is not None):
        raise ValueError("give model= alone: it carries its own weights and configuration")
    weights = Path(weights) if weights is not None else None

    exported = weights is not None and _exported(weights)
    if exported and precision == "fp16":
        raise ValueError(f"{weights} is an exported file: it runs at the precision it was exported in; "
                         "drop precision= (export with --format onnx-fp16 for float16)")
    if exported or (weights is not None and backend in ("onnxruntime", "tensorrt")):
        if config is not None:
            raise ValueError(f"{weights} runs as an exported model that carries its own preset; "
                             "drop preset= (or pass backend='torch')")
        return _open_exported(weights, backend, dev, threads, providers, precision)

    if weights is not None and backend == "auto" and config is None:
        from .export.auto import auto_backend
        from .shipped import default_weights_path

        picked = auto_backend(weights, dev, threads=threads, providers=providers, precision=precision,
                              default_weights=shipped if shipped is not None else default_weights_path())
        if picked is not None:
            return OpenedBackend.recorded(picked, picked.config, getattr(picked.metadata, "inference", None))

    return _open_torch(weights, dev, precision, threads, config, model)


def _open_exported(weights: Path, backend: str, dev: Device, threads: int | None, providers: list | None,
                   precision: str) -> OpenedBackend:
    engine, config = load_backend(weights, device=dev, providers=providers, intra_op_threads=threads, backend=backend)
    opened = OpenedBackend.recorded(engine, config, getattr(getattr(engine, "metadata", None), "inference", None))
    actual = str(getattr(engine, "precision", "fp32"))
    if precision != "auto" and actual != precision:
        raise ValueError(f"{weights} runs on {engine.name} at {actual}, not {precision}; "
                         "pass backend='torch' to choose the precision")
    return opened


def _open_torch(weights: Path | None, dev: Device, precision: str, threads: int | None,
                config: ModelConfig | None, model: Any) -> OpenedBackend:
    require_torch(f"running {weights.name if weights is not None else 'a model'} on PyTorch")
    from .export.torch_backend import TorchBackend

    device = dev.torch()
    inference = None
    if model is not None:
        model, config = model.to(device).eval(), model.config
    elif weights is not None:
        from .checkpoints import load_model

        loaded = load_model(weights, config=config, device=device)
        model, config, inference = loaded.model, loaded.config, loaded.extra.get("inference")
    elif config is not None:
        from .models.retinaface import RetinaFace

        log.warning("preset %s without weights: the network is untrained, its detections are noise", config.name)
        model = RetinaFace(config).eval()
    else:
        raise ValueError("open_backend needs weights=, model= or a preset (config=)")
    if precision == "auto":
        precision = "fp16" if dev.type == "cuda" else "fp32"
    engine = TorchBackend(model, device, threads=threads, precision=precision)
    return OpenedBackend.recorded(engine, config, inference, model=model)
