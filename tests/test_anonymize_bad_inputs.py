"""detect's catalogue of bad inputs, through anonymize: the same one-line error naming the file, the
same JSON error record {"path", "error"}, the good input still written, exit status 1."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from retinaface_polynl.cli import main
from retinaface_polynl.detector import Detector


def _corrupt(folder, good):
    path = folder / "corrupt.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 20 + b"\xff\xd9")
    return path


def _truncated(folder, good):
    path = folder / "truncated.jpg"
    data = good.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return path


def _empty(folder, good):
    path = folder / "empty.png"
    path.write_bytes(b"")
    return path


def _text(folder, good):
    path = folder / "notes.png"
    path.write_bytes(b"just some text, not a picture\n" * 50)
    return path


def _video(folder, good):
    path = folder / "broken.mp4"
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x13" * 3000)
    return path


def _missing(folder, good):
    return folder / "nowhere" / "missing.jpg"


def _empty_folder(folder, good):
    path = folder / "empty_folder"
    path.mkdir()
    return path


def _no_match(folder, good):
    return folder / "*.gif"


CASES = {"corrupt JPEG": _corrupt, "truncated JPEG": _truncated, "empty file": _empty, "not an image": _text,
         "unreadable video": _video, "missing path": _missing, "folder without pictures": _empty_folder,
         "glob matching nothing": _no_match}


@pytest.fixture()
def good(tmp_path, dlib_faces_dir):
    folder = tmp_path / "in"
    folder.mkdir()
    photo = cv2.resize(cv2.imread(str(dlib_faces_dir / "2008_002506.jpg")), (320, 240), interpolation=cv2.INTER_AREA)
    path = folder / "good.jpg"
    cv2.imwrite(str(path), photo)
    return path


def run_both(capsys, tmp_path, mnet_checkpoint, *inputs):
    """Runs detect and anonymize on ``inputs``: {command: (exit status, error lines, JSON records)}."""
    out = {}
    for command in ("detect", "anonymize"):
        jsonl = tmp_path / command / "out.jsonl"
        rc = main([command, *map(str, inputs), "--weights", str(mnet_checkpoint), "--json", str(jsonl),
                   "--output", str(tmp_path / command / "pictures"), "--quiet"])
        err = capsys.readouterr().err
        assert "Traceback" not in err
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        records = [json.loads(line) for line in jsonl.read_text().splitlines()]
        out[command] = rc, errors, records
    return out


@pytest.mark.parametrize("case", list(CASES))
def test_same_error_line_and_record_as_detect(case, tmp_path, good, mnet_checkpoint, capsys):
    bad = CASES[case](good.parent, good)
    results = run_both(capsys, tmp_path, mnet_checkpoint, bad, good)
    (rc_d, lines_d, records_d), (rc_a, lines_a, records_a) = results["detect"], results["anonymize"]
    assert rc_d == rc_a == 1
    assert len(lines_a) == 1 and str(bad) in lines_a[0] and lines_a == lines_d
    failed_d = [r for r in records_d if "error" in r]
    failed_a = [r for r in records_a if "error" in r]
    assert failed_a == failed_d and len(failed_a) == 1
    record = failed_a[0]
    assert record["path"] == str(bad) and f"error: {bad}: {record['error']}" == lines_a[0]
    done = [r["path"] for r in records_a if "error" not in r]
    assert done == [str(good)] and (tmp_path / "anonymize" / "pictures" / "good.jpg").is_file()


def test_detection_failure_on_one_picture(tmp_path, good, mnet_checkpoint, capsys, monkeypatch):
    odd = good.parent / "odd.png"
    cv2.imwrite(str(odd), cv2.imread(str(good))[:150, :200])
    original = Detector.detect_batch

    def flaky(self, images, *args, **kwargs):  # fails on the 200 px wide picture only
        if any(np.shape(image)[1] == 200 for image in images):
            raise RuntimeError("CUDA out of memory (simulated)\nmore detail")
        return original(self, images, *args, **kwargs)

    monkeypatch.setattr(Detector, "detect_batch", flaky)
    results = run_both(capsys, tmp_path, mnet_checkpoint, odd, good)
    assert results["anonymize"][:2] == results["detect"][:2]
    rc, lines, records = results["anonymize"]
    assert rc == 1 and lines == [f"error: {odd}: detection failed (CUDA out of memory (simulated))"]
    assert records[0] == {"path": str(odd), "error": "detection failed (CUDA out of memory (simulated))"}


def test_unwritable_output_is_reported_and_the_rest_written(tmp_path, good, mnet_checkpoint, capsys):
    second = good.parent / "second.png"
    cv2.imwrite(str(second), cv2.imread(str(good)))
    for command in ("detect", "anonymize"):  # a folder where the first picture's output would go
        (tmp_path / command / "pictures" / "good.jpg").mkdir(parents=True)
    results = run_both(capsys, tmp_path, mnet_checkpoint, good, second)
    for command, (rc, lines, records) in results.items():
        assert rc == 1 and len(lines) == 1 and str(good) in lines[0] and "cannot write output" in lines[0]
        assert [r for r in records if "error" in r][0]["path"] == str(good)
        assert (tmp_path / command / "pictures" / "second.png").is_file()
