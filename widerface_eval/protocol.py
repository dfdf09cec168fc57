"""The WIDER FACE Easy / Medium / Hard protocol, as the official MATLAB toolkit computes it.

The official ``eval_tools`` (``wider_eval.m``, ``read_pred.m``,
``norm_score.m``, ``evaluation.m``, ``boxoverlap.m``, ``VOCap.m``) does, and
this module reproduces, vectorised with numpy:

1. **Reading** (``read_pred.m``): each image's boxes ``x y w h score`` are
   sorted by score, descending, with MATLAB's *stable* ``sort(...,'descend')``
   (equal scores keep file order).  An image without a file has no
   predictions.
2. **Normalisation** (``norm_score.m``): every score is mapped to
   ``(s - min) / (max - min)`` with ``min``/``max`` over *all* predictions of
   the set.  The MATLAB reduction starts from ``max = realmin('single')`` and
   ``min = realmax('single')``, which makes both single precision, so the
   normalised scores are single-precision numbers; we do the same arithmetic
   in float32.  When all scores are equal the division is ``0/0 = NaN``; a
   NaN passes no threshold, so nothing is ever detected and every AP is 0.
   When all scores are 0 the ``realmin`` floor gives ``0/realmin = 0``: all
   predictions enter together at the last threshold (0).
3. **Matching** (``image_evaluation`` in ``evaluation.m``): boxes become
   ``x2 = x + w, y2 = y + h``; the IoU uses +1-pixel widths
   (``w = min(x2) - max(x1) + 1``, areas ``(x2 - x1 + 1) * (y2 - y1 + 1)``,
   zero where the intersection's ``w <= 0`` or ``h <= 0``).  Predictions are
   visited in score order; each is compared with *all* faces of the image
   (including already-found ones) and takes the face of highest IoU (first
   one on ties).  If that IoU is ``>= 0.5``: a face outside the setting's
   ``gt_list`` flags the prediction "ignore" (removed from the proposal
   count); a face in ``gt_list`` found for the first time is recalled; a face
   already found leaves the prediction a false positive.  Because the chosen
   face does not depend on earlier predictions, this sequential rule is a
   pure function of (best face, first occurrence), which is what we compute.
   Images with no face or no prediction are skipped (their faces still count
   in the recall; the predictions of a face-less image count nowhere).
4. **Curves** (``image_pr_info`` / ``dataset_pr_info``): for thresholds
   ``thr_t = 1 - t/1000``, ``t = 1..1000``, each image contributes the
   non-ignored proposals and the recalled faces among its predictions up to
   the last one with normalised score ``>= thr_t``; sums over images give
   ``precision_t = TP_t / proposals_t`` (NaN for 0/0, as in MATLAB) and
   ``recall_t = TP_t / #faces of the setting``.
5. **AP** (``VOCap.m``): area under the precision envelope of
   ``[0, recall, 1]`` / ``[0, precision, 0]``; the envelope is built with
   MATLAB's NaN-ignoring ``max`` (``np.fmax``).

Ties: tied scores enter at the same thresholds, and which of two tied
predictions of one face is "the" true positive does not change any count, so
the result cannot depend on the order of ties (we still sort stably).

The widely used Python port differs: it does not sort, it reads the score
from a fixed column, and it starts the normalisation from ``min = 1, max =
0``; those change results on some inputs.  This module follows MATLAB.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from .errors import PredictionFormatError
from .groundtruth import WiderGroundTruth, load_ground_truth
from .io import read_predictions, warn_missing

__all__ = [
    "IOU_THRESHOLD",
    "NUM_THRESHOLDS",
    "THRESHOLDS",
    "evaluate",
    "evaluate_many",
    "evaluate_predictions",
    "iou_plus1",
    "normalize_scores",
    "result_to_json",
    "voc_ap",
]

IOU_THRESHOLD = 0.5
NUM_THRESHOLDS = 1000
#: ``thr_t = 1 - t/1000`` for ``t = 1..1000`` (double precision, as in MATLAB)
THRESHOLDS = 1.0 - np.arange(1, NUM_THRESHOLDS + 1, dtype=np.float64) / NUM_THRESHOLDS
_REALMIN_SINGLE = np.float32(np.finfo(np.float32).tiny)
_REALMAX_SINGLE = np.float32(np.finfo(np.float32).max)


def iou_plus1(gt_xyxy: np.ndarray, pred_xyxy: np.ndarray) -> np.ndarray:
    """Element-wise IoU of paired boxes with the toolkit's +1-pixel convention (``boxoverlap.m``).

    Both arguments are ``(..., 4)`` ``x1 y1 x2 y2`` with ``x2 = x + w``.
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


def _xywh_to_xyxy(b: np.ndarray) -> np.ndarray:
    out = np.array(b, dtype=np.float64, copy=True)
    out[:, 2] = b[:, 0] + b[:, 2]
    out[:, 3] = b[:, 1] + b[:, 3]
    return out


def normalize_scores(scores: np.ndarray) -> np.ndarray:
    """Min-max normalise like ``norm_score.m`` (single precision, ``realmin``/``realmax`` start).

    Returns float64 values that are exactly the float32 results (NaN where
    ``max == min``).
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.size == 0:
        return s.copy()
    hi = max(_REALMIN_SINGLE, np.float32(s.max()))
    lo = min(_REALMAX_SINGLE, np.float32(s.min()))
    with np.errstate(divide="ignore", invalid="ignore"):
        norm = (s.astype(np.float32) - lo) / np.float32(hi - lo)
    return norm.astype(np.float64)


def _first_threshold_index(norm: np.ndarray) -> np.ndarray:
    """0-based index of the first threshold ``thr_t <= norm`` (``NUM_THRESHOLDS`` if none, or NaN)."""
    k = np.searchsorted(THRESHOLDS[::-1], norm, side="right")  # thresholds <= value
    k[np.isnan(norm)] = 0
    return NUM_THRESHOLDS - k


def voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """``VOCap.m``: area under the monotone precision envelope (NaN precisions ignored like MATLAB's max)."""
    mrec = np.concatenate([[0.0], np.asarray(recall, dtype=np.float64), [1.0]])
    mpre = np.concatenate([[0.0], np.asarray(precision, dtype=np.float64), [0.0]])
    mpre = np.fmax.accumulate(mpre[::-1])[::-1]
    i = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
    return float(np.sum((mrec[i] - mrec[i - 1]) * mpre[i]))


class _Matched:
    """Setting-independent part of the protocol: sorted predictions and their best faces."""

    def __init__(self, predictions: Mapping[str, np.ndarray], gt: WiderGroundTruth):
        index = {n: i for i, n in enumerate(gt.images)}
        unknown = [n for n in predictions if n not in index]
        if unknown:
            raise PredictionFormatError(None, f"unknown image name(s) not in the ground truth: {', '.join(unknown[:5])}")
        self.gt_counts = np.array([len(b) for b in gt.boxes], dtype=np.int64)
        self.gt_offsets = np.concatenate([[0], np.cumsum(self.gt_counts)])
        gt_all = np.concatenate(gt.boxes) if len(gt.boxes) else np.zeros((0, 4))
        self.gt_xyxy = _xywh_to_xyxy(gt_all)

        arrays, img_ids = [], []
        for name, arr in predictions.items():
            arr = np.asarray(arr, dtype=np.float64).reshape(-1, 5)
            if len(arr) == 0:
                continue
            order = np.argsort(-arr[:, 4], kind="stable")  # read_pred.m: stable descending sort
            arrays.append(arr[order])
            img_ids.append(np.full(len(arr), index[name], dtype=np.int64))
        if arrays:
            # keep images in ground-truth order (any order works; this one is deterministic)
            img = np.concatenate(img_ids)
            allp = np.concatenate(arrays)
            order = np.argsort(img, kind="stable")
            self.pred_img = img[order]
            pred = allp[order]
        else:
            self.pred_img = np.zeros(0, dtype=np.int64)
            pred = np.zeros((0, 5))
        self.num_predictions = len(pred)
        # norm_score.m runs over every prediction read, including those of face-less images
        self.norm = normalize_scores(pred[:, 4])
        self.tbin = _first_threshold_index(self.norm)
        self.best_gt, self.best_iou = self._best_faces(_xywh_to_xyxy(pred[:, :4]))
        # evaluation.m skips images without faces: their predictions count nowhere
        self.in_play = self.gt_counts[self.pred_img] > 0

    def _best_faces(self, pred_xyxy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Global index of each prediction's highest-IoU face (first on ties) and that IoU.

        One broadcast ``(n_pred, n_face)`` IoU matrix per image.  MATLAB's
        ``max`` ignores NaN and returns the first maximum: NaN becomes -inf
        before ``argmax`` (which also returns the first maximum).
        """
        n = len(pred_xyxy)
        best_gt = np.full(n, -1, dtype=np.int64)
        best_iou = np.zeros(n, dtype=np.float64)
        if n == 0:
            return best_gt, best_iou
        bounds = np.flatnonzero(np.diff(self.pred_img)) + 1
        starts = np.concatenate([[0], bounds])
        stops = np.concatenate([bounds, [n]])
        for a, b in zip(starts.tolist(), stops.tolist()):
            img = int(self.pred_img[a])
            g0, g1 = int(self.gt_offsets[img]), int(self.gt_offsets[img + 1])
            if g1 == g0:
                continue
            iou = iou_plus1(self.gt_xyxy[None, g0:g1, :], pred_xyxy[a:b, None, :])
            iou[np.isnan(iou)] = -np.inf
            idx = iou.argmax(axis=1)
            mx = iou[np.arange(b - a), idx]
            best_gt[a:b] = g0 + idx
            best_iou[a:b] = mx  # -inf (all NaN) never reaches the IoU threshold
        return best_gt, best_iou

    def curve(self, keep: Sequence[np.ndarray], iou_threshold: float = IOU_THRESHOLD) -> dict:
        """Precision/recall at the 1000 thresholds for one setting (``keep`` = 0-based gt_list per image)."""
        keep_mask = np.zeros(len(self.gt_xyxy), dtype=bool)
        keep_counts = np.array([len(k) for k in keep], dtype=np.int64)
        if keep_counts.sum():
            keep_mask[np.concatenate([self.gt_offsets[i] + k for i, k in enumerate(keep) if len(k)])] = True
        count_face = int(keep_counts.sum())

        matched = self.in_play & (self.best_iou >= iou_threshold)
        g = np.where(matched, self.best_gt, 0)
        counted_face = matched & keep_mask[g] if keep_mask.size else np.zeros_like(matched)
        ignored = matched & ~counted_face
        proposal = self.in_play & ~ignored
        new_recall = np.zeros(len(g), dtype=bool)
        cand = np.flatnonzero(counted_face)
        if cand.size:
            _, first = np.unique(g[cand], return_index=True)  # first prediction (in score order) of each face
            new_recall[cand[first]] = True

        nb = NUM_THRESHOLDS + 1
        tp = np.cumsum(np.bincount(self.tbin, weights=new_recall, minlength=nb)[:NUM_THRESHOLDS])
        props = np.cumsum(np.bincount(self.tbin, weights=proposal, minlength=nb)[:NUM_THRESHOLDS])
        with np.errstate(divide="ignore", invalid="ignore"):
            precision = tp / props
            recall = tp / count_face if count_face else np.full(NUM_THRESHOLDS, np.nan)
        return {
            "ap": voc_ap(recall, precision),
            "precision": precision,
            "recall": recall,
            "thresholds": THRESHOLDS.copy(),
            "num_faces": count_face,
            "true_positives": tp.astype(np.int64),
            "proposals": props.astype(np.int64),
            "ignored_predictions": int(ignored.sum()),
        }


def evaluate_predictions(
    predictions: Mapping[str, np.ndarray],
    gt: WiderGroundTruth,
    settings: Iterable[str] | None = None,
    iou_threshold: float = IOU_THRESHOLD,
) -> dict:
    """Evaluate in-memory predictions ``{image name: (N, 5) x y w h score}`` against ``gt``.

    Returns ``{"easy": AP, "medium": AP, "hard": AP, "pr_curves": {setting:
    {"precision", "recall", "thresholds", ...}}, "num_faces": {...},
    "num_predictions", "missing_images", "official_split"}``; APs are
    fractions in [0, 1].  Images of ``gt`` absent from ``predictions`` count
    as no detections.
    """
    settings = tuple(settings) if settings is not None else gt.settings
    matched = _Matched(predictions, gt)
    out: dict = {}
    curves = {}
    for s in settings:
        c = matched.curve(gt.keep[s], iou_threshold)
        out[s] = c["ap"]
        curves[s] = c
    out["pr_curves"] = curves
    out["num_faces"] = {s: curves[s]["num_faces"] for s in settings}
    out["num_predictions"] = matched.num_predictions
    out["missing_images"] = [n for n in gt.images if n not in predictions]
    out["official_split"] = gt.official
    return out


def evaluate(
    pred_dir: str | Path,
    gt_dir: str | Path | WiderGroundTruth,
    progress: bool = True,
    timings: dict | None = None,
) -> dict:
    """Evaluate a prediction folder (official layout) against WIDER FACE ground truth.

    ``gt_dir`` is a folder accepted by :func:`load_ground_truth` (or an
    already loaded :class:`WiderGroundTruth`).  Returns the dict of
    :func:`evaluate_predictions` plus ``"pred_dir"``; warns
    (:class:`MissingPredictionsWarning`) with the number of images that have no
    prediction file.  ``timings``, if given, receives seconds per stage.
    """
    t0 = time.perf_counter()
    gt = gt_dir if isinstance(gt_dir, WiderGroundTruth) else load_ground_truth(gt_dir)
    t1 = time.perf_counter()
    preds = read_predictions(pred_dir, gt, progress=progress)
    t2 = time.perf_counter()
    result = evaluate_predictions(preds, gt)
    t3 = time.perf_counter()
    warn_missing(result["missing_images"], pred_dir)
    result["pred_dir"] = str(pred_dir)
    if timings is not None:
        timings.update(load_ground_truth=t1 - t0, read_predictions=t2 - t1, evaluate=t3 - t2)
    return result


def evaluate_many(
    pred_dirs: Sequence[str | Path],
    gt_dir: str | Path | WiderGroundTruth,
    names: Sequence[str] | None = None,
    progress: bool = True,
) -> dict[str, dict]:
    """Evaluate several prediction folders against one ground truth -> ``{name: result}``.

    ``names`` default to the folders' base names (made unique).
    """
    gt = gt_dir if isinstance(gt_dir, WiderGroundTruth) else load_ground_truth(gt_dir)
    names = list(names) if names else default_names(pred_dirs)
    if len(names) != len(pred_dirs):
        raise ValueError(f"{len(pred_dirs)} prediction folders but {len(names)} names")
    return {n: evaluate(d, gt, progress=progress) for n, d in zip(names, pred_dirs)}


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
