"""Backends that run exported files, interchangeable with :class:`~retinaface_polynl.export.torch_backend.TorchBackend`.

Every backend is a callable::

    backend(batch: np.ndarray float32 (B, 3, H, W), BGR minus (104, 117, 123))
        -> (boxes (B, A, 4), scores (B, A), landmarks (B, A, 5, 2))   float32 numpy arrays

with a ``name`` ("torch", "onnxruntime", "tensorrt"), so ``Detector`` does the same
thresholding / top-k / NMS whatever runs the network.  :func:`load_backend`
looks at a file (a ``.pth`` checkpoint, an ``.onnx`` file we exported, or an
engine file written by ``retinaface-polynl export --format tensorrt``) and
returns the backend plus the :class:`ModelConfig` recorded in it.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..device import Device, available_cores, default_threads as _default_threads
from ..lazy import lazy_exports
from ..presets import ModelConfig
from .cache import cached_onnx
from .format import (
    ENGINE_MAGIC,
    NMS_OUTPUT,
    OUTPUT_NAMES,
    PREPROCESSING,
    ExportError,
    OnnxMetadata,
    TensorRTUnavailable,
    keep_selected,
    parse_metadata,
)

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "onnxruntime", "tensorrt")
"""The engines a Detector can run (``backend=``): the one list, used by :func:`load_backend` and
:func:`retinaface_polynl.backends.open_backend`."""
FILE_FORMATS = ("torch", "onnx", "tensorrt")


def detect_format(path: str | Path) -> str:
    """``"torch"``, ``"onnx"`` or ``"tensorrt"`` for a weights file, from its first bytes.

    Engine files we write start with :data:`ENGINE_MAGIC`; PyTorch checkpoints are
    zip archives (or legacy pickles); anything else ending in ``.onnx`` (or
    parsing as ONNX) is ONNX.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    with open(path, "rb") as f:
        head = f.read(16)
    if head.startswith(ENGINE_MAGIC):
        return "tensorrt"
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":
        return "torch"
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return "onnx"
    if suffix in (".engine", ".plan", ".trt"):
        raise ExportError(
            f"{path}: a TensorRT engine without retinaface_polynl metadata (not written by "
            "'retinaface-polynl export --format tensorrt'); build it with that command, or pass the .onnx file"
        )
    if suffix in (".pth", ".pt", ".ckpt"):
        return "torch"
    # Unknown suffix: an ONNX ModelProto starts with field 1 (ir_version, varint): byte 0x08.
    if head[:1] == b"\x08":
        return "onnx"
    raise ExportError(f"{path}: not a PyTorch checkpoint, an ONNX file or a retinaface_polynl TensorRT engine")


def _check_preprocessing(pre: dict[str, Any], where: str) -> None:
    """The file must expect what ``Detector.preprocess`` produces."""
    mismatched = [
        k
        for k in ("color", "mean", "scale", "layout")
        if k in pre and (np.asarray(pre[k]) != np.asarray(PREPROCESSING[k])).any()
    ]
    if mismatched:
        want = {k: PREPROCESSING[k] for k in mismatched}
        got = {k: pre[k] for k in mismatched}
        raise ExportError(f"{where}: expects preprocessing {got}; Detector feeds {want}")


def _ort_providers(device: "str | Device", providers: list | None) -> list:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if providers:
        unknown = [p if isinstance(p, str) else p[0] for p in providers]
        unknown = [p for p in unknown if p not in available]
        if unknown:
            raise ExportError(
                f"onnxruntime providers {unknown} are not available here (available: {', '.join(available)})"
            )
        return list(providers)
    dev = Device.parse(device)
    if dev.type == "cuda":
        if "CUDAExecutionProvider" not in available:
            raise ExportError(
                "device 'cuda' asked of onnxruntime, but this onnxruntime has no CUDAExecutionProvider "
                f"(available: {', '.join(available)}); install onnxruntime-gpu or use device='cpu'"
            )
        return [("CUDAExecutionProvider", {"device_id": dev.index or 0}), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def default_intra_op_threads() -> int:
    """Threads an onnxruntime session gets when none are asked for: ``OMP_NUM_THREADS`` or the
    cores this process may use (:func:`retinaface_polynl.device.default_threads`; what torch's
    own default comes to), so engines size their pools alike and never ask for more threads
    than the machine has."""
    return _default_threads()


def session_options(
    intra_op_threads: int | None = None,
    inter_op_threads: int | None = None,
    graph_optimization_level: str = "all",
    spinning: bool = False,
    **config_entries: str,
):
    """``onnxruntime.SessionOptions`` with threads and optimisation level set.

    ``intra_op_threads``: default :func:`default_intra_op_threads` (onnxruntime's own
    default counts physical cores and ignores ``OMP_NUM_THREADS``).
    ``graph_optimization_level``: "disable", "basic", "extended" or "all".
    ``spinning``: whether idle intra-op threads busy-wait for the next piece of work.
    Off by default: spinning threads keep burning the cores for a while after each
    call, which slows whatever the caller runs next (another detector, PyTorch, the
    video decoder) more than it speeds onnxruntime up (``docs/benchmarks.md``).
    ``config_entries`` go to ``add_session_config_entry`` (dots cannot be keyword
    names, so pass a dict with ``**``).
    """
    import onnxruntime as ort

    levels = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    if graph_optimization_level not in levels:
        raise ValueError(f"graph_optimization_level must be one of {', '.join(levels)}, got {graph_optimization_level!r}")
    so = ort.SessionOptions()
    so.graph_optimization_level = levels[graph_optimization_level]
    so.intra_op_num_threads = int(intra_op_threads if intra_op_threads is not None else default_intra_op_threads())
    if inter_op_threads is not None:
        so.inter_op_num_threads = int(inter_op_threads)
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "1" if spinning else "0")
    for key, value in config_entries.items():
        so.add_session_config_entry(key, str(value))
    return so


class OnnxRuntimeBackend:
    """Runs an exported ``.onnx`` file with onnxruntime.

    Args:
        path: the file (fp32, fp16, int8 or Q/DQ: all take and return float32).
        device: "cpu" or "cuda[:N]" (picks the execution providers when
            ``providers`` is not given).
        providers: onnxruntime execution providers, passed through (names or
            ``(name, options)`` pairs), e.g. ``["CPUExecutionProvider"]``.
        intra_op_threads, inter_op_threads: onnxruntime thread pools (intra-op default:
            :func:`default_intra_op_threads`, torch's count; inter-op: onnxruntime's).
        options: an ``onnxruntime.SessionOptions`` used as is (then the thread
            arguments must be None).
        graph_optimization_level: "disable", "basic", "extended" or "all".
        spinning: let idle threads busy-wait between calls (default off: see :func:`session_options`).

    A file exported with in-graph NMS returns the ``selected`` anchors; their
    scores are kept and every other anchor's score is set to 0, so that the
    caller's threshold + NMS reproduces the in-graph result.
    """

    name = "onnxruntime"

    def __init__(
        self,
        path: str | Path,
        device: "str | Device" = "cpu",
        providers: list | None = None,
        intra_op_threads: int | None = None,
        inter_op_threads: int | None = None,
        options: Any = None,
        graph_optimization_level: str = "all",
        spinning: bool = False,
    ) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if options is not None and (intra_op_threads is not None or inter_op_threads is not None):
            raise ValueError("pass thread counts either inside options= or as arguments, not both")
        so = options or session_options(intra_op_threads, inter_op_threads, graph_optimization_level, spinning)
        # what the session runs with (0 in options= means onnxruntime's own choice: physical cores)
        self.intra_op_threads = so.intra_op_num_threads or None
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=so, providers=_ort_providers(device, providers))
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ExportError(f"{self.path}: onnxruntime cannot load it ({type(exc).__name__}: {exc})") from None
        raw = self.session.get_modelmeta().custom_metadata_map
        self.metadata: OnnxMetadata = parse_metadata(raw, str(self.path))
        _check_preprocessing(self.metadata.preprocessing, str(self.path))
        self.config: ModelConfig = self.metadata.config
        self.input_name = self.session.get_inputs()[0].name
        outputs = [o.name for o in self.session.get_outputs()]
        missing = [n for n in OUTPUT_NAMES if n not in outputs]
        if missing:
            raise ExportError(f"{self.path}: outputs {missing} missing (has {outputs})")
        self.has_nms = NMS_OUTPUT in outputs
        self.output_names = list(OUTPUT_NAMES) + ([NMS_OUTPUT] if self.has_nms else [])

    @property
    def providers(self) -> list[str]:
        return self.session.get_providers()

    @property
    def precision(self) -> str:
        return self.metadata.precision

    def run_numpy(self, batch: np.ndarray) -> list[np.ndarray]:
        """The raw session outputs: boxes, scores, landmarks (and ``selected`` with in-graph NMS)."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if batch.ndim != 4 or batch.shape[1] != 3:
            raise ValueError(f"expected a (B, 3, H, W) batch, got shape {batch.shape}")
        return self.session.run(self.output_names, {self.input_name: batch})

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        out = self.run_numpy(batch)
        boxes, scores, landmarks = (np.asarray(a, dtype=np.float32) for a in out[:3])
        if self.has_nms:
            scores = keep_selected(scores, out[3])
        return boxes, scores, landmarks

    def __repr__(self) -> str:
        return f"OnnxRuntimeBackend({str(self.path)!r}, precision={self.precision!r}, providers={self.providers})"


def load_backend(
    path: str | Path,
    device: "str | Device" = "cpu",
    providers: list | None = None,
    intra_op_threads: int | None = None,
    backend: str = "auto",
    *,
    inter_op_threads: int | None = None,
    session_options: Any = None,
    graph_optimization_level: str = "all",
    config: ModelConfig | None = None,
    engine_cache_dir: str | Path | None = None,
    engine_profile: Any = None,
) -> tuple[Any, ModelConfig]:
    """The backend that runs ``path``, and the model configuration it records.

    Args:
        path: a PyTorch checkpoint, an ``.onnx`` file we exported, or a TensorRT
            engine file we wrote.
        device: "cpu" or "cuda[:N]".
        providers, intra_op_threads, inter_op_threads, session_options,
            graph_optimization_level: onnxruntime settings, passed through.
        backend: "auto" (from the file: ``.pth`` -> torch, ``.onnx`` ->
            onnxruntime, engine -> tensorrt), or "torch" / "onnxruntime" /
            "tensorrt" to insist; "tensorrt" with an ``.onnx`` file builds (and
            caches in ``engine_cache_dir``) an engine for it; "onnxruntime" or
            "tensorrt" with a ``.pth`` first exports it once into the cache
            (:func:`retinaface_polynl.export.cache.cached_onnx`; float16 for TensorRT).
        config: only for PyTorch checkpoints: a preset overriding the file's own.
        engine_profile: :class:`retinaface_polynl.export.tensorrt.ShapeProfile` for engines built here.

    Raises:
        ExportError (a ValueError): a file/backend combination that cannot work,
            with the reason; TensorRTUnavailable (also a ValueError) where
            TensorRT or a GPU is missing.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    fmt = detect_format(path)
    dev = Device.parse(device)
    if backend == "auto":
        backend = {"torch": "torch", "onnx": "onnxruntime", "tensorrt": "tensorrt"}[fmt]
    if fmt == "torch" and backend != "torch":
        if config is not None:
            raise ExportError(
                f"{path}: preset= changes the PyTorch model; the {backend} backend runs an export of the "
                f"checkpoint as it is: 'retinaface-polynl export --weights {path} --preset NAME --output model.onnx', "
                "then run that file"
            )
        if backend == "tensorrt" and dev.type != "cuda":
            raise TensorRTUnavailable(f"the tensorrt backend runs on a GPU: pass device='cuda' (got {str(device)!r})")
        # exported once into the cache (named by the checkpoint's SHA-256), then run like any export
        path, fmt = cached_onnx(path, half=backend == "tensorrt"), "onnx"
    if fmt != "torch" and backend == "torch":
        raise ExportError(f"{path} is an exported {fmt} file; the torch backend needs a .pth checkpoint")
    if config is not None and fmt != "torch":
        raise ExportError(f"{path}: an exported file carries its own configuration; preset= cannot change it")
    if backend == "torch":
        from ..checkpoints import load_model
        from .torch_backend import TorchBackend

        loaded = load_model(path, config=config, device=dev.torch())
        return TorchBackend(loaded.model, dev.torch(), threads=intra_op_threads), loaded.config
    if backend == "onnxruntime":
        if fmt == "tensorrt":
            raise ExportError(f"{path} is a TensorRT engine: use backend='tensorrt' (or pass the .onnx file)")
        ort_backend = OnnxRuntimeBackend(
            path,
            device=device,
            providers=providers,
            intra_op_threads=intra_op_threads,
            inter_op_threads=inter_op_threads,
            options=session_options,
            graph_optimization_level=graph_optimization_level,
        )
        return ort_backend, ort_backend.config
    # tensorrt
    if providers or intra_op_threads or inter_op_threads or session_options:
        log.warning("onnxruntime settings (providers, threads, session options) do not apply to TensorRT; ignored")
    if dev.type != "cuda":
        raise TensorRTUnavailable(f"the tensorrt backend runs on a GPU: pass device='cuda' (got {str(device)!r})")
    from .tensorrt import TensorRTBackend

    if fmt == "onnx":
        trt_backend = TensorRTBackend.from_onnx(path, device=dev.torch(), cache_dir=engine_cache_dir, profile=engine_profile)
    else:
        trt_backend = TensorRTBackend.from_engine_file(path, device=dev.torch())
    _check_preprocessing(trt_backend.metadata.preprocessing, str(path))
    return trt_backend, trt_backend.config


def default_threads() -> int:
    """Physical-core-ish thread count onnxruntime would pick (for reporting)."""
    return available_cores()


# the torch-based backends, importable from here as before, loaded only when asked for
__getattr__, __dir__ = lazy_exports(__name__, {"TorchBackend": f"{__package__}.torch_backend",
                                              "TensorRTBackend": f"{__package__}.tensorrt"})
