"""Reading images robustly.

Every reader returns BGR ``uint8`` arrays of shape (H, W, 3), as OpenCV does,
whatever the file holds (grayscale, RGBA, 16-bit, EXIF-rotated JPEG), and raises
:class:`ImageReadError` naming the file when it cannot.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


class ImageReadError(ValueError):
    """A file that is missing, empty or not a decodable image."""


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file to BGR uint8 (EXIF orientation applied)."""
    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"{path}: no such file")
    if path.is_dir():
        raise ImageReadError(f"{path}: is a folder, not an image")
    data = np.fromfile(str(path), dtype=np.uint8)
    if data.size == 0:
        raise ImageReadError(f"{path}: empty file")
    # IMREAD_COLOR converts gray/RGBA/16-bit to 8-bit BGR and applies EXIF orientation.
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        raise ImageReadError(f"{path}: not a decodable image (corrupt, truncated or unsupported format)")
    return image


def to_bgr_uint8(image: np.ndarray, rgb: bool = False) -> np.ndarray:
    """An image array -> BGR uint8 (H, W, 3).

    Accepts (H, W) grayscale, (H, W, 1), (H, W, 3) colour (BGR, or RGB with
    ``rgb=True``) and (H, W, 4) with alpha (dropped); uint8, uint16 (scaled by
    1/257) or float (taken as 0..255 if its maximum exceeds 1, else 0..1).
    """
    if not isinstance(image, np.ndarray):
        raise TypeError(f"expected a numpy image array, got {type(image).__name__}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise ValueError(f"expected an (H, W), (H, W, 3) or (H, W, 4) image, got shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"empty image of shape {image.shape}")
    if image.dtype == np.uint16:
        image = (image.astype(np.float32) / 257.0).round().astype(np.uint8)
    elif image.dtype != np.uint8:
        f = image.astype(np.float32)
        if not np.isfinite(f).all():
            raise ValueError("image contains NaN or infinite values")
        if f.max(initial=0) <= 1.0:
            f = f * 255.0
        image = f.clip(0, 255).round().astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_RGBA2BGR if rgb else cv2.COLOR_BGRA2BGR)
        return image
    if rgb:
        return cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    return np.ascontiguousarray(image)


def draw_detections(image_bgr: np.ndarray, detections, show_scores: bool = False, thickness: int | None = None):
    """A copy of the image with each face's box and landmarks drawn.

    As in the Poly-NL supplementary's Figure 3, boxes are yellow and their
    brightness encodes the confidence (dim = low score, bright = high).
    Landmarks: eyes blue/green, nose red, mouth corners magenta/cyan.
    """
    out = image_bgr.copy()
    h, w = out.shape[:2]
    t = thickness or max(1, round(min(h, w) / 300))
    point_colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 0, 255), (255, 255, 0)]
    for box, score, marks in zip(detections.boxes, detections.scores, detections.landmarks):
        level = 0.35 + 0.65 * float(np.clip(score, 0.0, 1.0))
        colour = (0, int(255 * level), int(255 * level))  # BGR yellow, brightness = confidence
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, t, cv2.LINE_AA)
        for (px, py), c in zip(marks, point_colours):
            cv2.circle(out, (int(round(px)), int(round(py))), max(1, t), c, -1, cv2.LINE_AA)
        if show_scores:
            cv2.putText(out, f"{score:.2f}", (x1, max(0, y1 - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.4 * t, colour, t, cv2.LINE_AA)
    return out
