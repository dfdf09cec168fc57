"""TensorRT: engine building (with caching) and a runner.  ``tensorrt`` is imported only here, only when used.

Precision comes from the ONNX file, not from builder flags: TensorRT 10 builds
*strongly typed* networks (``NetworkDefinitionCreationFlag.STRONGLY_TYPED``) in
which every tensor's type follows the graph, and TensorRT 11 only builds those
(the flag is kept and ignored; the old ``BuilderFlag.FP16``/``INT8`` and the
INT8 calibrators are gone).  So:

* ``onnx-fp16`` (:func:`retinaface_polynl.export.onnx.export_onnx` with
  ``half=True``): float16 convolutions between explicit casts, decoding in float32;
* ``onnx-qdq`` (:func:`retinaface_polynl.export.quantize.quantize_qdq`): symmetric
  INT8 ``QuantizeLinear``/``DequantizeLinear`` pairs (zero points 0) calibrated on
  real photos; TensorRT fuses them into INT8 kernels;
* ``onnx`` (fp32): float32 everywhere (TF32 on Ampere+ unless disabled).

:func:`build_engine` parses the file, adds one optimisation profile for the
dynamic batch / height / width (:class:`ShapeProfile`), builds a serialised
engine and caches it under a key hashed from the ONNX bytes, the TensorRT
version, the GPU's name and compute capability and the profile.
:class:`TensorRTBackend` deserialises an engine and runs it with tensor
addresses (``set_tensor_address`` + ``execute_async_v3``) on CUDA buffers owned
by torch (no pycuda).

Engine files written here start with :data:`ENGINE_MAGIC`, then a 4-byte
little-endian length and a JSON header (the ONNX file's ``retinaface_polynl.*``
metadata plus TensorRT version, GPU and profile), then TensorRT's serialised
engine: ``Detector(weights="model.engine")`` needs nothing else.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..fileio import atomic_path
from .format import (  # noqa: F401 (ENGINE_MAGIC, TensorRTUnavailable re-exported: first defined here)
    ENGINE_MAGIC,
    INPUT_NAME,
    NMS_OUTPUT,
    OUTPUT_NAMES,
    ExportError,
    OnnxMetadata,
    TensorRTUnavailable,
    keep_selected,
    parse_metadata,
)

log = logging.getLogger(__name__)

ENGINE_HEADER_VERSION = 1


def tensorrt_status() -> tuple[bool, str]:
    """``(True, "TensorRT x.y on <GPU>")`` or ``(False, why not)``, importing nothing eagerly."""
    try:
        import tensorrt as trt  # noqa: F401
    except ImportError as exc:
        return False, (
            f"TensorRT is not installed ({exc}); install it on a machine with an NVIDIA GPU "
            "(pip install tensorrt, or use Dockerfile.gpu)"
        )
    if not torch.cuda.is_available():
        return False, f"TensorRT {trt.__version__} is installed but no CUDA GPU is available (torch.cuda.is_available() is False)"
    return True, f"TensorRT {trt.__version__} on {torch.cuda.get_device_name(0)}"


def import_tensorrt():
    """The ``tensorrt`` module, or :class:`TensorRTUnavailable` with the reason."""
    ok, why = tensorrt_status()
    if not ok:
        raise TensorRTUnavailable(why)
    import tensorrt as trt

    return trt


@dataclass(frozen=True)
class ShapeProfile:
    """The optimisation profile: input shapes an engine accepts (min / opt / max per axis).

    Heights and widths should be multiples of 32 (``Detector`` pads to them);
    ``opt`` is what kernels are tuned for (VGA, batch 1 by default).
    """

    min_batch: int = 1
    opt_batch: int = 1
    max_batch: int = 8
    min_hw: tuple[int, int] = (32, 32)
    opt_hw: tuple[int, int] = (480, 640)
    max_hw: tuple[int, int] = (1088, 1920)

    def __post_init__(self) -> None:
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            raise ValueError(f"need 1 <= min_batch <= opt_batch <= max_batch, got {self}")
        for i in (0, 1):
            if not 1 <= self.min_hw[i] <= self.opt_hw[i] <= self.max_hw[i]:
                raise ValueError(f"need min_hw <= opt_hw <= max_hw on both axes, got {self}")

    def shapes(self) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        return (
            (self.min_batch, 3, *self.min_hw),
            (self.opt_batch, 3, *self.opt_hw),
            (self.max_batch, 3, *self.max_hw),
        )

    def check(self, shape: tuple[int, ...]) -> None:
        lo, _, hi = self.shapes()
        if len(shape) != 4 or any(not (a <= s <= b) for a, s, b in zip(lo, shape, hi)):
            raise ValueError(
                f"input shape {tuple(shape)} is outside the engine's optimisation profile "
                f"(min {lo}, max {hi}); rebuild the engine with a larger ShapeProfile or resize the input"
            )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ShapeProfile":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def default_cache_dir() -> Path:
    root = os.environ.get("RETINAFACE_POLYNL_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "retinaface_polynl"
    )
    return Path(root) / "tensorrt"


def gpu_identity(device: torch.device | int = 0) -> str:
    props = torch.cuda.get_device_properties(device)
    return f"{props.name} sm_{props.major}{props.minor}"


def engine_cache_key(onnx_bytes: bytes, trt_version: str, gpu: str, profile: ShapeProfile, workspace_bytes: int) -> str:
    """SHA-256 over everything an engine depends on: the ONNX bytes, TensorRT's version, the GPU, the profile."""
    h = hashlib.sha256()
    h.update(onnx_bytes)
    h.update(b"\0trt=" + trt_version.encode())
    h.update(b"\0gpu=" + gpu.encode())
    h.update(b"\0profile=" + json.dumps(asdict(profile), sort_keys=True).encode())
    h.update(b"\0workspace=" + str(workspace_bytes).encode())
    return h.hexdigest()


def write_engine_file(path: str | Path, engine: bytes, header: dict[str, Any]) -> Path:
    """``ENGINE_MAGIC | uint32 length | JSON header | serialised engine``, written atomically."""
    from .onnx import check_writable

    path = check_writable(path)
    blob = json.dumps({"header_version": ENGINE_HEADER_VERSION, **header}, sort_keys=True).encode()
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(ENGINE_MAGIC + struct.pack("<I", len(blob)) + blob)
        f.write(engine)
    return path


def read_engine_file(path: str | Path) -> tuple[dict[str, Any], bytes]:
    """The JSON header and the serialised engine of a file from :func:`write_engine_file`."""
    data = Path(path).read_bytes()
    if not data.startswith(ENGINE_MAGIC) or len(data) < len(ENGINE_MAGIC) + 4:
        raise ExportError(f"{path}: not a retinaface_polynl TensorRT engine file (no {ENGINE_MAGIC!r} header)")
    (n,) = struct.unpack("<I", data[len(ENGINE_MAGIC) : len(ENGINE_MAGIC) + 4])
    start = len(ENGINE_MAGIC) + 4
    try:
        header = json.loads(data[start : start + n])
    except ValueError as exc:
        raise ExportError(f"{path}: corrupt engine header ({exc})") from None
    return header, data[start + n :]


def _logger(trt, verbose: bool = False):
    return trt.Logger(trt.Logger.VERBOSE if verbose else trt.Logger.WARNING)


def build_serialized_engine(
    onnx_bytes: bytes,
    profile: ShapeProfile = ShapeProfile(),
    workspace_bytes: int = 2 << 30,
    verbose: bool = False,
) -> bytes:
    """Parse an ONNX file into a strongly typed network and build a serialised engine (no caching)."""
    trt = import_tensorrt()
    logger = _logger(trt, verbose)
    builder = trt.Builder(logger)
    flags = 0
    strongly_typed = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if strongly_typed is not None:  # TensorRT 10: opt in; TensorRT 11: always on, the flag is ignored
        flags |= 1 << int(strongly_typed)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_bytes):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"TensorRT's ONNX parser rejected the file: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
    opt_profile = builder.create_optimization_profile()
    lo, opt, hi = profile.shapes()
    opt_profile.set_shape(INPUT_NAME, lo, opt, hi)
    config.add_optimization_profile(opt_profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError("TensorRT failed to build the engine (see the TensorRT log above)")
    return bytes(serialized)


def build_engine(
    onnx_path: str | Path,
    profile: ShapeProfile = ShapeProfile(),
    cache_dir: str | Path | None = None,
    workspace_bytes: int = 2 << 30,
    output: str | Path | None = None,
    verbose: bool = False,
) -> Path:
    """An engine file for ``onnx_path`` (one of our exports), built once per (file, TensorRT, GPU, profile).

    Returns ``output`` if given (copied from the cache), else the cached file.
    """
    import onnx

    trt = import_tensorrt()
    onnx_path = Path(onnx_path)
    onnx_bytes = onnx_path.read_bytes()
    proto = onnx.load_from_string(onnx_bytes)
    meta = parse_metadata({p.key: p.value for p in proto.metadata_props}, str(onnx_path))
    gpu = gpu_identity(torch.cuda.current_device())
    key = engine_cache_key(onnx_bytes, trt.__version__, gpu, profile, workspace_bytes)
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    cached = cache / f"{meta.config.name}-{meta.precision}-{key[:20]}.engine"
    if cached.is_file():
        log.info("TensorRT engine cache hit: %s", cached)
    else:
        log.info("building a TensorRT engine for %s (%s, %s); this takes a while", onnx_path, meta.precision, gpu)
        engine = build_serialized_engine(onnx_bytes, profile, workspace_bytes, verbose)
        header = {
            "metadata": meta.raw,
            "tensorrt_version": trt.__version__,
            "gpu": gpu,
            "profile": asdict(profile),
            "onnx_sha256": hashlib.sha256(onnx_bytes).hexdigest(),
            "cache_key": key,
        }
        write_engine_file(cached, engine, header)
    if output is None:
        return cached
    header, engine = read_engine_file(cached)
    return write_engine_file(output, engine, {k: v for k, v in header.items() if k != "header_version"})


_TORCH_DTYPES = {
    "FLOAT": torch.float32,
    "HALF": torch.float16,
    "BF16": torch.bfloat16,
    "INT32": torch.int32,
    "INT64": torch.int64,
    "INT8": torch.int8,
    "UINT8": torch.uint8,
    "BOOL": torch.bool,
}


def _torch_dtype(trt_dtype) -> torch.dtype:
    name = str(trt_dtype).split(".")[-1]
    if name not in _TORCH_DTYPES:
        raise ExportError(f"engine tensor type {name} has no torch equivalent")
    return _TORCH_DTYPES[name]


def _output_allocator_class(trt):
    """An ``IOutputAllocator`` for outputs whose size is known only after running (in-graph NMS)."""

    class TorchOutputAllocator(trt.IOutputAllocator):
        def __init__(self, device: torch.device) -> None:
            super().__init__()
            self.device = device
            self.buffers: dict[str, torch.Tensor] = {}
            self.shapes: dict[str, tuple[int, ...]] = {}

        def reallocate_output(self, name, memory, size, alignment):  # TensorRT 10 (deprecated later)
            buf = self.buffers.get(name)
            if buf is None or buf.numel() < size:
                buf = torch.empty(max(int(size), 1), dtype=torch.uint8, device=self.device)
                self.buffers[name] = buf
            return buf.data_ptr()

        def reallocate_output_async(self, name, memory, size, alignment, stream):
            return self.reallocate_output(name, memory, size, alignment)

        def notify_shape(self, name, shape):
            self.shapes[name] = tuple(shape)

    return TorchOutputAllocator


class TensorRTBackend:
    """Runs a TensorRT engine on CUDA tensors owned by torch; same call as ``torch_backend.TorchBackend``.

    ``batch`` (B, 3, H, W) float32 numpy -> (boxes, scores, landmarks) float32 CPU
    tensors.  Input shapes must lie inside the engine's optimisation profile.
    """

    name = "tensorrt"

    def __init__(self, engine: bytes, header: dict[str, Any], device: torch.device | str = "cuda") -> None:
        trt = import_tensorrt()
        self.device = torch.device(device)
        if self.device.type != "cuda":
            raise TensorRTUnavailable(f"TensorRT runs on a CUDA device, got {device!r}")
        self.header = header
        self.metadata: OnnxMetadata = parse_metadata(header.get("metadata", {}), "engine")
        self.config = self.metadata.config
        self.profile = ShapeProfile.from_dict(header["profile"]) if "profile" in header else None
        built_on = header.get("tensorrt_version")
        if built_on and built_on != trt.__version__:
            raise ExportError(
                f"engine built with TensorRT {built_on}, this is {trt.__version__}: rebuild it "
                "(engines are specific to a TensorRT version and GPU)"
            )
        self._trt = trt
        self.logger = _logger(trt)
        with torch.cuda.device(self.device):
            self.runtime = trt.Runtime(self.logger)
            self.engine = self.runtime.deserialize_cuda_engine(engine)
            if self.engine is None:
                raise ExportError("TensorRT could not deserialise the engine (other TensorRT version or GPU?)")
            self.context = self.engine.create_execution_context()
            self.stream = torch.cuda.Stream(self.device)
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if self.inputs != [INPUT_NAME] or any(n not in self.outputs for n in OUTPUT_NAMES):
            raise ExportError(f"unexpected engine I/O: inputs {self.inputs}, outputs {self.outputs}")
        self.has_nms = NMS_OUTPUT in self.outputs
        self._allocator = _output_allocator_class(trt)(self.device) if self.has_nms else None
        if self._allocator is not None:
            self.context.set_output_allocator(NMS_OUTPUT, self._allocator)

    @property
    def max_input_hw(self) -> tuple[int, int] | None:
        """The largest (H, W) the engine's profile accepts (``Detector`` keeps the small-face
        zoom's second pass within it); ``None`` when the engine records no profile."""
        return tuple(self.profile.max_hw) if self.profile is not None else None

    @classmethod
    def from_engine_file(cls, path: str | Path, device: torch.device | str = "cuda") -> "TensorRTBackend":
        import_tensorrt()
        header, engine = read_engine_file(path)
        return cls(engine, header, device)

    @classmethod
    def from_onnx(
        cls,
        path: str | Path,
        device: torch.device | str = "cuda",
        cache_dir: str | Path | None = None,
        profile: ShapeProfile | None = None,
    ) -> "TensorRTBackend":
        """Build (or reuse from the cache) an engine for one of our ONNX files, then load it."""
        with torch.cuda.device(torch.device(device)):
            engine_path = build_engine(path, profile or ShapeProfile(), cache_dir=cache_dir)
        return cls.from_engine_file(engine_path, device)

    @property
    def precision(self) -> str:
        return self.metadata.precision

    def run_torch(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """CUDA input (B, 3, H, W) float32 -> {output name: CUDA tensor}; synchronises the stream."""
        if self.profile is not None:
            self.profile.check(tuple(x.shape))
        x = x.contiguous()
        ctx = self.context
        if not ctx.set_input_shape(INPUT_NAME, tuple(x.shape)):
            raise ValueError(f"TensorRT rejected input shape {tuple(x.shape)}")
        ctx.set_tensor_address(INPUT_NAME, x.data_ptr())
        outputs: dict[str, torch.Tensor] = {}
        for name in self.outputs:
            shape = tuple(ctx.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                continue  # data-dependent (NMS): the output allocator provides the memory
            buf = torch.empty(shape, dtype=_torch_dtype(self.engine.get_tensor_dtype(name)), device=self.device)
            ctx.set_tensor_address(name, buf.data_ptr())
            outputs[name] = buf
        if not ctx.execute_async_v3(self.stream.cuda_stream):
            raise RuntimeError("TensorRT execute_async_v3 failed (see the TensorRT log)")
        self.stream.synchronize()
        if self._allocator is not None:
            shape = self._allocator.shapes[NMS_OUTPUT]
            n = int(np.prod(shape)) if len(shape) else 0
            raw = self._allocator.buffers[NMS_OUTPUT]
            outputs[NMS_OUTPUT] = raw[: n * 8].view(torch.int64).reshape(shape).clone()
        return outputs

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Numpy in, numpy out (the inference path's currency): tensors live only inside this call."""
        with torch.cuda.stream(self.stream):
            x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device, non_blocking=True)
            out = self.run_torch(x)
        boxes, scores, landmarks = (out[n].float().cpu().numpy() for n in OUTPUT_NAMES)
        if self.has_nms:
            scores = keep_selected(scores, out[NMS_OUTPUT].cpu().numpy())
        return boxes, scores, landmarks

    def __repr__(self) -> str:
        return f"TensorRTBackend(precision={self.precision!r}, gpu={self.header.get('gpu')!r}, trt={self._trt.__version__})"
