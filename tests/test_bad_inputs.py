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
    # every error line has its JSON record {"path", "error"} (tests/test_anonymize_bad_inputs.py checks them)
    assert len([r for r in records if "error" in r]) == len(errors)
    return rc, [r for r in records if "error" not in r], errors


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


# -- retinaface-polynl train --------------------------------------------------------------------------
# A tiny run (r18x025 at 128 px, batch 1, no workers): each bad input either stops before any
# training with one line naming the file, or is skipped with a warning naming it, the run going on
# and its checkpoints written.


@pytest.fixture()
def train_labels(tmp_path, fddb_dir):
    """A generic JSON label file over three FDDB photos (absolute paths); ``extra`` entries are
    appended relative to ``tmp_path``."""
    from retinaface_polynl.data import load_annotations

    records = load_annotations(fddb_dir, folds="1")[:3]

    def write(name="labels.json", extra=()):
        items = [{"image": str(r.path), "boxes": r.boxes.tolist()} for r in records]
        items += [{"image": e, "boxes": [[10, 10, 60, 70]]} for e in extra]
        path = tmp_path / name
        path.write_text(json.dumps(items))
        return path

    return write


def train(tmp_path, labels, *extra, out="run", preset=("--preset", "r18x025")):
    return main(["train", *preset, "--labels", str(labels), "--output", str(tmp_path / out), "--image-size", "128",
                 "--batch-size", "1", "--max-iters", "4", "--workers", "0", "--no-progress", *map(str, extra)])


def one_error(capsys) -> str:
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


def test_train_labels_missing_or_garbage(tmp_path, capsys):
    assert train(tmp_path, tmp_path / "nope.txt") == 2
    assert "nope.txt" in one_error(capsys)
    garbage = tmp_path / "garbage.txt"
    garbage.write_text("hello world\nfoo bar baz\n")
    assert train(tmp_path, garbage) == 2
    assert "garbage.txt" in one_error(capsys)


@pytest.mark.torch  # the train command needs PyTorch before it gets to these checks
def test_train_missing_image_stops_before_training(tmp_path, train_labels, capsys):
    """A missing picture is checked for at the start (a wrong --images root, usually), not met an
    epoch into the run; the error names the label file and a missing image."""
    labels = train_labels(extra=["gone.jpg"])
    assert train(tmp_path, labels) == 2
    line = one_error(capsys)
    assert "labels.json" in line and "gone.jpg" in line and "1 of 4" in line
    assert not (tmp_path / "run").exists()
    val = train_labels("val.json", extra=["gone_too.jpg"])
    assert train(tmp_path, train_labels(), "--val-labels", val) == 2
    assert "gone_too.jpg" in one_error(capsys) and not (tmp_path / "run").exists()


@pytest.mark.torch  # the train command needs PyTorch before it gets to these checks
@pytest.mark.parametrize("workers", [0, 1])
def test_train_corrupt_image_is_skipped_with_a_warning(tmp_path, train_labels, capsys, caplog, workers):
    """A picture that cannot be decoded (found only when it is read) is skipped, with a warning naming
    it; the run goes on (in a DataLoader worker too: no stack trace) and writes its checkpoints."""
    (tmp_path / "bad.jpg").write_bytes(np.random.default_rng(0).integers(0, 256, 2000, np.uint8).tobytes())
    labels = train_labels(extra=["bad.jpg"])
    with caplog.at_level(logging.WARNING):
        rc = train(tmp_path, labels, "--workers", workers)  # 4 images, batch 1: every one is read
    assert rc == 0, capsys.readouterr().err
    assert (tmp_path / "run" / "last.pth").is_file()
    if workers == 0:  # a worker's log records do not reach caplog
        assert any("bad.jpg" in r.getMessage() and "skipped" in r.getMessage() for r in caplog.records)


@pytest.mark.torch  # the train command needs PyTorch before it gets to these checks
def test_train_corrupt_validation_image_keeps_the_checkpoint(tmp_path, train_labels, caplog):
    """Validation runs before the epoch's checkpoint is written: an undecodable validation picture used to
    end the run there, losing the epoch.  It is left out of the AP, with a warning naming it."""
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8 + b"\xff\xd9")
    val = train_labels("val.json", extra=["bad.jpg"])
    with caplog.at_level(logging.WARNING):
        assert train(tmp_path, train_labels(), "--val-labels", val, "--val-size", "128", "--max-iters", "2") == 0
    assert (tmp_path / "run" / "last.pth").is_file() and (tmp_path / "run" / "best.pth").is_file()
    assert any("bad.jpg" in r.getMessage() for r in caplog.records)


def test_train_weights_not_a_checkpoint(tmp_path, train_labels, capsys):
    """Text, and a pickle holding an object (here an argparse.Namespace, as some training scripts
    save) that weights-only loading refuses in a message of several paragraphs: one line each."""
    import argparse

    import torch

    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint\n")
    pickled = tmp_path / "args.pth"
    torch.save({"args": argparse.Namespace(lr=0.1)}, pickled)
    for path in (text, pickled):
        assert train(tmp_path, train_labels(), "--weights", path) == 2
        line = one_error(capsys)
        assert path.name in line and "not a readable PyTorch checkpoint" in line
    assert "Namespace" in line


def test_train_weights_of_another_architecture(tmp_path, train_labels, capsys):
    """--weights of a Poly-NL r18x025 model: --preset r50 (or plain r18x025) cannot start from it, and
    the error says which preset it holds; without --preset the checkpoint's own is used."""
    import torch

    from retinaface_polynl.checkpoints import save_checkpoint
    from retinaface_polynl.models.retinaface import RetinaFace
    from retinaface_polynl.presets import get_preset

    torch.manual_seed(0)
    config = get_preset("r18x025_polynl")
    ckpt = save_checkpoint(tmp_path / "polynl.pth", RetinaFace(config), config)
    for preset in ("r50", "r18x025"):
        assert train(tmp_path, train_labels(), "--weights", ckpt, preset=("--preset", preset)) == 2
        line = one_error(capsys)
        assert "polynl.pth" in line and "r18x025_polynl" in line and "leave --preset out" in line
    assert train(tmp_path, train_labels(), "--weights", ckpt, "--max-iters", "1", preset=()) == 0
    saved = torch.load(tmp_path / "run" / "last.pth", map_location="cpu", weights_only=True)
    assert saved["config"]["name"] == "r18x025_polynl" and saved["train_config"]["preset"] == "r18x025_polynl"


@pytest.mark.torch  # the train command needs PyTorch before it gets to these checks
def test_train_output_is_a_file(tmp_path, train_labels, capsys):
    (tmp_path / "afile").write_text("x")
    for out in ("afile", "afile/sub"):
        assert train(tmp_path, train_labels(), out=out) == 2
        assert f"--output {tmp_path / out}: {tmp_path / 'afile'} is a file, not a folder" in one_error(capsys)


@pytest.mark.torch  # the train command needs PyTorch before it gets to these checks
@pytest.mark.parametrize("flag, value, words", [("--epochs", "0", "epochs must be positive"),
                                                ("--batch-size", "0", "batch_size must be positive"),
                                                ("--lr", "-0.1", "lr must be positive"),
                                                ("--max-iters", "0", "max_iters must be positive")])
def test_train_bad_numbers(tmp_path, train_labels, capsys, flag, value, words):
    assert train(tmp_path, train_labels(), flag, value) == 2
    assert words in one_error(capsys)
    assert not (tmp_path / "run").exists()
