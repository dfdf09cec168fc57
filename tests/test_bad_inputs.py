"""Bad inputs, one test each: either a correct result or a one-line error naming the
file, the run going on with the rest, nothing already written lost, and a non-zero
exit status when any input failed."""
from __future__ import annotations

import inspect
import json
import logging

import cv2
import numpy as np
import pytest

from retinaface_polynl.cli import main
from retinaface_polynl.detector import Detector
from retinaface_polynl.tta import TTA_PRESETS, plan_views

from test_media import exif_jpeg  # tests/ is on sys.path (pytest rootdir-relative import)

PHOTO = "2008_002506.jpg"  # three clear faces




@pytest.fixture(scope="module")
def photo(dlib_faces_dir):
    """The photo at 320 x 240 (its three faces stay easy) to keep the tests quick."""
    return cv2.resize(cv2.imread(str(dlib_faces_dir / PHOTO)), (320, 240), interpolation=cv2.INTER_AREA)


@pytest.fixture()
def good(tmp_path, photo):
    path = tmp_path / "good.jpg"
    cv2.imwrite(str(path), photo)
    return path


@pytest.fixture(scope="module")
def detector(mnet_checkpoint):
    return Detector(weights=mnet_checkpoint)


def run_cli(capsys, tmp_path, mnet_checkpoint, *inputs):
    """Runs detect on ``inputs``; returns (exit status, JSON records, error lines)."""
    jsonl = tmp_path / "out.jsonl"
    rc = main(["detect", *map(str, inputs), "--weights", str(mnet_checkpoint), "--json", str(jsonl),
               "--output", str(tmp_path / "annotated"), "--quiet"])
    err = capsys.readouterr().err
    records = [json.loads(line) for line in jsonl.read_text().splitlines()] if jsonl.exists() else []
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    return rc, records, errors


def assert_failed_alone(rc, records, errors, bad, good):
    assert rc == 1
    assert len(errors) == 1 and str(bad) in errors[0], errors
    assert [r["path"] for r in records] == [str(good)]  # the good one before *and* after still ran
    assert len(records[0]["boxes"]) == 3


def _bad_then_good(tmp_path, name, content):
    bad = tmp_path / name
    bad.write_bytes(content)
    return bad


def test_corrupt_jpeg(tmp_path, good, mnet_checkpoint, capsys):
    bad = _bad_then_good(tmp_path, "corrupt.jpg", b"\xff\xd8\xff\xe0" + bytes(range(256)) * 20 + b"\xff\xd9")
    rc, records, errors = run_cli(capsys, tmp_path, mnet_checkpoint, bad, good)
    assert_failed_alone(rc, records, errors, bad, good)


def test_truncated_jpeg(tmp_path, good, mnet_checkpoint, capsys):
    data = good.read_bytes()
    bad = _bad_then_good(tmp_path, "truncated.jpg", data[: len(data) // 3])
    rc, records, errors = run_cli(capsys, tmp_path, mnet_checkpoint, good, bad)
    assert rc == 1 and len(errors) == 1 and "truncated.jpg" in errors[0] and "truncated" in errors[0]
    assert [r["path"] for r in records] == [str(good)]
    assert (tmp_path / "annotated" / "good.jpg").is_file()  # written before the failure, kept


def test_empty_file(tmp_path, good, mnet_checkpoint, capsys):
    bad = _bad_then_good(tmp_path, "empty.png", b"")
    rc, records, errors = run_cli(capsys, tmp_path, mnet_checkpoint, bad, good)
    assert_failed_alone(rc, records, errors, bad, good)
    assert "empty" in errors[0]


def test_not_an_image(tmp_path, good, mnet_checkpoint, capsys):
    bad = _bad_then_good(tmp_path, "notes.png", b"just some text, not a picture\n" * 50)
    rc, records, errors = run_cli(capsys, tmp_path, mnet_checkpoint, bad, good)
    assert_failed_alone(rc, records, errors, bad, good)


def test_unreadable_video(tmp_path, good, mnet_checkpoint, capsys):
    bad = _bad_then_good(tmp_path, "broken.mp4", b"\x00\x00\x00\x18ftypmp42" + b"\x13" * 3000)
    rc, records, errors = run_cli(capsys, tmp_path, mnet_checkpoint, bad, good)
    assert_failed_alone(rc, records, errors, bad, good)
    assert "video" in errors[0]


def test_missing_path(tmp_path, good, mnet_checkpoint, capsys):
    bad = tmp_path / "nowhere" / "missing.jpg"
    rc, records, errors = run_cli(capsys, tmp_path, mnet_checkpoint, bad, good)
    assert_failed_alone(rc, records, errors, bad, good)


def test_folder_without_pictures(tmp_path, good, mnet_checkpoint, capsys):
    empty = tmp_path / "empty_folder"
    empty.mkdir()
    rc, records, errors = run_cli(capsys, tmp_path, mnet_checkpoint, empty, good)
    assert_failed_alone(rc, records, errors, empty, good)


def test_network_failure_on_one_picture(tmp_path, good, mnet_checkpoint, capsys, monkeypatch, photo):
    """A failure inside the detector (e.g. out of memory) is reported for that picture only."""
    odd = tmp_path / "odd.png"
    cv2.imwrite(str(odd), photo[:150, :200])
    original = Detector.predict_raw

    def flaky(self, batch):
        if batch.shape[2:] == (160, 224):
            raise RuntimeError("CUDA out of memory (simulated)\nmore detail")
        return original(self, batch)

    monkeypatch.setattr(Detector, "predict_raw", flaky)
    rc, records, errors = run_cli(capsys, tmp_path, mnet_checkpoint, odd, good)
    assert_failed_alone(rc, records, errors, odd, good)
    assert "out of memory" in errors[0]


def _faces_like_photo(records, expected=3):
    assert len(records) == 2
    assert all(len(r["boxes"]) == expected for r in records), [len(r["boxes"]) for r in records]


def test_grayscale_image(tmp_path, good, photo, mnet_checkpoint, capsys):
    path = tmp_path / "gray.png"
    cv2.imwrite(str(path), cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY))
    rc, records, errors = run_cli(capsys, tmp_path, mnet_checkpoint, path, good)
    assert rc == 0 and not errors
    _faces_like_photo(records)


def test_rgba_image(tmp_path, good, photo, mnet_checkpoint, capsys):
    path = tmp_path / "rgba.png"
    cv2.imwrite(str(path), np.dstack([photo, np.full(photo.shape[:2], 200, np.uint8)]))
    rc, records, errors = run_cli(capsys, tmp_path, mnet_checkpoint, path, good)
    assert rc == 0 and not errors
    _faces_like_photo(records)


def test_16bit_image(tmp_path, good, photo, mnet_checkpoint, capsys, detector):
    path = tmp_path / "deep.png"
    cv2.imwrite(str(path), photo.astype(np.uint16) * 257)
    rc, records, errors = run_cli(capsys, tmp_path, mnet_checkpoint, path, good)
    assert rc == 0 and not errors
    _faces_like_photo(records)
    # The API takes 16-bit arrays too, with the 8-bit result.
    np.testing.assert_allclose(detector.detect(photo.astype(np.uint16) * 257).boxes, detector.detect(photo).boxes)


def test_exif_rotated_photo(tmp_path, good, photo, mnet_checkpoint, capsys, detector):
    """Stored sideways with EXIF orientation 6 (display rotated 90 degrees clockwise): the
    faces are found upright and reported in the displayed picture's pixels."""
    path = tmp_path / "sideways.jpg"
    path.write_bytes(exif_jpeg(cv2.rotate(photo, cv2.ROTATE_90_COUNTERCLOCKWISE), 6))
    rc, records, errors = run_cli(capsys, tmp_path, mnet_checkpoint, path, good)
    assert rc == 0 and not errors
    _faces_like_photo(records)
    rotated, upright = records[0], records[1]
    assert (rotated["width"], rotated["height"]) == (upright["width"], upright["height"]) == (320, 240)
    np.testing.assert_allclose(sorted(rotated["boxes"]), sorted(upright["boxes"]), atol=4)


def test_picture_smaller_than_the_stride(tmp_path, good, mnet_checkpoint, capsys, detector):
    path = tmp_path / "tiny.png"
    cv2.imwrite(str(path), np.full((7, 5, 3), 128, np.uint8))  # 5 x 7 pixels
    rc, records, errors = run_cli(capsys, tmp_path, mnet_checkpoint, path, good)
    assert rc == 0 and not errors
    assert records[0]["boxes"] == [] and (records[0]["width"], records[0]["height"]) == (5, 7)
    tiny = np.full((7, 5, 3), 128, np.uint8)
    assert len(detector.detect(tiny, tta="flip")) == 0
    assert len(detector.detect(np.zeros((1, 1), np.uint8))) == 0


def test_huge_picture_single_scale_is_limited_with_a_warning(photo, mnet_checkpoint, caplog):
    """The default limit is 4096 px on the long side (``size_limit``); shown here with a
    smaller limit so that the test stays fast: the picture is downscaled, a warning
    says so, and the faces come back in the original pixels."""
    limited = Detector(weights=mnet_checkpoint, size_limit=256)
    free = Detector(weights=mnet_checkpoint, size_limit=None)
    with caplog.at_level(logging.WARNING, logger="retinaface_polynl.detector"):
        small = limited.detect(photo)
    assert any("size_limit" in r.getMessage() and "320x240" in r.getMessage() for r in caplog.records)
    full = free.detect(photo)
    assert len(small) == len(full) == 3
    np.testing.assert_allclose(sorted(small.boxes.tolist()), sorted(full.boxes.tolist()), atol=12)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="retinaface_polynl.detector"):
        limited.detect(photo, max_size=300)  # an explicit max_size is obeyed, no warning
    assert not caplog.records
    assert inspect.signature(Detector).parameters["size_limit"].default == 4096


def test_huge_picture_tta_views_are_capped():
    paper = TTA_PRESETS["paper"]
    groups = plan_views(12000, 16000, paper)
    assert [(g.height, g.width) for g in groups] == [(500, 667), (800, 1067), (1100, 1467), (1400, 1867), (1500, 2000)]
    assert all(max(g.height, g.width) <= 900 for g in plan_views(12000, 16000, paper.replace(max_size=900)))
