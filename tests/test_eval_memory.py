"""Evaluating a prediction folder streaming (issue 38): memory bounded by one image's boxes plus the
ground truth, whatever the folder's size, and the same numbers as holding the whole folder.

The folders are generated here (known sizes), the ground truth is built in memory; the in-memory
path (``read_predictions`` + ``evaluate_predictions``) is the reference the streaming path must
equal bit for bit (it is itself checked against the official toolkit in test_widerface_official.py).
"""
from __future__ import annotations

import tracemalloc
import warnings

import numpy as np
import pytest

import widerface_eval as we
from widerface_eval.io import write_prediction_file

SETTINGS = ("easy", "medium", "hard")
PROTOCOLS = ["matlab", "python-port"]


def make_gt(n_images: int, faces: int, rng) -> we.WiderGroundTruth:
    """Images of ``faces`` whole-pixel faces each (int32 class, as the official files); the settings
    keep all faces, the first four and the first two (the others are "ignore" faces)."""
    images = [f"{i % 7}_Ev_{i}" for i in range(n_images)]
    events = [f"{i % 7}--Ev" for i in range(n_images)]
    boxes = []
    for _ in range(n_images):
        xy = rng.integers(0, 900, (faces, 2))
        wh = rng.integers(8, 120, (faces, 2))
        boxes.append(np.concatenate([xy, wh], axis=1).astype(np.float64))
    keep = {"hard": [np.arange(faces)] * n_images, "medium": [np.arange(min(4, faces))] * n_images,
            "easy": [np.arange(min(2, faces))] * n_images}
    return we.WiderGroundTruth(events=events, images=images, boxes=boxes, keep=keep)


def image_predictions(face_boxes: np.ndarray, n: int, rng, score_low: float, score_high: float) -> np.ndarray:
    """``n`` boxes: jittered copies of the faces (found, duplicates, near misses) and random boxes; scores
    rounded to 3 decimals (ties on purpose)."""
    if len(face_boxes):
        src = face_boxes[rng.integers(0, len(face_boxes), n)] + rng.normal(0, 4, (n, 4))
    else:
        src = np.zeros((n, 4))
    stray = (rng.random(n) < 0.4) | (len(face_boxes) == 0)
    src[stray] = rng.uniform(0, 1000, (int(stray.sum()), 4))
    src[:, 2:] = np.abs(src[:, 2:]) + 1
    scores = np.round(rng.uniform(score_low, score_high, n), 3)
    return np.column_stack([np.round(src, 2), scores])


def write_folder(folder, gt, per_image: dict[int, int], rng, score_low=0.0, score_high=1.0) -> dict:
    preds = {}
    for i, n in per_image.items():
        name = gt.images[i]
        arr = image_predictions(gt.boxes[i], n, rng, score_low, score_high)
        write_prediction_file(folder / gt.events[i] / f"{name}.txt", name, arr[:, :4], arr[:, 4], box_decimals=2)
        preds[name] = arr
    return preds


def traced_peak(fn):
    tracemalloc.start()
    try:
        out = fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return out, peak


def quiet(fn):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # images without a file are warned about: expected here
        return fn()


def assert_same_result(a: dict, b: dict) -> None:
    """Every number of two results identical (NaN where NaN), not approximately equal."""
    for s in SETTINGS:
        assert a[s] == b[s], (s, a[s], b[s])
        ca, cb = a["pr_curves"][s], b["pr_curves"][s]
        assert ca.keys() == cb.keys()
        for k in ca:
            np.testing.assert_array_equal(ca[k], cb[k], err_msg=f"{s} {k}")
    for k in ("protocol", "num_faces", "num_predictions", "num_negative_sizes", "missing_images", "gt_box_class"):
        assert a[k] == b[k], k


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """200 images of 6 faces; 199 with 450 boxes, one with 12,000: 101,550 boxes in 200 files."""
    rng = np.random.default_rng(38)
    gt = make_gt(200, 6, rng)
    per_image = {i: 450 for i in range(len(gt.images))}
    per_image[17] = 12_000
    folder = tmp_path_factory.mktemp("big")
    preds = write_folder(folder, gt, per_image, rng)
    return gt, folder, preds, per_image


def test_a_large_folder_is_evaluated_in_memory_bounded_by_one_image(big):
    gt, folder, preds, per_image = big
    total = sum(per_image.values())
    largest = max(per_image.values())
    assert total > 100_000
    streamed, peak = traced_peak(lambda: we.evaluate(folder, gt, progress=False, protocol=PROTOCOLS))
    held, held_peak = traced_peak(
        lambda: {p: we.evaluate_predictions(we.read_predictions(folder, gt, progress=False), gt, protocol=p)
                 for p in PROTOCOLS})
    for p in PROTOCOLS:
        assert_same_result(streamed[p], held[p])
    # one image's worth: its (N, 5) array and the per-box arrays of its matching, a few hundred bytes per
    # box (the in-memory path spends about as much per box, on every box of the folder at once)
    per_box = held_peak / total
    faces = sum(len(b) for b in gt.boxes)
    budget = per_box * largest + 2_000 * faces + 1_500_000
    assert peak < budget, f"peak {peak / 1e6:.2f} MB > {budget / 1e6:.2f} MB ({per_box:.0f} B per box)"
    assert peak < held_peak / 4, (peak, held_peak)


def test_memory_does_not_grow_with_the_folder(big, tmp_path):
    """The same ground truth, a quarter of the files then all of them (4x the boxes): the peak stays
    put, where holding the folder grows with every box."""
    gt, folder, _, per_image = big
    quarter = tmp_path / "quarter"
    for name, event in list(zip(gt.images, gt.events))[:50]:
        src = folder / event / f"{name}.txt"
        (quarter / event).mkdir(parents=True, exist_ok=True)
        (quarter / event / src.name).write_bytes(src.read_bytes())
    assert sum(per_image[i] for i in range(50)) >= per_image[17] + 49 * 450  # the largest image in both
    _, small_peak = traced_peak(lambda: quiet(lambda: we.evaluate(quarter, gt, progress=False)))
    _, full_peak = traced_peak(lambda: we.evaluate(folder, gt, progress=False))
    added_boxes = sum(per_image.values()) - sum(per_image[i] for i in range(50))
    # the boxes added take 40 bytes each as an (N, 5) array; the peak may grow by file names only
    assert full_peak - small_peak < 0.1 * 40 * added_boxes, (small_peak, full_peak)


@pytest.mark.parametrize("low, high", [(0.0, 1.0), (-4.0, -1.0), (1.5, 3.0), (0.25, 0.25)])
def test_streamed_results_equal_the_in_memory_results_exactly(tmp_path, low, high):
    """Score ranges that exercise each start of the normalisation: all negative (MATLAB's max stays
    realmin('single'), the port's at 0), all above 1 (the port's min stays 1), all equal (0/0: NaN
    under MATLAB, every AP 0); images without a file, empty files and face-less images included; many
    small images matched together in pass 2 and one larger than a batch."""
    rng = np.random.default_rng(int(100 * (low + 5)))
    gt = make_gt(120, 5, rng)
    gt.boxes[3] = np.zeros((0, 4))  # an image without faces: its boxes count only in the range
    for s in SETTINGS:
        gt.keep[s][3] = np.zeros(0, dtype=np.int64)
    per_image = {i: int(rng.integers(0, 60)) for i in range(0, 110)}  # 110..119: no file
    per_image[40] = 6000  # more boxes than one batch of pass 2
    per_image[3] = 30
    write_folder(tmp_path, gt, per_image, rng, low, high)
    streamed = quiet(lambda: we.evaluate(tmp_path, gt, progress=False, protocol=PROTOCOLS))
    held = we.read_predictions(tmp_path, gt, progress=False)
    for p in PROTOCOLS:
        assert_same_result(streamed[p], we.evaluate_predictions(held, gt, protocol=p))
    assert streamed["matlab"]["missing_images"] == gt.images[110:]
    if low == high:
        assert all(streamed["matlab"][s] == 0 for s in SETTINGS)  # NaN normalised scores pass nothing
    else:
        assert streamed["matlab"]["hard"] > 0


# ----------------------------------------------------------------------------- FDDB detection files


def test_an_fddb_detection_file_is_read_streaming_in_bounded_memory(tmp_path):
    """120,000 FDDB detections in one file (two images of 50,000, then small ones): reading holds the
    result (boxes and scores, 40 bytes a detection), one image's rows and a bounded chunk of text,
    not the file split into Python strings; every value comes back as written."""
    rng = np.random.default_rng(7)
    sizes = [50_000, 50_000] + [100] * 200
    written = {}
    with open(tmp_path / "dets.txt", "w") as fh:
        for k, n in enumerate(sizes):
            name = f"2002/08/{k:02d}/big/img_{k}"
            arr = np.round(np.column_stack([rng.uniform(0, 400, (n, 4)), rng.random(n)]), 3)
            fh.write(f"{name}\n{n}\n")
            fh.writelines("%g %g %g %g %g\n" % tuple(row) for row in arr)
            written[name] = arr
    total = sum(sizes)
    result_bytes = total * 5 * 8
    back, peak = traced_peak(lambda: we.read_fddb_detections(tmp_path / "dets.txt"))
    assert list(back) == list(written)
    for name, arr in written.items():
        boxes, scores = back[name]
        np.testing.assert_array_equal(boxes, np.column_stack([arr[:, :2], arr[:, :2] + arr[:, 2:4]]))
        np.testing.assert_array_equal(scores, arr[:, 4])
    largest = max(sizes) * 5 * 8
    # the result, plus the largest image's rows twice (parsed, then split into boxes and scores), plus a chunk
    assert peak < result_bytes + 2 * largest + 3_000_000, f"peak {peak / 1e6:.1f} MB, result {result_bytes / 1e6:.1f} MB"


def test_fddb_streaming_keeps_line_accurate_errors_across_chunks(tmp_path):
    from widerface_eval import fddb

    n = 2 * fddb._CHUNK + 10
    rows = ["1 2 3 4 0.5"] * n
    path = tmp_path / "dets.txt"
    for k, (bad, message) in enumerate([("1 2 x 4 0.5", "non-numeric"), ("1 2 3 4", "expected 5 numbers, got 4"),
                                        ("1 2 3 nan 0.5", "NaN or infinite")]):
        r = list(rows)
        r[fddb._CHUNK + 3 + k] = bad
        path.write_text(f"img\n{n}\n" + "\n".join(r) + "\n")
        with pytest.raises(we.PredictionFormatError, match=message) as ei:
            we.read_fddb_detections(path)
        assert ei.value.line == 3 + fddb._CHUNK + 3 + k
    # a count beyond the file: reported where the file ends, never allocated for
    path.write_text("img\n99999999999\n1 2 3 4 0.5\n")
    with pytest.raises(we.PredictionFormatError, match="announces 99999999999 entries but the file ends") as ei:
        we.read_fddb_detections(path)
    assert ei.value.line == 4
    # a faulty row before the end is reported first, as a line-by-line reader reports it
    path.write_text("img\n3\n1 2 3 4 0.5\n1 2 x 4 0.5\n")
    with pytest.raises(we.PredictionFormatError, match="non-numeric") as ei:
        we.read_fddb_detections(path)
    assert ei.value.line == 4


def test_a_file_rewritten_between_the_two_passes_is_refused(tmp_path):
    """The range of pass 1 must be the range of what pass 2 matches: a file rewritten in between
    (a detector still writing the folder) gives an error, never numbers from a mixed folder."""
    from widerface_eval import protocol
    from widerface_eval.io import prediction_files

    rng = np.random.default_rng(3)
    gt = make_gt(10, 3, rng)
    write_folder(tmp_path, gt, {i: 20 for i in range(10)}, rng)
    files = prediction_files(tmp_path, gt)
    scan = protocol._scan(files, False, "")
    arr = image_predictions(gt.boxes[4], 20, rng, 0.0, 2.0)  # a score above the range pass 1 saw
    write_prediction_file(tmp_path / gt.events[4] / f"{gt.images[4]}.txt", gt.images[4], arr[:, :4], arr[:, 4])
    with pytest.raises(we.PredictionFormatError, match="changed while being evaluated"):
        protocol._evaluate_stream(files, gt, [protocol.get_protocol("matlab")], scan, False, tmp_path)
    # unchanged files pass
    scan = protocol._scan(files, False, "")
    assert protocol._evaluate_stream(files, gt, [protocol.get_protocol("matlab")], scan, False, tmp_path)["matlab"]["hard"] > 0
