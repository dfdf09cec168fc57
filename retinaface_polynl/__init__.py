"""retinaface-polynl: RetinaFace face detection with Poly-NL attention.

    >>> from retinaface_polynl import Detector
    >>> det = Detector(weights="model.pth")        # or Detector() for the shipped weights
    >>> faces = det.detect(cv2.imread("photo.jpg"))  # BGR, as OpenCV reads it
    >>> faces.boxes, faces.scores, faces.landmarks
"""
from .anonymize import anonymize
from .detector import Detections, Detector, Face
from .models.attention import ATTENTION_BLOCKS, build_attention
from .presets import ModelConfig, get_preset, presets
from .tta import TTA_PRESETS, TTAConfig

__version__ = "0.1.0"

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
