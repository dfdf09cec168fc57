"""Export and deployment: ONNX (fp32 / fp16), INT8 (onnxruntime CPU, TensorRT Q/DQ), TensorRT engines,
and the backends that run them (and the PyTorch model: ``export.torch_backend.TorchBackend``), all with one call.

    export_onnx(model, "m.onnx")                      # retinaface_polynl.export.onnx
    quantize_int8("m.onnx", "m.int8.onnx", batches)   # retinaface_polynl.export.quantize
    quantize_qdq("m.onnx", "m.qdq.onnx", batches)
    build_engine("m.qdq.onnx", output="m.engine")     # retinaface_polynl.export.tensorrt (GPU + TensorRT)
    backend, config = load_backend("m.onnx")          # retinaface_polynl.export.runtime
    verify_export(Detector(...), Detector(weights="m.int8.onnx"), photos)   # retinaface_polynl.export.verify

``tensorrt`` and ``onnxruntime`` are imported only when used.
"""
from .onnx import (
    DEFAULT_OPSET,
    PREPROCESSING,
    ExportError,
    NmsOptions,
    export_onnx,
    read_metadata,
)
from .quantize import DEFAULT_CALIBRATION, calibration_batches, calibration_images, quantize_int8, quantize_qdq
from .runtime import OnnxRuntimeBackend, detect_format, load_backend
from .tensorrt import ShapeProfile, TensorRTBackend, TensorRTUnavailable, build_engine, tensorrt_status
from .torch_backend import TorchBackend
from .verify import TOLERANCES, Tolerance, compare_faces, format_checks, tolerance_for, verify_export

__all__ = [
    "DEFAULT_CALIBRATION",
    "DEFAULT_OPSET",
    "PREPROCESSING",
    "ExportError",
    "NmsOptions",
    "OnnxRuntimeBackend",
    "ShapeProfile",
    "TOLERANCES",
    "Tolerance",
    "TensorRTBackend",
    "TensorRTUnavailable",
    "TorchBackend",
    "build_engine",
    "calibration_batches",
    "calibration_images",
    "compare_faces",
    "detect_format",
    "export_onnx",
    "format_checks",
    "load_backend",
    "quantize_int8",
    "quantize_qdq",
    "read_metadata",
    "tensorrt_status",
    "tolerance_for",
    "verify_export",
]
