"""``export --check`` / ``verify_export``: hand-made detections with known verdicts, then
real exports of the real third-party checkpoint (one faithful, one subtly broken)."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from retinaface_polynl.detector import Detections, Detector
from retinaface_polynl.export.verify import (
    TOLERANCES,
    Tolerance,
    compare_faces,
    format_checks,
    landmark_errors,
    tolerance_for,
    verify_export,
)

pytest.importorskip("onnxruntime")

TOL = Tolerance(min_iou=0.9, max_score_diff=0.1, max_landmark_error=0.05)


def faces(boxes, scores, shift=0.0):
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    landmarks = np.repeat(centre[:, None, :], 5, axis=1) + np.float32(shift)
    return Detections(boxes, np.asarray(scores, np.float32), landmarks.astype(np.float32))


def test_identical_faces_agree():
    d = faces([[10, 10, 50, 50], [100, 100, 130, 140]], [0.9, 0.7])
    c = compare_faces(d, d, 0.5, TOL)
    assert c.ok and c.faces == (2, 2) and c.lost == 0 and c.min_iou == 1.0 and c.max_landmark_error == 0.0


def test_face_crossing_the_threshold_within_the_score_tolerance_is_not_lost():
    want = faces([[10, 10, 50, 50]], [0.55])
    got = faces([[10, 10, 50, 50]], [0.47])  # below 0.5, above 0.5 - 0.1
    c = compare_faces(want, got, 0.5, TOL)
    assert c.ok and c.faces == (1, 0) and abs(c.max_score_diff - 0.08) < 1e-6


def test_face_that_drops_further_than_the_tolerance_is_lost():
    c = compare_faces(faces([[10, 10, 50, 50]], [0.55]), faces([[10, 10, 50, 50]], [0.30]), 0.5, TOL)
    assert not c.ok and c.lost == 1 and "PyTorch face at (10,10,50,50)" in c.problems[0]


def test_extra_exported_face_is_lost_and_moved_box_is_caught():
    want = faces([[10, 10, 50, 50]], [0.9])
    got = faces([[10, 10, 50, 50], [200, 200, 240, 240]], [0.9, 0.8])
    c = compare_faces(want, got, 0.5, TOL)
    assert c.lost == 1 and "exported face at (200,200,240,240)" in c.problems[0]
    moved = faces([[14, 10, 54, 50]], [0.9])  # IoU 36*40 / (2*1600 - 1440) = 0.818
    c = compare_faces(want, moved, 0.5, TOL)
    assert c.lost == 2 and not c.ok  # each side's face lacks a counterpart at IoU >= 0.9


def test_landmark_error_is_relative_to_face_size():
    want = faces([[0, 0, 40, 40], [0, 0, 400, 400]], [0.9, 0.9])
    got = faces([[0, 0, 40, 40], [0, 0, 400, 400]], [0.9, 0.9], shift=(3.0, 4.0))  # 5 px everywhere
    np.testing.assert_allclose(landmark_errors(want, got, np.array([0, 1])), [5 / 40, 5 / 400], rtol=1e-6)
    c = compare_faces(want, got, 0.5, TOL)
    assert c.max_landmark_error == pytest.approx(0.125) and not c.ok
    assert any("landmark moved by 12.50 %" in p for p in c.problems)


def test_tolerances_per_precision():
    assert set(TOLERANCES) == {"fp32", "fp16", "int8", "int8-qdq"}
    assert tolerance_for("fp32").min_iou >= tolerance_for("fp16").min_iou > tolerance_for("int8").min_iou
    with pytest.raises(ValueError, match="no tolerance known for precision 'int4'"):
        tolerance_for("int4")


# -- real exports --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mnet(mnet_checkpoint):
    return Detector(weights=mnet_checkpoint)


def test_detector_from_in_memory_model_equals_from_file(mnet, dlib_faces_dir, dlib_testing):
    image = dlib_faces_dir / next(iter(dlib_testing))
    from_model = Detector(model=mnet.model)
    a, b = mnet.detect(image), from_model.detect(image)
    assert len(a) >= 2 and np.array_equal(a.boxes, b.boxes) and np.array_equal(a.landmarks, b.landmarks)
    with pytest.raises(ValueError, match="model= alone"):
        Detector(model=mnet.model, preset="mnet025")


def test_subtly_broken_export_is_caught(mnet, dlib_faces_dir, dlib_testing, tmp_path):
    """An export of a model whose landmark head drifted a little (as a wrong layer order or
    a bad conversion would make it) finds the same boxes but fails on landmarks."""
    from retinaface_polynl.export import export_onnx

    broken = copy.deepcopy(mnet.model)
    with torch.no_grad():
        for conv in broken.landmark_head.convs:
            conv.bias.add_(0.5)  # half a variance unit: ~5 % of the anchor size
    path = export_onnx(broken, tmp_path / "broken.onnx", mnet.config)
    exported = Detector(weights=path, intra_op_threads=2)
    images = [dlib_faces_dir / n for n in dlib_testing]
    checks = verify_export(mnet, exported, images)
    report = format_checks(checks, tolerance_for("fp32"))
    assert not any(c.ok for c in checks if c.faces[0]), report
    assert all(c.lost == 0 and c.min_iou > 0.999 for c in checks), report  # boxes untouched
    assert "landmark moved by" in report and "disagree" in report


def test_cli_check_passes_for_a_faithful_export(mnet_checkpoint, dlib_faces_dir, tmp_path, capsys):
    from retinaface_polynl.cli import main

    out = tmp_path / "m.onnx"
    photo = next(dlib_faces_dir.glob("2008_*.jpg"))
    code = main(["export", "--weights", str(mnet_checkpoint), "--output", str(out), "--check", str(photo)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "checking m.onnx against PyTorch on 1 photo(s)" in printed and "all agree" in printed
    assert photo.name in printed


def test_cli_check_with_missing_image_names_it_and_keeps_the_file(mnet_checkpoint, tmp_path, capsys):
    from retinaface_polynl.cli import main

    out = tmp_path / "m.onnx"
    missing = tmp_path / "nope.jpg"
    code = main(["export", "--weights", str(mnet_checkpoint), "--output", str(out), "--check", str(missing)])
    err = capsys.readouterr().err
    assert code == 2 and "check images" in err and "nope.jpg" in err
    assert out.is_file()  # the export itself is not lost


@pytest.mark.parametrize("shape", [(375, 500), (480, 640), (300, 1500), (2000, 3000), (1500, 301), (1037, 1921)])
def test_check_hands_both_detectors_the_exported_files_own_scale(shape):
    """The default-size check gives the reference (which records no input rule) a size and cap
    under which it resizes the picture by exactly the exported file's scale, also where the
    long-side cap binds (a short side rounded to an integer missed the cap by a pixel there)."""
    from retinaface_polynl.export.verify import same_input
    from retinaface_polynl.pipeline import resize_scale

    exported = Detector()  # the shipped rule: short side at least 480, long side <= 1024
    assert exported.input_rule()[1:] == (1024, True)
    image = np.zeros((*shape, 3), np.uint8)
    size, cap = same_input(exported, image)
    want = exported.input_scale(*shape)
    assert resize_scale(*shape, size, cap, False) == pytest.approx(want, rel=1e-12)
    h, w = shape
    assert (round(h * want), round(w * want)) == (round(h * resize_scale(h, w, size, cap, False)),
                                                  round(w * resize_scale(h, w, size, cap, False)))
