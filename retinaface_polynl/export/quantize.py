"""INT8 ONNX files, calibrated on real photos: one for onnxruntime on CPU, one (Q/DQ) for TensorRT.

Both start from an fp32 file written by :func:`retinaface_polynl.export.onnx.export_onnx`
and quantise only the network proper: the nodes that compute the raw head
tensors named in the file's metadata (``box_deltas``, ``class_logits``,
``landmark_deltas``).  Anchor generation, the face probability (a sigmoid) and the box / landmark
decoding (``exp``, offsets) stay in float32, so the outputs keep their pixel
precision.  Both keep the float32 input and outputs and the file's metadata
(precision set to ``int8`` / ``int8-qdq``).

``onnx-int8`` (:func:`quantize_int8`, onnxruntime CPU) follows onnxruntime's
guidance for x86-64 CPUs without VNNI (``quantize_static``'s docstring, "Choosing
parameters for CPU inference"): QDQ format (onnxruntime's CPU kernels are
optimised for it; QOperator is the legacy representation), uint8 activations and
int8 weights (U8S8), per-channel weights, ``reduce_range=True`` (7-bit weights, so
that the AVX2/AVX-512 ``VPMADDUBSW`` path cannot saturate its 16-bit
intermediate sums).  On CPUs with VNNI (or ARM) ``reduce_range=False`` gains a
little accuracy at no cost; ``cpu_has_vnni()`` tells.

``onnx-qdq`` (:func:`quantize_qdq`, TensorRT): QDQ with *symmetric* int8
activations and weights, every zero point 0 (what TensorRT's explicit
quantisation accepts), per-channel weights on the output-channel axis, biases
left in float (TensorRT folds them into its INT8 kernels), quantising the
inputs of ``Conv``/``MatMul``/``Gemm`` and the residual ``Add`` and letting
TensorRT propagate the scales, opset 17 (TensorRT reads Q/DQ from opset 13 on;
per-channel needs the ``axis`` attribute, opset >= 13).

Calibration images: ``DEFAULT_CALIBRATION`` describes the default set (the
repository's ``demo/`` photos, i.e. ``demo/astronaut.jpg``) plus whatever a
``--calibration DIR`` holds; each image is run at its size resized to a long
side of 640 (and mirrored), the way ``Detector`` would feed a VGA image.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..fileio import scratch_path
from .onnx import (
    META_PREFIX,
    ExportError,
    check_writable,
    graph_opset,
    network_nodes,
    read_metadata,
    save_model_atomic,
    set_metadata,
)

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
DEFAULT_CALIBRATION = "the demo photos shipped with the package (demo/astronaut.jpg)"
CALIBRATION_LONG_SIDE = 640
QDQ_TRT_OP_TYPES = ("Conv", "MatMul", "Gemm", "Add")
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")


def cpu_has_vnni() -> bool:
    """Whether this x86 CPU has AVX-512 VNNI or AVX-VNNI (Linux /proc/cpuinfo; False elsewhere)."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split("flags", 2)[1].split("\n", 1)[0]
    except (OSError, IndexError):
        return False
    return any(f in flags.split() for f in ("avx512_vnni", "avx_vnni", "amx_int8"))


def calibration_images(
    sources: Sequence[str | Path] | None = None, limit: int = 64, what: str = "calibration images"
) -> list[Path]:
    """Image files for calibration (or checks, named by ``what`` in errors): every image under
    ``sources`` (files or folders, recursively), or the default set (:data:`DEFAULT_CALIBRATION`)
    when ``sources`` is empty."""
    from ..shipped import demo_dir

    if not sources:
        demo = demo_dir()
        if demo is None:
            raise ExportError(f"{what}: no demo photos are installed with this package; pass image files or folders")
        sources = [demo]
    paths: list[Path] = []
    for src in sources:
        src = Path(src)
        if src.is_dir():
            paths.extend(sorted(p for p in src.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS))
        elif src.is_file():
            paths.append(src)
        else:
            raise FileNotFoundError(f"{what}: {src} does not exist")
    if not paths:
        raise ExportError(f"no {what} found in {', '.join(map(str, sources))}")
    return paths[:limit]


def calibration_batches(
    images: Iterable[str | Path | np.ndarray],
    size: int | None = None,
    max_size: int | None = CALIBRATION_LONG_SIDE,
    mirror: bool = True,
    upscale_only: bool = False,
) -> list[np.ndarray]:
    """Preprocessed (1, 3, H, W) arrays, exactly as ``Detector`` feeds the network (BGR minus
    the mean, padded to 32) at the input size it uses: give the checkpoint's recorded
    ``size`` / ``max_size`` / ``upscale_only`` (:func:`~retinaface_polynl.pipeline.hint_rule`;
    the shipped weights: a short side of at least 480, long side at most 1024); without them,
    the original size with the long side capped at 640 px.  INT8 ranges calibrated at one scale fit
    activations at another less well."""
    from ..pipeline import pad_batch, preprocess, resize_scale
    from ..media import read_image

    batches = []
    for image in images:
        bgr = read_image(image) if isinstance(image, (str, Path)) else image
        h, w = bgr.shape[:2]
        x = preprocess(bgr, resize_scale(h, w, size, max_size, upscale_only))
        batches.append(pad_batch([x]))
        if mirror:
            batches.append(pad_batch([np.ascontiguousarray(x[:, :, ::-1])]))
    return batches


class _Reader:
    """onnxruntime ``CalibrationDataReader`` over preprocessed batches."""

    def __init__(self, batches: Sequence[np.ndarray], input_name: str) -> None:
        self.batches, self.input_name = batches, input_name
        self._it: Iterator[np.ndarray] | None = None

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._it is None:
            self._it = iter(self.batches)
        x = next(self._it, None)
        return None if x is None else {self.input_name: x}

    def rewind(self) -> None:
        self._it = None


def _calibration_method(name: str):
    from onnxruntime.quantization import CalibrationMethod

    table = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }
    if name not in table:
        raise ValueError(f"calibration method must be one of {', '.join(table)}, got {name!r}")
    return table[name]


class _DropPreprocessAdvice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-process" not in record.getMessage()


def _quantize(
    fp32_path: str | Path,
    output: str | Path,
    calibration: Sequence[np.ndarray],
    *,
    precision: str,
    activation_type: str,
    reduce_range: bool,
    per_channel: bool,
    op_types: Sequence[str] | None,
    extra_options: dict[str, Any],
    method: str,
    float_stem: bool = False,
) -> Path:
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    fp32_path = Path(fp32_path)
    output = check_writable(output)
    meta = read_metadata(fp32_path)
    if meta.precision != "fp32":
        raise ExportError(f"{fp32_path}: quantise an fp32 export, not a {meta.precision} one")
    if not calibration:
        raise ExportError("no calibration data")
    proto = onnx.load(str(fp32_path))
    nodes = network_nodes(proto, meta.head_outputs)
    if float_stem:
        inputs = {i.name for i in proto.graph.input}
        stem = {n.name for n in proto.graph.node if n.op_type == "Conv" and n.input[0] in inputs}
        nodes = [n for n in nodes if n not in stem]
    qtype = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}[activation_type]
    # onnxruntime logs "consider pre-processing" on the root logger: the graph is already
    # constant-folded with BatchNorm fused and shapes inferred, which is what that step does.
    root, hush = logging.getLogger(), _DropPreprocessAdvice()
    root.addFilter(hush)
    try:
        with scratch_path(output.parent, f".{output.name}.", ".q.onnx") as tmp:
            quantize_static(
                str(fp32_path),
                tmp,
                _Reader(calibration, "input"),
                quant_format=QuantFormat.QDQ,
                activation_type=qtype,
                weight_type=QuantType.QInt8,
                per_channel=per_channel,
                reduce_range=reduce_range,
                nodes_to_quantize=nodes,
                op_types_to_quantize=list(op_types) if op_types else None,
                calibrate_method=_calibration_method(method),
                extra_options=extra_options,
            )
            quantized = onnx.load(tmp)
    except ExportError:
        raise
    except Exception as exc:
        raise ExportError(f"quantisation of {fp32_path} failed: {type(exc).__name__}: {exc}") from exc
    finally:
        root.removeFilter(hush)
        # onnxruntime's calibrator leaves an augmented model beside the input on some versions
        for stray in fp32_path.parent.glob("augmented_model*.onnx"):
            stray.unlink(missing_ok=True)
    del quantized.metadata_props[:]
    quantized.metadata_props.extend(proto.metadata_props)
    set_metadata(
        quantized,
        {
            META_PREFIX + "precision": precision,
            META_PREFIX + "quantization": (
                f'{{"format": "QDQ", "activations": "{activation_type}", "weights": "int8", '
                f'"per_channel": {str(per_channel).lower()}, "reduce_range": {str(reduce_range).lower()}, '
                f'"calibration_method": "{method}", "calibration_batches": {len(calibration)}, '
                f'"float_stem": {str(float_stem).lower()}}}'
            ),
        },
    )
    quantized.producer_name = "retinaface_polynl"
    onnx.checker.check_model(quantized)
    save_model_atomic(quantized, output)
    log.debug("wrote %s (%s, %d calibration inputs)", output, precision, len(calibration))
    return output


def quantize_int8(
    fp32_path: str | Path,
    output: str | Path,
    calibration: Sequence[np.ndarray],
    *,
    reduce_range: bool = True,
    per_channel: bool = True,
    method: str = "minmax",
    float_stem: bool = False,
) -> Path:
    """onnxruntime CPU INT8 (``onnx-int8``): QDQ, U8S8, per-channel, ``reduce_range`` (see the module doc).

    ``calibration``: preprocessed batches (:func:`calibration_batches`).  ``float_stem=True``
    keeps the first convolution (3 input channels, on raw pixels) in float32, for
    accuracy; it costs time here (r18x025_polynl at VGA, 2 threads, alternating
    runs: 48-50 ms all-INT8 vs 59-61 ms with a float stem and 58-59 ms fp32), because
    its 16-channel full-resolution output must then be quantised.
    """
    return _quantize(
        fp32_path,
        output,
        calibration,
        precision="int8",
        activation_type="uint8",
        reduce_range=reduce_range,
        per_channel=per_channel,
        op_types=None,
        extra_options={"WeightSymmetric": True, "ActivationSymmetric": False},
        method=method,
        float_stem=float_stem,
    )


def quantize_qdq(
    fp32_path: str | Path,
    output: str | Path,
    calibration: Sequence[np.ndarray],
    *,
    per_channel: bool = True,
    method: str = "minmax",
    op_types: Sequence[str] = QDQ_TRT_OP_TYPES,
) -> Path:
    """TensorRT explicit-quantisation INT8 (``onnx-qdq``): symmetric int8 Q/DQ, zero points 0."""
    return _quantize(
        fp32_path,
        output,
        calibration,
        precision="int8-qdq",
        activation_type="int8",
        reduce_range=False,
        per_channel=per_channel,
        op_types=op_types,
        extra_options={
            "ActivationSymmetric": True,
            "WeightSymmetric": True,
            "QuantizeBias": False,
            "DedicatedQDQPair": False,
        },
        method=method,
    )


def qdq_summary(path: str | Path) -> dict[str, Any]:
    """Opset, Q/DQ node counts and every zero point's values (for checks and the CLI)."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(path))
    inits = {t.name: t for t in proto.graph.initializer}
    zero_points: list[np.ndarray] = []
    counts = {"QuantizeLinear": 0, "DequantizeLinear": 0}
    for node in proto.graph.node:
        if node.op_type in counts:
            counts[node.op_type] += 1
            if len(node.input) > 2 and node.input[2] in inits:
                zero_points.append(numpy_helper.to_array(inits[node.input[2]]))
            elif len(node.input) <= 2 or not node.input[2]:
                zero_points.append(np.zeros(1, np.int8))  # omitted zero point means 0
    zp = np.concatenate([z.ravel().astype(np.int64) for z in zero_points]) if zero_points else np.zeros(0, np.int64)
    dtypes = sorted({str(z.dtype) for z in zero_points})
    return {"opset": graph_opset(proto), "counts": counts, "zero_points": zp, "zero_point_dtypes": dtypes}
