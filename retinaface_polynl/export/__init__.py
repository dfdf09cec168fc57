"""Export and deployment: ONNX (fp32 / fp16), INT8 (onnxruntime CPU, TensorRT Q/DQ), TensorRT engines,
and the backends that run them (and the PyTorch model: ``export.torch_backend.TorchBackend``), all with one call.

    export_onnx(model, "m.onnx")                      # retinaface_polynl.export.onnx
    quantize_int8("m.onnx", "m.int8.onnx", batches)   # retinaface_polynl.export.quantize
    quantize_qdq("m.onnx", "m.qdq.onnx", batches)
    build_engine("m.qdq.onnx", output="m.engine")     # retinaface_polynl.export.tensorrt (GPU + TensorRT)
    backend, config = load_backend("m.onnx")          # retinaface_polynl.export.runtime
    verify_export(Detector(...), Detector(weights="m.int8.onnx"), photos)   # retinaface_polynl.export.verify

Every name is imported from its module when first used (torch only by the exporter, the
quantiser's calibration, TensorRT and the PyTorch backend; ``tensorrt`` and ``onnxruntime`` when used).
"""
from ..lazy import lazy_exports

# Each name is loaded from its module when first asked for (PEP 562), so that importing this
# package, or its torch-free parts (format, runtime, auto, cache), does not import torch.
_HOMES = {
    "DEFAULT_OPSET": "onnx",
    "export_onnx": "onnx",
    "PREPROCESSING": "format",
    "ExportError": "format",
    "NmsOptions": "format",
    "read_metadata": "format",
    "DEFAULT_CALIBRATION": "quantize",
    "calibration_batches": "quantize",
    "calibration_images": "quantize",
    "quantize_int8": "quantize",
    "quantize_qdq": "quantize",
    "OnnxRuntimeBackend": "runtime",
    "detect_format": "runtime",
    "load_backend": "runtime",
    "ShapeProfile": "tensorrt",
    "TensorRTBackend": "tensorrt",
    "TensorRTUnavailable": "format",
    "build_engine": "tensorrt",
    "tensorrt_status": "tensorrt",
    "TorchBackend": "torch_backend",
    "TOLERANCES": "verify",
    "Tolerance": "verify",
    "compare_faces": "verify",
    "format_checks": "verify",
    "tolerance_for": "verify",
    "verify_export": "verify",
}


__getattr__, __dir__ = lazy_exports(__name__, {name: f".{home}" for name, home in _HOMES.items()})

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
