"""Score distillation from a teacher detector (``retinaface_polynl.train.distill``)."""
from __future__ import annotations

import json

import pytest
import torch

from retinaface_polynl.checkpoints import save_checkpoint
from retinaface_polynl.cli import main
from retinaface_polynl.models.retinaface import RetinaFace
from retinaface_polynl.presets import get_preset
from retinaface_polynl.train.distill import (FeatureImitation, captured_features, distillation_loss, imitation_mask,
                                             load_teacher)


def _logits(face_prob: torch.Tensor) -> torch.Tensor:
    """(B, A) face probabilities -> (B, A, 2) logits with exactly those softmax probabilities."""
    p = face_prob.clamp(1e-6, 1 - 1e-6)
    return torch.stack([torch.log1p(-p), torch.log(p)], dim=-1)


def test_loss_is_the_kl_divergence_on_informative_anchors_only():
    teacher = _logits(torch.tensor([[0.9, 0.2, 0.001, 0.01]]))
    student = _logits(torch.tensor([[0.6, 0.2, 0.002, 0.03]]))
    # anchors 0 and 1 are informative (>= 0.05); 2 and 3 are background to both, and ignored
    p_t, p_s = torch.tensor([0.9, 0.2]), torch.tensor([0.6, 0.2])
    kl = (p_t * (p_t / p_s).log() + (1 - p_t) * ((1 - p_t) / (1 - p_s)).log()).sum()
    assert distillation_loss(student, teacher, normaliser=2) == pytest.approx(float(kl) / 2, rel=1e-4)
    assert float(distillation_loss(teacher, teacher, normaliser=1)) == pytest.approx(0.0, abs=1e-6)
    # what the two say of the certain-background anchors does not matter
    quieter = _logits(torch.tensor([[0.6, 0.2, 0.04, 0.0001]]))
    assert distillation_loss(quieter, teacher, 2) == pytest.approx(float(distillation_loss(student, teacher, 2)))
    # an anchor only the student fires on counts: that is how its false positives are taught away
    firing = _logits(torch.tensor([[0.9, 0.2, 0.5, 0.01]]))
    assert float(distillation_loss(firing, teacher, 1)) > 0.5


def test_gradient_descent_on_the_loss_moves_student_scores_to_the_teachers():
    teacher = _logits(torch.tensor([[0.95, 0.3, 0.01, 0.6]]))
    student = _logits(torch.tensor([[0.3, 0.8, 0.2, 0.1]])).requires_grad_(True)
    opt = torch.optim.SGD([student], lr=1.0)
    for _ in range(300):
        opt.zero_grad()
        distillation_loss(student, teacher, normaliser=1).backward()
        opt.step()
    got = student.detach().softmax(-1)[0, :, 1]
    assert torch.allclose(got[[0, 1, 3]], torch.tensor([0.95, 0.3, 0.6]), atol=0.02)
    assert got[2] < 0.06  # pushed down to where it stops being informative
    # nothing informative: zero, and still differentiable
    empty = distillation_loss(_logits(torch.full((1, 3), 0.001)).requires_grad_(True), _logits(torch.full((1, 3), 0.001)), 1)
    assert float(empty.detach()) == 0.0 and empty.requires_grad


def test_excluded_anchors_do_not_count():
    teacher = _logits(torch.tensor([[0.9, 0.2, 0.7]]))
    student = _logits(torch.tensor([[0.6, 0.5, 0.7]]))
    exclude = torch.tensor([[False, True, False]])
    only_first = distillation_loss(student[:, :1], teacher[:, :1], normaliser=1)
    assert distillation_loss(student, teacher, 1, exclude=exclude) == pytest.approx(float(only_first), rel=1e-5)
    assert float(distillation_loss(student, teacher, 1, exclude=torch.ones(1, 3, dtype=torch.bool))) == 0.0


@pytest.mark.parametrize("t", [0.2, 0.45])
def test_on_an_annotated_face_distillation_holds_the_score_at_the_documented_balance_unless_excluded(t):
    """Cross-entropy towards "face" plus W x distillation towards the teacher's t settles at
    (1 + W t) / (1 + W) (the module's docstring); with the anchor excluded it goes on to 1."""
    weight = 4.0
    teacher = _logits(torch.tensor([[t]]))
    for exclude, want in ((None, (1 + weight * t) / (1 + weight)), (torch.tensor([[True]]), None)):
        logits = _logits(torch.tensor([[0.5]])).requires_grad_(True)
        opt = torch.optim.SGD([logits], lr=0.5)
        for _ in range(2000):
            opt.zero_grad()
            ce = torch.nn.functional.cross_entropy(logits[0], torch.tensor([1]))
            (ce + weight * distillation_loss(logits, teacher, 1, exclude=exclude)).backward()
            opt.step()
        p = float(logits.detach().softmax(-1)[0, 0, 1])
        if want is None:
            assert p > 0.99
        else:
            assert p == pytest.approx(want, abs=0.005)



def test_raise_only_anchors_count_only_where_the_teacher_is_surer_of_the_face():
    """``raise_only``: an anchor stays while the teacher gives the face more than the student,
    drops out when it gives less or the same; anchors not marked are untouched."""
    teacher = _logits(torch.tensor([[0.9, 0.2, 0.7, 0.3]]))
    student = _logits(torch.tensor([[0.6, 0.5, 0.7, 0.8]]))
    marked = torch.tensor([[True, True, True, False]])
    # anchor 0 (teacher higher) stays, 1 (lower) and 2 (equal) go, 3 (not marked) stays
    want = distillation_loss(student[:, [0, 3]], teacher[:, [0, 3]], normaliser=1)
    assert distillation_loss(student, teacher, 1, raise_only=marked) == pytest.approx(float(want), rel=1e-5)
    assert distillation_loss(student, teacher, 1, raise_only=torch.zeros(1, 4, dtype=torch.bool)) == \
        pytest.approx(float(distillation_loss(student, teacher, 1)), rel=1e-6)


@pytest.mark.parametrize("t, start", [(0.2, 0.5), (0.9, 0.3)])
def test_on_an_annotated_face_raise_only_never_holds_the_score_below_the_label(t, start):
    """With ``raise_only`` a teacher unsure of an annotated face (t = 0.2) no longer holds it
    at (1 + W t) / (1 + W): the score follows cross-entropy alone, on to 1; a sure teacher
    (t = 0.9) still pulls a student that starts below it up faster than cross-entropy alone."""
    weight, teacher, marked = 4.0, _logits(torch.tensor([[t]])), torch.tensor([[True]])

    def descend(steps: int, distil: bool) -> float:
        logits = _logits(torch.tensor([[start]])).requires_grad_(True)
        opt = torch.optim.SGD([logits], lr=0.5)
        for _ in range(steps):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(logits[0], torch.tensor([1]))
            if distil:
                loss = loss + weight * distillation_loss(logits, teacher, 1, raise_only=marked)
            loss.backward()
            opt.step()
        return float(logits.detach().softmax(-1)[0, 0, 1])

    assert descend(2000, True) > 0.99
    if t < start:
        assert descend(5, True) == pytest.approx(descend(5, False), abs=1e-6)
    else:
        assert descend(5, True) > descend(5, False) + 0.01


def test_raise_min_drops_only_an_unsure_teachers_lift_on_background_anchors():
    """``raise_min``: on a background anchor the teacher's lift counts only where it is at least
    ``raise_min`` sure; its lowering counts everywhere; anchors matched to a face are untouched."""
    teacher = _logits(torch.tensor([[0.2, 0.2, 0.6, 0.1, 0.2]]))
    student = _logits(torch.tensor([[0.1, 0.1, 0.1, 0.4, 0.1]]))
    background = torch.tensor([[True, False, True, True, True]])
    # 0: unsure lift on background, dropped; 1: a face anchor, stays; 2: sure lift (0.6 >= 0.5),
    # stays; 3: the teacher lowers, stays; 4: dropped like 0
    want = distillation_loss(student[:, [1, 2, 3]], teacher[:, [1, 2, 3]], normaliser=1)
    got = distillation_loss(student, teacher, 1, background=background, raise_min=0.5)
    assert got == pytest.approx(float(want), rel=1e-5)
    # off (0) or no mask: everything counts
    full = float(distillation_loss(student, teacher, 1))
    assert distillation_loss(student, teacher, 1, background=background, raise_min=0.0) == pytest.approx(full)
    assert distillation_loss(student, teacher, 1, raise_min=0.5) == pytest.approx(full)
    from retinaface_polynl.train.config import default_train_config
    with pytest.raises(ValueError, match="give the teacher"):
        default_train_config("r18x025", distill_raise_min=0.3)


def test_a_hard_negative_the_teacher_half_believes_goes_to_background_with_raise_min():
    """A background anchor in the hard negatives, cross-entropy towards background, with a teacher
    at t = 0.2 and W = 4: plain distillation settles at W t / (1 + W) = 0.16 (the FDDB tail's
    hands score about this); with ``raise_min`` 0.3 the teacher lets it fall to background."""
    weight, teacher, background = 4.0, _logits(torch.tensor([[0.2]])), torch.tensor([[True]])

    def settle(raise_min: float) -> float:
        logits = _logits(torch.tensor([[0.5]])).requires_grad_(True)
        opt = torch.optim.SGD([logits], lr=0.5)
        for _ in range(2000):
            opt.zero_grad()
            ce = torch.nn.functional.cross_entropy(logits[0], torch.tensor([0]))
            (ce + weight * distillation_loss(logits, teacher, 1, background=background,
                                             raise_min=raise_min)).backward()
            opt.step()
        return float(logits.detach().softmax(-1)[0, 0, 1])

    assert settle(0.0) == pytest.approx(weight * 0.2 / (1 + weight), abs=0.005)
    assert settle(0.3) < 0.02


def test_teacher_with_other_anchors_is_refused(tmp_path):
    other = get_preset("r18x025").replace(min_sizes=((10, 20), (40, 80), (160, 320)))
    save_checkpoint(tmp_path / "other.pth", RetinaFace(other), other)
    with pytest.raises(ValueError, match="other.pth.*anchors"):
        load_teacher(tmp_path / "other.pth", get_preset("r18x025"))
    same = get_preset("r18x025")
    teacher = load_teacher(_saved(tmp_path / "same.pth", same), get_preset("r18x025_polynl"))
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())


def test_pytorch_retinaface_teacher_loads_for_our_student(mnet_checkpoint):
    teacher = load_teacher(mnet_checkpoint, get_preset("r18x025_polynl"))
    out = teacher(torch.zeros(1, 3, 64, 64))
    assert out.class_logits.shape == (1, (8 * 8 + 4 * 4 + 2 * 2) * 2, 2)


def _saved(path, config, seed=0):
    torch.manual_seed(seed)
    save_checkpoint(path, RetinaFace(config), config)
    return path


def test_training_with_a_teacher_logs_the_distillation_and_a_student_equal_to_it_gets_zero(
        dlib_faces_dir, tmp_path, monkeypatch):
    """A student started from the teacher's own weights, BatchNorm frozen (so both run the same
    function), starts with a distillation loss of exactly zero; a different student does not."""
    labels = dlib_faces_dir / "training_with_face_landmarks.xml"
    teacher = _saved(tmp_path / "teacher.pth", get_preset("r18x025"), seed=0)
    monkeypatch.chdir(tmp_path)  # the teacher given by a relative path is recorded as an absolute one
    common = ["train", "--preset", "r18x025", "--labels", str(labels), "--image-size", "128", "--batch-size", "2",
              "--max-iters", "2", "--workers", "0", "--lr", "0.01", "--no-progress", "--log-every", "1",
              "--freeze-bn", "--distill", "teacher.pth", "--distill-weight", "2"]
    assert main([*common, "--output", str(tmp_path / "same"), "--weights", str(teacher)]) == 0
    first = json.loads((tmp_path / "same" / "log.jsonl").read_text().splitlines()[0])
    assert first["distill"] == pytest.approx(0.0, abs=1e-6)
    assert first["loss"] == pytest.approx(2 * first["box"] + first["cls"] + first["landmark"], rel=1e-4)

    student = _saved(tmp_path / "student.pth", get_preset("r18x025"), seed=1)
    assert main([*common, "--output", str(tmp_path / "other"), "--weights", str(student)]) == 0
    first = json.loads((tmp_path / "other" / "log.jsonl").read_text().splitlines()[0])
    assert first["distill"] > 0.01
    assert first["loss"] == pytest.approx(2 * first["box"] + first["cls"] + first["landmark"] + 2 * first["distill"],
                                          rel=1e-4)
    saved = json.loads((tmp_path / "other" / "config.json").read_text())
    assert saved["distill_teacher"] == str(teacher) and saved["distill_weight"] == 2.0


def test_skip_faces_flag_is_recorded_and_takes_the_faces_out_of_the_distillation(dlib_faces_dir, mnet_checkpoint,
                                                                                  tmp_path, capsys):
    """``--distill-skip-faces``: the same first batch, the same student and (real, face-finding)
    teacher, a smaller distillation loss (its face anchors no longer count) and the same
    supervised parts."""
    labels = dlib_faces_dir / "training_with_face_landmarks.xml"
    teacher = mnet_checkpoint
    student = _saved(tmp_path / "student.pth", get_preset("r18x025"), seed=1)
    common = ["train", "--preset", "r18x025", "--labels", str(labels), "--image-size", "128", "--batch-size", "2",
              "--max-iters", "1", "--workers", "0", "--lr", "0.01", "--no-progress", "--log-every", "1", "--seed", "3",
              "--freeze-bn", "--distill", str(teacher), "--distill-weight", "2", "--weights", str(student)]
    firsts = {}
    for name, extra in (("all", []), ("skip", ["--distill-skip-faces"]), ("raise", ["--distill-raise-faces"]),
                        ("rmin", ["--distill-raise-min", "0.9"])):
        assert main([*common, *extra, "--output", str(tmp_path / name)]) == 0
        firsts[name] = json.loads((tmp_path / name / "log.jsonl").read_text().splitlines()[0])
        saved = json.loads((tmp_path / name / "config.json").read_text())
        assert saved["distill_skip_faces"] is (name == "skip")
        assert saved["distill_raise_faces"] is (name == "raise")
        assert saved["distill_raise_min"] == (0.9 if name == "rmin" else 0.0)
    # an untrained student is unsure of every face, so a face-finding teacher raises most of
    # them: raise keeps some of the face anchors that skip drops
    assert firsts["skip"]["distill"] < firsts["raise"]["distill"] <= firsts["all"]["distill"]
    # the untrained student's background anchors the teacher would lift, less surely than 0.9, drop out
    assert firsts["rmin"]["distill"] < firsts["all"]["distill"]
    for name in ("skip", "raise", "rmin"):
        for part in ("box", "cls", "landmark"):
            assert firsts[name][part] == pytest.approx(firsts["all"][part], rel=1e-5)
    assert main([*common, "--distill-skip-faces", "--distill-raise-faces", "--output", str(tmp_path / "both")]) != 0
    assert "exclude each other" in capsys.readouterr().err and not (tmp_path / "both" / "log.jsonl").exists()
    assert main([*common, "--distill-raise-min", "1.5", "--output", str(tmp_path / "bad")]) != 0
    assert "distill_raise_min is a probability" in capsys.readouterr().err


# -- feature imitation (--distill-features) ----------------------------------------------------


def test_imitation_mask_marks_the_positions_of_faces_and_of_what_the_teacher_calls_a_face():
    # two levels (2 x 2 and 1 x 1), 2 anchors per position: 10 anchors, in the heads' order
    probs = torch.full((1, 10), 0.01)
    probs[0, 3] = 0.3  # level 0, row 0, column 1, second anchor
    faces = torch.zeros(1, 10, dtype=torch.bool)
    faces[0, 8] = True  # level 1's only position, first anchor
    masks = imitation_mask(_logits(probs), faces, [(2, 2), (1, 1)])
    assert [tuple(m.shape) for m in masks] == [(1, 2, 2), (1, 1, 1)]
    assert masks[0].tolist() == [[[0.0, 1.0], [0.0, 0.0]]] and masks[1].tolist() == [[[1.0]]]
    with pytest.raises(ValueError, match="tile"):
        imitation_mask(_logits(probs), faces, [(2, 2), (2, 1)])


def test_feature_imitation_is_the_masked_mean_squared_difference_after_the_adapter():
    torch.manual_seed(0)
    imitation = FeatureImitation(student_width=4, teacher_width=4, num_levels=2)
    for conv in imitation.adapters:  # identity adapters: the loss is then the plain difference
        torch.nn.init.zeros_(conv.bias)
        conv.weight.data.copy_(torch.eye(4).view(4, 4, 1, 1))
    student = [torch.randn(1, 4, 2, 2), torch.randn(1, 4, 1, 1)]
    teacher = [torch.randn(1, 4, 2, 2), torch.randn(1, 4, 1, 1)]
    masks = [torch.tensor([[[1.0, 0.0], [0.0, 1.0]]]), torch.tensor([[[1.0]]])]
    imitation.requires_grad_(False)
    want = ((student[0][0, :, 0, 0] - teacher[0][0, :, 0, 0]).pow(2).mean()
            + (student[0][0, :, 1, 1] - teacher[0][0, :, 1, 1]).pow(2).mean()
            + (student[1][0, :, 0, 0] - teacher[1][0, :, 0, 0]).pow(2).mean()) / 3
    assert float(imitation(student, teacher, masks)) == pytest.approx(float(want), rel=1e-5)
    assert float(imitation(teacher, teacher, masks)) == pytest.approx(0.0, abs=1e-7)
    # what the unmasked positions hold does not matter
    other = [student[0].clone(), student[1]]
    other[0][0, :, 0, 1] += 100
    assert float(imitation(other, teacher, masks)) == pytest.approx(float(want), rel=1e-5)
    assert float(imitation(student, teacher, [torch.zeros(1, 2, 2), torch.zeros(1, 1, 1)])) == 0.0
    # adapters of other widths map the student's width to the teacher's
    wide = FeatureImitation(student_width=8, teacher_width=4, num_levels=2)
    loss = wide([torch.randn(1, 8, 2, 2), torch.randn(1, 8, 1, 1)], teacher, masks)
    loss.backward()
    assert all(c.weight.grad is not None for c in wide.adapters)
    with pytest.raises(ValueError, match="levels"):
        wide([torch.randn(1, 8, 2, 2)], teacher, masks)


def test_captured_features_are_what_the_heads_read_and_the_hooks_go_away():
    model = RetinaFace(get_preset("r18x025")).eval()
    images = torch.randn(1, 3, 64, 96)
    with torch.no_grad(), captured_features(model) as features:
        out = model(images)
    want = model.features(images)
    assert len(features) == len(want) == 3
    for got, ref in zip(features, want):
        torch.testing.assert_close(got, ref)
    torch.testing.assert_close(model.heads(features).class_logits, out.class_logits)
    with torch.no_grad():
        model(images)
    assert len(features) == 3  # nothing captured after the block


def _imitation_args(labels, teacher, out, *extra):
    return ["train", "--preset", "r18x025", "--labels", str(labels), "--output", str(out), "--image-size", "128",
            "--batch-size", "1", "--max-iters", "4", "--save-every", "2", "--workers", "0", "--lr", "0.01",
            "--deterministic", "--seed", "5", "--no-progress", "--log-every", "1", "--distill", str(teacher),
            "--distill-weight", "2", "--distill-features", "3", *extra]


def test_training_with_feature_imitation_logs_it_and_resumes_exactly(dlib_faces_dir, tmp_path, training_killed_at):
    """``--distill-features W``: the loss is the sum of its logged parts, the adapters travel
    in the training checkpoint (never in the model), and a run stopped and resumed ends where
    an uninterrupted one does, adapters included."""

    labels = dlib_faces_dir / "training_with_face_landmarks.xml"
    teacher = _saved(tmp_path / "teacher.pth", get_preset("r18x025_polynl"), seed=7)
    assert main(_imitation_args(labels, teacher, tmp_path / "a")) == 0
    first = json.loads((tmp_path / "a" / "log.jsonl").read_text().splitlines()[0])
    assert first["features"] > 0
    assert first["loss"] == pytest.approx(2 * first["box"] + first["cls"] + first["landmark"] + 2 * first["distill"]
                                          + 3 * first["features"], rel=1e-4)
    assert json.loads((tmp_path / "a" / "config.json").read_text())["distill_features"] == 3.0
    full = torch.load(tmp_path / "a" / "last.pth", map_location="cpu", weights_only=True)
    assert set(full["feature_adapters"]) == {f"adapters.{i}.{p}" for i in range(3) for p in ("weight", "bias")}
    assert full["feature_adapters"]["adapters.0.weight"].shape == (64, 64, 1, 1)
    assert not any("adapter" in k for k in full["model"])

    with training_killed_at(2):
        assert main(_imitation_args(labels, teacher, tmp_path / "b")) == 130
    assert main(_imitation_args(labels, teacher, tmp_path / "b", "--resume", "auto")) == 0
    resumed = torch.load(tmp_path / "b" / "last.pth", map_location="cpu", weights_only=True)
    assert resumed["iteration"] == 4
    for part in ("model", "feature_adapters"):
        for name, value in full[part].items():
            torch.testing.assert_close(resumed[part][name], value, rtol=0, atol=0, msg=name)


def test_feature_imitation_needs_a_teacher_and_a_run_written_with_it(dlib_faces_dir, tmp_path, capsys):
    labels = dlib_faces_dir / "training_with_face_landmarks.xml"
    teacher = _saved(tmp_path / "teacher.pth", get_preset("r18x025"), seed=7)
    args = _imitation_args(labels, teacher, tmp_path / "x")
    without_teacher = [a for i, a in enumerate(args) if a != "--distill" and args[i - 1] != "--distill"]
    assert main(without_teacher) == 2
    assert "--distill TEACHER" in capsys.readouterr().err
    plain = [a for i, a in enumerate(args) if a != "--distill-features" and args[i - 1] != "--distill-features"]
    assert main([*plain, "--max-iters", "2"]) == 0
    assert main([*args, "--resume", str(tmp_path / "x" / "last.pth")]) == 2
    err = capsys.readouterr().err
    assert "last.pth" in err and "without feature imitation" in err


def _scrfd_file(shared_data, name):
    path = shared_data / "weights_thirdparty" / "scrfd" / name
    if not path.is_file():
        pytest.skip(f"teacher file not available: {path} is absent")
    if path.suffix == ".param":
        pytest.importorskip("ncnn", reason="the ncnn package is not installed (pip install ncnn)")
    return path


@pytest.mark.parametrize("name", ["scrfd_2.5g_kps-opt2.param", "scrfd_2.5g_bnkps_shape640x640.onnx"])
def test_scrfd_scores_land_on_our_anchors_over_real_faces(shared_data, name):
    """A real dlib photo as a 640x640 training crop: SCRFD's face scores, resampled to our anchors,
    are >= 0.5 only on anchors whose box overlaps a dlib face, and every dlib face has such an anchor."""
    import numpy as np

    from retinaface_polynl.data import read_dlib_xml
    from retinaface_polynl.data.augment import FaceSample, pad_to_square, resize
    from retinaface_polynl.data.dataset import sample_to_tensors
    from retinaface_polynl.media import read_image
    from retinaface_polynl.train.distill import ScrfdScoreTeacher, load_teacher
    from widerface_eval import box_iou

    dlib = shared_data / "faces_dlib"
    if not (dlib / "testing.xml").is_file():
        pytest.skip(f"real data not available: {dlib} is absent")
    config = get_preset("r18x025")
    teacher = load_teacher(_scrfd_file(shared_data, name), config)
    assert isinstance(teacher, ScrfdScoreTeacher)
    record = next(r for r in read_dlib_xml(dlib / "testing.xml") if r.path.name == "2008_002470.jpg")
    sample = FaceSample(read_image(record.path), record.boxes, record.landmarks, record.has_landmarks, record.ignore)
    sample = resize(pad_to_square(sample), 640, 640)
    image, target = sample_to_tensors(sample)
    logits = teacher(image[None]).class_logits
    model = RetinaFace(config)
    anchors = model.anchor_generator.for_image(640, 640)
    assert logits.shape == (1, anchors.shape[0], 2)
    face = logits.softmax(-1)[0, :, 1].numpy()
    sure = anchors[face >= 0.5].numpy()
    boxes = np.concatenate([sure[:, :2] - sure[:, 2:] / 2, sure[:, :2] + sure[:, 2:] / 2], 1)
    faces = target["boxes"].numpy()
    assert len(boxes) >= len(faces)
    iou = box_iou(boxes, faces)
    assert (iou.max(1) >= 0.3).all()  # no sure anchor off the faces
    assert (iou.max(0) >= 0.3).all()  # every face has a sure anchor
    # the loss runs on it like on a RetinaFace teacher's logits
    student = model(image[None]).class_logits
    assert torch.isfinite(distillation_loss(student, logits, 10.0))


def test_scrfd_teacher_refuses_other_anchors_and_feature_imitation(shared_data):
    from dataclasses import replace

    from retinaface_polynl.train.distill import load_teacher

    path = _scrfd_file(shared_data, "scrfd_2.5g_bnkps_shape640x640.onnx")
    config = get_preset("r18x025")
    with pytest.raises(ValueError, match="anchors"):
        load_teacher(path, replace(config, min_sizes=((10, 20), (32, 64), (128, 256))))
    teacher = load_teacher(path, config)
    with pytest.raises(ValueError, match="feature imitation"):
        teacher.config


def test_training_run_distils_scrfd(shared_data, tmp_path):
    """--distill naming SCRFD's ONNX file: a real 3-iteration run whose log carries a finite distillation term."""
    path = _scrfd_file(shared_data, "scrfd_2.5g_bnkps_shape640x640.onnx")
    dlib = shared_data / "faces_dlib"
    if not (dlib / "training.xml").is_file():
        pytest.skip(f"real data not available: {dlib} is absent")
    out = tmp_path / "run"
    args = ["train", "--preset", "r18x025", "--labels", str(dlib / "training.xml"), "--output", str(out),
            "--image-size", "128", "--batch-size", "2", "--max-iters", "3", "--workers", "0", "--no-progress",
            "--log-every", "1", "--distill", str(path), "--distill-weight", "2"]
    assert main(args) == 0
    logged = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    train = [x for x in logged if x.get("type") == "train"]
    assert len(train) == 3 and all(x["distill"] > 0 and x["distill"] < 1e3 for x in train)
