"""Five-point face alignment: the crops face recognisers (ArcFace and its kin) expect.

A similarity transform (rotation, uniform scale, translation: no shear) maps the
five landmarks of a face (left eye, right eye, nose tip, left and right mouth
corners, as seen in the image) onto the standard ArcFace template of a 112 x 112
crop; OpenCV fits it (``cv2.estimateAffinePartial2D``, least squares over the
five points) and resamples the crop (``cv2.warpAffine``, bilinear, border
replicated).  For other crop sizes the template's coordinates scale with the
size (``size / 112``), as insightface's ``norm_crop`` does for multiples of 112.

    >>> crops = align_faces(image_bgr, detections.landmarks)   # (N, 112, 112, 3) uint8
    >>> crops = detections.align(image_bgr, size=224)           # the same, from Detections
"""
from __future__ import annotations

import cv2
import numpy as np

# The ArcFace (insightface) reference points for a 112 x 112 crop, in pixels:
# left eye, right eye, nose tip, left mouth corner, right mouth corner.
ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    np.float32,
)
TEMPLATE_SIZE = 112


def template(size: int = TEMPLATE_SIZE) -> np.ndarray:
    """The five template points (5, 2) for a ``size`` x ``size`` crop."""
    size = _check_size(size)
    return ARCFACE_TEMPLATE * np.float32(size / TEMPLATE_SIZE)


def _check_size(size) -> int:
    if int(size) != size or size < 8:
        raise ValueError(f"crop size must be an integer of at least 8 pixels, got {size}")
    return int(size)


def similarity_transform(landmarks: np.ndarray, size: int = TEMPLATE_SIZE) -> np.ndarray:
    """The 2 x 3 similarity matrix that maps ``landmarks`` (5, 2) onto :func:`template`.

    Fitted by ``cv2.estimateAffinePartial2D`` with every point an inlier (a RANSAC
    threshold larger than any face), so that its Levenberg-Marquardt refinement is the
    least-squares fit over all five points rather than over a random pair.
    """
    src = np.asarray(landmarks, np.float32).reshape(5, 2)
    if not np.isfinite(src).all():
        raise ValueError("landmarks contain NaN or infinite values")
    dst = template(size)
    spread = float(np.ptp(src, axis=0).max())
    if spread < 1e-3:
        raise ValueError("the five landmarks coincide: no alignment is defined")
    matrix, _ = cv2.estimateAffinePartial2D(
        src, dst, method=cv2.RANSAC, ransacReprojThreshold=1e9, maxIters=1, refineIters=50
    )
    if matrix is None:  # pragma: no cover - OpenCV gives up only on degenerate input
        raise ValueError("cannot fit a similarity transform to these landmarks")
    return matrix.astype(np.float64)


def align_face(image: np.ndarray, landmarks: np.ndarray, size: int = TEMPLATE_SIZE) -> np.ndarray:
    """One aligned ``size`` x ``size`` crop (same channels and dtype as ``image``)."""
    size = _check_size(size)
    matrix = similarity_transform(landmarks, size)
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def align_faces(image: np.ndarray, landmarks, size: int = TEMPLATE_SIZE) -> np.ndarray:
    """Aligned crops of every face: ``landmarks`` (N, 5, 2) -> (N, size, size, C) array
    (``(0, size, size, C)`` when there is no face)."""
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3) or 0 in image.shape[:2]:
        raise ValueError(f"expected an (H, W) or (H, W, C) image array, got {getattr(image, 'shape', type(image))}")
    size = _check_size(size)
    marks = np.asarray(landmarks, np.float32).reshape(-1, 5, 2)
    crops = [align_face(image, m, size) for m in marks]
    if not crops:
        return np.zeros((0, size, size, *image.shape[2:]), image.dtype)
    return np.stack(crops)
