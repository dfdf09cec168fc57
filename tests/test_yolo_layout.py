"""The YOLO label layout (``data/yolo.py``) and the guard against training on WIDER val photos
(``scripts/check_not_wider_val.py``)."""
from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from retinaface_polynl.data import load_annotations
from retinaface_polynl.data.layouts import detect_layout
from retinaface_polynl.data.wider import read_wider_bbx_gt
from retinaface_polynl.data.yolo import images_folder

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "demo" / "astronaut.jpg"  # 512 x 512; its face (hand-checked): x 179-271, y 54-174


def yolo_set(root: Path, labels: dict[str, str], photo: Path = DEMO) -> Path:
    """``root/images/train/<name>.jpg`` (copies of ``photo``) and ``root/labels/train/<name>.txt``."""
    (root / "images" / "train").mkdir(parents=True)
    (root / "labels" / "train").mkdir(parents=True)
    for name, text in labels.items():
        shutil.copy(photo, root / "images" / "train" / f"{name}{photo.suffix}")
        (root / "labels" / "train" / f"{name}.txt").write_text(text)
    return root / "labels" / "train"


def test_boxes_and_landmarks_come_back_in_pixels(tmp_path):
    face = "0 {:.6f} {:.6f} {:.6f} {:.6f}".format(225 / 512, 114 / 512, 92 / 512, 120 / 512)
    points = " ".join(f"{v / 512:.6f}" for v in (205, 100, 245, 100, 225, 125, 210, 150, 240, 150))
    labels = yolo_set(tmp_path, {
        "plain": face + "\n",
        "with_points": f"{face} {points}\n0 0.1 0.1 0.05 0.05 " + " ".join(["-1"] * 10) + "\n",
        "background": "",
    })
    assert detect_layout(labels) == "yolo"
    assert images_folder(labels) == tmp_path / "images" / "train"
    records = {r.path.stem: r for r in load_annotations(labels)}
    assert set(records) == {"plain", "with_points", "background"}
    np.testing.assert_allclose(records["plain"].boxes, [[179, 54, 271, 174]], atol=1e-3)
    assert not records["plain"].has_landmarks.any()
    r = records["with_points"]
    np.testing.assert_allclose(r.boxes[0], [179, 54, 271, 174], atol=1e-3)
    assert r.has_landmarks.tolist() == [True, False]
    np.testing.assert_allclose(r.landmarks[0], [[205, 100], [245, 100], [225, 125], [210, 150], [240, 150]], atol=1e-3)
    assert (r.landmarks[1] == 0).all()
    assert r.lines.tolist() == [1, 2] and r.source.name == "with_points.txt"
    assert len(records["background"]) == 0


def test_bad_lines_and_missing_images_warn_and_are_skipped(tmp_path, caplog):
    labels = yolo_set(tmp_path, {"a": "0 0.5 0.5 0.2 0.2\nnot a face line\n0 0.5 0.5 0.1\n0 0.3 0.3 0.1 0.1\n"})
    (labels / "lost.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    with caplog.at_level(logging.WARNING):
        (record,) = load_annotations(labels)
    assert len(record) == 2 and record.lines.tolist() == [1, 4]
    assert "lines 2, 3 are not 'class cx cy w h" in caplog.text
    assert "1 label files have no readable image" in caplog.text and "lost.txt" in caplog.text


def test_images_elsewhere_with_images_and_a_folder_that_is_not_yolo(tmp_path):
    labels = yolo_set(tmp_path / "set", {"a": "0 0.5 0.5 0.2 0.2\n"})
    elsewhere = tmp_path / "photos"
    shutil.move(tmp_path / "set" / "images" / "train", elsewhere)
    with pytest.raises(ValueError, match="no images found"):
        load_annotations(labels)  # label files without their images: nothing to train on
    (record,) = load_annotations(labels, elsewhere)
    assert record.path.parent == elsewhere
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "readme.txt").write_text("these are not labels\n")
    with pytest.raises(ValueError, match="YOLO label files"):
        detect_layout(notes)


def run_check(labels: Path, gt: Path, val_images: Path | None = None) -> subprocess.CompletedProcess:
    args = [sys.executable, str(REPO / "scripts" / "check_not_wider_val.py"), str(labels), "--gt", str(gt)]
    if val_images is not None:
        args += ["--val-images", str(val_images)]
    return subprocess.run(args, capture_output=True, text=True, timeout=300)


def test_renamed_and_resized_val_photos_are_refused(tmp_path, widerface_gt_dir, shared_data):
    gt = widerface_gt_dir / "wider_face_val_bbx_gt.txt"
    val = {r.path.name: r for r in read_wider_bbx_gt(gt, gt.parent, min_size=0.0, keep_invalid=True)}
    # three val photos' faces (one, a few and many), each on a photo resized to 600 px wide under a
    # new name (the pictures are blank: the faces alone must give them away)
    names = sorted(val)
    chosen = [next(n for n in names if len(val[n].boxes) == count) for count in (1, 7, 123)]
    root = tmp_path / "copies"
    (root / "images" / "train").mkdir(parents=True)
    (root / "labels" / "train").mkdir(parents=True)
    for k, name in enumerate(chosen):
        boxes = val[name].boxes * (600 / 1024)
        h = int(np.ceil(boxes[:, 3].max())) + 20
        cv2.imwrite(str(root / "images" / "train" / f"{k}.jpg"), np.full((h, 600, 3), 128, np.uint8))
        lines = [f"0 {(b[0] + b[2]) / 1200:.6f} {(b[1] + b[3]) / 2 / h:.6f} {(b[2] - b[0]) / 600:.6f} "
                 f"{(b[3] - b[1]) / h:.6f}" for b in boxes if b[2] > b[0] and b[3] > b[1]]
        (root / "labels" / "train" / f"{k}.txt").write_text("\n".join(lines) + "\n")
    done = run_check(root / "labels" / "train", gt, val_images=tmp_path / "none")
    assert done.returncode == 1, done.stdout + done.stderr
    for k, name in enumerate(chosen):
        assert f"{k}.jpg: the faces of val photo {name}" in done.stdout
    # a dev photo under a new name, with faces not its own: its picture gives it away
    dev = sorted((shared_data / "widerface_val_dev" / "images").rglob("*.jpg"))[0]
    renamed = yolo_set(tmp_path / "renamed", {"holiday": "0 0.013 0.987 0.011 0.012\n0 0.987 0.013 0.012 0.011\n"},
                       photo=dev)
    done = run_check(renamed, gt, val_images=shared_data / "widerface_val_dev" / "images")
    assert done.returncode == 1 and f"holiday.jpg: the picture of val photo {dev.name}" in done.stdout
    # and under its own name
    named = yolo_set(tmp_path / "named", {dev.stem: "0 0.5 0.5 0.1 0.1\n"}, photo=dev)
    done = run_check(named, gt)
    assert done.returncode == 1 and "the name of val photo" in done.stdout


def test_photos_that_are_not_wider_pass(widerface_gt_dir, dlib_faces_dir):
    """dlib's photos (PASCAL VOC, not WIDER), each face boxed as dlib annotates it."""
    records = load_annotations(dlib_faces_dir / "testing.xml")
    done = run_check(dlib_faces_dir / "testing.xml", widerface_gt_dir / "wider_face_val_bbx_gt.txt")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"none of its {len(records)} photos is one of the 3226 WIDER FACE val photos" in done.stdout
