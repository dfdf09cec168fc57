"""Box arithmetic of the inference path, in numpy: intersection over union, intersection
over the smaller box, and greedy NMS.

Both follow torchvision's CPU kernels operation for operation (``box_iou``: areas, clamped
intersection, ``inter / (area_a + area_b - inter)`` in the boxes' own dtype; ``nms``: scores
sorted descending, stably, and a box suppressed by a kept one when their IoU *exceeds* the
threshold, compared in float64 as the C++ kernel compares its ``float`` overlap with its
``double`` threshold), so the faces found are the ones the torch-based path found, bit for
bit on the same inputs (``tests/test_numpy_core.py`` checks this against torchvision where it
is installed; ``scripts/bench_nms.py`` measures it against torchvision and OpenCV's
``cv2.dnn.NMSBoxes``).

Boxes are ``(N, 4)`` arrays ``x1, y1, x2, y2``.
"""
from __future__ import annotations

import numpy as np

__all__ = ["box_area", "box_iou", "box_overlap_of_smaller", "nms"]


def box_area(boxes: np.ndarray) -> np.ndarray:
    """``(x2 - x1) * (y2 - y1)`` per box, in the boxes' dtype."""
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(N, M)`` area shared by every box of ``a`` and every box of ``b``, in their dtype."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    return wh[..., 0] * wh[..., 1]


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(N, M)`` IoU of every box of ``a`` with every box of ``b`` (0 where the union is 0
    only if both boxes are empty: then 0/0 gives NaN, as torchvision's does)."""
    a = np.asarray(a)
    b = np.asarray(b)
    area_a, area_b = box_area(a), box_area(b)
    inter = _intersection(a, b)
    with np.errstate(invalid="ignore", divide="ignore"):
        return inter / (area_a[:, None] + area_b[None, :] - inter)


def box_overlap_of_smaller(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(N, M)`` intersection of every box of ``a`` with every box of ``b`` over the smaller
    of the two areas: 1 when one box lies inside the other, whatever their sizes (IoU would
    be small for a face inside a box twice its side); 0 for an empty box."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    inter = _intersection(a, b)
    smaller = np.minimum(box_area(a)[:, None], box_area(b)[None, :])
    return np.divide(inter, smaller, out=np.zeros_like(inter), where=smaller > 0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of the boxes greedy non-maximum suppression keeps, by descending score.

    The highest-scored remaining box is kept and every remaining box whose IoU with it is
    above ``iou_threshold`` is dropped; repeated until none remain.  Each step compares the
    kept box with the survivors only, so crowds of overlapping boxes shrink fast.
    """
    boxes = np.asarray(boxes)
    scores = np.asarray(scores)
    if boxes.ndim != 2 or boxes.shape[1] != 4 or scores.shape != (boxes.shape[0],):
        raise ValueError(f"nms takes boxes (N, 4) and scores (N,), got {boxes.shape} and {scores.shape}")
    order = np.argsort(-scores, kind="stable")
    if order.size <= 1:
        return order.astype(np.int64)
    x1, y1, x2, y2 = (np.ascontiguousarray(boxes[order, k]) for k in range(4))
    areas = (x2 - x1) * (y2 - y1)
    zero = boxes.dtype.type(0)
    threshold = float(iou_threshold)
    keep = []
    rest = np.arange(order.size)
    while rest.size:
        i, others = rest[0], rest[1:]
        keep.append(i)
        if not others.size:
            break
        w = np.maximum(np.minimum(x2[i], x2[others]) - np.maximum(x1[i], x1[others]), zero)
        h = np.maximum(np.minimum(y2[i], y2[others]) - np.maximum(y1[i], y1[others]), zero)
        inter = w * h
        with np.errstate(invalid="ignore", divide="ignore"):
            overlap = inter / (areas[i] + areas[others] - inter)
        # NaN (two empty boxes) compares False: kept, as in torchvision
        rest = others[~(overlap.astype(np.float64) > threshold)]
    return order[np.asarray(keep, np.int64)]
