"""retinaface-polynl: RetinaFace face detection with Poly-NL attention.

    >>> from retinaface_polynl import Detector
    >>> det = Detector(weights="model.pth")        # or Detector() for the shipped weights
    >>> faces = det.detect(cv2.imread("photo.jpg"))  # BGR, as OpenCV reads it
    >>> faces.boxes, faces.scores, faces.landmarks

The names below load their module on first use (PEP 562), so ``import retinaface_polynl`` and
``from retinaface_polynl import Detector`` import only what they need: PyTorch only for what
runs on it (``build_attention``, the PyTorch backend, training and export).
"""
from __future__ import annotations

from .lazy import lazy_exports

# ``anonymize`` and ``presets`` name both a module of this package and the function it exports:
# importing the module (as the command line and the detector do) would replace a lazily loaded
# function by the module, so these two are bound now.  Neither needs more than numpy and OpenCV.
from .anonymize import anonymize
from .presets import ATTENTION_BLOCKS, ModelConfig, get_preset, presets

# exported name -> the module (relative to this package) that defines it
_LAZY = {
    "Detector": ".detector",
    "Detections": ".detector",
    "Face": ".detector",
    "TTAConfig": ".tta",
    "TTA_PRESETS": ".tta",
    "build_attention": ".models.attention",  # a torch.nn.Module: needs PyTorch
}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("retinaface-polynl")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"


_lazy_getattr, _lazy_dir = lazy_exports(__name__, _LAZY)


def __getattr__(name: str):
    if name == "__version__":
        globals()[name] = _version()  # looked up once
        return globals()[name]
    return _lazy_getattr(name)


def __dir__() -> list[str]:
    return sorted(set(_lazy_dir()) | set(__all__))


__all__ = [
    "ATTENTION_BLOCKS",
    "anonymize",
    "Detections",
    "Face",
    "Detector",
    "TTAConfig",
    "TTA_PRESETS",
    "ModelConfig",
    "build_attention",
    "get_preset",
    "presets",
    "__version__",
]
