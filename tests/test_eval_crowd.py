"""scripts/eval_crowd.py: the crowd validation table, its set selection and its TTA switch.

The WIDER dev part runs on the real 103 photos with an oracle that returns the official
ground truth (so every setting must score about 1.0) and with the oracle's boxes shifted by half
their size (so every setting must collapse): a round trip through the script's box layout
and the official protocol that fails if either is wrong.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import eval_crowd  # noqa: E402


def test_sets_parse_a_subset_and_refuse_unknown_names():
    assert eval_crowd.set_names("wider") == ("wider",)
    assert eval_crowd.set_names("shanghai, mask,shanghai") == ("shanghai", "mask")
    for bad in ("", "wider,fddb", ","):
        with pytest.raises(argparse.ArgumentTypeError, match="--sets"):
            eval_crowd.set_names(bad)


def test_tta_is_recorded_in_the_size_tag_and_refuses_the_zoom_beside_it(capsys):
    assert eval_crowd.tta_tag("min480-cap1024", "none") == "min480-cap1024"
    assert eval_crowd.tta_tag("min480-cap1024", "paper") == "min480-cap1024+tta-paper"
    with pytest.raises(SystemExit):
        eval_crowd.main(["--tta", "flip", "--zoom", "on", "--sets", "wider"])
    assert "--tta replaces the small-face zoom" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        eval_crowd.main(["--tta", "mosaic"])


def test_zoom_factor_is_a_default_rule_at_that_factor_recorded_in_the_tag(capsys):
    """--zoom-factor (a candidate zoom for ship_weights.py --zoom-factor): the default ZoomRule at the
    factor, named in the size tag and the tables' header; only with --zoom on, never with --tta."""
    from eval_fddb_holdout import add_floor_args, describe_zoom, floor_options, size_tag

    from retinaface_polynl.zoom import ZoomRule

    p = argparse.ArgumentParser()
    p.add_argument("--size", default="default")
    add_floor_args(p)
    args = p.parse_args(["--min-size", "480", "--max-size", "1024", "--zoom", "on", "--zoom-factor", "1.5"])
    floor = floor_options(p, args)
    assert floor["zoom"] == ZoomRule(factor=1.5)
    assert size_tag(args.size, floor) == "min480-cap1024+zoomx1.5"
    assert describe_zoom(floor) == ", small-face zoom x1.5"
    for flags in (["--zoom-factor", "1.5"], ["--zoom", "on", "--zoom-factor", "0.8"]):
        with pytest.raises(SystemExit):
            floor_options(p, p.parse_args(flags))
        assert "--zoom-factor" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        eval_crowd.main(["--tta", "flip", "--zoom", "on", "--zoom-factor", "1.5", "--sets", "wider"])
    assert "--tta replaces the small-face zoom" in capsys.readouterr().err


def _oracle(sets, shift: float = 0.0):
    """detect(image) giving image i's ground-truth boxes (xyxy), moved by ``shift`` of their size, with
    distinct scores (the official toolkit rescales scores by their range, so they may not all be equal)."""
    gt = sets["wider_gt"]
    by_path = {}
    for path, boxes in zip(sets["wider_paths"], gt.boxes):
        xyxy = boxes.astype(np.float64).copy()
        xyxy[:, 2:] += xyxy[:, :2]
        xyxy[:, [0, 2]] += shift * boxes[:, 2:3]
        by_path[path] = xyxy
    calls = iter(sets["wider_paths"])
    rng = np.random.default_rng(0)

    def detect(image):
        boxes = by_path[next(calls)]
        return boxes, rng.uniform(0.5, 1.0, len(boxes))
    return detect


def test_wider_only_run_scores_the_ground_truth_perfectly_and_a_shifted_copy_badly(shared_data):
    if not (shared_data / "widerface_val_dev" / "LIST.json").is_file():
        pytest.skip("real data not available: widerface_val_dev is absent")
    sets = eval_crowd.load_sets(shared_data, None, ("wider",))
    assert "mask_drawn" not in sets and "shanghai" not in sets and len(sets["wider_paths"]) == 103
    perfect = eval_crowd.evaluate_detector(_oracle(sets), shared_data, sets)
    # not exactly 1: the toolkit reads the curve at 1,000 score thresholds, not at every detection
    assert min(perfect["wider_dev"].values()) > 0.99, perfect
    assert "mask_ap50_drawn" not in perfect
    found = [v for rec in perfect["wider_recall"].values() for v in rec.values() if v is not None]
    assert found and set(found) == {1.0}
    assert perfect["wider_recall"]["easy"]["<20"] is None  # Easy counts no face that small here
    shifted = eval_crowd.evaluate_detector(_oracle(sets, shift=0.5), shared_data, sets)
    assert max(shifted["wider_dev"].values()) < 0.05  # IoU of a box moved by half its width: 1/3
    # (a moved box may still land on a neighbour in a crowd: a few of the thousands)
    assert max(v for rec in shifted["wider_recall"].values() for v in rec.values() if v is not None) < 0.01
    table = eval_crowd.markdown({"oracle": perfect}, "original", None, "paper")
    row = next(line for line in table.splitlines() if line.startswith("| oracle"))
    assert row.split("|")[2:8] == [" - "] * 6 and float(row.split("|")[8]) > 99
    assert "test-time augmentation 'paper'" in table
    json.dumps(perfect)  # what --json writes


def test_wider_recall_counts_each_settings_faces_by_height_at_the_default_threshold():
    from widerface_eval import WiderGroundTruth
    # image a: faces 30, 60 and 100 px tall; image b: a 200 px face. Easy counts the 60 and 200 px ones.
    boxes = {"a": np.array([[0, 0, 20, 30], [100, 0, 40, 60], [300, 0, 70, 100]]), "b": np.array([[0, 0, 150, 200]])}
    keep = {"easy": {"a": np.array([1]), "b": np.array([0])}, "medium": {"a": np.array([1, 2]), "b": np.array([0])},
            "hard": {"a": np.array([0, 1, 2]), "b": np.array([0])}}
    gt = WiderGroundTruth.from_boxes(boxes, keep)
    dets = {Path("x/a.jpg"): (np.array([[0, 0, 20, 30], [100, 0, 140, 60], [300, 0, 370, 100.]]),
                              np.array([0.9, 0.49, 0.5])),  # the 60 px face below the threshold
            Path("x/b.jpg"): (np.array([[0, 100, 150, 300.]]), np.array([0.99]))}  # IoU 1/3: missed
    easy = eval_crowd.wider_recall_by_height(dets, gt, "easy")
    hard = eval_crowd.wider_recall_by_height(dets, gt, "hard")
    assert easy == {"<20": None, "20-40": None, "40-80": 0.0, "80-160": None, ">160": 0.0}
    assert hard == {"<20": None, "20-40": 1.0, "40-80": 0.0, "80-160": 1.0, ">160": 0.0}
    table = eval_crowd.markdown({"d": {"wider_recall": {"easy": easy, "hard": hard}}}, "original")
    assert "| d | Hard | - | 1.00 | 0.00 | 1.00 | 0.00 |" in table and "| d | Easy | - | - | 0.00 | - | 0.00 |" in table


def _synthetic_crowd(seed: int = 0, images: int = 12):
    """Ground truth of ``images`` photos with 1-6 faces each, a detector that finds each face with a
    random score (and misses some), and a worse one that finds the same faces but ranks half of its
    false positives above them."""
    rng = np.random.default_rng(seed)
    gt, good, worse = {}, {}, {}
    for i in range(images):
        n = int(rng.integers(1, 7))
        xy = rng.uniform(0, 400, (n, 2)) + np.arange(n)[:, None] * 500  # faces far apart
        boxes = np.hstack([xy, xy + 40])
        gt[f"img{i}.jpg"] = boxes
        found = rng.random(n) < 0.8
        scores = rng.uniform(0.3, 0.9, n)
        fp = boxes[:2] + 200  # no overlap with any face
        good[f"img{i}.jpg"] = (np.vstack([boxes[found], fp]), np.concatenate([scores[found], [0.1, 0.05][:len(fp)]]))
        worse[f"img{i}.jpg"] = (np.vstack([boxes[found], fp]), np.concatenate([scores[found], [0.95, 0.05][:len(fp)]]))
    return gt, good, worse


def test_bootstrap_intervals_hold_the_ap_and_pair_the_difference():
    from widerface_eval import average_precision
    gt, good, worse = _synthetic_crowd(images=30)
    out = eval_crowd.bootstrap_mask_ap({"good": good, "same": good, "worse": worse}, gt, resamples=200)
    lo, hi = out["good"]["mask_ap50_drawn_ci95"]
    assert lo <= average_precision(good, gt) <= hi and lo < hi
    assert "mask_ap50_drawn_diff_vs_first_ci95" not in out["good"]
    assert out["same"]["mask_ap50_drawn_diff_vs_first_ci95"] == [0.0, 0.0]  # paired: the same draws
    dlo, dhi = out["worse"]["mask_ap50_drawn_diff_vs_first_ci95"]
    assert dlo < dhi < 0  # a high-scored false positive in every photo costs AP in every resample
    table = eval_crowd.markdown({name: {**r, "bootstrap_resamples": 200} for name, r in out.items()}, "original")
    row = [line for line in table.splitlines() if line.startswith("| worse |")][-1]  # the bootstrap table's
    assert f"{100 * dlo:+.1f} to {100 * dhi:+.1f}" in row and "each detector minus good" in table


def test_wider_bootstrap_pairs_the_photos_and_ranks_the_oracle_above_its_shifted_copy(shared_data):
    if not (shared_data / "widerface_val_dev" / "LIST.json").is_file():
        pytest.skip("real data not available: widerface_val_dev is absent")
    sets = eval_crowd.load_sets(shared_data, None, ("wider",))
    kept = {"oracle": {}, "shifted": {}, "again": {}}
    for name, shift in (("oracle", 0.0), ("shifted", 0.5), ("again", 0.0)):
        eval_crowd.evaluate_detector(_oracle(sets, shift), shared_data, sets, kept[name])
    out = eval_crowd.bootstrap_wider_ap({n: k["wider"] for n, k in kept.items()}, sets["wider_gt"], resamples=100)
    for s in eval_crowd.WIDER_SETTINGS:
        assert out["oracle"][f"wider_dev_{s}_ci95"][0] > 0.95  # the oracle scores above 0.99 on the whole set
        assert out["again"][f"wider_dev_{s}_diff_vs_first_ci95"] == [0.0, 0.0]  # same photos, same detections
        lo, hi = out["shifted"][f"wider_dev_{s}_diff_vs_first_ci95"]
        assert lo < hi < -0.9, (s, lo, hi)  # IoU 1/3 with every face: nothing found in any resample


def test_bootstrap_flag_is_refused_without_a_set_to_resample_or_when_negative(capsys):
    for argv in (["--bootstrap", "100", "--sets", "shanghai"], ["--bootstrap", "-1"]):
        with pytest.raises(SystemExit):
            eval_crowd.main(argv)
        assert "--bootstrap takes a positive number" in capsys.readouterr().err


def test_shanghai_labels_read_in_both_label_file_forms(tmp_path):
    """The ShanghaiTech agreement labels: the December 2026 list and make_crowd_labels' {made_by, images} form."""
    entries = [{"image": str(tmp_path / "a.jpg"), "boxes": [[1, 2, 11, 12]], "landmarks": [None], "ignore": []}]
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_text(json.dumps(entries))
    new.write_text('{"made_by": {"teachers": {}},\n "images": [\n' + json.dumps(entries[0]) + "\n]}\n")
    for f in (old, new):
        sets = eval_crowd.load_sets(tmp_path, f, ("shanghai",))
        assert list(sets["shanghai"]) == [tmp_path / "a.jpg"]
        np.testing.assert_allclose(sets["shanghai"][tmp_path / "a.jpg"], [[1, 2, 11, 12]])


def test_the_fddb_precision_tail_reads_the_ranked_curve():
    """Ten faces, one per image; nine found at 0.9, the tenth only at 0.1 behind three false boxes
    at 0.2-0.4: recall 0.9 is reached at precision 1, the tenth face costs precision 10/13."""
    from eval_fddb_holdout import precision_tail

    gt = {f"im{k}": np.asarray([[10, 10, 50, 50]], np.float32) for k in range(10)}
    dets = {f"im{k}": (np.asarray([[10, 10, 50, 50]], np.float32), np.asarray([0.9])) for k in range(9)}
    false = np.asarray([[100, 100, 140, 140], [200, 200, 240, 240], [300, 300, 340, 340]], np.float32)
    dets["im9"] = (np.concatenate([false, [[10, 10, 50, 50]]]).astype(np.float32), np.asarray([0.4, 0.3, 0.2, 0.1]))
    tail = precision_tail(dets, gt)
    assert tail["detections"] == 13
    assert tail["precision_at_recall_0.9"] == 1.0 and tail["score_at_recall_0.9"] == 0.9
    assert tail["precision_at_recall_0.95"] == pytest.approx(10 / 13, abs=1e-4)
    assert tail["score_at_recall_0.95"] == pytest.approx(0.1)
