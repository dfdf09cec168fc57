"""Score distillation from a teacher detector (``retinaface_polynl.train.distill``)."""
from __future__ import annotations

import json

import pytest
import torch

from retinaface_polynl.checkpoints import save_checkpoint
from retinaface_polynl.cli import main
from retinaface_polynl.models.retinaface import RetinaFace
from retinaface_polynl.presets import get_preset
from retinaface_polynl.train.distill import distillation_loss, load_teacher


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
    for name, extra in (("all", []), ("skip", ["--distill-skip-faces"]), ("raise", ["--distill-raise-faces"])):
        assert main([*common, *extra, "--output", str(tmp_path / name)]) == 0
        firsts[name] = json.loads((tmp_path / name / "log.jsonl").read_text().splitlines()[0])
        saved = json.loads((tmp_path / name / "config.json").read_text())
        assert saved["distill_skip_faces"] is (name == "skip")
        assert saved["distill_raise_faces"] is (name == "raise")
    # an untrained student is unsure of every face, so a face-finding teacher raises most of
    # them: raise keeps some of the face anchors that skip drops
    assert firsts["skip"]["distill"] < firsts["raise"]["distill"] <= firsts["all"]["distill"]
    for name in ("skip", "raise"):
        for part in ("box", "cls", "landmark"):
            assert firsts[name][part] == pytest.approx(firsts["all"][part], rel=1e-5)
    assert main([*common, "--distill-skip-faces", "--distill-raise-faces", "--output", str(tmp_path / "both")]) != 0
    assert "exclude each other" in capsys.readouterr().err and not (tmp_path / "both" / "log.jsonl").exists()
