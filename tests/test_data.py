"""Annotation readers (every layout, detected from content), FDDB boxes, dataset and loader."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from retinaface_polynl.data import (
    FaceDataset,
    TrainAugment,
    build_loader,
    detect_layout,
    ellipse_bounding_box,
    ellipse_to_face_box,
    face_box_from_ellipse_box,
    load_annotations,
    parse_folds,
)

RETINAFACE_LABELS = """# 0--Parade/a.jpg
449 330 122 149 488.906 373.643 0.0 542.089 376.442 0.0 515.031 412.83 0.0 485.174 425.893 0.0 538.357 431.491 0.0 0.82
10 20 30 40 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0 -1.0
# 0--Parade/b.jpg
# 1--Handshaking/c.jpg
5 5 0 10 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1
"""

WIDER_GT = """0--Parade/a.jpg
2
78 221 7 8 2 0 0 0 0 0
331 126 3 3 0 0 0 1 0 0
0--Parade/b.jpg
0
0 0 0 0 0 0 0 0 0 0
1--Handshaking/c.jpg
1
10 10 20 25 0 0 0 0 0 0
"""

FDDB_ELLIPSES = """2002/08/11/big/img_591
1
123.583300 85.549500 1.265839 269.693400 161.781200  1
2002/08/26/big/img_265
2
67.363819 44.511485 -1.476417 105.249970 87.209036  1
41.936870 27.064477 1.471906 184.070915 129.345601  1
"""


def test_retinaface_label_txt(tmp_path):
    f = tmp_path / "label.txt"
    f.write_text(RETINAFACE_LABELS)
    assert detect_layout(f) == "retinaface"
    recs = load_annotations(f, tmp_path / "images")
    assert [r.path.name for r in recs] == ["a.jpg", "b.jpg", "c.jpg"]
    a = recs[0]
    np.testing.assert_allclose(a.boxes, [[449, 330, 571, 479], [10, 20, 40, 60]])
    assert a.has_landmarks.tolist() == [True, False]
    np.testing.assert_allclose(a.landmarks[0, 0], [488.906, 373.643], rtol=1e-6)
    np.testing.assert_allclose(a.landmarks[1], 0)  # absent: a flag, not -1 values
    assert len(recs[1]) == 0 and len(recs[2]) == 0  # zero-width box dropped


def test_official_wider_bbx_gt(tmp_path):
    f = tmp_path / "wider_face_train_bbx_gt.txt"
    f.write_text(WIDER_GT)
    assert detect_layout(f) == "wider"
    recs = load_annotations(f, tmp_path)
    assert [len(r) for r in recs] == [1, 0, 1]  # the invalid face dropped; the count-0 image kept, empty
    np.testing.assert_allclose(recs[0].boxes, [[78, 221, 85, 229]])
    assert recs[2].path == tmp_path / "1--Handshaking/c.jpg"
    assert not recs[0].has_landmarks.any()


def test_official_wider_val_file_reads(widerface_gt_dir):
    recs = load_annotations(widerface_gt_dir / "wider_face_val_bbx_gt.txt", "/nonexistent")
    assert len(recs) == 3226
    assert sum(len(r) for r in recs) > 38000


def test_generic_json_and_csv(tmp_path):
    j = tmp_path / "faces.json"
    lms = [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10]]
    j.write_text(json.dumps([{"image": "x.jpg", "boxes": [[0, 0, 10, 12], [5, 5, 9, 9]], "landmarks": [lms, None]},
                             {"image": "y.jpg", "boxes": []}]))
    assert detect_layout(j) == "json"
    recs = load_annotations(j)
    assert recs[0].has_landmarks.tolist() == [True, False] and len(recs[1]) == 0
    np.testing.assert_allclose(recs[0].landmarks[0], lms)
    m = tmp_path / "map.json"
    m.write_text(json.dumps({"x.jpg": [[0, 0, 10, 12]]}))
    assert len(load_annotations(m)[0]) == 1

    c = tmp_path / "faces.csv"
    c.write_text("image,x,y,w,h\nx.jpg,10,20,30,40\nx.jpg,1,2,3,4\nempty.jpg,,,,\n")
    assert detect_layout(c) == "csv"
    recs = load_annotations(c)
    np.testing.assert_allclose(recs[0].boxes, [[10, 20, 40, 60], [1, 2, 4, 6]])
    assert recs[1].path.name == "empty.jpg" and len(recs[1]) == 0


def test_fddb_ellipse_list_layout(tmp_path):
    folds = tmp_path / "FDDB-folds"
    folds.mkdir()
    (folds / "FDDB-fold-01-ellipseList.txt").write_text(FDDB_ELLIPSES)
    (folds / "FDDB-fold-01.txt").write_text("2002/08/11/big/img_591\n2002/08/26/big/img_265\n")
    for name in ("2002/08/11/big/img_591", "2002/08/26/big/img_265"):
        p = tmp_path / "originalPics" / f"{name}.jpg"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")
    assert detect_layout(folds / "FDDB-fold-01-ellipseList.txt") == "fddb"
    assert detect_layout(folds / "FDDB-fold-01.txt") == "fddb"
    assert detect_layout(folds) == "fddb"
    recs = load_annotations(folds / "FDDB-fold-01.txt")
    assert [len(r) for r in recs] == [1, 2]
    # the exact ellipse box of the first face is (180.1, 41.1, 359.3, 282.4) (annotations.json's boxes_xyxy)
    np.testing.assert_allclose(ellipse_bounding_box([[123.5833, 85.5495, 1.265839, 269.6934, 161.7812]]),
                               [[180.1, 41.1, 359.3, 282.4]], atol=0.06)


def test_ellipse_box_of_a_circle_and_an_upright_ellipse():
    np.testing.assert_allclose(ellipse_bounding_box([[10, 10, 0.3, 50, 60]]), [[40, 50, 60, 70]], atol=1e-5)
    # FDDB's major axis along y: angle pi/2
    np.testing.assert_allclose(ellipse_bounding_box([[30, 20, np.pi / 2, 100, 100]]), [[80, 70, 120, 130]], atol=1e-4)


def test_face_box_from_ellipse_box_keeps_centre_x_and_trims_top():
    box = np.array([[0.0, 0.0, 100.0, 150.0]])
    np.testing.assert_allclose(face_box_from_ellipse_box(box, top_trim=0, bottom_trim=0, width_scale=1), box)
    out = face_box_from_ellipse_box(box, top_trim=0.2, bottom_trim=0.1, width_scale=0.8)
    np.testing.assert_allclose(out, [[10, 30, 90, 135]])
    default = ellipse_to_face_box([[75, 50, np.pi / 2, 50, 75]])  # a 100 x 150 upright face ellipse
    w, h = default[0, 2] - default[0, 0], default[0, 3] - default[0, 1]
    assert 1.25 < h / w < 1.45  # WIDER/RetinaFace-like aspect, not FDDB's 1.5
    assert default[0, 1] > 0 and default[0, 3] <= 150
    with pytest.raises(ValueError):
        face_box_from_ellipse_box(box, top_trim=0.7, bottom_trim=0.4)


def test_parse_folds():
    assert parse_folds("1-7") == [1, 2, 3, 4, 5, 6, 7]
    assert parse_folds("1,3,5-6") == [1, 3, 5, 6]
    assert parse_folds(None) is None and parse_folds(4) == [4]
    with pytest.raises(ValueError):
        parse_folds("0-3")


def test_fddb_annotations_json_matches_fold_files(fddb_dir):
    a = load_annotations(fddb_dir / "annotations.json", folds="1-2")
    b = load_annotations(fddb_dir / "FDDB-folds", folds="1-2")
    assert detect_layout(fddb_dir) == "fddb_json"
    assert len(a) == len(b) > 400
    key = {r.path: r.boxes for r in b}
    for r in a[:50]:
        np.testing.assert_allclose(r.boxes, key[r.path], atol=0.1)  # JSON boxes are rounded to 0.1 px
    data = json.loads((fddb_dir / "annotations.json").read_text())
    first = next(iter(data.values()))
    np.testing.assert_allclose(ellipse_bounding_box(first["ellipses"]), first["boxes_xyxy"], atol=0.06)
    assert len(load_annotations(fddb_dir, folds="8")) < len(load_annotations(fddb_dir, folds="1-7"))


def test_dlib_xml_boxes_and_landmarks(dlib_faces_dir, dlib_training):
    recs = load_annotations(dlib_faces_dir / "training.xml")
    assert detect_layout(dlib_faces_dir / "training.xml") == "dlib"
    assert {r.path.name: r.boxes.tolist() for r in recs} == dlib_training
    lm = load_annotations(dlib_faces_dir / "training_with_face_landmarks.xml")
    assert sum(len(r) for r in lm) == 18 and all(r.has_landmarks.all() for r in lm)
    for r in lm:
        b, p = r.boxes, r.landmarks
        assert (p[..., 0] >= b[:, None, 0] - 2).all() and (p[..., 0] <= b[:, None, 2] + 2).all()
        assert (p[:, 0, 0] < p[:, 1, 0]).all() and (p[:, 3, 0] < p[:, 4, 0]).all()  # left on the left
        assert (p[:, 0, 1] < p[:, 2, 1]).all() and (p[:, 2, 1] < p[:, 3, 1]).all()  # eyes above nose above mouth


def test_unknown_layout_is_a_clear_error(tmp_path):
    f = tmp_path / "what.txt"
    f.write_text("hello world\n")
    with pytest.raises(ValueError, match="unrecognised annotation layout"):
        load_annotations(f)


def test_dataset_batches_identical_with_and_without_workers(dlib_faces_dir):
    torch.set_num_threads(1)
    recs = load_annotations(dlib_faces_dir / "training_with_face_landmarks.xml")
    ds = FaceDataset(recs, TrainAugment(image_size=128), seed=3)
    batches = {}
    for workers in (0, 2):
        loader, sampler = build_loader(ds, batch_size=2, workers=workers, seed=3)
        sampler.set_epoch(1)
        ds.set_epoch(1)
        batches[workers] = list(loader)
    assert len(batches[0]) == 2
    for (ia, ta), (ib, tb) in zip(batches[0], batches[2]):
        assert ia.shape == (2, 3, 128, 128) and ia.dtype == torch.float32
        torch.testing.assert_close(ia, ib)
        for x, y in zip(ta, tb):
            torch.testing.assert_close(x["boxes"], y["boxes"])
            assert x["has_landmarks"].dtype == torch.bool
    # resuming mid-epoch: skipping the first batch's items yields the second batch
    loader, sampler = build_loader(ds, batch_size=2, workers=0, seed=3)
    sampler.set_epoch(1, skip=2)
    rest = list(loader)
    assert len(rest) == 1
    torch.testing.assert_close(rest[0][0], batches[0][1][0])


def _write_image(path, width, height):
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full((height, width, 3), 127, np.uint8))


def test_bad_boxes_are_dropped_with_one_warning_per_file_naming_the_lines(tmp_path, caplog):
    """A generated RetinaFace label.txt: on a 100x80 image, one good face, one of zero width (line 4),
    one of negative height (line 5), one wholly outside the image (line 6), one partly outside (line 7,
    kept: a face cut by the border); a second 60x60 image with a good face (line 9) and one below it
    (line 10). One warning, for the file, naming lines 4, 5, 6 and 10 and no other; the good faces and
    their landmarks stay paired."""
    import logging

    _write_image(tmp_path / "images" / "a.jpg", 100, 80)
    _write_image(tmp_path / "images" / "b.jpg", 60, 60)
    lm = " ".join(["20 30 0.0"] * 5)
    labels = tmp_path / "label.txt"
    labels.write_text("\n".join([
        "# a.jpg",
        f"10 10 30 30 {lm} 0.9",           # line 2: good, with landmarks
        "50 10 20 25",                     # line 3: good, no landmarks
        "40 40 0 10",                      # line 4: zero width
        "40 40 10 -5",                     # line 5: negative height
        "120 10 20 20",                    # line 6: right of the 100 px wide image
        "90 60 30 30",                     # line 7: partly outside: kept
        "# b.jpg",
        "5 5 10 10",                       # line 9: good
        "5 70 10 10",                      # line 10: below the 60 px tall image
    ]) + "\n")
    with caplog.at_level(logging.WARNING, logger="retinaface_polynl.data.validate"):
        records = load_annotations(labels, tmp_path / "images")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    w = warnings[0]
    assert str(labels) in w and "dropped 4 box(es)" in w
    for line in (4, 5, 6, 10):
        assert f"line {line} " in w
    for line in (2, 3, 7, 9):
        assert f"line {line} " not in w
    assert "outside the 100x80 image" in w and "outside the 60x60 image" in w and "non-positive" in w
    a, b = records
    np.testing.assert_allclose(a.boxes, [[10, 10, 40, 40], [50, 10, 70, 35], [90, 60, 120, 90]])
    assert a.has_landmarks.tolist() == [True, False, False]
    assert a.lines.tolist() == [2, 3, 7]
    np.testing.assert_allclose(b.boxes, [[5, 5, 15, 15]])


def test_bad_boxes_in_made_by_json_name_the_entry_line_and_ignore_regions(tmp_path, caplog):
    """The label files of make_crowd_labels.py ({"made_by": ..., "images": [...]}, one image a line):
    a box outside its image and an ignore region of zero height are dropped with one warning naming
    the entry's line; the landmarks present or absent stay with their faces."""
    import logging

    _write_image(tmp_path / "a.jpg", 64, 48)
    _write_image(tmp_path / "b.jpg", 64, 48)
    lm = [[10, 10], [20, 10], [15, 15], [11, 20], [19, 20]]
    entries = [{"image": "a.jpg", "boxes": [[5, 5, 25, 25], [30, 5, 50, 25]], "landmarks": [lm, None],
                "ignore": [[0, 30, 10, 40]]},
               {"image": "b.jpg", "boxes": [[5, 5, 25, 25], [70, 5, 90, 25]], "landmarks": [None, lm],
                "ignore": [[0, 30, 10, 30]]}]
    text = '{"made_by": {"teachers": {"scrfd": {}}},\n "images": [\n' + ",\n".join(json.dumps(e) for e in entries) + "\n]}\n"
    labels = tmp_path / "labels.json"
    labels.write_text(text)
    assert detect_layout(labels) == "json"
    with caplog.at_level(logging.WARNING, logger="retinaface_polynl.data.validate"):
        a, b = load_annotations(labels)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(labels) in warnings[0]
    assert "line 4 (b.jpg" in warnings[0] and "ignore region" in warnings[0] and "line 3" not in warnings[0]
    assert a.has_landmarks.tolist() == [True, False] and len(a.ignore) == 1
    np.testing.assert_allclose(b.boxes, [[5, 5, 25, 25]])
    assert b.has_landmarks.tolist() == [False] and len(b.ignore) == 0


def test_clean_labels_warn_nothing(tmp_path, caplog):
    import logging

    _write_image(tmp_path / "a.jpg", 64, 48)
    (tmp_path / "l.csv").write_text("image,x,y,w,h\na.jpg,1,1,20,20\na.jpg,30,20,34,28\n")
    with caplog.at_level(logging.WARNING):
        (r,) = load_annotations(tmp_path / "l.csv")
    assert not [m for m in caplog.records if m.levelno >= logging.WARNING]
    assert len(r) == 2 and r.lines.tolist() == [2, 3]
