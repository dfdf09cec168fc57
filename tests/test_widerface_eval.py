"""WIDER FACE evaluator: official-toolkit semantics, known faults, micro cases, bad input, CLI.

The comparison with the official toolkit's own output is in test_widerface_official.py.

Expected values are computed here independently and simply (recall
fractions, N / (N + K), hand-counted micro cases), never with the evaluator.
"""
from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy.io import savemat

import widerface_eval as we
from widerface_eval.cli import main
from widerface_eval.protocol import THRESHOLDS, iou_plus1, normalize_scores, voc_ap

REPO = Path(__file__).resolve().parents[1]
SETTINGS = ("easy", "medium", "hard")


# ----------------------------------------------------------------------------- helpers


def write_mat_gt(folder: Path, events: dict, keep: dict | None = None) -> Path:
    """Tiny official-layout ground truth.

    ``events``: ``{event: {image: boxes (n, 4) x y w h}}``; ``keep``:
    ``{setting: {image: 1-based indices}}`` (default: every face counts).
    """
    folder.mkdir(parents=True, exist_ok=True)
    ev_names = list(events)

    def cell(n):
        return np.empty((n, 1), dtype=object)

    event_list, file_list, bbx_list = cell(len(ev_names)), cell(len(ev_names)), cell(len(ev_names))
    for e, ev in enumerate(ev_names):
        imgs = list(events[ev])
        fl, bl = cell(len(imgs)), cell(len(imgs))
        for i, name in enumerate(imgs):
            fl[i, 0] = name
            bl[i, 0] = np.asarray(events[ev][name], dtype=np.int32).reshape(-1, 4)
        event_list[e, 0], file_list[e, 0], bbx_list[e, 0] = ev, fl, bl
    base = {"event_list": event_list, "file_list": file_list, "face_bbx_list": bbx_list}
    savemat(folder / "wider_face_val.mat", base)
    for s in SETTINGS:
        gl = cell(len(ev_names))
        for e, ev in enumerate(ev_names):
            imgs = list(events[ev])
            c = cell(len(imgs))
            for i, name in enumerate(imgs):
                if keep is None:
                    idx = np.arange(1, len(np.reshape(events[ev][name], (-1, 4))) + 1)
                else:
                    idx = np.asarray(keep[s].get(name, []))
                c[i, 0] = idx.astype(np.uint8).reshape(-1, 1)
            gl[e, 0] = c
        savemat(folder / f"wider_{s}_val.mat", {**base, "gt_list": gl})
    return folder


def write_file(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def aps(result) -> tuple:
    return tuple(result[s] for s in SETTINGS)


# ----------------------------------------------------------------------------- real ground truth


@pytest.fixture(scope="module")
def gt(widerface_gt_dir):
    return we.load_ground_truth(widerface_gt_dir)


def first_matching_face(b: np.ndarray) -> np.ndarray:
    """For each face's own box as a prediction: the face the toolkit gives it (-1: none).

    Integer predictions make the int32 rule exact: the rounded overlap is 1
    iff ``w > 0``, ``h > 0`` and ``2 * inter >= union`` (+1-pixel widths), and
    ``max`` returns the first such face in file order.  Computed here in
    plain integer arithmetic, independently of the evaluator.
    """
    b = b.astype(np.int64)
    x1, y1 = b[:, 0], b[:, 1]
    x2, y2 = x1 + b[:, 2], y1 + b[:, 3]
    iw = np.minimum(x2[:, None], x2[None, :]) - np.maximum(x1[:, None], x1[None, :]) + 1
    ih = np.minimum(y2[:, None], y2[None, :]) - np.maximum(y1[:, None], y1[None, :]) + 1
    inter = iw * ih
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    ok = (iw > 0) & (ih > 0) & (2 * inter >= area[None, :] + area[:, None] - inter)
    return np.where(ok.any(axis=1), ok.argmax(axis=1), -1)


@pytest.fixture(scope="module")
def gt_defects(gt):
    """Faces no prediction can ever recall under the toolkit's rules, per setting.

    Under the int32 rule a prediction takes the *first* face in file order
    whose rounded IoU reaches 0.5.  So a face that overlaps an earlier face
    by IoU >= 0.5 is "shadowed": even its exact box goes to the earlier face,
    and no box can recall it.  With the box of w = -2
    (39_Ice_Skating_iceskiing_39_583, face 8), whose +1-pixel overlap with
    itself is 0, the official val ground truth has 14 unrecallable faces in 7
    images (all Hard; 1 of them Easy, 3 Medium), among them one box held
    twice (21_Festival_Festival_21_604, faces 65 and 104 in MATLAB
    numbering).  ``writable`` marks the faces whose own box is given to
    themselves.
    """
    lost = {s: 0 for s in SETTINGS}
    writable = []
    for i, b in enumerate(gt.boxes):
        ok = first_matching_face(b) == np.arange(len(b))
        writable.append(ok)
        for s in SETTINGS:
            lost[s] += int((~ok[gt.keep[s][i]]).sum())
    return lost, writable


def port_writable(b: np.ndarray) -> np.ndarray:
    """The same for the Python port (best face, float IoU): only repeated boxes and w = -2 are lost."""
    _, first = np.unique(b, axis=0, return_index=True)
    unique_first = np.zeros(len(b), dtype=bool)
    unique_first[first] = True
    return unique_first & (b[:, 2] + 1 > 0) & (b[:, 3] + 1 > 0)


def written_back(gt, writable, rng, lo=0.5, hi=1.0):
    """Ground-truth boxes as predictions with distinct scores in [lo, hi]."""
    out = {}
    total = int(sum(w.sum() for w in writable))
    scores = iter(np.linspace(hi, lo, total)[rng.permutation(total)])
    for name, b, ok in zip(gt.images, gt.boxes, writable):
        bb = b[ok]
        out[name] = np.concatenate([bb, np.array([next(scores) for _ in range(len(bb))]).reshape(-1, 1)], axis=1)
    return out


def test_real_ground_truth_shape(gt):
    assert len(gt.images) == 3226
    assert gt.num_faces() == 39708
    assert [gt.num_faces(s) for s in SETTINGS] == [7211, 13319, 31958]
    assert gt.official


def test_ground_truth_written_back_gives_ap_one(gt, gt_defects):
    """GT as predictions with distinct scores: AP = recall ceiling (N - lost) / N, precision 1 throughout.

    ``lost`` are the faces the toolkit cannot recall (see ``gt_defects``):
    even perfect boxes give Easy AP 7210 / 7211 under the official protocol.
    """
    lost, writable = gt_defects
    assert lost == {"easy": 1, "medium": 3, "hard": 14}
    assert sum(int((~w).sum()) for w in writable) == 14 and sum(bool((~w).any()) for w in writable) == 7
    r = we.evaluate_predictions(written_back(gt, writable, np.random.default_rng(0)), gt)
    for s in SETTINGS:
        n = gt.num_faces(s)
        assert r[s] == pytest.approx((n - lost[s]) / n, abs=1e-12), s
        assert np.nanmin(r["pr_curves"][s]["precision"]) == 1.0


def test_ground_truth_written_back_python_port(gt):
    """The port takes the best face: every face but the second copy and the w = -2 box is recallable."""
    writable = [port_writable(b) for b in gt.boxes]
    lost = {s: sum(int((~w[k]).sum()) for w, k in zip(writable, gt.keep[s])) for s in SETTINGS}
    assert lost == {"easy": 0, "medium": 0, "hard": 2}
    r = we.evaluate_predictions(written_back(gt, writable, np.random.default_rng(0)), gt, protocol="python-port")
    assert r["easy"] == 1.0 and r["medium"] == 1.0
    n = gt.num_faces("hard")
    assert r["hard"] == pytest.approx((n - 2) / n, abs=1e-12)


def test_dropped_event_gives_recall_fraction(gt, gt_defects):
    lost, writable = gt_defects
    preds = written_back(gt, writable, np.random.default_rng(1))
    event = "0--Parade"
    dropped = {s: sum(len(gt.keep[s][i]) for i, e in enumerate(gt.events) if e == event) for s in SETTINGS}
    lost = {s: sum(int((~writable[i][gt.keep[s][i]]).sum()) for i, e in enumerate(gt.events) if e != event)
            for s in SETTINGS}  # unrecallable faces outside the dropped event
    for name, e in zip(gt.images, gt.events):
        if e == event:
            del preds[name]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # in-memory evaluation does not warn; evaluate() does
        r = we.evaluate_predictions(preds, gt)
    assert len(r["missing_images"]) == sum(e == event for e in gt.events)
    for s in SETTINGS:
        n = gt.num_faces(s)
        assert dropped[s] > 0
        assert r[s] == pytest.approx((n - lost[s] - dropped[s]) / n, abs=1e-12), s


def test_event_shifted_out_with_low_scores(gt, gt_defects):
    """Boxes of one event moved off their faces (IoU 0) and scored below every true box.

    They become false positives that enter only after recall is complete, so
    AP = recall ceiling, as if the event were dropped.
    """
    lost, writable = gt_defects
    preds = written_back(gt, writable, np.random.default_rng(2), lo=0.5, hi=1.0)
    event = "12--Group"
    moved = {s: sum(len(gt.keep[s][i]) for i, e in enumerate(gt.events) if e == event) for s in SETTINGS}
    for name, e in zip(gt.images, gt.events):
        if e == event:
            p = preds[name]
            p[:, 0] += 100_000
            p[:, 4] = p[:, 4] * 0.4 - 0.2  # now in [0, 0.2]
    r = we.evaluate_predictions(preds, gt)
    for s in SETTINGS:
        n = gt.num_faces(s)
        assert r[s] == pytest.approx((n - lost[s] - moved[s]) / n, abs=1e-12), s


def test_high_score_false_positives(gt, gt_defects):
    """K false positives scored above every true box: precision ends at R/(R+K), AP = (R/N) * R/(R+K)."""
    lost, writable = gt_defects
    preds = written_back(gt, writable, np.random.default_rng(3), lo=0.1, hi=0.9)
    K = 150
    for name in gt.images[:K]:
        fp = np.array([[100_000.0, 100_000.0, 20.0, 20.0, 1.0]])
        preds[name] = np.concatenate([preds[name], fp])
    r = we.evaluate_predictions(preds, gt)
    for s in SETTINGS:
        n = gt.num_faces(s)
        rec = n - lost[s]
        assert r[s] == pytest.approx(rec / n * rec / (rec + K), abs=1e-12), s


def test_low_score_false_positives_change_nothing(gt, gt_defects):
    lost, writable = gt_defects
    preds = written_back(gt, writable, np.random.default_rng(4), lo=0.5, hi=1.0)
    for name in gt.images[::3]:
        preds[name] = np.concatenate([preds[name], [[200_000.0, 0.0, 30.0, 30.0, 0.0]]])
    r = we.evaluate_predictions(preds, gt)
    for s in SETTINGS:
        n = gt.num_faces(s)
        assert r[s] == pytest.approx((n - lost[s]) / n, abs=1e-12)


def test_folder_roundtrip_and_missing_warning(gt, gt_defects, tmp_path):
    """Writer -> reader -> evaluate() on the real split; images without a file are counted and warned about."""
    lost, writable = gt_defects
    preds = written_back(gt, writable, np.random.default_rng(5))
    skipped = gt.images[:7]
    for name, event in zip(gt.images, gt.events):
        if name in skipped:
            continue
        p = preds[name]
        we.write_prediction_file(tmp_path / event / f"{name}.txt", name, p[:, :4], p[:, 4])
    timings = {}
    with pytest.warns(we.MissingPredictionsWarning, match=r"7 image\(s\)"):
        r = we.evaluate(tmp_path, gt, progress=False, timings=timings)
    assert r["missing_images"] == list(skipped)
    faces_skipped = {s: sum(len(gt.keep[s][i]) for i in range(7)) for s in SETTINGS}
    for s in SETTINGS:
        n = gt.num_faces(s)
        assert r[s] == pytest.approx((n - lost[s] - faces_skipped[s]) / n, abs=1e-12)
    assert set(timings) == {"load_ground_truth", "read_predictions", "evaluate"}


def test_folder_evaluated_streaming_equals_the_folder_held_in_memory(gt, tmp_path):
    """evaluate() reads a folder in two streaming passes (the scores' range, then image by image);
    on the real split, with jittered faces, duplicates and false boxes scored as logits in file
    order (not sorted), every number equals evaluate_predictions on the folder held in memory,
    under both protocols (issue 38)."""
    rng = np.random.default_rng(38)
    for name, event, b in zip(gt.images, gt.events, gt.boxes):
        k = int(rng.integers(0, 2 * len(b) + 3))
        src = b[rng.integers(0, len(b), k)] if len(b) else rng.uniform(0, 500, (k, 4))
        boxes = np.abs(src + rng.normal(0, 3, src.shape)) + [0, 0, 1, 1]
        we.write_prediction_file(tmp_path / event / f"{name}.txt", name, boxes, np.round(rng.normal(0, 3, k), 4))
    streamed = we.evaluate(tmp_path, gt, progress=False, protocol=["matlab", "python-port"])
    held = we.read_predictions(tmp_path, gt, progress=False)
    for protocol, r in streamed.items():
        ref = we.evaluate_predictions(held, gt, protocol=protocol)
        assert r.keys() - {"pred_dir"} == ref.keys()
        for s in SETTINGS:
            assert r[s] == ref[s] and 0 < r[s] < 1, (protocol, s)
            for k, v in ref["pr_curves"][s].items():
                np.testing.assert_array_equal(r["pr_curves"][s][k], v, err_msg=f"{protocol} {s} {k}")
        for k in ("num_faces", "num_predictions", "num_negative_sizes", "missing_images"):
            assert r[k] == ref[k], (protocol, k)


def test_text_ground_truth_matches_mat(widerface_gt_dir, gt):
    with pytest.warns(we.ApproximateSettingsWarning, match="official"):
        tgt = we.load_ground_truth(widerface_gt_dir / "wider_face_val_bbx_gt.txt")
    assert not tgt.official
    assert tgt.images == gt.images and tgt.events == gt.events
    assert all(np.array_equal(a, b) for a, b in zip(tgt.boxes, gt.boxes))
    for s in SETTINGS:  # approximations of the official split (Jaccard >= 0.97 measured)
        a = {(i, k) for i, ks in enumerate(tgt.keep[s]) for k in ks}
        b = {(i, k) for i, ks in enumerate(gt.keep[s]) for k in ks}
        assert len(a & b) / len(a | b) > 0.97


# ----------------------------------------------------------------------------- micro cases


def micro_gt(boxes: dict, keep: dict | None = None) -> we.WiderGroundTruth:
    return we.WiderGroundTruth.from_boxes({k: np.asarray(v, float) for k, v in boxes.items()}, keep)


def test_iou_plus_one_convention_and_threshold_boundary():
    """Face w=29 (31 px wide with +1): a shift of 10 px gives IoU exactly 0.5 (matched), 11 px does not."""
    face = np.array([[0.0, 0.0, 29.0, 29.0]])  # x y w h
    g = micro_gt({"a": face})
    far = [500.0, 500.0, 5.0, 5.0, 0.1]  # a second, lower score (one score alone normalises to NaN)
    for shift, expected in [(10, 1.0), (11, 0.0)]:
        pred = {"a": np.array([[shift, 0.0, 29.0, 29.0, 0.9], far])}
        assert we.evaluate_predictions(pred, g)["hard"] == expected
    gx = np.array([0.0, 0.0, 29.0, 29.0])
    assert iou_plus1(gx, np.array([10.0, 0.0, 39.0, 29.0])) == 0.5
    # without the +1 convention the same shift gives 19/39 < 0.5


def test_ignore_rule_removes_prediction_from_count():
    """Face A counts, face B (not in gt_list) is ignored.

    Predictions in score order: p1 -> B (ignored), p2 -> A (TP), p3 -> B
    again (ignored), p4 -> nothing (FP).  Proposals are p2 and p4 only, so the
    curve ends at precision 1/2, recall 1/1, and the envelope gives AP = 1
    (p2 enters before p4).  Swapping p2/p4 scores gives AP = 1/2.
    """
    A = [0, 0, 20, 20]
    B = [100, 100, 20, 20]
    keep = {s: {"img": np.array([0])} for s in SETTINGS}
    g = micro_gt({"img": [A, B]}, keep)
    preds = np.array([
        [100, 100, 20, 20, 0.9],   # p1 -> B
        [0, 0, 20, 20, 0.8],       # p2 -> A
        [101, 100, 20, 20, 0.7],   # p3 -> B
        [300, 300, 20, 20, 0.6],   # p4 -> FP
    ], dtype=float)
    r = we.evaluate_predictions({"img": preds}, g)
    c = r["pr_curves"]["hard"]
    assert c["proposals"][-1] == 2 and c["true_positives"][-1] == 1
    assert c["ignored_predictions"] == 2
    assert r["hard"] == pytest.approx(1.0)
    preds[[1, 3], 4] = preds[[3, 1], 4]  # FP now scored above the TP
    assert we.evaluate_predictions({"img": preds}, g)["hard"] == pytest.approx(0.5)


def test_match_to_ignored_face_wins_over_counted_face():
    """A prediction whose chosen face is an ignored one is ignored, even if it also overlaps a counted face >= 0.5.

    Under the toolkit's int32 rule the chosen face is the first reaching 0.5
    in file order, so the ignored face comes first here; the port takes the
    best face (B) whatever the order.
    """
    B = [2, 0, 29, 29]      # ignored, better IoU with the prediction
    A = [0, 0, 29, 29]      # counted
    keep = {s: {"img": np.array([1])} for s in SETTINGS}
    g = micro_gt({"img": [B, A]}, keep)
    pred = np.array([[3, 0, 29, 29, 0.9]], float)
    for protocol in ("matlab", "python-port"):
        c = we.evaluate_predictions({"img": pred}, g, protocol=protocol)["pr_curves"]["easy"]
        assert c["ignored_predictions"] == 1 and c["proposals"][-1] == 0 and c["true_positives"][-1] == 0


def test_second_match_to_found_face_is_false_positive_and_tie_order_is_irrelevant():
    """Two predictions of one face with equal score: one TP, one FP, whatever their file order."""
    g = micro_gt({"img": [[0, 0, 20, 20], [200, 0, 20, 20]]})
    p = np.array([[0, 0, 20, 20, 0.5], [1, 1, 20, 20, 0.5], [200, 0, 20, 20, 0.9]], float)
    r1 = we.evaluate_predictions({"img": p}, g)
    r2 = we.evaluate_predictions({"img": p[[1, 0, 2]]}, g)
    c = r1["pr_curves"]["hard"]
    assert c["true_positives"][-1] == 2 and c["proposals"][-1] == 3
    # thresholds: 0.9 -> normalised 1.0 (TP); 0.5 -> 0.0, both tied preds enter at thr 0
    assert r1["hard"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert aps(r1) == aps(r2)


def test_unsorted_file_order_is_sorted_like_read_pred():
    """MATLAB sorts each file by score; ascending files give the same AP as descending ones."""
    g = micro_gt({"img": [[0, 0, 20, 20], [100, 0, 20, 20]]})
    p = np.array([[500, 0, 20, 20, 0.9], [0, 0, 20, 20, 0.8], [100, 0, 20, 20, 0.3]], float)
    a = we.evaluate_predictions({"img": p}, g)["hard"]
    b = we.evaluate_predictions({"img": p[::-1]}, g)["hard"]
    # FP first (precision 0), then TP (1/2), then TP (2/3): envelope 2/3 over recall [0, 1]
    assert a == b == pytest.approx(2 / 3)


def test_scores_outside_unit_interval_are_min_max_normalised():
    """The toolkit normalises with the set's own min and max (the Python port starts from 0/1)."""
    g = micro_gt({"img": [[0, 0, 20, 20], [100, 0, 20, 20]]})
    p = np.array([[500, 0, 20, 20, 0.75], [0, 0, 20, 20, 0.5], [100, 0, 20, 20, 0.25]], float)
    base = we.evaluate_predictions({"img": p}, g)["hard"]
    q = p.copy()
    q[:, 4] = q[:, 4] * 8 + 3  # exact in binary: same normalised scores
    assert we.evaluate_predictions({"img": q}, g)["hard"] == base


def test_equal_scores_normalise_to_nan_and_give_zero():
    """All scores equal and non-zero: (s - min) / (max - min) = 0/0 = NaN in norm_score.m.

    NaN passes no threshold, so nothing is ever counted: every AP is 0 even
    for perfect boxes.  All scores 0: max is floored at realmin('single'),
    every normalised score is 0 and all predictions enter at the last
    threshold (0): AP = final recall x final precision.
    """
    g = micro_gt({"img": [[0, 0, 20, 20], [100, 0, 20, 20]]})
    p = np.array([[0, 0, 20, 20, 0.7], [100, 0, 20, 20, 0.7], [400, 0, 20, 20, 0.7]], float)
    assert np.isnan(normalize_scores(p[:, 4])).all()
    assert aps(we.evaluate_predictions({"img": p}, g)) == (0.0, 0.0, 0.0)
    p[:, 4] = 0.0
    assert (normalize_scores(p[:, 4]) == 0).all()
    assert we.evaluate_predictions({"img": p}, g)["hard"] == pytest.approx(1.0 * 2 / 3)


def test_scores_in_one_threshold_bin_behave_as_ties():
    """Thresholds are 1 - t/1000: scores 0.9995 and 0.9991 (normalised) share the bin of 0.999."""
    g = micro_gt({"img": [[0, 0, 20, 20]]})
    tp_first = np.array([[0, 0, 20, 20, 0.9995], [300, 0, 20, 20, 0.9991], [600, 0, 20, 20, 0.0], [900, 0, 9, 9, 1.0]])
    # normalised: 1.0 (FP), 0.9995 (TP), 0.9991 (FP), 0.0 (FP); TP and FP #2 enter together at thr 0.999
    r = we.evaluate_predictions({"img": tp_first}, g)
    assert r["hard"] == pytest.approx(1 / 3)
    assert THRESHOLDS[0] == 0.999 and THRESHOLDS[-1] == 0.0


def test_faceless_image_predictions_count_nowhere_and_missing_faces_count():
    g = micro_gt({"faces": [[0, 0, 20, 20], [100, 0, 20, 20]], "empty": np.zeros((0, 4)), "nofile": [[0, 0, 9, 9]]})
    preds = {"faces": np.array([[0, 0, 20, 20, 0.9]]), "empty": np.array([[5, 5, 20, 20, 1.0]] * 3)}
    r = we.evaluate_predictions(preds, g)
    assert r["missing_images"] == ["nofile"]
    assert r["hard"] == pytest.approx(1 / 3)  # one of three faces, precision 1


def test_voc_ap_matches_hand_computation():
    assert voc_ap(np.array([0.5, 0.5, 1.0]), np.array([1.0, 0.5, 2 / 3])) == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert voc_ap(np.array([0.0, 0.5]), np.array([np.nan, 1.0])) == pytest.approx(0.5)


def test_mat_roundtrip_with_ignore(tmp_path):
    """Tiny official-layout .mat files: per-setting gt_list drives what counts."""
    events = {"0--A": {"a1": [[0, 0, 20, 20], [100, 0, 20, 20]]}, "1--B": {"b1": [[0, 0, 30, 30]]}}
    keep = {"easy": {"a1": [1]}, "medium": {"a1": [1, 2]}, "hard": {"a1": [1, 2], "b1": [1]}}
    gt_dir = write_mat_gt(tmp_path / "gt", events, keep)
    g = we.load_ground_truth(gt_dir)
    assert g.official and g.images == ["a1", "b1"] and g.events == ["0--A", "1--B"]
    assert [g.num_faces(s) for s in SETTINGS] == [1, 2, 3]
    pred = tmp_path / "pred"
    we.write_prediction_file(pred / "0--A" / "a1.txt", "a1", [[0, 0, 20, 20], [100, 0, 20, 20]], [0.9, 0.8])
    with pytest.warns(we.MissingPredictionsWarning):
        r = we.evaluate(pred, g, progress=False)  # b1 missing: warned, its face still counts
    # easy: face 2 ignored -> 1/1; medium: 2/2; hard: 2/3 recall
    assert aps(r) == pytest.approx((1.0, 1.0, 2 / 3))


# ----------------------------------------------------------------------------- bad input


@pytest.fixture()
def small(tmp_path):
    gt_dir = write_mat_gt(tmp_path / "gt", {"0--A": {"a1": [[0, 0, 20, 20]], "a2": [[5, 5, 10, 10]]}})
    return we.load_ground_truth(gt_dir), tmp_path / "pred"


def _bad(small, text, name="a1", event="0--A"):
    g, pred = small
    write_file(pred / event / f"{name}.txt", text)
    with pytest.raises(we.PredictionFormatError) as ei:
        we.evaluate(pred, g, progress=False)
    return ei.value


def test_bad_count_too_large(small):
    e = _bad(small, "a1\n3\n0 0 20 20 0.9\n1 1 20 20 0.8\n")
    assert "says 3 boxes but only 2" in str(e) and e.line == 5 and e.path.name == "a1.txt"


def test_bad_count_too_small(small):
    e = _bad(small, "a1\n1\n0 0 20 20 0.9\n1 1 20 20 0.8\n")
    assert e.line == 4 and "wrong count line" in str(e)


def test_bad_count_not_integer(small):
    e = _bad(small, "a1\ntwo\n0 0 20 20 0.9\n")
    assert e.line == 2 and "number of boxes" in str(e)


def test_bad_non_numeric_field(small):
    e = _bad(small, "a1\n2\n0 0 20 20 0.9\n1 1 20 abc 0.8\n")
    assert e.line == 4 and "'abc'" in str(e)
    assert str(e).startswith(str(e.path) + ":4:")


def test_bad_field_count(small):
    e = _bad(small, "a1\n1\n0 0 20 20\n")
    assert e.line == 3 and "expected 5 numbers" in str(e)


@pytest.mark.parametrize(
    "row, what",
    [("nan 0 20 20 0.9", "NaN"), ("0 0 20 20 inf", "NaN and infinity"), ("0 0 20 20 0.9 x", "'x'")],
)
def test_bad_values(small, row, what):
    e = _bad(small, f"a1\n2\n0 0 20 20 0.9\n{row}\n")
    assert e.line == 4 and what in str(e)


def test_negative_scores_and_sizes_and_extra_numbers_are_read(small):
    """What the toolkit reads is read: logits, w/h < 0 (evaluated as written), numbers after the score (ignored)."""
    g, pred = small
    write_file(pred / "0--A" / "a1.txt", "a1\n3\n0 0 20 20 -0.5\n0 0 -1 20 -3\n1 1 20 -3 2.5 7 8\n")
    arr = we.read_predictions(pred, g, progress=False)["a1"]
    assert arr.tolist() == [[0, 0, 20, 20, -0.5], [0, 0, -1, 20, -3], [1, 1, 20, -3, 2.5]]


def test_negative_xy_are_legitimate(small):
    g, pred = small
    write_file(pred / "0--A" / "a1.txt", "a1\n1\n-2.5 -1 20 20 0.9\n")
    write_file(pred / "0--A" / "a2.txt", "a2\n1\n300 300 5 5 0.1\n")
    r = we.evaluate(pred, g, progress=False)
    assert r["hard"] == pytest.approx(0.5)  # IoU with face a1 >= 0.5; face a2 missed


def test_bad_header_name(small):
    e = _bad(small, "a2\n1\n0 0 20 20 0.9\n")
    assert e.line == 1 and "'a2'" in str(e)


def test_header_with_path_and_extension_accepted(small):
    g, pred = small
    write_file(pred / "0--A" / "a1.txt", "0--A/a1.jpg\n1\n0 0 20 20 0.9\n")
    assert we.read_predictions(pred, g, progress=False)["a1"].shape == (1, 5)


def test_unknown_image_name(small):
    e = _bad(small, "zz\n0\n", name="zz")
    assert "unknown image name 'zz'" in str(e) and e.path.name == "zz.txt"


def test_wrong_event_folder(small):
    e = _bad(small, "a1\n0\n", event="9--Other")
    assert "0--A/a1.txt" in str(e)


def test_missing_prediction_file_warns_with_count(small):
    g, pred = small
    write_file(pred / "0--A" / "a1.txt", "a1\n2\n0 0 20 20 0.9\n300 300 5 5 0.1\n")
    with pytest.warns(we.MissingPredictionsWarning, match=r"1 image\(s\).*a2"):
        r = we.evaluate(pred, g, progress=False)
    assert r["missing_images"] == ["a2"] and r["hard"] == pytest.approx(0.5)


def test_ground_truth_folder_missing_a_file(tmp_path):
    gt_dir = write_mat_gt(tmp_path / "gt", {"0--A": {"a1": [[0, 0, 20, 20]]}})
    (gt_dir / "wider_medium_val.mat").unlink()
    with pytest.raises(we.GroundTruthError, match="wider_medium_val.mat"):
        we.load_ground_truth(gt_dir)
    with pytest.raises(we.GroundTruthError, match="no ground truth found"):
        we.load_ground_truth(tmp_path)


def test_write_prediction_file_roundtrip_atomic_and_refuses_bad(tmp_path):
    path = tmp_path / "ev" / "img_1.txt"
    boxes = np.array([[1.25, -2.0, 10.0, 12.5], [0, 0, 3, 4]])
    scores = np.array([0.123456789, 0.9])
    we.write_prediction_file(path, "ev/img_1.jpg", boxes, scores)
    assert path.read_text().splitlines()[:2] == ["img_1", "2"]
    back = we.read_prediction_file(path)
    np.testing.assert_allclose(back[:, :4], boxes)
    np.testing.assert_allclose(back[:, 4], scores, rtol=1e-8)
    assert [p.name for p in path.parent.iterdir()] == ["img_1.txt"]  # no temp file left
    with pytest.raises(ValueError, match="NaN"):
        we.write_prediction_file(path, "img_1", [[0, 0, 1, 1]], [np.nan])
    with pytest.raises(ValueError, match="negative width"):
        we.write_prediction_file(path, "img_1", [[0, 0, -1, 1]], [0.5])
    we.write_prediction_file(path, "img_1", [[0, 0, 1, 1]], [-2.5])  # logits are written as they are
    assert we.read_prediction_file(path)[0, 4] == -2.5
    we.write_prediction_file(path, "img_1", np.zeros((0, 4)), [])
    assert we.read_prediction_file(path).shape == (0, 5)


# ----------------------------------------------------------------------------- CLI and plots


def test_cli_json_plot_and_several_methods(tmp_path, capsys):
    events = {"0--A": {"a1": [[0, 0, 20, 20], [100, 0, 20, 20]]}}
    gt_dir = write_mat_gt(tmp_path / "gt", events)
    good, bad = tmp_path / "good", tmp_path / "bad"
    we.write_prediction_file(good / "0--A" / "a1.txt", "a1", [[0, 0, 20, 20], [100, 0, 20, 20]], [0.9, 0.8])
    we.write_prediction_file(bad / "0--A" / "a1.txt", "a1", [[0, 0, 20, 20], [400, 0, 20, 20]], [0.9, 0.8])
    out_json, out_png = tmp_path / "r.json", tmp_path / "plots" / "pr.png"
    rc = main([str(good), str(gt_dir), "--json", str(out_json), "--plot", str(out_png), "--no-progress"])
    assert rc == 0
    data = json.loads(out_json.read_text())
    assert (data["easy"], data["medium"], data["hard"]) == (1.0, 1.0, 1.0)
    assert "Easy" in capsys.readouterr().out
    assert out_png.stat().st_size > 0 and all((tmp_path / "plots" / f"pr_{s}.png").exists() for s in SETTINGS)
    rc = main(["--pred", str(good), "--name", "G", "--pred", str(bad), "--name", "B", "--gt", str(gt_dir),
               "--json", str(out_json), "--plot", str(out_png), "--no-progress"])
    assert rc == 0
    data = json.loads(out_json.read_text())
    assert data["methods"]["G"]["hard"] == 1.0 and data["methods"]["B"]["hard"] == pytest.approx(0.5)
    assert len(data["methods"]["B"]["pr_curves"]["hard"]["precision"]) == 1000


def test_cli_bad_input_one_line_nonzero(tmp_path, capsys):
    gt_dir = write_mat_gt(tmp_path / "gt", {"0--A": {"a1": [[0, 0, 20, 20]]}})
    write_file(tmp_path / "p" / "0--A" / "a1.txt", "a1\n1\n0 0 20 x 0.9\n")
    rc = main([str(tmp_path / "p"), str(gt_dir), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "a1.txt:3:" in err


def test_python_m_help():
    res = subprocess.run([sys.executable, "-m", "widerface_eval", "--help"], cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0 and "--json" in res.stdout and "official" in res.stdout


# ----------------------------------------------------------------------------- literal reference


def _reference_ap(preds: dict, g: we.WiderGroundTruth, setting: str) -> float:
    """Slow, line-by-line Python rendering of the toolkit's loops with double ground truth (float IoU).

    The int32 rendering and the Python port's are in ``test_widerface_official.py``.
    """
    scores = [float(s) for p in preds.values() for s in p[:, 4]]
    hi = max(np.float32(np.finfo(np.float32).tiny), np.float32(max(scores)))
    lo = min(np.float32(np.finfo(np.float32).max), np.float32(min(scores)))
    org = np.zeros((1000, 2))
    count_face = 0
    for name, gtb, keep in zip(g.images, g.boxes, g.keep[setting]):
        count_face += len(keep)
        p = preds.get(name)
        if p is None or len(p) == 0 or len(gtb) == 0:
            continue
        p = p[np.argsort(-p[:, 4], kind="stable")]
        norm = [float((np.float32(s) - lo) / np.float32(hi - lo)) for s in p[:, 4]]
        counts = [0] * len(gtb)
        for k in keep:
            counts[k] = 1
        recall_list = [0] * len(gtb)
        proposal = [1] * len(p)
        pred_recall = [0] * len(p)
        for h, (x, y, w, hh, _) in enumerate(p):
            best, idx = -1.0, 0
            for j, (gx, gy, gw, gh) in enumerate(gtb):
                ix = min(gx + gw, x + w) - max(gx, x) + 1
                iy = min(gy + gh, y + hh) - max(gy, y) + 1
                o = 0.0 if ix <= 0 or iy <= 0 else ix * iy / ((gw + 1) * (gh + 1) + (w + 1) * (hh + 1) - ix * iy)
                if o > best:
                    best, idx = o, j
            if best >= 0.5:
                if counts[idx] == 0:
                    recall_list[idx] = -1
                    proposal[h] = -1
                elif recall_list[idx] == 0:
                    recall_list[idx] = 1
            pred_recall[h] = sum(1 for r in recall_list if r == 1)
        for t in range(1, 1001):
            thresh = 1 - t / 1000
            r = [i for i, v in enumerate(norm) if v >= thresh]
            if r:
                org[t - 1, 0] += sum(1 for v in proposal[: r[-1] + 1] if v == 1)
                org[t - 1, 1] += pred_recall[r[-1]]
    with np.errstate(invalid="ignore", divide="ignore"):
        prec, rec = org[:, 1] / org[:, 0], org[:, 1] / count_face
    mrec, mpre = [0.0, *rec, 1.0], [0.0, *prec, 0.0]
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = np.fmax(mpre[i], mpre[i + 1])
    return float(sum((mrec[i] - mrec[i - 1]) * mpre[i] for i in range(1, len(mrec)) if mrec[i] != mrec[i - 1]))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorised_equals_literal_loops(seed):
    """Random crowded images, 2-decimal scores (many ties), random gt_lists, missing files, a face-less image."""
    rng = np.random.default_rng(seed)
    boxes, keep, preds = {}, {s: {} for s in SETTINGS}, {}
    for i in range(12):
        n = int(rng.integers(0, 9)) if i else 0
        b = np.column_stack([rng.integers(0, 80, (n, 2)), rng.integers(3, 30, (n, 2))]).astype(float)
        boxes[f"im{i}"] = b
        for s in SETTINGS:
            keep[s][f"im{i}"] = np.flatnonzero(rng.random(n) < {"easy": 0.3, "medium": 0.6, "hard": 0.9}[s])
        if rng.random() < 0.85:
            src = b[rng.integers(0, n, int(rng.integers(0, 2 * n + 1)))] if n else np.zeros((0, 4))
            jit = src + rng.normal(0, 1.0, src.shape) * [1, 1, 0.5, 0.5]
            jit[:, 2:] = np.abs(jit[:, 2:])
            extra = np.column_stack([rng.uniform(0, 100, (3, 2)), rng.uniform(2, 25, (3, 2))])
            p = np.concatenate([jit, extra])
            preds[f"im{i}"] = np.column_stack([p, np.round(rng.random(len(p)), 2)])
    g = we.WiderGroundTruth.from_boxes(boxes, keep, box_class="double")  # float IoU, best face
    r = we.evaluate_predictions(preds, g)
    for s in SETTINGS:
        assert r[s] == pytest.approx(_reference_ap(preds, g, s), abs=1e-12), s


# ----------------------------------------------------------------------------- resampled images (bootstrap)


def messy_predictions(gt, seed: int) -> dict[str, np.ndarray]:
    """Every face's box moved by up to 60 % of its size or kept, a fifth dropped, one false positive in
    every other image, scores drawn at random: a curve with misses, false positives and ignored faces."""
    rng = np.random.default_rng(seed)
    out = {}
    for k, (name, b) in enumerate(zip(gt.images, gt.boxes)):
        b = b[rng.random(len(b)) > 0.2].copy()
        b[:, :2] += rng.uniform(-0.6, 0.6, (len(b), 2)) * b[:, 2:] * (rng.random((len(b), 1)) < 0.3)
        if k % 2:
            b = np.concatenate([b, [[5_000.0, 5_000.0, 30.0, 30.0]]])
        out[name] = np.concatenate([b, rng.random((len(b), 1))], axis=1)
    return out


@pytest.mark.parametrize("protocol", ["matlab", "python-port"])
def test_resampled_ap_of_every_image_once_is_the_evaluation(gt, protocol):
    preds = messy_predictions(gt, 0)
    want = we.evaluate_predictions(preds, gt, protocol=protocol)
    got = we.resampled_ap(preds, gt, np.arange(len(gt.images)), protocol=protocol)
    for s in SETTINGS:
        assert 0.2 < want[s] < 0.9
        assert got[s].shape == (1,) and got[s][0] == pytest.approx(want[s], abs=1e-12), s


def test_resampled_image_drawn_twice_counts_as_two_copies(gt):
    """A resample holding images 0 and 1 twice scores what a ground truth with copies of them scores."""
    preds = messy_predictions(gt, 1)
    copies = [0, 1]
    doubled = we.WiderGroundTruth(
        events=gt.events + [gt.events[i] for i in copies],
        images=gt.images + [f"copy_{i}" for i in copies],
        boxes=gt.boxes + [gt.boxes[i] for i in copies],
        keep={s: gt.keep[s] + [gt.keep[s][i] for i in copies] for s in SETTINGS},
        box_class=gt.box_class)
    want = we.evaluate_predictions({**preds, **{f"copy_{i}": preds[gt.images[i]] for i in copies}}, doubled)
    sample = np.concatenate([copies, np.arange(len(gt.images))])
    got = we.resampled_ap(preds, gt, sample[None])
    for s in SETTINGS:
        assert got[s][0] == pytest.approx(want[s], abs=1e-12), s
    # and a different resample gives a different AP (the weights are used, not ignored)
    half = we.resampled_ap(preds, gt, np.arange(0, len(gt.images), 2)[None])
    assert all(half[s][0] != pytest.approx(want[s], abs=1e-6) for s in SETTINGS)


def test_resampled_ap_refuses_indices_outside_the_images(gt):
    with pytest.raises(ValueError, match="samples index images"):
        we.resampled_ap({}, gt, np.array([[0, len(gt.images)]]))


# ----------------------------------------------------------------------------- streaming, symlinks (issue 38)


def test_a_large_prediction_file_is_read_streaming_in_bounded_memory(tmp_path):
    """100,000 boxes (3.4 MB of text): reading holds the (N, 5) array and a bounded chunk of lines,
    not the text split into Python strings (which peaked at 40x the file: 11.6 GB for 267 MB)."""
    import tracemalloc

    rng = np.random.default_rng(0)
    n = 100_000
    boxes = np.round(rng.uniform(0, 1000, (n, 5)), 2)
    path = tmp_path / "0--A" / "a1.txt"
    path.parent.mkdir(parents=True)
    with open(path, "w") as fh:
        fh.write(f"a1\n{n}\n")
        fh.writelines("%g %g %g %g %g\n" % tuple(row) for row in boxes)
    tracemalloc.start()
    try:
        arr = we.read_prediction_file(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(arr, boxes)  # every value read back, in file order
    assert peak < arr.nbytes + 4_000_000, f"peak {peak / 1e6:.1f} MB for a {arr.nbytes / 1e6:.1f} MB array"
    # the same answer as parsing the whole text at once
    from widerface_eval.io import parse_prediction_text

    np.testing.assert_array_equal(parse_prediction_text(path.read_text(), path, "a1"), arr)


def test_a_file_read_streaming_is_split_into_lines_as_its_text_parsed_whole(tmp_path):
    """Form feeds and the other Unicode line breaks split lines in the file reader as in
    parse_prediction_text (str.splitlines), not only line ends."""
    from widerface_eval.io import parse_prediction_text

    for text in ("a1\n2\n1 2 3 4 0.5\x1c5 6 7 8 0.6\n", "a1\n1\n1 2 3\x0c4 0.5\n", "a1\r\n1\r\n1 2 3 4 0.5\u2028\r\n"):
        path = tmp_path / "a1.txt"
        path.write_bytes(text.encode("utf-8"))
        try:
            whole = parse_prediction_text(text, path, "a1")
        except we.PredictionFormatError as exc:
            with pytest.raises(we.PredictionFormatError) as ei:
                we.read_prediction_file(path)
            assert (ei.value.line, str(ei.value)) == (exc.line, str(exc))
        else:
            np.testing.assert_array_equal(we.read_prediction_file(path), whole)


def test_streaming_keeps_line_accurate_errors_across_chunks(tmp_path):
    from widerface_eval import io as wio

    n = 3 * wio._CHUNK + 5
    lines = ["0 0 20 20 0.9"] * n
    lines[2 * wio._CHUNK + 1] = "0 0 20 twenty 0.9"
    path = write_file(tmp_path / "a1.txt", "a1\n%d\n" % n + "\n".join(lines) + "\n")
    with pytest.raises(we.PredictionFormatError) as ei:
        we.read_prediction_file(path)
    assert ei.value.line == 3 + 2 * wio._CHUNK + 1 and "'twenty'" in str(ei.value)
    # a count line far beyond what the file can hold is refused without allocating for it
    path = write_file(tmp_path / "a2.txt", "a2\n999999999999\n0 0 20 20 0.9\n")
    with pytest.raises(we.PredictionFormatError) as ei:
        we.read_prediction_file(path)
    assert "says 999999999999 boxes but only 1" in str(ei.value) and ei.value.line == 4
    # CRLF files read as before
    path.write_bytes(b"a2\r\n2\r\n0 0 20 20 0.9\r\n1 1 5 5 0.5\r\n\r\n")
    assert we.read_prediction_file(path).tolist() == [[0, 0, 20, 20, 0.9], [1, 1, 5, 5, 0.5]]


def test_a_symlink_out_of_the_prediction_folder_is_refused_without_reading_it(small, tmp_path):
    g, pred = small
    secret = write_file(tmp_path / "outside" / "secret.txt", "root:SECRET-HASH:0:0\n1\n0 0 20 20 0.9\n")
    link = pred / "0--A" / "a1.txt"
    link.parent.mkdir(parents=True)
    link.symlink_to(secret)
    with pytest.raises(we.PredictionFormatError) as ei:
        we.evaluate(pred, g, progress=False)
    message = str(ei.value)
    assert ei.value.path == link and "a1.txt" in message and "leads out of the prediction folder" in message
    assert "SECRET" not in message and "root:" not in message and str(secret) not in message
    # a link that stays inside the folder is an ordinary file
    link.unlink()
    inside = write_file(pred / "0--A" / "kept" / "a1-source", "a1\n1\n0 0 20 20 0.9\n")
    link.symlink_to(Path("kept") / "a1-source")
    assert we.read_predictions(pred, progress=False)["a1"].tolist() == [[0, 0, 20, 20, 0.9]]
    assert inside.exists()
