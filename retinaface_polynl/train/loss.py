"""The RetinaFace multi-task loss.

    L = box_weight * L_box + class_weight * L_cls + landmark_weight * L_landmark

* anchors are assigned by :func:`.matcher.match_anchors`; a background anchor that
  overlaps one of the image's ``ignore`` regions (target key ``ignore``, IoU at least
  ``negative_threshold``, or the region covers most of the anchor) is ignored instead:
  a face the annotation left out is never taught as background;
* an anchor in one of the image's ``negatives`` regions (target key ``negatives``, the same
  rule; regions known to hold no face, e.g. a hand a detector scored as one) that is not
  matched to a face is background even inside an ignore region, and is always taught:
  it joins the classification loss on top of the hard negatives below;
* ``L_box``: smooth-L1 between predicted and :class:`~retinaface_polynl.anchors.BoxCoder`-encoded
  offsets, summed over positive anchors, divided by the number of positives;
* ``L_cls``: cross-entropy (background / face) over the positives and the hardest
  negatives, ``neg_pos_ratio`` (3) negatives per positive in each image (at least
  ``min_negatives`` per image, so that an image without faces still teaches
  "background"), divided by the number of positives;
  or, with ``cls_loss="focal"`` (``train --cls-loss focal``), the focal loss of RetinaNet
  (Lin et al., ICCV 2017; ``torchvision.ops.sigmoid_focal_loss`` on the face log-odds, alpha
  0.25, gamma 2) over every anchor that is not ignored, divided by the number of positives:
  every background anchor is taught, the easy ones weighted down, none left out by a quota;
* ``L_landmark``: smooth-L1 on :class:`~retinaface_polynl.anchors.LandmarkCoder`-encoded
  points, only for positives whose face has landmarks, divided by their number.

The normalisers can be passed in (:meth:`MultiBoxLoss.compute`), so that a
distributed run can divide by the positives of the *global* batch: then the
gradients that DDP averages equal those of one process on the whole batch.
Everything stays on the inputs' device; no ``.cuda()``.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import box_iou, sigmoid_focal_loss

from ..anchors import BoxCoder, LandmarkCoder
from .config import CLS_LOSSES
from .matcher import IGNORED, anchors_to_xyxy, match_anchors

POSITIVE, BACKGROUND, IGNORE = 1, 0, -1
FOCAL_ALPHA, FOCAL_GAMMA = 0.25, 2.0  # RetinaNet's


class AssignedTargets(NamedTuple):
    labels: Tensor  # (B, A) long: 1 face, 0 background, -1 ignored
    box_targets: Tensor  # (B, A, 4) encoded offsets (meaningful where labels == 1)
    landmark_targets: Tensor  # (B, A, 10) encoded landmarks (meaningful where landmark_mask)
    landmark_mask: Tensor  # (B, A) bool: positive anchor of a face with landmarks
    negatives: Tensor | None = None  # (B, A) bool: background anchors in a negative region, always taught

    @property
    def num_positives(self) -> int:
        return int((self.labels == POSITIVE).sum())

    @property
    def num_landmark_positives(self) -> int:
        return int(self.landmark_mask.sum())


class LossParts(NamedTuple):
    total: Tensor
    box: Tensor
    classification: Tensor
    landmark: Tensor
    distill: Tensor  # score distillation from a teacher (zero without one), already in ``total``
    features: Tensor  # feature imitation of the teacher (zero without it), already in ``total``

    def as_floats(self) -> dict[str, float]:
        return dict(zip(LOG_NAMES, (float(p) for p in self)))

    def add_distillation(self, loss: Tensor, weight: float) -> "LossParts":
        """These parts with ``weight * loss`` added to the total (``.train.distill``)."""
        return self._replace(total=self.total + weight * loss, distill=loss)

    def add_feature_imitation(self, loss: Tensor, weight: float) -> "LossParts":
        """These parts with ``weight * loss`` added to the total (``.train.distill.FeatureImitation``)."""
        return self._replace(total=self.total + weight * loss, features=loss)


# how the trainer logs the LossParts fields
LOG_NAMES = ("loss", "box", "cls", "landmark", "distill", "features")


class MultiBoxLoss(nn.Module):
    """RetinaFace's loss with its knobs as constructor arguments.

    Args:
        box_coder, landmark_coder: the coders of the model (never re-implemented here).
        iou_threshold, negative_threshold, force_min_iou: see :func:`match_anchors`.
        neg_pos_ratio: hard negatives kept per positive.
        min_negatives: hard negatives kept at least per image.
        box_weight, class_weight, landmark_weight: the task weights (RetinaFace: 2, 1, 1).
        cls_loss: "ohem" (RetinaFace's cross-entropy over the positives and the hard negatives)
            or "focal" (RetinaNet's focal loss over every anchor not ignored).
        negative_weight: weight of the background anchors' terms of the classification loss
            (the positives' weight is 1).
    """

    def __init__(
        self,
        box_coder: BoxCoder | None = None,
        landmark_coder: LandmarkCoder | None = None,
        iou_threshold: float = 0.35,
        negative_threshold: float | None = None,
        force_min_iou: float = 0.2,
        neg_pos_ratio: float = 3.0,
        min_negatives: int = 3,
        box_weight: float = 2.0,
        class_weight: float = 1.0,
        landmark_weight: float = 1.0,
        cls_loss: str = "ohem",
        negative_weight: float = 1.0,
    ) -> None:
        super().__init__()
        if cls_loss not in CLS_LOSSES:
            raise ValueError(f"cls_loss must be one of {CLS_LOSSES}, got {cls_loss!r}")
        if not negative_weight > 0:
            raise ValueError(f"negative_weight must be positive, got {negative_weight}")
        self.negative_weight = negative_weight
        self.cls_loss = cls_loss
        self.box_coder = box_coder or BoxCoder()
        self.landmark_coder = landmark_coder or LandmarkCoder()
        self.iou_threshold = iou_threshold
        self.negative_threshold = negative_threshold
        self.force_min_iou = force_min_iou
        self.neg_pos_ratio = neg_pos_ratio
        self.min_negatives = min_negatives
        self.box_weight = box_weight
        self.class_weight = class_weight
        self.landmark_weight = landmark_weight

    @torch.no_grad()
    def assign(self, anchors: Tensor, targets: list[dict[str, Tensor]]) -> AssignedTargets:
        """Match the anchors (A, 4) to each image's faces and encode the regression targets."""
        labels, boxes_t, lms_t, lm_mask, forced = [], [], [], [], []
        num_anchors = anchors.shape[0]
        for t in targets:
            gt = t["boxes"].to(anchors.device, anchors.dtype)
            m = match_anchors(anchors, gt, self.iou_threshold, self.negative_threshold, self.force_min_iou)
            label = torch.full_like(m, BACKGROUND)
            label[m >= 0] = POSITIVE
            label[m == IGNORED] = IGNORE
            ignore = t.get("ignore")
            in_ignore = torch.zeros_like(label, dtype=torch.bool)
            if ignore is not None and ignore.numel():
                in_ignore = (label == BACKGROUND) & self.in_ignore_regions(anchors, ignore.to(anchors.device, anchors.dtype))
                label[in_ignore] = IGNORE
            negatives = t.get("negatives")
            known = torch.zeros_like(in_ignore)
            if negatives is not None and negatives.numel():
                known = ((label == BACKGROUND) | in_ignore) & self.in_ignore_regions(
                    anchors, negatives.to(anchors.device, anchors.dtype))
                label[known] = BACKGROUND
            if gt.shape[0]:
                idx = m.clamp(min=0)
                box_t = self.box_coder.encode(anchors, gt[idx])
                lms = t["landmarks"].to(anchors.device, anchors.dtype)
                lm_t = self.landmark_coder.encode(anchors, lms[idx])
                has = t["has_landmarks"].to(anchors.device)[idx] & (m >= 0)
            else:
                box_t = anchors.new_zeros(num_anchors, 4)
                lm_t = anchors.new_zeros(num_anchors, 2 * self.landmark_coder.num_points)
                has = torch.zeros(num_anchors, dtype=torch.bool, device=anchors.device)
            labels.append(label)
            boxes_t.append(box_t)
            lms_t.append(lm_t)
            lm_mask.append(has)
            forced.append(known)
        return AssignedTargets(torch.stack(labels), torch.stack(boxes_t), torch.stack(lms_t), torch.stack(lm_mask),
                               torch.stack(forced))

    def in_ignore_regions(self, anchors: Tensor, regions: Tensor) -> Tensor:
        """(A,) bool: anchors with IoU >= the negative threshold with some region, or at
        least half of whose area some region covers (the rule of ignore and negative regions)."""
        boxes = anchors_to_xyxy(anchors)
        iou = box_iou(regions, boxes)
        lt = torch.maximum(regions[:, None, :2], boxes[None, :, :2])
        rb = torch.minimum(regions[:, None, 2:], boxes[None, :, 2:])
        inter = (rb - lt).clamp(min=0).prod(-1)
        covered = inter / (anchors[:, 2] * anchors[:, 3]).clamp(min=1e-6)
        threshold = self.iou_threshold if self.negative_threshold is None else self.negative_threshold
        return ((iou >= threshold) | (covered >= 0.5)).any(0)

    def hard_negatives(self, class_logits: Tensor, labels: Tensor) -> Tensor:
        """(B, A) bool: per image, the ``max(ratio * positives, min_negatives)`` background
        anchors with the highest classification loss."""
        with torch.no_grad():
            ce = torch.logsumexp(class_logits, dim=-1) - class_logits[..., 0]  # loss if background
            ce = torch.where(labels == BACKGROUND, ce, torch.full_like(ce, -1.0))
            num_pos = (labels == POSITIVE).sum(dim=1)
            num_bg = (labels == BACKGROUND).sum(dim=1)
            num_neg = torch.maximum((num_pos * self.neg_pos_ratio).long(), torch.full_like(num_pos, self.min_negatives))
            num_neg = torch.minimum(num_neg, num_bg)
            order = ce.argsort(dim=1, descending=True)
            rank = order.argsort(dim=1)
            return rank < num_neg[:, None]

    def compute(
        self,
        outputs,
        assigned: AssignedTargets,
        num_positives: float | Tensor | None = None,
        num_landmark_positives: float | Tensor | None = None,
    ) -> LossParts:
        """The loss parts from head outputs (box_deltas, class_logits, landmark_deltas) and assigned targets.

        ``num_positives`` / ``num_landmark_positives`` override the normalisers
        (default: this batch's counts, at least 1).
        """
        box_deltas, class_logits, landmark_deltas = (o.float() for o in outputs[:3])
        labels = assigned.labels
        pos = labels == POSITIVE
        if num_positives is None:
            num_positives = pos.sum()
        if num_landmark_positives is None:
            num_landmark_positives = assigned.landmark_mask.sum()
        n = torch.as_tensor(num_positives, dtype=torch.float32, device=box_deltas.device).clamp(min=1)
        n_lm = torch.as_tensor(num_landmark_positives, dtype=torch.float32, device=box_deltas.device).clamp(min=1)

        box_loss = F.smooth_l1_loss(box_deltas[pos], assigned.box_targets[pos].float(), reduction="sum") / n
        lm = assigned.landmark_mask
        landmark_loss = F.smooth_l1_loss(landmark_deltas[lm], assigned.landmark_targets[lm].float(), reduction="sum") / n_lm
        if self.cls_loss == "focal":  # every anchor not ignored (known negatives are background)
            taught = labels != IGNORE
            log_odds = class_logits[..., 1] - class_logits[..., 0]
            terms = sigmoid_focal_loss(log_odds[taught], pos[taught].float(), FOCAL_ALPHA, FOCAL_GAMMA)
            cls_loss = self.weighted(terms, pos[taught]) / n
        else:
            # the known negatives on top of the hard ones, which are drawn from the other background anchors
            known = torch.zeros_like(pos) if assigned.negatives is None else assigned.negatives
            chosen = pos | known | self.hard_negatives(class_logits, labels.masked_fill(known, IGNORE))
            terms = F.cross_entropy(class_logits[chosen], labels[chosen].clamp(min=0), reduction="none")
            cls_loss = self.weighted(terms, pos[chosen]) / n
        total = self.box_weight * box_loss + self.class_weight * cls_loss + self.landmark_weight * landmark_loss
        return LossParts(total, box_loss, cls_loss, landmark_loss, torch.zeros_like(total), torch.zeros_like(total))

    def weighted(self, terms: Tensor, positive: Tensor) -> Tensor:
        """The sum of per-anchor classification terms, the background ones times ``negative_weight``."""
        if self.negative_weight == 1.0:
            return terms.sum()
        return torch.where(positive, terms, terms * self.negative_weight).sum()

    def forward(self, outputs, anchors: Tensor, targets: list[dict[str, Tensor]]) -> LossParts:
        """Assign and compute in one call (single process)."""
        return self.compute(outputs, self.assign(anchors, targets))
