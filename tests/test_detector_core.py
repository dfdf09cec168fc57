"""Single-scale detection with a real checkpoint on real, annotated photos."""
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from torchvision.ops import box_iou

from retinaface_polynl import Detections, Detector


def match(gt_boxes, det_boxes, iou=0.4):
    """(faces found, false positives) with a one-to-one greedy match at IoU >= iou."""
    if len(det_boxes) == 0:
        return 0, 0
    ious = box_iou(torch.as_tensor(gt_boxes, dtype=torch.float32), torch.as_tensor(det_boxes, dtype=torch.float32))
    found = set()
    taken = set()
    for d in range(ious.shape[1]):  # detections are sorted by score
        col = ious[:, d].clone()
        col[list(found)] = -1
        g = int(col.argmax())
        if col[g] >= iou:
            found.add(g)
            taken.add(d)
    return len(found), ious.shape[1] - len(taken)


@pytest.fixture(scope="module")
def mnet(mnet_checkpoint):
    return Detector(weights=mnet_checkpoint)


def test_third_party_checkpoint_finds_the_annotated_faces(mnet, dlib_faces_dir, dlib_testing):
    total = found = false_pos = 0
    for name, boxes in dlib_testing.items():
        det = mnet.detect(cv2.imread(str(dlib_faces_dir / name)))
        f, fp = match(boxes, det.boxes)
        total, found, false_pos = total + len(boxes), found + f, false_pos + fp
    assert total == 25
    assert found >= 0.9 * total, f"found {found}/{total}"
    assert false_pos <= 2, f"{false_pos} false positives"


def test_results_are_in_original_pixels_whatever_the_input_size(mnet, dlib_faces_dir):
    image = cv2.imread(str(dlib_faces_dir / "2008_002506.jpg"))
    full = mnet.detect(image)
    half = mnet.detect(image, size=int(min(image.shape[:2]) * 0.75))
    assert len(full) == len(half) == 3
    iou = box_iou(torch.from_numpy(full.boxes), torch.from_numpy(half.boxes)).max(1).values
    assert (iou > 0.8).all()


def test_colour_order_path_and_array_agree(mnet, dlib_faces_dir):
    path = dlib_faces_dir / "2008_002470.jpg"
    bgr = cv2.imread(str(path))
    a = mnet.detect(bgr)
    b = mnet.detect(np.ascontiguousarray(bgr[:, :, ::-1]), rgb=True)
    c = mnet.detect(str(path))
    np.testing.assert_allclose(a.boxes, b.boxes)
    np.testing.assert_allclose(a.boxes, c.boxes)
    d = a.to_dict()
    assert set(d) == {"boxes", "scores", "landmarks"}
    assert len(d["landmarks"][0]) == 5 and len(d["landmarks"][0][0]) == 2
    json.dumps(d)


def test_faces_can_be_iterated_and_indexed(mnet, dlib_faces_dir):
    det = mnet.detect(str(dlib_faces_dir / "2008_004176.jpg"))
    faces = list(det)
    assert len(faces) == len(det) >= 5
    for i, face in enumerate(faces):
        np.testing.assert_array_equal(face.box, det.boxes[i])
        np.testing.assert_array_equal(face.landmarks, det.landmarks[i])
        assert face.score == pytest.approx(float(det.scores[i]))
    assert det[0].score == max(f.score for f in faces) and det[-1].score == faces[-1].score
    x1, y1, x2, y2 = det[0].box  # a box unpacks as x1, y1, x2, y2
    assert x2 > x1 and y2 > y1
    with pytest.raises(IndexError):
        det[len(det)]
    with pytest.raises(TypeError, match="select"):
        det[det.scores > 0.5]
    assert list(Detections.empty()) == []


def test_landmarks_fall_inside_their_boxes(mnet, dlib_faces_dir):
    det = mnet.detect(cv2.imread(str(dlib_faces_dir / "2008_004176.jpg")))
    assert len(det) >= 5
    x1, y1, x2, y2 = (det.boxes[:, i, None] for i in range(4))
    lx, ly = det.landmarks[..., 0], det.landmarks[..., 1]
    w, h = x2 - x1, y2 - y1
    assert ((lx > x1 - 0.1 * w) & (lx < x2 + 0.1 * w) & (ly > y1 - 0.1 * h) & (ly < y2 + 0.1 * h)).all()
    # left eye is left of the right eye, eyes above the mouth
    assert (det.landmarks[:, 0, 0] < det.landmarks[:, 1, 0]).all()
    assert (det.landmarks[:, 0, 1] < det.landmarks[:, 3, 1]).all()


def test_no_weights_and_no_preset_is_a_clear_error_or_the_default(monkeypatch):
    import retinaface_polynl.detector as detector_module

    monkeypatch.setattr(detector_module, "default_weights_path", lambda: None)
    with pytest.raises(ValueError, match="weights"):
        Detector()


def test_cuda_requested_without_cuda_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match="CUDA is not available"):
        Detector(preset="r18x025", device="cuda")


def test_unknown_device_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        Detector(preset="r18x025", device="gpu")


def test_sizes_below_one_pixel_and_thresholds_outside_0_1_are_refused():
    """They used to shrink the picture to 1 px (or keep no score) and silently find no face."""
    for kwargs in ({"size": 0}, {"max_size": -3}, {"threshold": 2.0}, {"nms_threshold": 1.5}):
        with pytest.raises(ValueError, match="size|threshold"):
            Detector(preset="r18x025", **kwargs)
    det = Detector(preset="r18x025")
    image = np.full((48, 64, 3), 120, np.uint8)
    for kwargs in ({"size": 0}, {"max_size": -1}, {"threshold": -0.1}, {"threshold": 5}):
        for call in (det.detect, det.detect_batch, lambda im, **kw: det.detect(im, tta="flip", **kw)):
            with pytest.raises(ValueError, match="size|threshold"):
                call(image, **kwargs)


def test_encoded_file_bytes_are_one_image():
    """Bytes used to be taken as a sequence of images ("expected a numpy image array, got int")."""
    from retinaface_polynl.detector import demo_dir

    det = Detector(preset="r18x025")
    data = (demo_dir() / "astronaut.jpg").read_bytes()
    want = det.detect(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), threshold=0.3)
    got = det.detect(data, threshold=0.3)
    np.testing.assert_array_equal(got.boxes, want.boxes)
    assert len(det.detect_batch([data, bytearray(data)])) == 2


def test_presets_size_must_be_positive(capsys):
    from retinaface_polynl.cli import main

    assert main(["presets", "r18x025", "--size", "0x5"]) == 2
    assert "--size must be positive" in capsys.readouterr().err


def test_module_entry_point_runs_the_cli():
    out = subprocess.run(
        [sys.executable, "-m", "retinaface_polynl", "presets", "r18x025_polynl", "--json"],
        capture_output=True, text=True, check=True,
    )
    rows = json.loads(out.stdout)
    assert rows[0]["name"] == "r18x025_polynl" and rows[0]["attention"] == "polynl"
    assert 0.5 < rows[0]["params_M"] < 2 and rows[0]["gflops"] > 0


def test_cli_reports_a_wrong_checkpoint_in_one_line(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"\x00" * 10)
    out = subprocess.run(
        [sys.executable, "-m", "retinaface_polynl", "detect", "whatever.jpg", "--weights", str(bad)],
        capture_output=True, text=True,
    )
    assert out.returncode != 0
    assert "bad.pth" in out.stderr and "Traceback" not in out.stderr


def test_preprocess_is_bgr_minus_mean_chw_and_padding_is_mean_colour():
    """The input contract recorded in exported files: BGR order kept, minus (104, 117, 123),
    CHW float32, zero (= mean colour) padding to a multiple of 32 at the bottom/right."""
    from retinaface_polynl.detector import pad_batch, preprocess

    rng = np.random.default_rng(0)
    bgr = rng.integers(0, 256, (37, 50, 3), dtype=np.uint8)
    x = preprocess(bgr)
    assert x.dtype == np.float32 and x.shape == (3, 37, 50)
    for c, mean in enumerate((104, 117, 123)):
        np.testing.assert_array_equal(x[c], bgr[:, :, c].astype(np.float32) - mean)
    np.testing.assert_array_equal(preprocess(bgr[:, ::-1]), x[:, :, ::-1])  # strided input
    batch = pad_batch([x])
    assert batch.shape == (1, 3, 64, 64)
    np.testing.assert_array_equal(batch[0, :, :37, :50], x)
    assert not batch[0, :, 37:].any() and not batch[0, :, :, 50:].any()
    aligned = preprocess(rng.integers(0, 256, (64, 96, 3), dtype=np.uint8))
    assert pad_batch([aligned]).shape == (1, 3, 64, 96) and np.shares_memory(pad_batch([aligned]), aligned)


def test_checkpoint_input_size_hint_applies_only_when_the_caller_chooses_none(tmp_path):
    """A checkpoint's ``inference`` entry (short side and long-side cap the model was trained
    for) sets the default input scale; any size the Detector or the call gives wins."""
    from retinaface_polynl.checkpoints import save_checkpoint
    from retinaface_polynl.models.retinaface import RetinaFace
    from retinaface_polynl.presets import get_preset

    model = RetinaFace(get_preset("r18x025"))
    save_checkpoint(tmp_path / "hint.pth", model, model.config, inference={"size": 480, "max_size": 1024})
    save_checkpoint(tmp_path / "plain.pth", model, model.config)
    hinted = Detector(weights=tmp_path / "hint.pth")
    assert (hinted.recommended_size, hinted.recommended_max_size) == (480, 1024)
    assert hinted.input_scale(338, 450) == 480 / 338  # small photos enlarged to the trained scale
    assert hinted.input_scale(1080, 1920) == 480 / 1080
    assert hinted.input_scale(480, 2000) == 1024 / 2000  # the long-side cap still holds
    assert hinted.input_scale(338, 450, max_size=2000) == 1.0  # the caller's choice replaces both
    assert hinted.input_scale(1080, 1920, size=720) == 720 / 1080
    assert Detector(weights=tmp_path / "hint.pth", size=600).input_scale(300, 400) == 2.0
    plain = Detector(weights=tmp_path / "plain.pth")
    assert (plain.recommended_size, plain.recommended_max_size) == (None, None)
    assert plain.input_scale(338, 450) == 1.0


def test_a_recorded_floor_enlarges_small_pictures_and_never_shrinks_large_ones(tmp_path):
    """``inference = {"min_size": S, "max_size": N}`` (the shipped weights: 480 / 1365): a
    picture whose short side is under S is enlarged to S, a larger one keeps its size, and the
    long side stays under N; ``min_size=`` / ``--min-size`` gives the same rule by hand, and a
    ``size`` the caller gives is the short side exactly."""
    from retinaface_polynl.checkpoints import save_checkpoint
    from retinaface_polynl.models.retinaface import RetinaFace
    from retinaface_polynl.pipeline import hint_rule, resize_scale
    from retinaface_polynl.presets import get_preset

    assert resize_scale(267, 400, 480, 1365, upscale_only=True) == 480 / 267
    assert resize_scale(480, 640, 480, 1365, upscale_only=True) == 1.0  # VGA enters as it is
    assert resize_scale(1080, 1920, 480, 1365, upscale_only=True) == 1365 / 1920  # the cap still holds
    assert resize_scale(1080, 1920, 480, None, upscale_only=False) == 480 / 1080
    assert hint_rule({"min_size": 480, "max_size": 1365}) == (480, 1365, True)
    assert hint_rule({"size": 640, "max_size": 1365}) == (640, 1365, False)
    assert hint_rule(None) == (None, None, False)

    model = RetinaFace(get_preset("r18x025"))
    save_checkpoint(tmp_path / "floor.pth", model, model.config, inference={"min_size": 480, "max_size": 1365})
    det = Detector(weights=tmp_path / "floor.pth", backend="torch")
    assert det.input_rule() == (480, 1365, True)
    assert det.describe_input() == "short side at least 480, long side <= 1365"
    assert det.input_scale(267, 400) == 480 / 267
    assert det.input_scale(480, 640) == 1.0 and det.input_scale(768, 1024) == 1.0
    assert det.input_scale(480, 640, size=640) == 640 / 480  # the caller's size: exactly
    assert det.input_scale(768, 1024, max_size=512) == 0.5  # the caller's cap replaces the rule
    # a VGA photo is not enlarged: the network sees 640 x 480 (here by the padded shape)
    vga = np.zeros((480, 640, 3), np.uint8)
    seen = []
    det.backend = (lambda run: (lambda batch: seen.append(batch.shape) or run(batch)))(det.backend)
    det.detect(vga)
    assert seen[-1][2:] == (480, 640)

    by_hand = Detector(weights=tmp_path / "floor.pth", backend="torch", min_size=640, max_size=2000)
    assert by_hand.input_rule() == (640, 2000, True) and by_hand.input_scale(480, 640) == 640 / 480
    assert by_hand.input_scale(1080, 1920) == 1.0 and by_hand.input_scale(480, 640, size=320) == 320 / 480
    with pytest.raises(ValueError, match="not both"):
        Detector(weights=tmp_path / "floor.pth", size=480, min_size=480)
    with pytest.raises(ValueError, match="positive"):
        Detector(weights=tmp_path / "floor.pth", min_size=0)
