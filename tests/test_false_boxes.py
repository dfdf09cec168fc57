"""scripts/false_boxes.py: the classes of the false boxes that outrank a detector's last FDDB faces,
on hand-made boxes with known answers, and the whole script on FDDB fold 8 when the shared data
and the teachers' runtimes are here."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import false_boxes as F  # noqa: E402

pytestmark = pytest.mark.torch  # eval_fddb_holdout (imported by the script) needs torch


def test_match_takes_each_face_once_in_score_order():
    gt = np.array([[0, 0, 10, 10], [100, 100, 120, 120]], np.float32)
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [100, 100, 120, 120], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.5, 0.9, 0.4, 0.8], np.float32)
    true, best = F.greedy_match(gt, boxes, scores)
    # the 0.9 box takes the first face; the 0.5 box on it is a second box (true False, IoU 1.0)
    assert true.tolist() == [False, True, True, False]
    np.testing.assert_allclose(best, [1.0, 9 / 11, 1.0, 0.0], atol=1e-6)
    true, best = F.greedy_match(np.zeros((0, 4), np.float32), boxes, scores)
    assert not true.any() and not best.any()


def test_classes_and_width_bins():
    assert F.classify(0.7, 0.0) == "second box"
    assert F.classify(0.35, 0.9) == "loose box"
    assert F.classify(0.1, 0.5) == "unannotated face"
    assert F.classify(0.1, 0.39) == "no face"
    assert [F.width_bin(w) for w in (5, 19.9, 20, 39, 40, 400)] == ["0-20", "0-20", "20-40", "20-40", "40+", "40+"]


def test_false_boxes_cut_and_counts(tmp_path):
    """Two photos, three faces: the ranking reaches recall 2/3 at 0.7; above it one false box of
    each kind but a second box."""
    import cv2

    pics = tmp_path / "originalPics"
    pics.mkdir()
    for n in ("a", "b"):
        cv2.imwrite(str(pics / f"{n}.jpg"), np.zeros((200, 200, 3), np.uint8))
    gt = {"a": np.array([[10, 10, 60, 60], [100, 100, 150, 150]], np.float32),
          "b": np.array([[20, 20, 70, 70]], np.float32)}
    teachers = {"a": np.zeros((0, 4), np.float32), "b": np.array([[150, 150, 175, 175]], np.float32)}
    answers = {
        "a": (np.array([[10, 10, 60, 60], [100, 112, 150, 162], [0, 150, 10, 160]], np.float32), [0.95, 0.8, 0.3]),
        "b": (np.array([[20, 20, 70, 70], [150, 150, 175, 175], [5, 5, 55, 55]], np.float32), [0.7, 0.75, 0.9]),
    }

    class Fake:
        def detect(self, image):
            from retinaface_polynl.detector import Detections

            name = "a" if Fake.calls % 2 == 0 else "b"
            Fake.calls += 1
            boxes, scores = answers[name]
            return Detections(boxes, np.asarray(scores, np.float32), np.zeros((len(boxes), 5, 2), np.float32))

    Fake.calls = 0
    r = F.false_boxes(Fake(), tmp_path, gt, teachers, recall=0.6)
    # ranked: 0.95 T(a), 0.9 F(b, IoU 0.32 with b's face: loose), 0.8 T(a, IoU 0.63), 0.75 F(b: teacher face)
    # -> recall 2/3 at 0.8; above it the 0.9 loose box only
    assert r["cut"] == pytest.approx(0.8) and r["false above cut"] == 1
    assert r["classes"]["loose box"]["40+"] == 1
    Fake.calls = 0
    r = F.false_boxes(Fake(), tmp_path, gt, teachers, recall=1.0)
    assert r["cut"] == pytest.approx(0.7) and r["false above cut"] == 2
    assert r["classes"]["unannotated face"]["20-40"] == 1 and r["no face boxes"] == []


DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.mark.skipif(not (DATA / "faces_fddb").is_dir(), reason="the shared data (FDDB) is not beside the repository")
def test_script_on_fddb_fold_8_with_cached_teachers(tmp_path):
    """The whole script on the real fold, the shipped weights, teachers taken from a cache file (so
    that neither ncnn nor their runtimes are needed): every false box is classified."""
    from eval_fddb_holdout import fddb_face_boxes
    from widerface_eval import load_fddb_annotations

    names = list(fddb_face_boxes(load_fddb_annotations(DATA / "faces_fddb", folds="8")))
    cache = tmp_path / "teachers.json"
    cache.write_text(json.dumps({n: [] for n in names}))
    out = tmp_path / "out.json"
    assert F.main(["--data", str(DATA), "--teacher-cache", str(cache), "--json", str(out), "--recall", "0.5"]) == 0
    r = json.loads(out.read_text())["models"]["shipped"]["fddb"]
    assert r["faces"] == 511 and r["true above cut"] >= 0.5 * 511
    assert sum(sum(c.values()) for c in r["classes"].values()) == r["false above cut"]
    assert r["classes"]["unannotated face"] == {"0-20": 0, "20-40": 0, "40+": 0}  # no teacher faces given


def test_off_faces_on_train_reads_the_yolo_folder_and_counts_boxes_off_every_face(tmp_path):
    """Two training photos in YOLO's layout (one face each, 100x100): a box on the face is not
    counted, boxes elsewhere are, by score; the label file without its photo is left out."""
    import cv2

    from retinaface_polynl.detector import Detections

    (tmp_path / "images" / "train").mkdir(parents=True)
    labels = tmp_path / "labels" / "train"
    labels.mkdir(parents=True)
    for n in ("a", "b"):
        cv2.imwrite(str(tmp_path / "images" / "train" / f"{n}.jpg"), np.zeros((100, 100, 3), np.uint8))
        (labels / f"{n}.txt").write_text("0 0.5 0.5 0.2 0.2\n")  # the face 40-60 px
    (labels / "c.txt").write_text("0 0.5 0.5 0.2 0.2\n")  # no photo

    class Fake:
        def detect(self, image, threshold):
            boxes = np.array([[40, 40, 60, 60], [0, 0, 20, 20], [70, 70, 90, 90]], np.float32)
            scores = np.array([0.9, 0.6, 0.35], np.float32)
            keep = scores >= threshold
            return Detections(boxes[keep], scores[keep], np.zeros((int(keep.sum()), 5, 2), np.float32))

    r = F.off_faces_on_train(Fake(), labels, limit=10)
    assert r == {"photos": 2, "faces": 2, "off faces >= 0.3": 4, "off faces >= 0.5": 2}
