"""The WIDER FACE Easy / Medium / Hard protocols: the official MATLAB toolkit and the Python port.

Two protocols are implemented, vectorised with numpy, each step checked
against the code it reproduces (see ``docs/evaluation.md``):

``"matlab"`` (default): the official ``eval_tools`` (``wider_eval.m``,
``read_pred.m``, ``norm_score.m``, ``evaluation.m``, ``boxoverlap.m``,
``VOCap.m``) bit for bit, *including MATLAB's types*.  On the three seeded
prediction sets of ``shared/wider_official`` it gives what GNU Octave 7.3
running the toolkit prints, to 1e-15.

1. **Reading** (``read_pred.m``): each image's rows ``x y w h score`` are
   sorted by score, descending, with MATLAB's *stable* ``sort(...,'descend')``
   (equal scores keep file order).  An image without a file, or with 0 boxes,
   has no predictions.
2. **Normalisation** (``norm_score.m``): every score becomes
   ``(s - min) / (max - min)`` with ``min``/``max`` over *all* predictions of
   the set, whatever their sign (logits are fine).  The reduction starts from
   ``max = realmin('single')`` and ``min = realmax('single')``, which makes
   both single precision, and so is the arithmetic: the normalised scores are
   float32 numbers (we compute them in float32).  All scores equal and
   non-zero: ``0/0 = NaN``, which passes no threshold (every AP 0).  All
   scores <= 0: ``max`` stays ``realmin('single')``, so the best score
   normalises below 1.
3. **Matching** (``image_evaluation`` / ``boxoverlap.m``), with the
   **int32 rule**: the ground-truth boxes in the official ``.mat`` files are
   ``int32``, and MATLAB arithmetic mixing int32 with double returns int32,
   rounded to nearest (halves away from zero) and saturated.  With
   ``x2 = x + w`` (int32 for faces, double for predictions), ``boxoverlap``
   computes ``x1 = max(gx1, px1)`` ... as int32 (so the prediction's corners
   enter rounded to whole pixels), ``w = x2 - x1 + 1``, ``h``, ``inter = w.*h``
   and the face area as int32, the prediction's area
   ``(px2 - px1 + 1) * (py2 - py1 + 1)`` in double, the union
   ``aarea + barea - inter`` rounded to int32, and finally the ratio
   ``inter ./ union`` as an int32 division, i.e. **rounded to 0 or 1**
   (1 exactly when ``2 * inter >= union``); overlaps with ``w <= 0`` or
   ``h <= 0`` are 0.  ``[max_overlap, idx] = max(overlap_list)`` then returns
   the *first* face in file order whose rounded overlap is 1, not the
   best-overlapping face.  Predictions are visited in score order; if the
   overlap is ``>= 0.5`` (i.e. 1), a face outside the setting's ``gt_list``
   flags the prediction "ignore" (removed from the proposal count), a face in
   ``gt_list`` found for the first time is recalled, and a face already found
   leaves the prediction a false positive.  Because the chosen face does not
   depend on earlier predictions, this sequential rule is a pure function of
   (chosen face, first occurrence), which is what we compute.  Images with no
   face or no prediction are skipped (their faces still count in the recall;
   the predictions of a face-less image count nowhere but in the
   normalisation).  Ground truth held as double (an in-memory
   :class:`WiderGroundTruth` with fractional boxes, or a ``.mat`` storing
   doubles) is evaluated as MATLAB would evaluate it: in double, with a
   fractional IoU (``box_class="double"``).
4. **Curves** (``image_pr_info`` / ``dataset_pr_info``): for thresholds
   ``thr_t = 1 - t/1000``, ``t = 1..1000``, each image contributes the
   non-ignored proposals and the recalled faces among its predictions up to
   the *last* one (in processing order) with normalised score ``>= thr_t``;
   sums over images give ``precision_t = TP_t / proposals_t`` (NaN for 0/0,
   as in MATLAB) and ``recall_t = TP_t / #faces of the setting``.
5. **AP** (``VOCap.m``): area under the precision envelope of
   ``[0, recall, 1]`` / ``[0, precision, 0]``; the envelope is built with
   MATLAB's NaN-ignoring ``max`` (``np.fmax``).

``"python-port"``: ``evaluation.py`` + ``box_overlaps.pyx`` of the widely
used Python port (wondervictor/WiderFace-Evaluation, copied into
Pytorch_Retinaface and most RetinaFace re-implementations, which publish
their numbers with it).  Its differences from the toolkit:

* no sorting: rows are evaluated **in file order**, and a threshold's prefix
  ends at the last row *in file order* whose score passes it, so lower-scored
  rows written before it count at that threshold too (identical to the
  toolkit only for files sorted by score);
* normalisation in float64, with ``max`` starting at 0 and ``min`` at 1
  (instead of ``realmin``/``realmax('single')``);
* a floating-point IoU (the ground truth is cast to float64), +1-pixel
  widths as in ``boxoverlap.m``, and the best-overlapping face
  (``argmax``, first on ties);
* ``np.maximum`` in the precision envelope (a NaN precision propagates to
  lower recalls instead of being skipped).

The port itself crashes (``KeyError``) on an image without a file; here such
an image has no predictions under both protocols.

Ties: under ``"matlab"`` tied scores enter at the same thresholds, and which
of two tied predictions of one face is "the" true positive does not change
any count, so the result does not depend on the order of ties.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from . import int32 as i32
from .errors import PredictionFormatError
from .groundtruth import WiderGroundTruth, load_ground_truth
from .io import iter_predictions, prediction_files, read_predictions, warn_missing, warn_negative_sizes

__all__ = [
    "DEFAULT_PROTOCOL",
    "IOU_THRESHOLD",
    "NUM_THRESHOLDS",
    "PROTOCOLS",
    "THRESHOLDS",
    "boxoverlap_int32",
    "evaluate",
    "evaluate_many",
    "evaluate_predictions",
    "iou_plus1",
    "iou_python_port",
    "normalize_scores",
    "result_to_json",
    "score_range",
    "voc_ap",
]

IOU_THRESHOLD = 0.5
NUM_THRESHOLDS = 1000
#: ``thr_t = 1 - t/1000`` for ``t = 1..1000`` (double precision, as in MATLAB and the port)
THRESHOLDS = 1.0 - np.arange(1, NUM_THRESHOLDS + 1, dtype=np.float64) / NUM_THRESHOLDS
_REALMIN_SINGLE = np.float32(np.finfo(np.float32).tiny)
_REALMAX_SINGLE = np.float32(np.finfo(np.float32).max)


@dataclass(frozen=True)
class Protocol:
    """One evaluation protocol (see the module docstring)."""

    name: str
    summary: str
    sort_by_score: bool  # read_pred.m's stable descending sort (the port keeps file order)
    normalisation: str  # "matlab" (float32, realmin/realmax start) or "python-port" (float64, 0/1 start)
    overlap: str  # "matlab" (int32 rule for int32 ground truth) or "python-port" (float64)
    envelope_ignores_nan: bool  # MATLAB's max skips NaN; np.maximum propagates it


PROTOCOLS: dict[str, Protocol] = {
    "matlab": Protocol(
        "matlab",
        "official MATLAB toolkit, bit for bit (int32 ground truth: rounded IoU, first face reaching 0.5)",
        True, "matlab", "matlab", True,
    ),
    "python-port": Protocol(
        "python-port",
        "widely used Python port (float IoU, best face, rows in file order, normalisation from max 0 / min 1)",
        False, "python-port", "python-port", False,
    ),
}
DEFAULT_PROTOCOL = "matlab"


def get_protocol(protocol: str | Protocol) -> Protocol:
    """The :class:`Protocol` named ``protocol`` (``"matlab"`` or ``"python-port"``)."""
    if isinstance(protocol, Protocol):
        return protocol
    try:
        return PROTOCOLS[protocol]
    except KeyError:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}") from None


# ----------------------------------------------------------------------------- overlaps


def iou_plus1(gt_xyxy: np.ndarray, pred_xyxy: np.ndarray) -> np.ndarray:
    """``boxoverlap.m`` in double precision (ground truth held as double), element-wise on paired boxes.

    Both arguments are ``(..., 4)`` ``x1 y1 x2 y2`` with ``x2 = x + w``; +1-pixel
    widths; 0 where the intersection's ``w <= 0`` or ``h <= 0``; NaN where
    MATLAB's division gives NaN.
    """
    a, b = gt_xyxy, pred_xyxy
    x1 = np.maximum(a[..., 0], b[..., 0])
    y1 = np.maximum(a[..., 1], b[..., 1])
    x2 = np.minimum(a[..., 2], b[..., 2])
    y2 = np.minimum(a[..., 3], b[..., 3])
    w = x2 - x1 + 1
    h = y2 - y1 + 1
    inter = w * h
    aarea = (a[..., 2] - a[..., 0] + 1) * (a[..., 3] - a[..., 1] + 1)
    barea = (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        o = inter / (aarea + barea - inter)
    return np.where((w <= 0) | (h <= 0), 0.0, o)


def boxoverlap_int32(gt_xyxy: np.ndarray, pred_xyxy: np.ndarray) -> np.ndarray:
    """``boxoverlap.m`` with int32 ground truth, as MATLAB/Octave compute it (element-wise, broadcasting).

    ``gt_xyxy``: int32 values (any integer dtype) ``x1 y1 x2 y2`` with
    ``x2 = x1 + w`` already computed in int32; ``pred_xyxy``: doubles with
    ``x2 = x + w`` computed in double.  Returns the int32 overlap (as int64
    values): 0 or 1 for every ordinary box (see the module docstring).
    """
    b = np.asarray(pred_xyxy, dtype=np.float64)
    return _boxoverlap_int32(np.asarray(gt_xyxy, dtype=np.int64), i32.to_int32(b), _pred_area(b))


def _pred_area(b: np.ndarray) -> np.ndarray:
    """The prediction's area in ``boxoverlap.m``: ``(b(3)-b(1)+1) * (b(4)-b(2)+1)`` in double."""
    return (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)


def _boxoverlap_int32(a: np.ndarray, rb: np.ndarray, barea: np.ndarray) -> np.ndarray:
    """:func:`boxoverlap_int32` from the int32 face corners ``a``, the prediction's corners rounded
    to int32 ``rb`` (``max``/``min`` of int32 and double convert the double first) and its double area."""
    x1 = np.maximum(a[..., 0], rb[..., 0])
    y1 = np.maximum(a[..., 1], rb[..., 1])
    x2 = np.minimum(a[..., 2], rb[..., 2])
    y2 = np.minimum(a[..., 3], rb[..., 3])
    w = i32.add(i32.sub(x2, x1), 1)
    h = i32.add(i32.sub(y2, y1), 1)
    inter = i32.mul(w, h)
    aarea = i32.mul(i32.add(i32.sub(a[..., 2], a[..., 0]), 1), i32.add(i32.sub(a[..., 3], a[..., 1]), 1))
    union = i32.sub(i32.add_double(aarea, barea), inter)  # (aarea + barea) in double -> int32, then - inter
    o = i32.divide(inter, union)  # int32 ./ int32: rounded
    return np.where((w <= 0) | (h <= 0), 0, o)


def iou_python_port(pred_xyxy: np.ndarray, gt_xyxy: np.ndarray) -> np.ndarray:
    """``bbox_overlaps`` of the Python port (``box_overlaps.pyx``), element-wise, broadcasting.

    Same float64 operations in the same order: ``iw = min(x2) - max(x1) + 1``,
    ``ih`` likewise, and where both are positive
    ``iw * ih / (pred_area + gt_area - iw * ih)`` with +1-pixel areas; else 0.
    """
    p = np.asarray(pred_xyxy, dtype=np.float64)
    g = np.asarray(gt_xyxy, dtype=np.float64)
    iw = np.minimum(p[..., 2], g[..., 2]) - np.maximum(p[..., 0], g[..., 0]) + 1
    ih = np.minimum(p[..., 3], g[..., 3]) - np.maximum(p[..., 1], g[..., 1]) + 1
    g_area = (g[..., 2] - g[..., 0] + 1) * (g[..., 3] - g[..., 1] + 1)
    p_area = (p[..., 2] - p[..., 0] + 1) * (p[..., 3] - p[..., 1] + 1)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        o = iw * ih / (p_area + g_area - iw * ih)
    return np.where((iw > 0) & (ih > 0), o, 0.0)


def _xywh_to_xyxy(b: np.ndarray) -> np.ndarray:
    out = np.array(b, dtype=np.float64, copy=True)
    out[:, 2] = b[:, 0] + b[:, 2]
    out[:, 3] = b[:, 1] + b[:, 3]
    return out


def _xywh_to_xyxy_int32(b: np.ndarray) -> np.ndarray:
    a = i32.to_int32(b)
    out = a.copy()
    out[:, 2] = i32.add(a[:, 0], a[:, 2])
    out[:, 3] = i32.add(a[:, 1], a[:, 3])
    return out


# ----------------------------------------------------------------------------- scores


def normalize_scores(scores: np.ndarray, protocol: str | Protocol = DEFAULT_PROTOCOL) -> np.ndarray:
    """Min-max normalise all scores of a set.

    ``"matlab"`` (``norm_score.m``): single precision, ``realmin``/``realmax``
    start; returns float64 values that are exactly the float32 results (NaN
    where ``max == min``).  ``"python-port"``: float64, ``max`` starts at 0
    and ``min`` at 1.
    """
    p = get_protocol(protocol)
    s = np.asarray(scores, dtype=np.float64)
    if s.size == 0:
        return s.copy()
    return _normalize(s, score_range(float(s.max()), float(s.min()), p), p)


def score_range(smax: float, smin: float, protocol: str | Protocol = DEFAULT_PROTOCOL) -> tuple:
    """``(min, max)`` of ``norm_score.m``'s reduction from the largest and smallest score of a set
    (float64, as read): what :func:`normalize_scores` divides by, so a set read in two passes (first
    the range, then image by image) is normalised exactly as when it is held at once.

    ``"matlab"``: float32, the reduction starting from ``realmax``/``realmin('single')``;
    ``"python-port"``: float64, starting from ``min`` 1 and ``max`` 0.
    """
    p = get_protocol(protocol)
    if p.normalisation == "python-port":
        return min(smin, 1.0), max(smax, 0.0)
    return min(_REALMAX_SINGLE, np.float32(smin)), max(_REALMIN_SINGLE, np.float32(smax))


def _normalize(s: np.ndarray, rng: tuple, p: Protocol) -> np.ndarray:
    """``(s - min) / (max - min)`` in the protocol's precision, ``rng`` from :func:`score_range`."""
    lo, hi = rng
    if s.size == 0:
        return s.copy()
    if p.normalisation == "python-port":
        with np.errstate(divide="ignore", invalid="ignore"):
            return (s - lo) / (hi - lo)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        norm = (s.astype(np.float32) - lo) / np.float32(hi - lo)
    return norm.astype(np.float64)


def _first_threshold_index(norm: np.ndarray) -> np.ndarray:
    """0-based index of the first threshold ``thr_t <= norm`` (``NUM_THRESHOLDS`` if none, or NaN)."""
    k = np.searchsorted(THRESHOLDS[::-1], norm, side="right")  # thresholds <= value
    k[np.isnan(norm)] = 0
    return NUM_THRESHOLDS - k


def voc_ap(recall: np.ndarray, precision: np.ndarray, ignore_nan: bool = True) -> float:
    """``VOCap.m``: area under the monotone precision envelope.

    ``ignore_nan=True``: MATLAB's ``max`` skips NaN precisions (``np.fmax``);
    ``False``: the port's ``np.maximum`` propagates them.
    """
    mrec = np.concatenate([[0.0], np.asarray(recall, dtype=np.float64), [1.0]])
    mpre = np.concatenate([[0.0], np.asarray(precision, dtype=np.float64), [0.0]])
    mpre = (np.fmax if ignore_nan else np.maximum).accumulate(mpre[::-1])[::-1]
    i = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
    return float(np.sum((mrec[i] - mrec[i - 1]) * mpre[i]))


def _curve_ap(tp: np.ndarray, props: np.ndarray, count_face, protocol: Protocol) -> tuple[float, np.ndarray, np.ndarray]:
    """``(AP, precision, recall)`` at the 1000 thresholds from the counts at or above each
    (``evaluation.m``: precision is NaN where nothing was proposed, recall NaN without faces)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = tp / props
        recall = tp / count_face if count_face else np.full(NUM_THRESHOLDS, np.nan)
    return voc_ap(recall, precision, ignore_nan=protocol.envelope_ignores_nan), precision, recall


# ----------------------------------------------------------------------------- matching


_MAX_PAIRS = 1 << 22  # (prediction, face) pairs tested for overlap at once (memory bound)
_BIG = np.iinfo(np.int64).max


class _Faces:
    """The ground truth as one protocol matches against it, prepared once: every face's corners in
    the protocol's arithmetic, and where each image's faces start."""

    def __init__(self, gt: WiderGroundTruth, protocol: Protocol):
        self.index = {n: i for i, n in enumerate(gt.images)}
        self.gt_counts = np.array([len(b) for b in gt.boxes], dtype=np.int64)
        self.gt_offsets = np.concatenate([[0], np.cumsum(self.gt_counts)])
        gt_all = np.concatenate(gt.boxes) if len(gt.boxes) else np.zeros((0, 4))
        self.int32_gt = protocol.overlap == "matlab" and gt.box_class == "int32"
        self.gt_xyxy = _xywh_to_xyxy_int32(gt_all) if self.int32_gt else _xywh_to_xyxy(gt_all)

    def keep_mask(self, keep: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """One setting's ``gt_list`` (0-based per image) as a mask over every face, and the faces
        counted per image."""
        keep_mask = np.zeros(len(self.gt_xyxy), dtype=bool)
        keep_counts = np.array([len(k) for k in keep], dtype=np.int64)
        if keep_counts.sum():
            keep_mask[np.concatenate([self.gt_offsets[i] + k for i, k in enumerate(keep) if len(k)])] = True
        return keep_mask, keep_counts


class _Matched:
    """Setting-independent part of a protocol: ordered predictions, their chosen faces, threshold bins.

    ``score_range`` (from :func:`score_range`) is the normalisation's range over every prediction of
    the set; ``None``: the range of ``predictions`` themselves (they are the whole set).
    """

    def __init__(
        self, predictions: Mapping[str, np.ndarray], faces: _Faces, protocol: Protocol, iou_threshold: float,
        score_range: tuple | None = None,
    ):
        self.protocol = protocol
        self.iou_threshold = iou_threshold
        index = faces.index
        unknown = [n for n in predictions if n not in index]
        if unknown:
            raise PredictionFormatError(None, f"unknown image name(s) not in the ground truth: {', '.join(unknown[:5])}")
        self.gt_counts = faces.gt_counts
        self.gt_offsets = faces.gt_offsets
        self.int32_gt = faces.int32_gt
        self.gt_xyxy = faces.gt_xyxy

        arrays, img_ids = [], []
        for name, arr in predictions.items():
            arr = np.asarray(arr, dtype=np.float64).reshape(-1, 5)
            if len(arr) == 0:
                continue
            if protocol.sort_by_score:
                arr = arr[np.argsort(-arr[:, 4], kind="stable")]  # read_pred.m: stable descending sort
            arrays.append(arr)
            img_ids.append(np.full(len(arr), index[name], dtype=np.int64))
        if arrays:
            # images in ground-truth order, each image's rows in processing order
            img = np.concatenate(img_ids)
            allp = np.concatenate(arrays)
            order = np.argsort(img, kind="stable")
            self.pred_img = img[order]
            pred = allp[order]
        else:
            self.pred_img = np.zeros(0, dtype=np.int64)
            pred = np.zeros((0, 5))
        self.num_predictions = len(pred)
        self.num_negative_sizes = int(((pred[:, 2] < 0) | (pred[:, 3] < 0)).sum())
        # the normalisation runs over every prediction of the set, including those of face-less images
        if score_range is None:
            self.norm = normalize_scores(pred[:, 4], protocol)
        else:
            self.norm = _normalize(pred[:, 4], score_range, protocol)
        # evaluation.m skips images without faces: their predictions count nowhere
        self.in_play = self.gt_counts[self.pred_img] > 0
        self.best_gt, self.matched, self.tbin = self._match(_xywh_to_xyxy(pred[:, :4]))

    def _overlapping_pairs(self, corners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """All (prediction, face of its image) pairs whose +1-pixel intersection has ``w > 0`` and ``h > 0``.

        Only those can have a non-zero overlap (``boxoverlap.m`` zeroes the
        others, the port never computes them), so only they are evaluated.
        Pairs come ordered by prediction, then by face in file order.
        ``corners`` are the prediction corners the protocol compares with the
        faces' (rounded to int32 under the int32 rule: the intersection's
        sign never depends on saturation, so exact int64 arithmetic decides
        it as MATLAB does).
        """
        pair_p, pair_g = [], []
        n = len(corners)
        bounds = np.flatnonzero(np.diff(self.pred_img)) + 1
        starts = np.concatenate([[0], bounds]) if n else np.zeros(0, dtype=np.int64)
        stops = np.concatenate([bounds, [n]]) if n else np.zeros(0, dtype=np.int64)
        for a, b in zip(starts.tolist(), stops.tolist()):
            img = int(self.pred_img[a])
            g0, g1 = int(self.gt_offsets[img]), int(self.gt_offsets[img + 1])
            if g1 == g0:
                continue
            g = self.gt_xyxy[g0:g1]
            step = max(1, _MAX_PAIRS // (g1 - g0))
            for c in range(a, b, step):
                q = corners[c : min(b, c + step)]
                w = np.minimum(q[:, None, 2], g[None, :, 2]) - np.maximum(q[:, None, 0], g[None, :, 0]) + 1
                ok = w > 0
                if not ok.any():
                    continue
                h = np.minimum(q[:, None, 3], g[None, :, 3]) - np.maximum(q[:, None, 1], g[None, :, 1]) + 1
                pi, gj = np.nonzero(ok & (h > 0))
                pair_p.append(pi + c)
                pair_g.append(gj + g0)
        if not pair_p:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        return np.concatenate(pair_p), np.concatenate(pair_g)

    def _match(self, pred_xyxy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Chosen face (global index), match flag and threshold bin of every prediction.

        The chosen face is the first maximum of the prediction's overlaps
        over its image's faces in file order (MATLAB's ``max``; numpy's
        ``argmax`` for the port, where a NaN wins and matches nothing).  A
        match needs an overlap ``>= iou_threshold > 0``, so the maximum that
        matters is always among the overlapping pairs.
        """
        n = len(pred_xyxy)
        best_gt = np.full(n, -1, dtype=np.int64)
        matched = np.zeros(n, dtype=bool)
        if self.int32_gt:
            corners = i32.to_int32(pred_xyxy)  # max/min(int32, double) convert the double first
        else:
            corners = pred_xyxy
        pp, pg = self._overlapping_pairs(corners)
        if len(pp):
            if self.protocol.overlap == "python-port":
                o = iou_python_port(pred_xyxy[pp], self.gt_xyxy[pg])
            elif self.int32_gt:
                o = _boxoverlap_int32(self.gt_xyxy[pg], corners[pp], _pred_area(pred_xyxy[pp]))
            else:
                o = iou_plus1(self.gt_xyxy[pg], pred_xyxy[pp])
            nan = np.isnan(o) if o.dtype.kind == "f" else None
            key = np.where(nan, -np.inf, o) if nan is not None else o  # MATLAB's max skips NaN
            seg = np.concatenate([[0], np.flatnonzero(np.diff(pp)) + 1])
            lengths = np.diff(np.append(seg, len(pp)))
            mx = np.maximum.reduceat(key, seg)
            first = np.minimum.reduceat(np.where(key == np.repeat(mx, lengths), pg, _BIG), seg)
            val = mx.astype(np.float64)
            if self.protocol.overlap == "python-port" and nan.any():  # numpy's argmax: the first NaN, no match
                has_nan = np.logical_or.reduceat(nan, seg)
                first = np.where(has_nan, np.minimum.reduceat(np.where(nan, pg, _BIG), seg), first)
                val = np.where(has_nan, np.nan, val)
            rows = pp[seg]
            best_gt[rows] = first
            matched[rows] = val >= self.iou_threshold  # NaN and -inf never match
        # A threshold's prefix ends at the last row (processing order) of the image passing it, so row
        # i is inside from the first threshold that any row at or after i passes: a running minimum of
        # threshold bins from the end of each image (exact in integers, one offset per image).
        tbin = _first_threshold_index(self.norm)
        if n:
            seg = np.concatenate([[0], np.cumsum(np.diff(self.pred_img) != 0)])  # image ordinal per row
            off = seg * (NUM_THRESHOLDS + 1)  # later images get larger offsets: the running minimum restarts
            rev = (tbin + off)[::-1]
            tbin = (np.minimum.accumulate(rev)[::-1] - off).astype(np.int64)
        return best_gt, matched, tbin

    def _flags(self, keep_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per prediction, for one setting (``keep_mask`` over every face, :meth:`_Faces.keep_mask`):
        whether it recalls a counted face first, whether it is a proposal (not matched to an ignored
        face), whether it is ignored."""
        matched = self.in_play & self.matched
        g = np.where(matched, self.best_gt, 0)
        counted_face = matched & keep_mask[g] if keep_mask.size else np.zeros_like(matched)
        ignored = matched & ~counted_face
        proposal = self.in_play & ~ignored
        new_recall = np.zeros(len(g), dtype=bool)
        cand = np.flatnonzero(counted_face)
        if cand.size:
            _, first = np.unique(g[cand], return_index=True)  # first prediction (processing order) of each face
            new_recall[cand[first]] = True
        return new_recall, proposal, ignored

    def image_counts(self, keep_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One setting's curve image by image: ``(tp, proposals)``, ``(images, 1000)`` counts at or
        above each threshold. A face and every prediction that can take it belong to one image, so the
        curve of any multiset of images is these rows summed (``curve`` is all of them once)."""
        new_recall, proposal, _ = self._flags(keep_mask)
        n, nb = len(self.gt_counts), NUM_THRESHOLDS + 1
        cell = self.pred_img * nb + self.tbin

        def per_image(weights):
            return np.bincount(cell, weights=weights, minlength=n * nb).reshape(n, nb)[:, :NUM_THRESHOLDS].cumsum(1)
        return per_image(new_recall), per_image(proposal)

    def counts(self, keep_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        """One setting's counts per threshold bin, not yet cumulated: ``(true positives, proposals)``
        as ``(1001,)`` float64 whole numbers (bin 1000: below every threshold), and the ignored
        predictions. The counts of disjoint sets of images add up to those of their union."""
        new_recall, proposal, ignored = self._flags(keep_mask)
        nb = NUM_THRESHOLDS + 1
        return (np.bincount(self.tbin, weights=new_recall, minlength=nb),
                np.bincount(self.tbin, weights=proposal, minlength=nb), int(ignored.sum()))


def _curve(tp_bins: np.ndarray, prop_bins: np.ndarray, ignored: int, count_face: int, protocol: Protocol) -> dict:
    """Precision/recall at the 1000 thresholds for one setting from its per-bin counts."""
    tp = np.cumsum(tp_bins[:NUM_THRESHOLDS])
    props = np.cumsum(prop_bins[:NUM_THRESHOLDS])
    ap, precision, recall = _curve_ap(tp, props, count_face, protocol)
    return {
        "ap": ap,
        "precision": precision,
        "recall": recall,
        "thresholds": THRESHOLDS.copy(),
        "num_faces": count_face,
        "true_positives": tp.astype(np.int64),
        "proposals": props.astype(np.int64),
        "ignored_predictions": int(ignored),
    }


def _result(p: Protocol, gt: WiderGroundTruth, curves: dict, num_predictions: int, num_negative_sizes: int,
            missing_images: list[str]) -> dict:
    """The result dict of :func:`evaluate_predictions` from each setting's :func:`_curve`."""
    out: dict = {s: c["ap"] for s, c in curves.items()}
    out["protocol"] = p.name
    out["pr_curves"] = curves
    out["num_faces"] = {s: c["num_faces"] for s, c in curves.items()}
    out["num_predictions"] = num_predictions
    out["num_negative_sizes"] = num_negative_sizes
    out["missing_images"] = missing_images
    out["official_split"] = gt.official
    out["gt_box_class"] = gt.box_class
    return out


def _check_iou_threshold(iou_threshold: float) -> None:
    if not 0 < iou_threshold <= 1:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")


def evaluate_predictions(
    predictions: Mapping[str, np.ndarray],
    gt: WiderGroundTruth,
    settings: Iterable[str] | None = None,
    iou_threshold: float = IOU_THRESHOLD,
    protocol: str | Protocol = DEFAULT_PROTOCOL,
) -> dict:
    """Evaluate in-memory predictions ``{image name: (N, 5) x y w h score}`` (file order) against ``gt``.

    ``protocol``: ``"matlab"`` (default, the official toolkit) or
    ``"python-port"`` (see the module docstring).  ``iou_threshold`` is the
    toolkit's ``IoU_thresh`` (0.5); under the int32 rule overlaps are whole
    numbers, so any threshold in (0, 1] means "rounded overlap 1".  Returns ``{"easy": AP,
    "medium": AP, "hard": AP, "protocol", "pr_curves": {setting:
    {"precision", "recall", "thresholds", ...}}, "num_faces": {...},
    "num_predictions", "num_negative_sizes", "missing_images",
    "official_split", "gt_box_class"}``; APs are fractions in [0, 1].  Images
    of ``gt`` absent from ``predictions`` count as no detections.
    """
    p = get_protocol(protocol)
    _check_iou_threshold(iou_threshold)
    settings = tuple(settings) if settings is not None else gt.settings
    faces = _Faces(gt, p)
    matched = _Matched(predictions, faces, p, iou_threshold)
    curves = {}
    for s in settings:
        keep_mask, keep_counts = faces.keep_mask(gt.keep[s])
        curves[s] = _curve(*matched.counts(keep_mask), int(keep_counts.sum()), p)
    missing = [n for n in gt.images if n not in predictions]
    return _result(p, gt, curves, matched.num_predictions, matched.num_negative_sizes, missing)


def resampled_ap(
    predictions: Mapping[str, np.ndarray],
    gt: WiderGroundTruth,
    samples: np.ndarray,
    settings: Iterable[str] | None = None,
    iou_threshold: float = IOU_THRESHOLD,
    protocol: str | Protocol = DEFAULT_PROTOCOL,
) -> dict[str, np.ndarray]:
    """AP of each setting over resamples of the images: ``{setting: (R,) APs}`` for ``samples`` ``(R, k)``,
    indices into ``gt.images`` (a bootstrap draws them with replacement; an image drawn twice counts
    twice). Give two detectors the same ``samples`` for a paired comparison.

    Matching and the scores' normalisation (by their range over every prediction) are those of the
    whole set, as :func:`evaluate_predictions` does them; only which images count changes, so the row
    ``arange(len(gt.images))`` gives :func:`evaluate_predictions`' APs exactly.
    """
    p = get_protocol(protocol)
    samples = np.atleast_2d(np.asarray(samples, dtype=np.int64))
    n = len(gt.images)
    if samples.size and (samples.min() < 0 or samples.max() >= n):
        raise ValueError(f"samples index images 0 to {n - 1}, got {samples.min()} to {samples.max()}")
    weights = np.zeros((len(samples), n))
    np.add.at(weights, (np.repeat(np.arange(len(samples)), samples.shape[1]), samples.ravel()), 1.0)
    faces = _Faces(gt, p)
    matched = _Matched(predictions, faces, p, iou_threshold)
    out = {}
    for s in tuple(settings) if settings is not None else gt.settings:
        keep_mask, keep_counts = faces.keep_mask(gt.keep[s])
        tp, props = matched.image_counts(keep_mask)
        tp, props, counted = weights @ tp, weights @ props, weights @ keep_counts
        out[s] = np.array([_curve_ap(tp[r], props[r], counted[r], p)[0] for r in range(len(samples))])
    return out


def evaluate(
    pred_dir: str | Path,
    gt_dir: str | Path | WiderGroundTruth,
    progress: bool = True,
    timings: dict | None = None,
    protocol: str | Protocol | Sequence[str] = DEFAULT_PROTOCOL,
) -> dict:
    """Evaluate a prediction folder (official layout) against WIDER FACE ground truth.

    ``gt_dir`` is a folder accepted by :func:`load_ground_truth` (or an
    already loaded :class:`WiderGroundTruth`).  Returns the dict of
    :func:`evaluate_predictions` plus ``"pred_dir"``; warns
    (:class:`MissingPredictionsWarning`) with the number of images that have no
    prediction file, and (:class:`NegativeSizeWarning`) about boxes with a
    negative width or height.  ``timings``, if given, receives seconds per
    stage.  ``protocol`` may also be a list of protocol names: the folder is
    read for all of them at once and ``{protocol: result}`` is returned.

    The folder is read streaming, in two passes, so memory holds one image's
    boxes (plus the ground truth and the per-threshold counts), never the
    whole folder: pass 1 reads every file for the scores' range, which the
    normalisation needs over *all* predictions (``norm_score.m``); pass 2
    reads the files again one at a time, normalises with that range, matches
    and adds the image's counts per threshold.  Every count is a whole number
    and the range is the same, so the result equals
    :func:`evaluate_predictions` on :func:`read_predictions` bit for bit.
    Every file is checked (layout, then content) in pass 1, before any is evaluated.
    """
    several = not isinstance(protocol, (str, Protocol))
    protocols = [get_protocol(p) for p in (protocol if several else [protocol])]
    t0 = time.perf_counter()
    gt = gt_dir if isinstance(gt_dir, WiderGroundTruth) else load_ground_truth(gt_dir)
    t1 = time.perf_counter()
    files = prediction_files(pred_dir, gt)
    scan = _scan(files, progress, f"reading {Path(pred_dir).name or pred_dir}")
    t2 = time.perf_counter()
    results = _evaluate_stream(files, gt, protocols, scan, progress, Path(pred_dir))
    t3 = time.perf_counter()
    first = results[protocols[0].name]
    warn_missing(first["missing_images"], pred_dir)
    warn_negative_sizes(first["num_negative_sizes"], pred_dir)
    for r in results.values():
        r["pred_dir"] = str(pred_dir)
    if timings is not None:
        timings.update(load_ground_truth=t1 - t0, read_predictions=t2 - t1, evaluate=t3 - t2)
    return results if several else first


@dataclass
class _Scan:
    """Pass 1 over a prediction folder: what the normalisation and the result need from all of it."""

    smax: float = -math.inf
    smin: float = math.inf
    num_predictions: int = 0
    num_negative_sizes: int = 0


def _scan(files: Sequence[tuple[str, Path]], progress: bool, desc: str) -> _Scan:
    """Read (and so check) every file once, one at a time, for the largest and smallest score."""
    scan = _Scan()
    for _, arr in iter_predictions(files, progress, desc=desc):
        _add_to_scan(scan, arr)
    return scan


def _add_to_scan(scan: _Scan, arr: np.ndarray) -> None:
    if len(arr):
        scan.smax = max(scan.smax, float(arr[:, 4].max()))
        scan.smin = min(scan.smin, float(arr[:, 4].min()))
        scan.num_predictions += len(arr)
        scan.num_negative_sizes += int(((arr[:, 2] < 0) | (arr[:, 3] < 0)).sum())


_STREAM_BOXES = 4096  # small images are matched together up to this many boxes (one large image alone)


def _evaluate_stream(
    files: Sequence[tuple[str, Path]],
    gt: WiderGroundTruth,
    protocols: Sequence[Protocol],
    scan: _Scan,
    progress: bool,
    pred_dir: Path,
    iou_threshold: float = IOU_THRESHOLD,
) -> dict[str, dict]:
    """Pass 2: each file read again and matched under every protocol, per-threshold counts summed; images
    are matched a few together (up to :data:`_STREAM_BOXES` boxes, an image with more alone), so memory
    holds the largest image's boxes or that many, whichever is more."""
    settings = gt.settings
    nb = NUM_THRESHOLDS + 1
    state = []
    for p in protocols:
        faces = _Faces(gt, p)
        masks = {s: faces.keep_mask(gt.keep[s]) for s in settings}
        rng = score_range(scan.smax, scan.smin, p) if scan.num_predictions else None
        sums = {s: [np.zeros(nb), np.zeros(nb), 0] for s in settings}
        state.append((p, faces, masks, rng, sums))

    def add(batch: dict[str, np.ndarray]) -> None:
        for p, faces, masks, rng, sums in state:
            matched = _Matched(batch, faces, p, iou_threshold, score_range=rng)
            for s in settings:
                tp, props, ignored = matched.counts(masks[s][0])
                acc = sums[s]
                acc[0] += tp
                acc[1] += props
                acc[2] += ignored

    index = state[0][1].index
    seen = set()
    batch: dict[str, np.ndarray] = {}
    held = 0
    again = _Scan()
    for name, arr in iter_predictions(files, progress, desc=f"evaluating {pred_dir.name or pred_dir}"):
        seen.add(name)
        _add_to_scan(again, arr)
        if not len(arr) or not len(gt.boxes[index[name]]):
            continue  # no prediction, or no face: counts nowhere but in the range (pass 1)
        if held and held + len(arr) > _STREAM_BOXES:
            add(batch)
            batch, held = {}, 0
        batch[name] = arr
        held += len(arr)
    if batch:
        add(batch)
    if again != scan:  # a file rewritten between the passes: its range would not be the one used
        raise PredictionFormatError(
            pred_dir,
            "prediction files changed while being evaluated (read twice: once for the scores' range, "
            "once to match); evaluate them again once they are written",
        )
    missing = [n for n in gt.images if n not in seen]
    out = {}
    for p, faces, masks, rng, sums in state:
        curves = {s: _curve(*sums[s], int(masks[s][1].sum()), p) for s in settings}
        out[p.name] = _result(p, gt, curves, scan.num_predictions, scan.num_negative_sizes, missing)
    return out


def evaluate_many(
    pred_dirs: Sequence[str | Path],
    gt_dir: str | Path | WiderGroundTruth,
    names: Sequence[str] | None = None,
    progress: bool = True,
    protocol: str | Protocol = DEFAULT_PROTOCOL,
) -> dict[str, dict]:
    """Evaluate several prediction folders against one ground truth -> ``{name: result}``.

    ``names`` default to the folders' base names (made unique).
    """
    gt = gt_dir if isinstance(gt_dir, WiderGroundTruth) else load_ground_truth(gt_dir)
    names = list(names) if names else default_names(pred_dirs)
    if len(names) != len(pred_dirs):
        raise ValueError(f"{len(pred_dirs)} prediction folders but {len(names)} names")
    return {n: evaluate(d, gt, progress=progress, protocol=protocol) for n, d in zip(names, pred_dirs)}


def default_names(paths: Sequence[str | Path]) -> list[str]:
    """Base names of ``paths``, suffixed ``-2``, ``-3`` ... where they repeat."""
    out: list[str] = []
    for p in paths:
        base = Path(p).resolve().name or str(p)
        name, k = base, 2
        while name in out:
            name, k = f"{base}-{k}", k + 1
        out.append(name)
    return out


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, (np.floating, float)):
        v = float(x)
        return v if math.isfinite(v) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


def result_to_json(result: dict, include_curves: bool = True) -> dict:
    """A JSON-ready copy of a result (NaN -> null; curves optional)."""
    r = dict(result)
    if not include_curves:
        r.pop("pr_curves", None)
    if isinstance(r.get("missing_images"), list):
        r["num_missing_images"] = len(r["missing_images"])
    return _jsonable(r)


def write_json(path: str | Path, payload: dict) -> Path:
    """Write ``payload`` as indented JSON (atomically)."""
    import os
    import tempfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(payload, fh, indent=1, allow_nan=False)
        fh.write("\n")
    os.replace(tmp, path)
    return path
