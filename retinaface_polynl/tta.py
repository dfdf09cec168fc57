"""Test-time augmentation (TTA): views of one image, and box voting to merge them.

The Poly-NL supplementary (§2, "Precision-Recall Curves") describes the test-time
augmentation used for its WIDER FACE test submission: multi-scale (the short edge
resized to 500, 800, 1100, 1400 and 1700 pixels), shift (the image displaced in the
directions (0,0), (0,1), (1,0), (1,1)), horizontal flip, and box voting.  This module
implements each part behind a switch (:class:`TTAConfig`), with named presets:

=========  ==============================================================  ==============
preset     views                                                           forward passes
=========  ==============================================================  ==============
``none``   the single-scale image (same result as ``Detector.detect``)     1
``flip``   the single-scale image and its mirror image, voted              1 (batch of 2)
``paper``  5 scales x 4 shifts x 2 flips = 40 views, voted                 5 (batches of 8)
=========  ==============================================================  ==============

How views are run: for each scale the image is resized once; its shifted and
flipped copies are placed into one zero-padded canvas (zero = the mean colour after
mean subtraction) of size ``ceil((h + shift) / 32) * 32`` by the same for the width,
at offset ``(dx, dy)``, and run through the network as one batch (at most
``batch_size`` views per forward pass).  Each view's detections are thresholded at
``view_threshold`` (low, so that weak but consistent detections can vote), NMS-ed,
mapped back to the original image (shift subtracted, mirror undone with the
left/right landmarks swapped, scale divided out) and merged by :func:`box_vote`.

Box voting (:func:`box_vote`) is the ``bbox_vote`` of the S3FD / PyramidBox /
RetinaFace (insightface) test code, written vectorised: detections are sorted by
score, greedy clustering makes the highest remaining detection a cluster head and
puts every remaining detection whose IoU with it reaches the threshold into its
cluster (which is exactly what NMS computes: the heads are NMS's survivors, and a
detection belongs to the first head in score order that it overlaps), and each
cluster is replaced by the score-weighted average of its boxes (and here also of
its landmarks).  Its score here is the views' mean (``vote_score="views"``, see
:class:`TTAConfig`): each view gives its best member's score, a view that did not see
the face gives 0, and the sum is divided by the number of views, so that a face all
views agree on keeps its score and a texture one view takes for a face is averaged
away.  The reference takes the members' maximum (``vote_score="max"``); the members'
mean (``"mean"``) is also available.
The reference code silently drops
clusters of a single detection (except the very last one); here that is the
explicit ``min_votes`` option (``paper`` uses 2: a face must be seen by at least
two views).
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from .boxes import box_iou, nms
from .pipeline import STRIDE, Detections, merge_nms, postprocess, preprocess, resize_scale

__all__ = [
    "LANDMARK_FLIP_ORDER",
    "TTA_PRESETS",
    "TTAConfig",
    "TTARunner",
    "View",
    "ViewGroup",
    "box_vote",
    "count_forward_passes",
    "detect_tta",
    "flip_detections",
    "map_back",
    "plan_views",
    "resolve_tta",
]

# Left eye, right eye, nose, left mouth, right mouth: mirroring swaps left and right.
LANDMARK_FLIP_ORDER = (1, 0, 2, 4, 3)
PAPER_SCALES = (500, 800, 1100, 1400, 1700)
PAPER_SHIFTS = ((0, 0), (0, 1), (1, 0), (1, 1))


@dataclass(frozen=True)
class TTAConfig:
    """Which views test-time augmentation runs, and how they are merged.

    Attributes:
        scales: short-edge sizes in pixels; ``None`` in the list means the
            single-scale input size (the original size, or ``size``/``max_size``
            of the ``detect`` call / the Detector).
        max_size: cap on the long edge of a scaled view (memory guard); scales that
            collapse onto the same size under the cap are run once.
        shifts: directions ``(dx, dy)``, each 0 or 1, in units of ``shift_pixels``;
            the image is displaced right/down in its canvas and the boxes moved back.
        shift_pixels: displacement in input pixels; the default, 4, is half the
            finest anchor stride (8).
        flip: also run the mirror image of every view.
        vote: merge views by box voting; ``False`` merges them by plain NMS.
        vote_iou: IoU at or above which a detection joins a cluster head.
        min_votes: clusters with fewer members are dropped (1 keeps everything).
        vote_score: a cluster's score: ``"views"`` (default), the views' mean (each
            view's best member, 0 for a view without one, averaged over all the views);
            ``"max"``, the members' maximum (exactly the reference ``bbox_vote``); or
            ``"mean"``, the members' mean.  With the max, a texture that one up-scaled
            view takes for a face keeps that view's score: on faces_dlib's test photos
            ``paper`` with ``"max"`` gave 3 false positives above 0.5 (a clock, a shirt,
            a magazine) where single scale gave none.  The members' mean avoids that
            but is pulled down by every loose low-scored box that joins a face's
            cluster, so it depends on ``view_threshold`` and on the caller's threshold.
            The views' mean barely does (WIDER dev Easy 75.9 / 75.8 / 75.7 with views
            thresholded at 0.02 / 0.05 / 0.1). Measured with the shipped weights on the 103
            WIDER dev photos (``scripts/eval_crowd.py --tta paper``, threshold 0.02),
            ``paper`` scored Easy / Medium / Hard 75.9 / 71.0 / 57.6 with ``"views"`` and
            69.7 / 64.7 / 55.9 with ``"mean"`` (73.1 / 67.7 / 55.7 with ``"max"``, from the
            same views thresholded at 0.05); single scale with the small-face zoom
            scores 72.7 / 67.6 / 54.9.
        view_threshold: score threshold applied to each view before merging.
        batch_size: most views per forward pass.
    """

    scales: tuple[int | None, ...] = (None,)
    max_size: int | None = 2000
    shifts: tuple[tuple[int, int], ...] = ((0, 0),)
    shift_pixels: int = 4
    flip: bool = False
    vote: bool = True
    vote_iou: float = 0.4
    min_votes: int = 1
    vote_score: str = "views"
    view_threshold: float = 0.05
    batch_size: int = 8
    name: str = field(default="custom", compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "scales", tuple(None if s is None else int(s) for s in self.scales))
        object.__setattr__(self, "shifts", tuple((int(a), int(b)) for a, b in self.shifts))
        if not self.scales:
            raise ValueError("TTAConfig.scales must name at least one scale")
        if any(s is not None and s <= 0 for s in self.scales):
            raise ValueError(f"TTA scales must be positive pixel sizes, got {self.scales}")
        if not self.shifts or any(d not in (0, 1) for s in self.shifts for d in s):
            raise ValueError(f"TTA shifts must be directions (dx, dy) with 0/1 entries, got {self.shifts}")
        if self.shift_pixels < 0:
            raise ValueError(f"shift_pixels must be >= 0, got {self.shift_pixels}")
        if self.max_size is not None and self.max_size < 1:
            raise ValueError(f"max_size must be positive, got {self.max_size}")
        if not 0.0 < self.vote_iou <= 1.0:
            raise ValueError(f"vote_iou must be in (0, 1], got {self.vote_iou}")
        if self.vote_score not in ("max", "mean", "views"):
            raise ValueError(f"vote_score must be 'max', 'mean' or 'views', got {self.vote_score!r}")
        if self.min_votes < 1 or self.batch_size < 1:
            raise ValueError("min_votes and batch_size must be >= 1")

    @property
    def views_per_scale(self) -> int:
        return len(self.shifts) * (2 if self.flip else 1)

    def replace(self, **changes: Any) -> "TTAConfig":
        return dataclasses.replace(self, **changes)


TTA_PRESETS: dict[str, TTAConfig] = {
    "none": TTAConfig(name="none", vote=False),
    "flip": TTAConfig(name="flip", flip=True),
    "paper": TTAConfig(name="paper", scales=PAPER_SCALES, shifts=PAPER_SHIFTS, flip=True, min_votes=2),
}


def resolve_tta(tta: "str | TTAConfig | None") -> TTAConfig | None:
    """``None``/"none" -> ``None`` (plain single scale); a preset name or a config -> the config."""
    if tta is None or isinstance(tta, TTAConfig):
        return None if tta is None else tta
    if isinstance(tta, str):
        key = tta.strip().lower()
        if key == "none":
            return None
        if key in TTA_PRESETS:
            return TTA_PRESETS[key]
        raise ValueError(f"unknown TTA preset {tta!r}; choose one of {', '.join(TTA_PRESETS)} or pass a TTAConfig")
    raise TypeError(f"tta must be None, a preset name or a TTAConfig, got {type(tta).__name__}")


# ----------------------------------------------------------------------------------------
# views
# ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class View:
    """One augmented copy: placed at ``(dx, dy)`` in the canvas, mirrored if ``flip``."""

    dx: int = 0
    dy: int = 0
    flip: bool = False


@dataclass(frozen=True)
class ViewGroup:
    """Views that share a scale (and therefore a canvas): one batch."""

    scale: float
    height: int  # resized image size
    width: int
    views: tuple[View, ...]

    @property
    def canvas(self) -> tuple[int, int]:
        h = max(self.height + v.dy for v in self.views)
        w = max(self.width + v.dx for v in self.views)
        return -(-h // STRIDE) * STRIDE, -(-w // STRIDE) * STRIDE


def _resized(h: int, w: int, scale: float) -> tuple[int, int]:
    # Same rounding as pipeline.preprocess.
    return max(1, round(h * scale)), max(1, round(w * scale))


def plan_views(height: int, width: int, config: TTAConfig, base_scale: float = 1.0) -> list[ViewGroup]:
    """The view groups for an image of ``height x width``.

    ``base_scale`` is the single-scale factor used for ``None`` entries of ``scales``.
    Scales whose resized size coincides (e.g. under the ``max_size`` cap) are run once.
    """
    views = tuple(
        View(dx * config.shift_pixels, dy * config.shift_pixels, flip)
        for (dx, dy) in config.shifts
        for flip in ((False, True) if config.flip else (False,))
    )
    views = tuple(dict.fromkeys(views))  # shift_pixels=0 makes all shifts one view
    groups: list[ViewGroup] = []
    seen: set[tuple[int, int]] = set()
    for s in config.scales:
        scale = base_scale if s is None else resize_scale(height, width, s, config.max_size)
        hw = _resized(height, width, scale)
        if hw in seen:
            continue
        seen.add(hw)
        groups.append(ViewGroup(scale, hw[0], hw[1], views))
    return groups


def count_forward_passes(config: "TTAConfig | str | None", height: int = 480, width: int = 640) -> int:
    """Network forward passes TTA needs for one image of this size (single scale: 1)."""
    config = resolve_tta(config) if not isinstance(config, TTAConfig) else config
    if config is None:
        return 1
    return sum(math.ceil(len(g.views) / config.batch_size) for g in plan_views(height, width, config))


def render_views(image_bgr: np.ndarray, group: ViewGroup) -> np.ndarray:
    """The (V, 3, H, W) float32 batch of one group's views (BGR minus mean, zero padded)."""
    x = preprocess(image_bgr, group.scale)  # (3, h, w)
    assert x.shape[1:] == (group.height, group.width), (x.shape, group)
    ch, cw = group.canvas
    batch = np.empty((len(group.views), 3, ch, cw), np.float32)
    mirrored = np.ascontiguousarray(x[:, :, ::-1]) if any(v.flip for v in group.views) else None
    h, w = group.height, group.width
    for i, v in enumerate(group.views):
        out = batch[i]
        # Zero (mean-colour) only the border around the picture, then copy it in.
        out[:, : v.dy].fill(0)
        out[:, v.dy + h :].fill(0)
        out[:, v.dy : v.dy + h, : v.dx].fill(0)
        out[:, v.dy : v.dy + h, v.dx + w :].fill(0)
        out[:, v.dy : v.dy + h, v.dx : v.dx + w] = mirrored if v.flip else x
    return batch


def flip_detections(det: Detections, width: float) -> Detections:
    """Mirror detections in an image ``width`` pixels wide (x -> width - x), swapping
    left/right landmarks.  Its own inverse."""
    boxes = det.boxes.copy()
    boxes[:, 0] = width - det.boxes[:, 2]
    boxes[:, 2] = width - det.boxes[:, 0]
    marks = det.landmarks[:, LANDMARK_FLIP_ORDER].copy()
    marks[..., 0] = width - marks[..., 0]
    return Detections(boxes, det.scores.copy(), marks)


def map_back(det: Detections, view: View, group: ViewGroup) -> Detections:
    """Detections in a view's canvas pixels -> original-image pixels (not clipped)."""
    offset = np.asarray([view.dx, view.dy], np.float32)
    boxes = det.boxes - np.tile(offset, 2)
    marks = det.landmarks - offset
    out = Detections(boxes, det.scores, marks)
    if view.flip:
        out = flip_detections(out, group.width)
    # Divide by the nominal scale, as pipeline.scale_back does for single-scale detection.
    s = group.scale
    return Detections((out.boxes / s).astype(np.float32), out.scores.astype(np.float32), (out.landmarks / s).astype(np.float32))


def map_forward(det: Detections, view: View, group: ViewGroup) -> Detections:
    """Original-image pixels -> a view's canvas pixels (the inverse of :func:`map_back`)."""
    s = group.scale
    out = Detections(det.boxes * s, det.scores, det.landmarks * s)
    if view.flip:
        out = flip_detections(out, group.width)
    offset = np.asarray([view.dx, view.dy], np.float32)
    return Detections(
        (out.boxes + np.tile(offset, 2)).astype(np.float32), out.scores, (out.landmarks + offset).astype(np.float32)
    )


# ----------------------------------------------------------------------------------------
# box voting
# ----------------------------------------------------------------------------------------
def box_vote(
    boxes: np.ndarray,
    scores: np.ndarray,
    landmarks: np.ndarray | None = None,
    iou_threshold: float = 0.4,
    min_votes: int = 1,
    max_detections: int | None = None,
    score: str = "max",
    chunk: int = 1024,
    views: np.ndarray | None = None,
    n_views: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    """Merge overlapping detections by score-weighted averaging.

    Greedy clustering in descending score order: the highest remaining detection
    heads a cluster made of every remaining detection with IoU >= ``iou_threshold``
    with it.  Each cluster becomes one detection: box (and landmarks) the
    score-weighted mean of its members', score its maximum (``score="max"``, as in
    the reference code), its members' mean (``score="mean"``) or the views' mean
    (``score="views"``: ``views`` gives each detection's view index in
    ``[0, n_views)``; each view contributes its best member's score, a view with no
    member contributes 0, and the sum is divided by ``n_views``: the face's score
    averaged over all the views, as test-time augmentation averages a classifier's
    probabilities).  Clusters with fewer than ``min_votes`` members are dropped.

    Returns ``(boxes (K, 4), scores (K,), landmarks (K, 5, 2) or None, votes (K,))``
    sorted by descending score.
    """
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    scores = np.asarray(scores, np.float32).reshape(-1)
    n = scores.shape[0]
    if score == "views":
        if views is None or n_views is None or len(views) != n:
            raise ValueError("score='views' needs every detection's view index (views) and the number of views (n_views)")
        if n and (np.min(views) < 0 or np.max(views) >= n_views):
            raise ValueError(f"view indices must lie in [0, {n_views}), got {np.min(views)}..{np.max(views)}")
    if landmarks is not None:
        landmarks = np.asarray(landmarks, np.float32)
        landmarks = landmarks.reshape(n, -1, 2) if n else landmarks.reshape(0, *(landmarks.shape[1:] or (5, 2)))
    if n == 0:
        empty_marks = None if landmarks is None else np.zeros((0,) + landmarks.shape[1:], np.float32)
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), empty_marks, np.zeros(0, np.int64)
    order = np.argsort(-scores, kind="stable")
    b = np.ascontiguousarray(boxes[order], dtype=np.float64)
    s = np.ascontiguousarray(scores[order], dtype=np.float64)
    # Heads: NMS suppresses IoU > t; bbox_vote merges IoU >= t.  Nudge t down by an ulp-ish
    # amount so that both agree on ties (two identical boxes have IoU exactly 1).
    t = float(iou_threshold)
    heads = nms(b, s, max(t - 1e-9, 0.0))
    heads = heads[np.argsort(-s[heads], kind="stable")]
    assign = np.full(n, -1, np.int64)
    assign[heads] = np.arange(heads.size)
    for start in range(0, heads.size, chunk):
        idx = heads[start : start + chunk]
        over = box_iou(b[idx], b) >= t - 1e-9  # (k, n)
        free = (assign < 0) & over.any(0)
        first = over.argmax(0)  # the first head (in score order) it overlaps
        assign[free] = start + first[free]
    # Degenerate (zero-area) non-heads overlap nothing: make them their own clusters.
    lost = np.flatnonzero(assign < 0)
    if lost.size:  # pragma: no cover - nms keeps boxes that overlap nothing
        assign[lost] = heads.size + np.arange(lost.size)
    k = int(assign.max()) + 1
    wsum = np.bincount(assign, weights=s, minlength=k)  # members weigh by their scores
    votes = np.bincount(assign, minlength=k)
    safe = np.where(wsum > 0, wsum, 1.0)

    def cluster_sum(values: np.ndarray) -> np.ndarray:  # (n, d) -> (k, d), summed per cluster
        return np.stack([np.bincount(assign, weights=values[:, j], minlength=k) for j in range(values.shape[1])], 1)

    vboxes = cluster_sum(b * s[:, None]) / safe[:, None]
    # Clusters whose weights are all zero (scores of 0) fall back to the plain mean.
    zero = wsum <= 0
    if zero.any():
        vboxes[zero] = (cluster_sum(b) / np.maximum(votes, 1)[:, None])[zero]
    if score == "max":
        vscores = np.full(k, -1.0)
        np.maximum.at(vscores, assign, s)
    elif score == "mean":
        vscores = wsum / np.maximum(votes, 1)
    elif score == "views":
        v = np.asarray(views, np.int64)[order]
        best = np.zeros(k * n_views)
        np.maximum.at(best, assign * n_views + v, s)
        vscores = best.reshape(k, n_views).sum(1) / n_views
    else:
        raise ValueError(f"score must be 'max', 'mean' or 'views', got {score!r}")
    vmarks = None
    if landmarks is not None:
        m = np.ascontiguousarray(landmarks[order], dtype=np.float64).reshape(n, -1)
        vmarks = cluster_sum(m * s[:, None]) / safe[:, None]
        if zero.any():
            vmarks[zero] = (cluster_sum(m) / np.maximum(votes, 1)[:, None])[zero]
    keep_idx = np.flatnonzero(votes >= min_votes)
    keep_idx = keep_idx[np.argsort(-vscores[keep_idx], kind="stable")]
    if max_detections is not None:
        keep_idx = keep_idx[:max_detections]
    out_marks = None if vmarks is None else vmarks[keep_idx].reshape(-1, *landmarks.shape[1:]).astype(np.float32)
    return (
        vboxes[keep_idx].astype(np.float32),
        vscores[keep_idx].astype(np.float32),
        out_marks,
        votes[keep_idx].astype(np.int64),
    )


def merge_views(
    detections: Sequence[Detections],
    config: TTAConfig,
    nms_threshold: float,
    max_detections: int,
) -> Detections:
    """All views' detections (original pixels) -> one set, by voting or by NMS."""
    if not config.vote:
        return merge_nms(detections, nms_threshold, max_detections)
    if not any(len(d) for d in detections):
        return Detections.empty()
    boxes = np.concatenate([d.boxes for d in detections])
    scores = np.concatenate([d.scores for d in detections])
    marks = np.concatenate([d.landmarks for d in detections])
    views = np.repeat(np.arange(len(detections)), [len(d) for d in detections])
    vb, vs, vm, _ = box_vote(
        boxes, scores, marks, config.vote_iou, config.min_votes, max_detections, score=config.vote_score,
        views=views, n_views=len(detections),
    )
    return Detections(vb, vs, vm)


def _clip(det: Detections, height: int, width: int) -> Detections:
    boxes = det.boxes.copy()
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, width)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, height)
    return Detections(boxes, det.scores, det.landmarks)


def iter_view_batches(
    image_bgr: np.ndarray, config: TTAConfig, base_scale: float = 1.0
) -> Iterator[tuple[ViewGroup, tuple[View, ...], np.ndarray]]:
    """``(group, views, batch)`` for every forward pass of the TTA of one image."""
    h, w = image_bgr.shape[:2]
    for group in plan_views(h, w, config, base_scale):
        for start in range(0, len(group.views), config.batch_size):
            part = ViewGroup(group.scale, group.height, group.width, group.views[start : start + config.batch_size])
            yield part, part.views, render_views(image_bgr, part)


class TTARunner(Protocol):
    """What :func:`detect_tta` needs of the caller that hands it the network (a
    :class:`~retinaface_polynl.detector.Detector` is one): its thresholds and limits, its
    single-scale input rule and its backend.  TTA takes it as an argument, so this module
    imports nothing above :mod:`retinaface_polynl.pipeline`."""

    threshold: float
    nms_threshold: float
    top_k: int
    max_detections: int

    def input_scale(self, height: int, width: int, size: int | None = None, max_size: int | None = None) -> float:
        ...

    def predict_raw(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ...

    def detect(self, image: Any, threshold: float | None = None, size: int | None = None,
               max_size: int | None = None) -> Detections:
        ...


def detect_tta(
    detector: TTARunner,
    image_bgr: np.ndarray,
    tta: "str | TTAConfig",
    threshold: float | None = None,
    size: int | None = None,
    max_size: int | None = None,
) -> Detections:
    """Test-time-augmented detection of one BGR uint8 image with ``detector`` (a
    :class:`~retinaface_polynl.detector.Detector`, or anything shaped like :class:`TTARunner`).

    ``size``/``max_size`` (default: the detector's) define the single-scale view used
    for ``None`` entries of ``config.scales``.
    """
    config = resolve_tta(tta)
    if config is None:
        return detector.detect(image_bgr, threshold=threshold, size=size, max_size=max_size)
    threshold = detector.threshold if threshold is None else threshold
    h, w = image_bgr.shape[:2]
    base_scale = detector.input_scale(h, w, size, max_size)
    timings = getattr(detector, "timings", None)
    per_view: list[Detections] = []
    batches = iter_view_batches(image_bgr, config, base_scale)
    while True:
        with _stage(timings, "preprocess"):
            item = next(batches, None)
        if item is None:
            break
        group, views, batch = item
        with _stage(timings, "network"):
            boxes, scores, landmarks = detector.predict_raw(batch)
        with _stage(timings, "postprocess"):
            for j, view in enumerate(views):
                det = postprocess(
                    boxes[j],
                    scores[j],
                    landmarks[j],
                    min(config.view_threshold, threshold),
                    detector.nms_threshold,
                    detector.top_k,
                    detector.max_detections,
                )
                per_view.append(map_back(det, view, group))
    with _stage(timings, "postprocess"):
        merged = merge_views(per_view, config, detector.nms_threshold, detector.max_detections)
        keep = merged.scores > threshold
        merged = Detections(merged.boxes[keep], merged.scores[keep], merged.landmarks[keep])
        return _clip(merged, h, w)


class _NullStage:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _stage(timings, name: str):
    return timings.measure(name) if timings is not None else _NullStage()
