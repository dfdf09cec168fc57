"""Negative regions (issue 40: the hands the student takes for faces, taught as background where
they are): read from label files, moved by every augmentation, assigned and always taught by the
loss, kept from the distilled teacher; and the miner that finds them (scripts/mine_negatives.py)."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from retinaface_polynl.anchors import AnchorGenerator
from retinaface_polynl.data import load_annotations
from retinaface_polynl.data.augment import FaceSample, TrainAugment, crop, expand, mirror, resize, rotate
from retinaface_polynl.data.dataset import sample_to_tensors
from retinaface_polynl.data.generic import write_labelled_json
from retinaface_polynl.train.distill import distillation_loss, excluded_anchors
from retinaface_polynl.train.loss import BACKGROUND, IGNORE, POSITIVE, MultiBoxLoss

ROOT = Path(__file__).resolve().parents[1]
ANCHORS = AnchorGenerator(min_sizes=((16, 32), (64, 128), (256, 512)), steps=(8, 16, 32)).for_image(320, 320)


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _miner():
    return _script("mine_negatives")


def _sample() -> FaceSample:
    return FaceSample(np.zeros((200, 300, 3), np.uint8), np.array([[10, 10, 50, 60]], np.float32),
                      np.zeros((1, 5, 2), np.float32), np.zeros(1, bool), np.array([[200, 100, 260, 170]], np.float32),
                      np.array([[100, 20, 140, 80]], np.float32))


# -- label files ------------------------------------------------------------------------

def test_negatives_are_read_from_the_generic_json_and_checked(tmp_path, caplog):
    import cv2

    cv2.imwrite(str(tmp_path / "a.jpg"), np.zeros((100, 120, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "b.jpg"), np.zeros((100, 120, 3), np.uint8))
    write_labelled_json(tmp_path / "l.json", [
        {"image": "a.jpg", "boxes": [[10, 10, 40, 50]], "negatives": [[60, 10, 90, 40], [200, 10, 230, 40]]},
        {"image": "b.jpg", "boxes": []},
    ], {"by": "test"})
    a, b = load_annotations(tmp_path / "l.json")
    np.testing.assert_allclose(a.negatives, [[60, 10, 90, 40]])  # the one outside the 120 px image is dropped
    assert b.negatives.shape == (0, 4)
    assert "negative region [200.0, 10.0, 230.0, 40.0]" in caplog.text and "l.json" in caplog.text


def test_a_packed_set_keeps_its_negatives_at_the_photo_scale():
    """scripts/pack_training_set.py (the GPU carry) shrinks photos: the negatives shrink with the faces."""
    from retinaface_polynl.data.records import ImageRecord

    record = ImageRecord.from_boxes("a.jpg", [[10, 10, 40, 50]], ignore=[[0, 0, 8, 8]], negatives=[[60, 10, 90, 40]])
    e = _script("pack_training_set").entry("a.jpg", record, 0.5)
    assert e["boxes"] == [[5.0, 5.0, 20.0, 25.0]] and e["ignore"] == [[0.0, 0.0, 4.0, 4.0]]
    assert e["negatives"] == [[30.0, 5.0, 45.0, 20.0]]


# -- augmentation -----------------------------------------------------------------------

def test_negative_regions_follow_every_geometric_step():
    s = _sample()
    np.testing.assert_allclose(mirror(s).negatives, [[160, 20, 200, 80]])
    np.testing.assert_allclose(mirror(mirror(s)).negatives, s.negatives)
    np.testing.assert_allclose(resize(s, 150, 100).negatives, [[50, 10, 70, 40]])
    np.testing.assert_allclose(crop(s, 120, 0, 100, 100).negatives, [[0, 20, 20, 80]])  # clipped to the window
    assert crop(s, 150, 0, 100, 100).negatives.shape == (0, 4)  # outside: dropped
    big = expand(s, np.random.default_rng(3), 3.0)
    shift = big.boxes[0, :2] - s.boxes[0, :2]
    np.testing.assert_allclose(big.negatives, s.negatives + np.tile(shift, 2))
    turned = rotate(s, 90.0)  # a compact region turns like a face: width and height swap about its centre
    w, h = turned.negatives[0, 2:] - turned.negatives[0, :2]
    np.testing.assert_allclose([w, h], [60, 40], atol=1e-3)
    assert s.select(np.array([False])).negatives.shape == (1, 4)  # dropping faces keeps the regions


def test_the_training_pipeline_carries_negatives_into_the_targets():
    s = _sample()
    s = s.replace(image=np.random.default_rng(0).integers(0, 255, (200, 300, 3), np.uint8))
    aug = TrainAugment(image_size=160, crop_scales=(), mirror_prob=0.0, distort=False, random_interpolation=False)
    _, target = sample_to_tensors(aug(s, np.random.default_rng(1)))
    np.testing.assert_allclose(target["negatives"].numpy(), [[160 / 300 * 100, 160 / 300 * 20, 160 / 300 * 140,
                                                              160 / 300 * 80]], rtol=1e-5)


# -- loss ---------------------------------------------------------------------------------

def _target(**extra):
    return {"boxes": torch.tensor([[20.0, 20.0, 60.0, 70.0]]), "landmarks": torch.zeros(1, 5, 2),
            "has_landmarks": torch.zeros(1, dtype=torch.bool), **extra}


def _inside(region) -> torch.Tensor:
    lo, hi = ANCHORS[:, :2] - ANCHORS[:, 2:] / 2, ANCHORS[:, :2] + ANCHORS[:, 2:] / 2
    return (lo[:, 0] >= region[0]) & (lo[:, 1] >= region[1]) & (hi[:, 0] <= region[2]) & (hi[:, 1] <= region[3])


def test_anchors_in_negative_regions_are_background_even_inside_ignore_regions_never_faces():
    loss = MultiBoxLoss()
    hand = [200.0, 200.0, 260.0, 270.0]
    inside = _inside(hand)
    assert inside.sum() > 10
    plain = loss.assign(ANCHORS, [_target()])
    assert plain.negatives is not None and not plain.negatives.any()
    a = loss.assign(ANCHORS, [_target(negatives=torch.tensor([hand]))])
    assert (a.labels[0][inside] == BACKGROUND).all() and a.negatives[0][inside].all()
    assert torch.equal(a.labels, plain.labels)  # the labels were background already; only the flag is new
    crowd = loss.assign(ANCHORS, [_target(ignore=torch.tensor([[180.0, 180.0, 300.0, 300.0]]),
                                          negatives=torch.tensor([hand]))])
    assert (crowd.labels[0][inside] == BACKGROUND).all() and (crowd.labels[0] == IGNORE).any()
    on_face = loss.assign(ANCHORS, [_target(negatives=torch.tensor([[20.0, 20.0, 60.0, 70.0]]))])
    assert torch.equal(on_face.labels[0] == POSITIVE, plain.labels[0] == POSITIVE)  # a face stays a face
    assert not on_face.negatives[0][plain.labels[0] == POSITIVE].any()


def test_known_negatives_are_always_taught_on_top_of_the_hard_ones():
    """The hand's anchors called background with some confidence (loss 0.049 each, below every other
    background anchor's): hard-negative mining alone never picks them; as known negatives they join
    the loss, each with its own cross-entropy, and the quota drawn from the other anchors is unchanged."""
    loss = MultiBoxLoss()
    plain = loss.assign(ANCHORS, [_target()])
    known = loss.assign(ANCHORS, [_target(negatives=torch.tensor([[200.0, 200.0, 260.0, 270.0]]))])
    hand = known.negatives[0]
    assert hand.sum() > 10
    logits = torch.zeros(1, len(ANCHORS), 2)
    logits[..., 0] = torch.linspace(-2, 2, len(ANCHORS))  # background losses 0.13 to 2.13
    logits[0, hand, 0] = 3.0  # background loss log(1 + e^-3) = 0.0486
    outputs = (torch.zeros(1, len(ANCHORS), 4), logits, torch.zeros(1, len(ANCHORS), 10))
    assert not loss.hard_negatives(logits, plain.labels)[0][hand].any()
    extra = loss.compute(outputs, known).classification - loss.compute(outputs, plain).classification
    expected = float(hand.sum()) * float(np.log1p(np.exp(-3.0))) / plain.num_positives
    assert extra == pytest.approx(expected, rel=1e-4)


def test_distillation_leaves_excluded_anchors_to_the_labels():
    s = torch.zeros(1, 4, 2)
    t = torch.tensor([[[0.0, 3.0], [0.0, 3.0], [0.0, -9.0], [0.0, -9.0]]])  # the teacher: two faces
    full = distillation_loss(s, t, 1.0)
    skip = distillation_loss(s, t, 1.0, exclude=torch.tensor([[True, False, False, False]]))
    assert 0 < skip < full
    faces = torch.tensor([[True, False, False, False]])
    hand = torch.tensor([[False, False, True, False]])
    assert excluded_anchors(faces, None, False) is None
    assert excluded_anchors(faces, torch.zeros_like(hand), False) is None
    assert torch.equal(excluded_anchors(faces, hand, False), hand)
    assert torch.equal(excluded_anchors(faces, hand, True), faces | hand)
    assert torch.equal(excluded_anchors(faces, None, True), faces)


# -- the miner ------------------------------------------------------------------------------

def test_mined_candidates_are_off_every_face_ignore_region_and_teacher_face():
    m = _miner()
    faces = np.array([[10, 10, 50, 60]], np.float32)
    ignore = np.array([[200, 100, 260, 170]], np.float32)
    boxes = np.array([
        [12, 12, 50, 58],     # on the face
        [0, 0, 80, 90],       # a loose box holding the face's centre
        [205, 105, 258, 168],  # on the ignore region
        [100, 20, 140, 80],   # off everything: a candidate
        [150, 20, 160, 30],   # too small
        [300, 20, 340, 80],   # scored too low
    ], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.9, 0.2])
    np.testing.assert_array_equal(m.off_face_candidates(boxes, scores, faces, ignore, 0.3, 16, 0.2), [3])
    np.testing.assert_array_equal(m.off_face_candidates(boxes, scores, np.zeros((0, 4)), np.zeros((0, 4)), 0.3, 16, 0.2),
                                  [0, 1, 2, 3])
    np.testing.assert_array_equal(m.not_seen_by(boxes[3:4], np.array([[102, 22, 138, 78]]), 0.2), [False])
    np.testing.assert_array_equal(m.not_seen_by(boxes[3:4], np.zeros((0, 4)), 0.2), [True])
    p = m.patch(np.zeros((200, 300, 3), np.uint8), boxes[3])
    assert max(p.shape[:2]) >= m.PATCH_MIN_SIDE + 2 * m.PATCH_PAD - 1


def test_the_miner_on_real_photos_writes_label_files_training_reads(shared_data, tmp_path):
    """dlib's four training photos through the script with the shipped detector at a low score: the
    file holds every photo with its faces, every negative is off every annotated face and scores at
    least the floor, a second run skips the finished set, and a short real training run reads it."""
    m = _miner()
    scrfd = shared_data / "weights_thirdparty/scrfd/scrfd_2.5g_kps-opt2.param"
    centerface = shared_data / "weights_thirdparty/centerface/centerface.onnx"
    dlib = shared_data / "faces_dlib" / "training.xml"
    for path in (scrfd, centerface, dlib):
        if not path.exists():
            pytest.skip(f"not available: {path} is absent")
    pytest.importorskip("ncnn", reason="the ncnn package is not installed: the SCRFD teacher runs on it")
    from retinaface_polynl.boxes import box_iou
    from retinaface_polynl.cli import main

    records = load_annotations(dlib)
    out = tmp_path / "mined"
    flags = ["--out", str(out), "--labels", str(dlib), "--names", "dlib", "--score", "0.05", "--min-size", "8",
             "--scrfd", str(scrfd), "--centerface", str(centerface)]
    assert m.main(flags) == 0
    labels = out / "dlib.json"
    made = json.loads(labels.read_text())
    assert made["made_by"]["score"] == 0.05 and made["made_by"]["labels"] == str(dlib)
    entries = made["images"]
    assert [e["image"] for e in entries] == [str(r.path.resolve()) for r in records]
    for e, r in zip(entries, records):
        assert len(e["boxes"]) == len(r)
        neg = np.asarray(e["negatives"], np.float32).reshape(-1, 4)
        assert len(neg) == len(e["negative_scores"]) and all(s >= 0.05 for s in e["negative_scores"])
        if len(neg) and len(r):
            assert box_iou(r.boxes, neg).max() < 0.2
    assert (out / "dlib_negatives.png").exists() == any(e["negatives"] for e in entries)  # the sheet to look at
    before = labels.stat().st_mtime_ns
    assert m.main(flags) == 0 and labels.stat().st_mtime_ns == before  # finished: skipped
    entries[0]["negatives"].append([0.0, 0.0, 30.0, 30.0])  # one at least, whatever the detector says
    write_labelled_json(labels, entries, made["made_by"])
    read = load_annotations(labels)
    assert len(read) == 4 and len(read[0].negatives) >= 1
    run = tmp_path / "run"
    args = ["train", "--preset", "r18x025", "--labels", str(labels), "--output", str(run), "--image-size", "128",
            "--batch-size", "2", "--max-iters", "3", "--workers", "0", "--no-progress", "--log-every", "1",
            "--crop-scales", "1.0"]
    assert main(args) == 0
    losses = [json.loads(x)["loss"] for x in (run / "log.jsonl").read_text().splitlines() if '"train"' in x]
    assert len(losses) == 3 and np.isfinite(losses).all()
