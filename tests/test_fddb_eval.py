"""FDDB protocol: ellipse-region overlap, Hungarian matching, merged ROC, AP@0.5, files, CLI."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

import widerface_eval as we
from widerface_eval.cli import main
from widerface_eval.fddb import _image_table, ellipse_mask, fddb_image_tables, merge_fddb_tables, region_overlaps

# A circle of radius 10 centred on a pixel holds the lattice points x^2 + y^2 <= 100:
# Gauss's circle count N(10) = 317; 21 of them lie on the column x = 0.
DISK = 317
CIRCLE = [10.0, 10.0, 0.0, 50.0, 50.0]  # major, minor, angle, cx, cy


def test_ellipse_mask_counts_lattice_points():
    m = ellipse_mask(CIRCLE, 200, 200)
    assert m.sum() == DISK
    # an ellipse 20 x 10 along x (angle 0) vs along y (angle pi/2): same area, transposed
    a = ellipse_mask([20.0, 10.0, 0.0, 50.0, 50.0], 100, 100)
    b = ellipse_mask([20.0, 10.0, np.pi / 2, 50.0, 50.0], 100, 100)
    assert a.sum() == b.sum() and np.array_equal(a, b.T)
    assert a[50, 30] and not a[30, 50]  # major axis along x at angle 0


def test_region_overlap_hand_computed():
    boxes = np.array([
        [40, 40, 60, 60],     # the disk's bounding square: 21 x 21 pixels, all disk points inside
        [50, 40, 60, 60],     # right half incl. the centre column: 11 x 21 pixels
        [100, 100, 120, 120], # disjoint
    ], dtype=float)
    ov = region_overlaps([CIRCLE], boxes, 200, 200)[0]
    assert ov[0] == pytest.approx(DISK / 441)
    half = (DISK + 21) // 2  # points with x >= 0
    assert ov[1] == pytest.approx(half / (DISK + 11 * 21 - half))
    assert ov[2] == 0.0


def test_region_overlap_clipped_to_image():
    """A circle centred on the image corner keeps only its quarter inside the image (x, y >= 0)."""
    corner = [10.0, 10.0, 0.0, 0.0, 0.0]
    quarter = sum(1 for x in range(0, 11) for y in range(0, 11) if x * x + y * y <= 100)
    ov = region_overlaps([corner], np.array([[-10.0, -10.0, 10.0, 10.0]]), 50, 50)[0, 0]
    assert ov == pytest.approx(quarter / 121)  # clipped square: 11 x 11 pixels


def test_hungarian_prefers_total_overlap():
    """Overlaps (rows ellipses e1 e2, columns d1 d2): greedy d1->e1 would leave 0.7 + 0 ... Hungarian finds 1.15."""
    ov = np.array([[0.6, 0.7], [0.0, 0.55]])
    u, tpd, tpc, fp = _image_table(ov, np.array([0.9, 0.8]))
    np.testing.assert_allclose(u, [0.9, 0.8])
    np.testing.assert_allclose(tpd, [1, 2])
    np.testing.assert_allclose(tpc, [0.6, 1.15])
    np.testing.assert_allclose(fp, [0, 0])
    # a pair at overlap 0.3 adds 0.3 to the continuous score and a false positive to both curves
    u, tpd, tpc, fp = _image_table(np.array([[0.3]]), np.array([0.5]))
    assert (tpd[0], tpc[0], fp[0]) == (0.0, 0.3, 1.0)


def two_circle_images():
    """img1: the disk's square (overlap 317/441 > 0.5) at score 0.9; img2: the half square
    (overlap 169/379 < 0.5) at 0.8 and a far-away box at 0.95."""
    ann = {
        "img1": we.FDDBAnnotation(ellipses=[CIRCLE], width=200, height=200),
        "img2": we.FDDBAnnotation(ellipses=[CIRCLE], width=200, height=200),
    }
    dets = {
        "img1": (np.array([[40.0, 40, 60, 60]]), np.array([0.9])),
        "img2": (np.array([[50.0, 40, 60, 60], [150, 150, 170, 170]]), np.array([0.8, 0.95])),
    }
    return ann, dets


def test_roc_tiny_case_merged_over_images():
    """Two images, one circle each.

    img1: the disk's square (overlap 317/441 > 0.5) at score 0.9.
    img2: the half square (overlap 169/379 < 0.5) at 0.8 and a far-away box at 0.95.
    Thresholds 0.95, 0.9, 0.8 give FP 1, 1, 2; discrete TP 0, 1, 1;
    continuous TP 0, 317/441, 317/441 + 169/379; N = 2.
    """
    ann, dets = two_circle_images()
    r = we.evaluate_fddb(dets, ann)
    full, half = DISK / 441, 169 / 379
    np.testing.assert_allclose(r.thresholds, [0.95, 0.9, 0.8])
    np.testing.assert_array_equal(r.fp, [1, 1, 2])
    np.testing.assert_allclose(r.tpr_discrete, [0, 0.5, 0.5])
    np.testing.assert_allclose(r.tpr_continuous, [0, full / 2, (full + half) / 2])
    assert r.tpr_at(0) == 0.0 and r.tpr_at(1) == 0.5 and r.tpr_at(1, "continuous") == pytest.approx(full / 2)
    # AP@0.5 on the circles' bounding boxes [40, 40, 60, 60]: ranks FP(0.95), TP(0.9), half box IoU 0.5 (0.8) -> TP
    # precision 0, 1/2, 2/3 at recall 0, 1/2, 1 -> envelope 2/3 -> AP 2/3
    assert r.ap50 == pytest.approx(2 / 3)
    d = r.to_dict()
    assert d["num_faces"] == 2 and len(d["roc"]["fp"]) == 3


def test_merged_image_tables_are_the_roc_of_a_resample():
    """A bootstrap resample draws images with repetition: merging the per-image tables of
    img2, img2, img1 must give what evaluate_fddb gives on a fold holding those three
    images under distinct names (FP 2, 2, 4 at 0.95, 0.9, 0.8; discrete TP 0, 1, 1)."""
    ann, dets = two_circle_images()
    tables = fddb_image_tables(dets, ann)
    thresholds, tpd, tpc, fp = merge_fddb_tables([tables["img2"], tables["img2"], tables["img1"]])
    copies = {"a": "img2", "b": "img2", "c": "img1"}
    r = we.evaluate_fddb({k: dets[v] for k, v in copies.items()}, {k: ann[v] for k, v in copies.items()})
    np.testing.assert_allclose(thresholds, r.thresholds)
    np.testing.assert_array_equal(fp, r.fp)
    np.testing.assert_array_equal(fp, [2, 2, 4])
    np.testing.assert_allclose(tpd, r.tp_discrete)
    np.testing.assert_allclose(tpd, [0, 1, 1])
    np.testing.assert_allclose(tpc, r.tp_continuous)
    empty = merge_fddb_tables([])
    assert all(len(a) == 0 for a in empty)


def test_missing_and_unknown_images():
    ann = {"a": we.FDDBAnnotation(ellipses=[CIRCLE], width=100, height=100),
           "b": we.FDDBAnnotation(ellipses=[CIRCLE], width=100, height=100)}
    with pytest.warns(we.MissingPredictionsWarning, match="1 FDDB image"):
        r = we.evaluate_fddb({"a": (np.array([[40.0, 40, 60, 60]]), np.array([1.0]))}, ann)
    assert r.tpr_at(0) == 0.5 and r.missing_images == ["b"]
    with pytest.raises(we.PredictionFormatError, match="zz"):
        we.evaluate_fddb({"zz": np.zeros((0, 5))}, ann)


def test_average_precision_generic_hand_case():
    gt = {"i1": np.array([[0, 0, 10, 10], [20, 20, 30, 30]], float), "i2": np.array([[0, 0, 10, 10]], float)}
    dets = {
        "i1": (np.array([[0, 0, 10, 10], [0, 0, 10, 10], [20, 20, 30, 30]], float), np.array([0.9, 0.8, 0.6])),
        "i2": np.array([[50, 50, 60, 60, 0.7]]),
    }
    # ranking: TP .9, duplicate FP .8, FP .7, TP .6 ; i2's face never found
    # precision 1, 1/2, 1/3, 1/2 at recall 1/3, 1/3, 1/3, 2/3 -> AP = 1/3 * 1 + 1/3 * 1/2
    assert we.average_precision(dets, gt) == pytest.approx(1 / 3 + 1 / 6)
    assert we.average_precision({}, gt) == 0.0
    assert we.average_precision(dets, gt, iou=0.5) == we.average_precision(dets, gt)


def test_resampled_average_precision_hand_case():
    """The hand case above, resampled: each row of ``samples`` indexes the images in the ground
    truth's order, and an image drawn twice counts as two copies of it."""
    gt = {"i1": np.array([[0, 0, 10, 10], [20, 20, 30, 30]], float), "i2": np.array([[0, 0, 10, 10]], float)}
    dets = {
        "i1": (np.array([[0, 0, 10, 10], [0, 0, 10, 10], [20, 20, 30, 30]], float), np.array([0.9, 0.8, 0.6])),
        "i2": np.array([[50, 50, 60, 60, 0.7]]),
    }
    got = we.resampled_average_precision(dets, gt, np.array([[0, 1], [0, 0], [1, 1]]))
    # every image once: the plain AP. i1 alone (ranking TP .9, FP .8, TP .6): recall 1/2 at
    # precision 1, then 1 at 2/3 -> 5/6, and drawn twice the same. i2 alone: its one face never found
    assert got == pytest.approx([we.average_precision(dets, gt), 5 / 6, 0.0])
    assert got[0] == pytest.approx(1 / 3 + 1 / 6)
    doubled_gt, doubled = {"copy": gt["i1"], **gt}, {"copy": dets["i1"], **dets}
    assert we.resampled_average_precision(dets, gt, np.array([[0, 0, 1]]))[0] == pytest.approx(
        we.average_precision(doubled, doubled_gt))


def test_ap_and_resampled_ap_reject_detections_for_unknown_images():
    """A detection keyed by a name the ground truth lacks (a typo, another fold) is an error in
    both, naming the image, never a silently smaller AP in one of them."""
    gt = {"i1": np.array([[0, 0, 10, 10]], float)}
    dets = {"i1": np.array([[0, 0, 10, 10, 0.9]]), "i9": np.array([[0, 0, 10, 10, 0.8]])}
    with pytest.raises(we.PredictionFormatError, match="unknown image.*i9"):
        we.average_precision(dets, gt)
    with pytest.raises(we.PredictionFormatError, match="unknown image.*i9"):
        we.resampled_average_precision(dets, gt, np.array([[0]]))
    # an image of the ground truth without detections is not an error: its faces are missed
    assert we.resampled_average_precision({}, gt, np.array([[0]]))[0] == 0.0


@pytest.fixture(scope="module")
def fddb_ann(fddb_dir):
    return we.load_fddb_annotations(fddb_dir)


def test_real_annotations_loaded(fddb_ann, fddb_dir):
    assert len(fddb_ann) == 2241 and sum(len(a.ellipses) for a in fddb_ann.values()) == 4058
    one = we.load_fddb_annotations(fddb_dir, folds="1")
    assert 0 < len(one) < 400 and all(a.fold == 1 for a in one.values())
    # the ellipse lists give the same ellipses as annotations.json (no image sizes there)
    from_txt = we.load_fddb_annotations(fddb_dir / "FDDB-folds", folds=[1])
    name = next(iter(one))
    np.testing.assert_allclose(from_txt[name].ellipses, one[name].ellipses)
    np.testing.assert_allclose(from_txt[name].boxes_xyxy, one[name].boxes_xyxy, atol=0.06)


def test_real_annotations_written_back(fddb_ann):
    """Ellipse boxes as detections (distinct scores): AP@0.5 = 1; the ROC finds (almost) every face.

    An ellipse and its own bounding rectangle overlap by about pi/4 on the
    pixel grid, but a handful of ellipses clipped by the image border or with
    axes shortened by the integer truncation drop just under 0.5.
    """
    rng = np.random.default_rng(0)
    dets = {n: (a.boxes_xyxy, rng.random(len(a.boxes_xyxy))) for n, a in fddb_ann.items()}
    r = we.evaluate_fddb(dets, fddb_ann)
    assert r.ap50 == 1.0
    assert r.num_faces == 4058
    assert r.tpr_discrete[-1] + r.fp[-1] / 4058 == pytest.approx(1.0)  # each box is a TP or an FP
    assert r.tpr_at(10) > 0.995 and r.tpr_continuous[-1] > 0.7


def test_detection_file_roundtrip_and_cli(fddb_ann, fddb_dir, tmp_path, capsys):
    one = {n: a for n, a in fddb_ann.items() if a.fold == 2}
    rng = np.random.default_rng(1)
    dets = {n: (a.boxes_xyxy + rng.normal(0, 1, a.boxes_xyxy.shape), rng.random(len(a.boxes_xyxy))) for n, a in one.items()}
    path = we.write_fddb_detections(tmp_path / "fold-02-out.txt", dets)
    back = we.read_fddb_detections(path)
    assert set(back) == set(dets)
    name = next(iter(dets))
    np.testing.assert_allclose(back[name][0], dets[name][0], atol=0.01)
    rc = main([str(path), str(fddb_dir), "--folds", "2", "--json", str(tmp_path / "f.json"),
               "--plot", str(tmp_path / "roc.png")])
    assert rc == 0
    data = json.loads((tmp_path / "f.json").read_text())
    assert data["benchmark"] == "fddb" and 0.9 < data["ap50"] <= 1.0
    assert (tmp_path / "roc_discrete.png").exists() and "TPR@1000FP" in capsys.readouterr().out


def test_bad_detection_file(tmp_path, capsys):
    ann_dir = tmp_path / "fddb"
    ann_dir.mkdir()
    (ann_dir / "annotations.json").write_text(json.dumps(
        {"img/a": {"fold": 1, "width": 100, "height": 100, "ellipses": [CIRCLE], "boxes_xyxy": [[40, 40, 60, 60]]}}))
    bad = tmp_path / "dets.txt"
    bad.write_text("img/a\n2\n40 40 20 20 0.9\n40 40 x 20 0.8\n")
    with pytest.raises(we.PredictionFormatError) as ei:
        we.read_fddb_detections(bad)
    assert ei.value.line == 4
    bad.write_text("img/a\n1\n40 40 -20 20 0.9\n")
    rc = main([str(bad), str(ann_dir)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "negative" in err and len(err.splitlines()) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(we.GroundTruthError):
            we.load_fddb_annotations(tmp_path / "nowhere")


def test_read_fddb_detections_refuses_a_link_out_of_the_folder_without_reading_it(tmp_path):
    """The reader itself (not only the command line) refuses a linked file leading out of the folder."""
    secret = tmp_path / "private.txt"
    secret.write_text("SECRET-LINE\n")
    pred = tmp_path / "pred"
    pred.mkdir()
    (pred / "fold-01.txt").write_text("img_1\n1\n10 10 20 20 0.9\n")
    (pred / "fold-02.txt").symlink_to(secret)
    with pytest.raises(we.PredictionFormatError) as ei:
        we.read_fddb_detections(pred)
    assert ei.value.path == pred / "fold-02.txt" and "leads out of the prediction folder" in str(ei.value)
    assert "SECRET" not in str(ei.value)
    (pred / "fold-02.txt").unlink()
    (pred / "kept").mkdir()
    (pred / "kept" / "source").write_text("img_2\n0\n")
    (pred / "fold-02.txt").symlink_to(Path("kept") / "source")  # a link inside the folder is read
    assert sorted(we.read_fddb_detections(pred)) == ["img_1", "img_2"]
