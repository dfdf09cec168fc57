"""Generic average precision at an IoU threshold for plain box lists (PASCAL VOC style).

Protocol of :func:`average_precision` (the usual VOC all-point AP, continuous
coordinates, no +1-pixel convention):

* all detections of all images are ranked by score, descending (stable: ties
  keep image order, then within-image order);
* each detection takes the ground-truth box of its image with the highest
  IoU (first on ties); if that IoU is ``>= iou`` and the box was not taken by a
  higher-ranked detection it is a true positive, otherwise a false positive
  (a duplicate of a found box is a false positive, as in VOC);
* precision/recall are cumulated along the ranking, recall over all
  ground-truth boxes (images without detections still count theirs);
* AP is the area under the monotone precision envelope (:func:`voc_ap_all_points`).

Cheap enough to call every epoch: one vectorised IoU matrix per image.
"""
from __future__ import annotations

from typing import Mapping, Union

import numpy as np

from .errors import PredictionFormatError

__all__ = ["average_precision", "box_iou", "match_detections", "resampled_average_precision", "voc_ap_all_points",
           "as_boxes_scores"]

Detections = Union[tuple, np.ndarray]


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix ``(len(a), len(b))`` of ``x1 y1 x2 y2`` boxes (continuous coordinates)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def voc_ap_all_points(recall: np.ndarray, precision: np.ndarray) -> float:
    """Area under the precision envelope of ``[0, recall, 1]`` / ``[0, precision, 0]``."""
    mrec = np.concatenate([[0.0], np.asarray(recall, dtype=np.float64), [1.0]])
    mpre = np.concatenate([[0.0], np.asarray(precision, dtype=np.float64), [0.0]])
    mpre = np.fmax.accumulate(mpre[::-1])[::-1]
    i = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
    return float(np.sum((mrec[i] - mrec[i - 1]) * mpre[i]))


def as_boxes_scores(det: Detections, name: str = "?") -> tuple[np.ndarray, np.ndarray]:
    """Accept ``(boxes_xyxy (N,4), scores (N,))`` or an ``(N, 5)`` array ``x1 y1 x2 y2 score``."""
    if isinstance(det, tuple) and len(det) == 2:
        boxes, scores = det
    else:
        arr = np.asarray(det, dtype=np.float64)
        if arr.size == 0:
            return np.zeros((0, 4)), np.zeros(0)
        if arr.ndim != 2 or arr.shape[1] != 5:
            raise PredictionFormatError(None, f"detections of {name!r}: expected (boxes, scores) or an (N, 5) array")
        boxes, scores = arr[:, :4], arr[:, 4]
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(boxes) != len(scores):
        raise PredictionFormatError(None, f"detections of {name!r}: {len(boxes)} boxes but {len(scores)} scores")
    if not (np.isfinite(boxes).all() and np.isfinite(scores).all()):
        raise PredictionFormatError(None, f"detections of {name!r}: NaN or infinite values")
    return boxes, scores


def _reject_unknown_images(detections: Mapping, ground_truth: Mapping) -> None:
    """A detection for an image the ground truth does not hold is a mismatch of names, never a
    result: :class:`PredictionFormatError` naming (up to five of) them."""
    unknown = [k for k in detections if k not in ground_truth]
    if unknown:
        raise PredictionFormatError(None, f"detections for unknown image(s) {', '.join(map(str, unknown[:5]))}")


def match_detections(
    detections: Mapping[str, Detections],
    ground_truth: Mapping[str, np.ndarray],
    iou: float = 0.5,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Rank all detections and flag true positives -> ``(scores_ranked, is_tp, num_gt)``."""
    _reject_unknown_images(detections, ground_truth)
    num_gt = int(sum(np.asarray(g).reshape(-1, 4).shape[0] for g in ground_truth.values()))
    scores_all, keys_all, ok_all = [], [], []
    offset = 0
    for name, det in detections.items():
        boxes, scores = as_boxes_scores(det, name)
        gt = np.asarray(ground_truth[name], dtype=np.float64).reshape(-1, 4)
        n = len(boxes)
        if n == 0:
            continue
        if len(gt):
            m = box_iou(boxes, gt)
            best = m.argmax(axis=1)
            ok = m[np.arange(n), best] >= iou
        else:
            best = np.zeros(n, dtype=np.int64)
            ok = np.zeros(n, dtype=bool)
        scores_all.append(scores)
        keys_all.append(offset + best)
        ok_all.append(ok)
        offset += max(len(gt), 1)
    if not scores_all:
        return np.zeros(0), np.zeros(0, dtype=bool), num_gt
    scores = np.concatenate(scores_all)
    keys = np.concatenate(keys_all)
    ok = np.concatenate(ok_all)
    order = np.argsort(-scores, kind="stable")
    scores, keys, ok = scores[order], keys[order], ok[order]
    tp = np.zeros(len(scores), dtype=bool)
    cand = np.flatnonzero(ok)
    if cand.size:
        _, first = np.unique(keys[cand], return_index=True)  # highest-ranked detection of each box
        tp[cand[first]] = True
    return scores, tp, num_gt


def _ranked_curve(tp: np.ndarray, num_gt: int) -> tuple[float, np.ndarray, np.ndarray]:
    """``(AP, recall, precision)`` of detections ranked best first, ``tp`` flagging the true
    positives, against ``num_gt`` faces (AP 0 and recall 0 without faces)."""
    ctp = np.cumsum(tp)
    cfp = np.cumsum(~tp)
    precision = ctp / np.maximum(ctp + cfp, 1)
    recall = ctp / num_gt if num_gt else np.zeros(len(ctp))
    ap = voc_ap_all_points(recall, precision) if num_gt else 0.0
    return ap, recall, precision


def average_precision(
    detections: Mapping[str, Detections],
    ground_truth: Mapping[str, np.ndarray],
    iou: float = 0.5,
    return_curve: bool = False,
):
    """VOC all-point AP of ``detections`` against ``ground_truth`` at IoU ``iou``.

    ``detections``: ``{image: (boxes_xyxy (N,4), scores (N,))}`` or
    ``{image: (N,5) array}``; ``ground_truth``: ``{image: boxes_xyxy (M,4)}``.
    Images of ``ground_truth`` missing from ``detections`` have no
    detections; a detection for an image not in ``ground_truth`` raises
    :class:`PredictionFormatError`.  Returns the AP (0 when there is no
    ground truth), or ``(ap, recall, precision, scores)`` with
    ``return_curve=True``.
    """
    scores, tp, num_gt = match_detections(detections, ground_truth, iou)
    ap, recall, precision = _ranked_curve(tp, num_gt)
    if return_curve:
        return ap, recall, precision, scores
    return ap


def resampled_average_precision(
    detections: Mapping[str, Detections],
    ground_truth: Mapping[str, np.ndarray],
    samples: np.ndarray,
    iou: float = 0.5,
) -> np.ndarray:
    """:func:`average_precision` of each resample of the images: ``samples`` ``(R, k)`` indexes the
    images of ``ground_truth`` in its order (a bootstrap draws them with replacement; an image drawn
    twice counts twice, as two copies of it would). Matching is decided within an image, so each
    image is matched once and a resample's ranking is its images' detections merged (stable: ties
    keep the order of the draw, then of the image). Give two detectors the same ``samples`` for a
    paired comparison. A detection for an image not in ``ground_truth`` raises, as in
    :func:`average_precision`."""
    _reject_unknown_images(detections, ground_truth)
    matches = [match_detections({k: detections[k]} if k in detections else {}, {k: g}, iou)
               for k, g in ground_truth.items()]
    samples = np.atleast_2d(np.asarray(samples, dtype=np.int64))
    out = np.zeros(len(samples))
    for r, idx in enumerate(samples):
        scores = np.concatenate([matches[i][0] for i in idx])
        tp = np.concatenate([matches[i][1] for i in idx]).astype(bool)[np.argsort(-scores, kind="stable")]
        out[r] = _ranked_curve(tp, sum(matches[i][2] for i in idx))[0]
    return out
