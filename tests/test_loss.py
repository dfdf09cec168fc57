"""Matching and the multi-task loss on hand-made anchors and faces with known answers."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from retinaface_polynl.anchors import BoxCoder, LandmarkCoder
from retinaface_polynl.train.loss import BACKGROUND, IGNORE, POSITIVE, MultiBoxLoss
from retinaface_polynl.train.matcher import IGNORED, NEGATIVE, anchors_to_xyxy, match_anchors
from retinaface_polynl.train.schedule import lr_factor


def anchors_from_xyxy(boxes) -> torch.Tensor:
    b = torch.as_tensor(boxes, dtype=torch.float32)
    return torch.cat([(b[:, :2] + b[:, 2:]) / 2, b[:, 2:] - b[:, :2]], dim=1)


# One face [0, 0, 20, 20] and anchors of the same size shifted right by 0, 5, 10, 15 and far away:
# IoUs 1, 300/500 = 0.6, 200/600 = 0.333, 100/700 = 0.143, 0.
SHIFTED = anchors_from_xyxy([[0, 0, 20, 20], [5, 0, 25, 20], [10, 0, 30, 20], [15, 0, 35, 20], [60, 60, 80, 80]])
FACE = torch.tensor([[0.0, 0.0, 20.0, 20.0]])


def test_anchors_to_xyxy_round_trip():
    boxes = torch.tensor([[0.0, 0.0, 20.0, 20.0], [5.0, 10.0, 25.0, 50.0]])
    assert_close(anchors_to_xyxy(anchors_from_xyxy(boxes)), boxes)


def test_match_thresholds_positive_and_negative():
    m = match_anchors(SHIFTED, FACE, iou_threshold=0.35)
    assert m.tolist() == [0, 0, NEGATIVE, NEGATIVE, NEGATIVE]


def test_match_ignore_band_between_thresholds():
    m = match_anchors(SHIFTED, FACE, iou_threshold=0.35, negative_threshold=0.2)
    assert m.tolist() == [0, 0, IGNORED, NEGATIVE, NEGATIVE]


def test_every_face_claims_its_best_anchor():
    anchors = anchors_from_xyxy([[0, 0, 20, 20], [60, 60, 80, 80]])
    face = torch.tensor([[10.0, 0.0, 30.0, 20.0]])  # best IoU 0.333 < 0.35
    assert match_anchors(anchors, face).tolist() == [0, NEGATIVE]
    # ... unless that IoU is below force_min_iou (RetinaFace: 0.2)
    assert match_anchors(anchors, face, force_min_iou=0.5).tolist() == [NEGATIVE, NEGATIVE]


def test_two_faces_sharing_a_best_anchor_the_later_wins_and_others_keep_theirs():
    anchors = anchors_from_xyxy([[0, 0, 20, 20], [40, 0, 60, 20]])
    faces = torch.tensor([[1.0, 0.0, 21.0, 20.0], [2.0, 0.0, 22.0, 20.0], [40.0, 0.0, 60.0, 20.0]])
    assert match_anchors(anchors, faces).tolist() == [1, 2]


def test_no_faces_all_negative():
    assert match_anchors(SHIFTED, torch.zeros(0, 4)).tolist() == [NEGATIVE] * 5


def _target(boxes, landmarks=None, has=None):
    boxes = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    n = boxes.shape[0]
    if landmarks is None:
        landmarks = torch.zeros(n, 5, 2)
        has = torch.zeros(n, dtype=torch.bool)
    return {"boxes": boxes, "landmarks": landmarks, "has_landmarks": has}


def _outputs(num_anchors, batch=1, logits=None):
    box = torch.zeros(batch, num_anchors, 4)
    cls = torch.zeros(batch, num_anchors, 2) if logits is None else logits
    lm = torch.zeros(batch, num_anchors, 10)
    return box, cls, lm


def test_assign_encodes_with_the_coders():
    loss = MultiBoxLoss(BoxCoder((0.1, 0.2)), LandmarkCoder((0.1, 0.2)))
    lms = torch.tensor([[[5.0, 6.0], [15.0, 6.0], [10.0, 10.0], [6.0, 15.0], [14.0, 15.0]]])
    a = loss.assign(SHIFTED, [_target(FACE, lms, torch.tensor([True]))])
    assert a.labels.tolist() == [[POSITIVE, POSITIVE, BACKGROUND, BACKGROUND, BACKGROUND]]
    assert_close(a.box_targets[0, :2], BoxCoder((0.1, 0.2)).encode(SHIFTED[:2], FACE.expand(2, 4)))
    assert_close(a.landmark_targets[0, :2], LandmarkCoder((0.1, 0.2)).encode(SHIFTED[:2], lms.expand(2, 5, 2)))
    assert a.landmark_mask.tolist() == [[True, True, False, False, False]]
    assert_close(a.box_targets[0, 0], torch.zeros(4))  # the exact anchor: zero offsets


def test_ignored_anchors_are_neither_trained_nor_mined():
    loss = MultiBoxLoss(negative_threshold=0.2)
    a = loss.assign(SHIFTED, [_target(FACE)])
    assert a.labels.tolist() == [[POSITIVE, POSITIVE, IGNORE, BACKGROUND, BACKGROUND]]
    logits = torch.zeros(1, 5, 2)
    logits[0, 2, 1] = 10.0  # the ignored anchor would be the hardest "negative"
    neg = loss.hard_negatives(logits, a.labels)
    assert not neg[0, 2] and neg[0, 3] and neg[0, 4]


def test_hard_negative_mining_keeps_three_per_positive():
    # one positive (anchor 0), eight negatives with known face logits 0..7: the three hardest are 7, 6, 5.
    anchors = anchors_from_xyxy([[0, 0, 20, 20]] + [[100 + 30 * i, 100, 120 + 30 * i, 120] for i in range(8)])
    loss = MultiBoxLoss()
    a = loss.assign(anchors, [_target(FACE)])
    assert a.num_positives == 1
    logits = torch.zeros(1, 9, 2)
    logits[0, 1:, 1] = torch.arange(8, dtype=torch.float32)
    neg = loss.hard_negatives(logits, a.labels)
    assert neg[0].nonzero().flatten().tolist() == [6, 7, 8]
    parts = loss.compute(_outputs(9, logits=logits), a)
    expected = F.cross_entropy(logits[0, [0, 6, 7, 8]], torch.tensor([1, 0, 0, 0]), reduction="sum")
    assert_close(parts.classification, expected)
    # ratio 1 (and no per-image minimum) keeps only the single hardest negative
    neg1 = MultiBoxLoss(neg_pos_ratio=1, min_negatives=0).hard_negatives(logits, a.labels)
    assert neg1[0].nonzero().flatten().tolist() == [8]


def test_focal_classification_teaches_every_anchor_not_ignored_with_retinanets_formula():
    """``cls_loss="focal"``: -alpha (1 - p)^gamma log p on faces, -(1 - alpha) p^gamma log(1 - p)
    on background (p the softmax face probability, alpha 0.25, gamma 2), summed over every anchor
    not ignored (no quota: all eight background anchors count), divided by the positives."""
    anchors = anchors_from_xyxy([[0, 0, 20, 20]] + [[100 + 30 * i, 100, 120 + 30 * i, 120] for i in range(8)])
    logits = torch.zeros(1, 9, 2)
    logits[0, :, 1] = torch.linspace(-3, 3, 9)
    for cls in ("focal", "ohem"):
        loss = MultiBoxLoss(cls_loss=cls)
        a = loss.assign(anchors, [_target(FACE)])
        labels = a.labels.clone()
        labels[0, 4] = IGNORE  # an ignored anchor is never taught
        got = loss.compute(_outputs(9, logits=logits), a._replace(labels=labels)).classification
        if cls == "ohem":  # three hard negatives only, unchanged by the option
            want = F.cross_entropy(logits[0, [0, 6, 7, 8]], torch.tensor([1, 0, 0, 0]), reduction="sum")
            assert_close(got, want)
            continue
        p = logits[0].softmax(-1)[:, 1]
        face = -0.25 * (1 - p[0]) ** 2 * torch.log(p[0])
        keep = [1, 2, 3, 5, 6, 7, 8]
        background = (-(1 - 0.25) * p[keep] ** 2 * torch.log(1 - p[keep])).sum()
        assert_close(got, face + background, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="cls_loss"):
        MultiBoxLoss(cls_loss="hinge")


def test_negative_weight_scales_only_the_background_terms_of_both_losses():
    """``negative_weight`` W: the positives' terms as they were, every background term times W
    (the three hard negatives of OHEM; every background anchor of the focal loss)."""
    anchors = anchors_from_xyxy([[0, 0, 20, 20]] + [[100 + 30 * i, 100, 120 + 30 * i, 120] for i in range(8)])
    logits = torch.zeros(1, 9, 2)
    logits[0, :, 1] = torch.linspace(-3, 3, 9)
    for cls in ("ohem", "focal"):
        plain, heavy = MultiBoxLoss(cls_loss=cls), MultiBoxLoss(cls_loss=cls, negative_weight=3.0)
        a = plain.assign(anchors, [_target(FACE)])
        face_only = a._replace(labels=torch.where(a.labels == POSITIVE, a.labels, torch.full_like(a.labels, IGNORE)))
        out = _outputs(9, logits=logits)
        positive = plain.compute(out, face_only).classification
        background = plain.compute(out, a).classification - positive
        assert background > 0.1
        assert_close(heavy.compute(out, face_only).classification, positive)
        assert_close(heavy.compute(out, a).classification, positive + 3.0 * background, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="negative_weight"):
        MultiBoxLoss(negative_weight=0)


def test_cls_loss_reaches_the_command_line():
    from retinaface_polynl.cli import build_parser
    from retinaface_polynl.commands.train import build_config
    from retinaface_polynl.train.config import default_train_config

    base = ["train", "--preset", "r18x025", "--labels", "x.txt", "--images", "x", "--output", "out"]
    assert build_config(build_parser().parse_args(base)).cls_loss == "ohem"
    assert build_config(build_parser().parse_args(base + ["--cls-loss", "focal"])) == \
        default_train_config("r18x025", cls_loss="focal")
    with pytest.raises(ValueError, match="cls_loss"):
        default_train_config("r18x025", cls_loss="hinge")
    assert build_config(build_parser().parse_args(base + ["--negative-weight", "2.5"])) == \
        default_train_config("r18x025", negative_weight=2.5)
    with pytest.raises(ValueError, match="negative_weight"):
        default_train_config("r18x025", negative_weight=-1)


def test_box_loss_is_smooth_l1_over_positives_divided_by_their_number():
    loss = MultiBoxLoss(box_weight=2.0, landmark_weight=1.0)
    a = loss.assign(SHIFTED, [_target(FACE)])
    box, cls, lm = _outputs(5)
    box = a.box_targets.clone()
    parts = loss.compute((box, cls, lm), a)
    assert parts.box.item() == 0.0
    box[0, 0, 0] += 1.0  # smooth-L1(1) = 0.5, two positives
    box[0, 3, 0] += 5.0  # a negative anchor: no box loss
    parts = loss.compute((box, cls, lm), a)
    assert_close(parts.box, torch.tensor(0.25))
    assert_close(parts.total, 2.0 * parts.box + parts.classification + parts.landmark)


def test_landmark_loss_only_for_faces_with_landmarks():
    loss = MultiBoxLoss()
    anchors = anchors_from_xyxy([[0, 0, 20, 20], [40, 0, 60, 20]])
    faces = [[0.0, 0.0, 20.0, 20.0], [40.0, 0.0, 60.0, 20.0]]
    lms = torch.full((2, 5, 2), 10.0)
    a = loss.assign(anchors, [_target(faces, lms, torch.tensor([True, False]))])
    assert a.landmark_mask.tolist() == [[True, False]]
    box, cls, lm = _outputs(2)
    lm = a.landmark_targets.clone()
    lm[0, 1] += 100.0  # the face without landmarks: whatever it predicts costs nothing
    assert loss.compute((box, cls, lm), a).landmark.item() == 0.0
    lm[0, 0, 0] += 1.0
    assert_close(loss.compute((box, cls, lm), a).landmark, torch.tensor(0.5))


def test_empty_ground_truth_classification_positive_box_exactly_zero():
    loss = MultiBoxLoss()
    box, cls, lm = (torch.randn(2, 5, 4, requires_grad=True), torch.randn(2, 5, 2), torch.randn(2, 5, 10))
    parts = loss((box, cls, lm), SHIFTED, [_target(torch.zeros(0, 4)), _target(torch.zeros(0, 4))])
    assert parts.classification.item() > 0
    assert parts.box.item() == 0.0 and parts.landmark.item() == 0.0
    parts.total.backward()
    assert torch.isfinite(box.grad).all() and box.grad.abs().sum() == 0


def test_normaliser_override_scales_the_loss():
    loss = MultiBoxLoss()
    a = loss.assign(SHIFTED, [_target(FACE)])
    out = (torch.randn(1, 5, 4), torch.randn(1, 5, 2), torch.randn(1, 5, 10))
    own = loss.compute(out, a)  # 2 positives
    halved = loss.compute(out, a, num_positives=4.0)
    assert_close(halved.box, own.box / 2)
    assert_close(halved.classification, own.classification / 2)


def test_loss_on_a_real_model_is_finite_and_differentiable():
    from retinaface_polynl.models.retinaface import RetinaFace
    from retinaface_polynl.presets import get_preset

    torch.manual_seed(0)
    model = RetinaFace(get_preset("r18x025"))
    anchors = model.anchor_generator.for_image(64, 64)
    out = model(torch.randn(2, 3, 64, 64))
    loss = MultiBoxLoss(model.box_coder, model.landmark_coder)
    lms = torch.tensor([[[12.0, 14.0], [22.0, 14.0], [17.0, 19.0], [13.0, 24.0], [21.0, 24.0]]])
    parts = loss(out, anchors, [_target([[8.0, 8.0, 28.0, 30.0]], lms, torch.tensor([True])), _target(torch.zeros(0, 4))])
    assert all(math.isfinite(float(p.detach())) for p in parts)
    parts.total.backward()
    assert model.box_head.convs[0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "it, expected",
    [(0, 0.001), (5, 0.001 + 0.999 * 0.5), (10, 1.0), (19, 1.0), (20, 0.1), (30, 0.01)],
)
def test_step_schedule_with_warmup(it, expected):
    f = lr_factor(it, total_iters=40, iters_per_epoch=10, schedule="step", milestones=(2, 3), gamma=0.1,
                  warmup_iters=10, warmup_factor=0.001)
    assert f == pytest.approx(expected)


def test_cosine_schedule_ends_at_min_ratio():
    f = [lr_factor(i, 100, 10, "cosine", min_lr_ratio=0.05) for i in (0, 50, 100)]
    assert f == pytest.approx([1.0, 0.525, 0.05])
