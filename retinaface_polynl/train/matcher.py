"""Anchor-to-face assignment by IoU (RetinaFace / SSD matching).

Every anchor takes the face it overlaps most; it is a positive when that IoU
reaches ``iou_threshold`` (0.35 in RetinaFace), a negative below
``negative_threshold`` (the same value by default, i.e. no ignore band) and
ignored in between.  Then every face claims its own best anchor, whatever the
IoU, as long as it is at least ``force_min_iou`` (RetinaFace: 0.2, so that a
face too small for any anchor does not force a meaningless match; 0 makes
every face claim its best anchor unconditionally).  When two faces share a
best anchor the later face wins, as in RetinaFace.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torchvision.ops import box_iou

NEGATIVE = -1  # background anchor
IGNORED = -2  # neither positive nor negative (IoU between the two thresholds)


def anchors_to_xyxy(anchors: Tensor) -> Tensor:
    """``(cx, cy, w, h)`` -> ``(x1, y1, x2, y2)``."""
    return torch.cat([anchors[:, :2] - anchors[:, 2:] / 2, anchors[:, :2] + anchors[:, 2:] / 2], dim=1)


def match_anchors(
    anchors: Tensor,
    boxes: Tensor,
    iou_threshold: float = 0.35,
    negative_threshold: float | None = None,
    force_min_iou: float = 0.2,
) -> Tensor:
    """Assign each anchor a face.

    Args:
        anchors: (A, 4) ``cx, cy, w, h``.
        boxes: (G, 4) faces ``x1, y1, x2, y2`` (G may be 0).
        iou_threshold: IoU at or above which an anchor is a positive.
        negative_threshold: IoU below which an anchor is a negative (default: ``iou_threshold``).
        force_min_iou: a face claims its best anchor only when their IoU is at least this.

    Returns:
        (A,) long: the matched face's index for positives, :data:`NEGATIVE` or :data:`IGNORED`.
    """
    if negative_threshold is None:
        negative_threshold = iou_threshold
    if negative_threshold > iou_threshold:
        raise ValueError(f"negative_threshold {negative_threshold} must not exceed iou_threshold {iou_threshold}")
    num_anchors = anchors.shape[0]
    if boxes.numel() == 0:
        return torch.full((num_anchors,), NEGATIVE, dtype=torch.long, device=anchors.device)
    iou = box_iou(boxes.to(anchors.dtype), anchors_to_xyxy(anchors))  # (G, A)
    best_iou, matches = iou.max(dim=0)  # per anchor
    face_best_iou, face_best_anchor = iou.max(dim=1)  # per face
    claiming = face_best_iou >= force_min_iou
    if claiming.any():
        faces = torch.arange(boxes.shape[0], device=anchors.device)[claiming]
        claimed = face_best_anchor[claiming]
        owner = torch.full((num_anchors,), -1, dtype=torch.long, device=anchors.device)
        owner.scatter_reduce_(0, claimed, faces, reduce="amax")  # the later face wins a shared anchor
        forced = owner >= 0
        matches = torch.where(forced, owner, matches)
        best_iou = torch.where(forced, torch.full_like(best_iou, 2.0), best_iou)
    matches = matches.clone()
    matches[best_iou < iou_threshold] = IGNORED
    matches[best_iou < negative_threshold] = NEGATIVE
    return matches
