"""Outputs people can trust with their only copy: no input overwritten, no two outputs on one file
(refused before anything is written), no half-written file under an output's name (a write error,
SIGKILL, SIGTERM, Ctrl-C), --resume going on from a stopped run, the JSON naming each output."""
from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from retinaface_polynl import Detections
from retinaface_polynl.anonymize import ROTATIONS
from retinaface_polynl.cli import main
from retinaface_polynl.video import probe

from test_media import audio_seconds, write_test_video


def picture(seed=0, h=120, w=160) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.resize(rng.integers(0, 256, (12, 16, 3), np.uint8), (w, h), interpolation=cv2.INTER_LINEAR)


class OneFace:
    """A stand-in detector: one face at a fixed box in every picture (these tests are about files);
    counts the pictures it is given."""

    def __init__(self) -> None:
        self.calls = 0

    def detect(self, image, threshold=None, tta=None, **_):  # one picture, as anonymize's search asks
        return self.detect_batch([image])[0]

    def input_scale(self, height, width, size=None, max_size=None):  # pictures enter at their own size
        return 1.0

    def detect_batch(self, images, batch_size=1, tta=None):
        self.calls += len(images)
        return [Detections(np.array([[20, 20, 60, 70]], np.float32), np.array([0.9], np.float32),
                           np.zeros((1, 5, 2), np.float32)) for _ in images]


@pytest.fixture()
def detector(monkeypatch):
    import retinaface_polynl.commands.common as common

    stand_in = OneFace()
    monkeypatch.setattr(common, "build_detector", lambda args, **kw: stand_in)
    return stand_in


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err
    return rc, [line for line in err.splitlines() if line.startswith("error:")]


def snapshot(folder: Path) -> dict:
    """Every file below ``folder`` (hidden ones too) with its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


# -- never an input, never two outputs on one file -------------------------------------------------------
def test_output_over_another_input_is_refused_before_anything_is_written(tmp_path, capsys, detector):
    """anonymize a/x.jpg b/x.jpg -o a/: b's output would replace the original a/x.jpg."""
    for folder, seed in (("a", 1), ("b", 2)):
        (tmp_path / folder).mkdir()
        cv2.imwrite(str(tmp_path / folder / "x.jpg"), picture(seed))
    before = snapshot(tmp_path)
    rc, errors = run(capsys, "anonymize", tmp_path / "a" / "x.jpg", tmp_path / "b" / "x.jpg", "-o", tmp_path / "a",
                     "--json", tmp_path / "faces.jsonl", "--quiet")
    assert rc == 2 and len(errors) == 1, errors
    assert "a/x.jpg" in errors[0] and "overwrite the input" in errors[0]
    assert snapshot(tmp_path) == before and detector.calls == 0  # nothing written, not even the JSON


def test_folder_into_itself_gif_and_png_of_one_name_is_refused(tmp_path, capsys, detector):
    """anonymize p/ -o p/ with x.gif and x.png: the GIF's output (PNG) would replace x.png."""
    p = tmp_path / "p"
    p.mkdir()
    cv2.imwrite(str(p / "x.png"), picture(1))
    from PIL import Image

    Image.fromarray(picture(2)[:, :, ::-1]).save(p / "x.gif")
    before = snapshot(tmp_path)
    rc, errors = run(capsys, "anonymize", p, "-o", p, "--quiet")
    assert rc == 2 and len(errors) == 1 and "x.png" in errors[0], errors
    assert snapshot(tmp_path) == before


def test_an_input_named_like_another_inputs_faces_output_is_refused(tmp_path, capsys, detector):
    """a.jpg and a_faces.jpg in one folder, -o that folder: a.jpg's output would be a_faces.jpg."""
    p = tmp_path / "p"
    p.mkdir()
    cv2.imwrite(str(p / "a.jpg"), picture(1))
    cv2.imwrite(str(p / "a_faces.jpg"), picture(2))
    before = snapshot(tmp_path)
    rc, errors = run(capsys, "anonymize", p, "-o", p, "--quiet")
    assert rc == 2 and len(errors) == 1 and "a_faces.jpg" in errors[0], errors
    assert snapshot(tmp_path) == before
    # alone, a.jpg into its own folder is fine: its output gets _faces added, the input stays
    (p / "a_faces.jpg").unlink()
    assert run(capsys, "anonymize", p / "a.jpg", "-o", p, "--quiet")[0] == 0
    assert sorted(os.listdir(p)) == ["a.jpg", "a_faces.jpg"] and (p / "a.jpg").read_bytes() == before["p/a.jpg"]


def test_names_that_differ_only_in_case_are_one_file(tmp_path, capsys, detector):
    """IMG.JPG and img.jpg are one file on macOS and Windows: two outputs on it, or an output on an
    input spelled another way, are refused on any file system."""
    for folder, name in (("p", "IMG.JPG"), ("q", "img.jpg")):
        (tmp_path / folder).mkdir()
        cv2.imwrite(str(tmp_path / folder / name), picture(len(name) + len(folder)))
    before = snapshot(tmp_path)
    rc, errors = run(capsys, "anonymize", tmp_path / "p", tmp_path / "q", "-o", tmp_path / "out", "--quiet")
    assert rc == 2 and len(errors) == 1 and "same file" in errors[0], errors
    rc, errors = run(capsys, "anonymize", tmp_path / "q" / "img.jpg", tmp_path / "p" / "IMG.JPG", "-o",
                     tmp_path / "p", "--quiet")
    assert rc == 2 and len(errors) == 1 and "overwrite the input" in errors[0], errors
    assert snapshot(tmp_path) == before


def test_an_output_that_is_a_hard_link_to_an_input_is_refused(tmp_path, capsys, detector):
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    cv2.imwrite(str(tmp_path / "in" / "x.png"), picture(3))
    os.link(tmp_path / "in" / "x.png", tmp_path / "out" / "x.png")
    before = snapshot(tmp_path)
    rc, errors = run(capsys, "anonymize", tmp_path / "in" / "x.png", "-o", tmp_path / "out", "--quiet")
    assert rc == 2 and len(errors) == 1 and "same file" in errors[0], errors
    assert snapshot(tmp_path) == before


def test_detect_output_shares_the_checks(tmp_path, capsys, detector):
    for folder, seed in (("a", 1), ("b", 2)):
        (tmp_path / folder).mkdir()
        cv2.imwrite(str(tmp_path / folder / "x.jpg"), picture(seed))
    before = snapshot(tmp_path)
    rc, errors = run(capsys, "detect", tmp_path / "a" / "x.jpg", tmp_path / "b" / "x.jpg", "-o", tmp_path / "a",
                     "--quiet")
    assert rc == 2 and len(errors) == 1 and "overwrite the input" in errors[0], errors
    rc, errors = run(capsys, "detect", tmp_path / "a", tmp_path / "b", "-o", tmp_path / "out", "--quiet")
    assert rc == 2 and len(errors) == 1 and "same file" in errors[0], errors
    assert snapshot(tmp_path) == before


def test_an_input_named_twice_is_done_once_and_records_name_their_outputs(tmp_path, capsys, detector):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    cv2.imwrite(str(src / "a.png"), picture(1))
    cv2.imwrite(str(src / "sub" / "b.jpg"), picture(2))
    write_test_video(src / "clip.mp4", [picture(i) for i in range(3)])
    jsonl = tmp_path / "faces.jsonl"
    rc, errors = run(capsys, "anonymize", src, src / "a.png", "-o", tmp_path / "out", "--json", jsonl, "--quiet")
    assert rc == 0 and not errors
    records = read_jsonl(jsonl)
    outputs = {(r["path"], r.get("frame")): r["output"] for r in records}
    assert outputs == {(str(src / "a.png"), None): str(tmp_path / "out" / "a.png"),
                       (str(src / "sub" / "b.jpg"), None): str(tmp_path / "out" / "sub" / "b.jpg"),
                       **{(str(src / "clip.mp4"), i): str(tmp_path / "out" / "clip.mp4") for i in range(3)}}
    assert all(Path(o).is_file() for o in outputs.values())


# -- no half-written file under an output's name --------------------------------------------------------
DRIVER = """
import signal, sys, time
import numpy as np
import retinaface_polynl.commands.common as common

# Ctrl-C as a terminal delivers it: a run started in the background of a non-interactive shell (CI
# under nohup ... &) inherits SIGINT ignored, and Python then installs no KeyboardInterrupt handler
signal.signal(signal.SIGINT, signal.default_int_handler)
from retinaface_polynl import Detections

class Slow:
    def detect(self, image, threshold=None, tta=None, **_):  # one picture, as anonymize's search asks
        return self.detect_batch([image])[0]

    def input_scale(self, height, width, size=None, max_size=None):  # pictures enter at their own size
        return 1.0

    def detect_batch(self, images, batch_size=1, tta=None):
        time.sleep({delay})
        return [Detections(np.array([[10, 10, 40, 40]], np.float32), np.array([0.9], np.float32),
                           np.zeros((1, 5, 2), np.float32)) for _ in images]

common.build_detector = lambda args, **kw: Slow()
from retinaface_polynl.cli import main
sys.exit(main(sys.argv[1:]))
"""


def driver(tmp_path, delay=0.0) -> list[str]:
    path = tmp_path / "driver.py"
    path.write_text(textwrap.dedent(DRIVER.format(delay=delay)))
    return [sys.executable, str(path)]


def test_write_error_leaves_no_truncated_picture(tmp_path):
    """A full disk, made real with a file-size limit (EFBIG on write): the run reports the file and
    exits 1, and no truncated BMP is left under the output's name (nor a temporary file)."""
    src = tmp_path / "in"
    src.mkdir()
    cv2.imwrite(str(src / "big.bmp"), picture(4, 600, 800))  # 1.4 MB uncompressed
    cv2.imwrite(str(src / "small.png"), picture(5, 40, 50))

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))

    out = tmp_path / "out"
    proc = subprocess.run([*driver(tmp_path), "anonymize", str(src), "-o", str(out), "--quiet"],
                          capture_output=True, text=True, preexec_fn=limit, timeout=120)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 1 and len(errors) == 1 and "big.bmp" in errors[0], proc.stderr
    assert sorted(os.listdir(out)) == ["small.png"]  # the whole small picture, nothing of the big one


def start_video_run(tmp_path, frames=40, extra=()):
    src = tmp_path / "in"
    src.mkdir(exist_ok=True)
    video = write_test_video(src / "clip.mp4", [picture(i % 7, 96, 128) for i in range(frames)], fps=10)
    out, jsonl = tmp_path / "out", tmp_path / "faces.jsonl"
    cmd = [*driver(tmp_path, delay=0.05), "anonymize", str(src), "-o", str(out), "--json", str(jsonl), "--quiet",
           *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, video, out, jsonl


def wait_for_records(tmp_path, proc, count, timeout=60):
    """Until the run's JSON (under its temporary name, or its own) holds ``count`` frame records."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        for tmp in [*tmp_path.glob(".faces.jsonl.*.tmp"), tmp_path / "faces.jsonl"]:
            if tmp.is_file() and tmp.read_text().count("\n") >= count:
                return
        time.sleep(0.05)
    raise AssertionError("the run wrote no records")


def test_sigkill_mid_video_leaves_nothing_under_the_final_names_and_resume_finishes(tmp_path):
    proc, video, out, jsonl = start_video_run(tmp_path)
    wait_for_records(tmp_path, proc, 8)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not (out / "clip.mp4").exists() and not jsonl.exists()
    assert [p.name.startswith(".clip.mp4.") for p in out.iterdir()] == [True]  # only the hidden temporary file
    # --resume: the video is done again, whole; the killed run's temporary files are gone
    proc = subprocess.run([*driver(tmp_path), "anonymize", str(tmp_path / "in"), "-o", str(out), "--json",
                           str(jsonl), "--quiet", "--resume"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert sorted(os.listdir(out)) == ["clip.mp4"] and probe(out / "clip.mp4").frames == 40
    assert [r["frame"] for r in read_jsonl(jsonl)] == list(range(40))
    assert not list(tmp_path.glob(".faces.jsonl.*"))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_or_ctrl_c_mid_video_keeps_a_partial_file_with_the_sound_cut(tmp_path, sig):
    """The final name is never written; the frames done are kept as clip.partial.mp4, a whole file
    whose sound ends where its pictures end (not the source's full sound); the JSON holds whole
    records of the frames written; exit status 130."""
    proc, video, out, jsonl = start_video_run(tmp_path)
    wait_for_records(tmp_path, proc, 8)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert not (out / "clip.mp4").exists()
    assert sorted(os.listdir(out)) == ["clip.partial.mp4"], os.listdir(out)
    partial = probe(out / "clip.partial.mp4")
    # a frame's record is written just before the frame: the signal may fall between the 8th of each
    assert 7 <= partial.frames < 40
    records = read_jsonl(jsonl)
    assert [r["frame"] for r in records] == list(range(len(records))) and len(records) >= partial.frames
    seconds = partial.frames / 10
    assert audio_seconds(video) == pytest.approx(4.0, abs=0.1)
    assert audio_seconds(out / "clip.partial.mp4") == pytest.approx(seconds, abs=0.1)  # one AAC packet: 64 ms
    assert "interrupted" in err and "clip.partial.mp4" in err


# -- --resume ----------------------------------------------------------------------------------------------
def test_resume_skips_finished_inputs_and_keeps_their_records(tmp_path, capsys, detector):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        cv2.imwrite(str(src / f"{i}.png"), picture(i))
    out, jsonl = tmp_path / "out", tmp_path / "faces.jsonl"
    passes = 1 + len(ROTATIONS)  # a photo is searched upright and turned a quarter each way
    assert run(capsys, "anonymize", src, "-o", out, "--json", jsonl, "--quiet")[0] == 0
    assert detector.calls == 3 * passes
    first = read_jsonl(jsonl)
    (out / "1.png").unlink()  # as if the run had stopped before it
    old = time.time() - 3600
    os.utime(out / "2.png", (old, old))  # an output older than its input: done again
    assert run(capsys, "anonymize", src, "-o", out, "--json", jsonl, "--quiet", "--resume")[0] == 0
    assert detector.calls == (3 + 2) * passes
    again = read_jsonl(jsonl)
    assert sorted(r["path"] for r in again) == sorted(r["path"] for r in first)  # one record each, none lost
    assert again[0] == first[0]  # carried over as it was
    assert sorted(os.listdir(out)) == ["0.png", "1.png", "2.png"]
    # without --resume everything is done again, and the JSON rewritten with this run's records
    assert run(capsys, "anonymize", src, "-o", out, "--json", jsonl, "--quiet")[0] == 0
    assert detector.calls == (5 + 3) * passes and len(read_jsonl(jsonl)) == 3


def test_a_refused_run_leaves_the_earlier_json_whole(tmp_path, capsys, detector):
    src = tmp_path / "in"
    src.mkdir()
    cv2.imwrite(str(src / "a.png"), picture(1))
    jsonl = tmp_path / "faces.jsonl"
    assert run(capsys, "anonymize", src, "-o", tmp_path / "out", "--json", jsonl, "--quiet")[0] == 0
    before = jsonl.read_bytes()
    assert run(capsys, "anonymize", src, "-o", src, "--json", jsonl, "--quiet", "--persist", "-1")[0] == 2
    cv2.imwrite(str(src / "a_faces.png"), picture(2))
    assert run(capsys, "anonymize", src, "-o", src, "--json", jsonl, "--quiet")[0] == 2
    assert jsonl.read_bytes() == before


# -- what worked and stays so: no metadata copied ---------------------------------------------------------
def test_no_metadata_reaches_the_outputs(tmp_path, capsys, detector):
    """EXIF (with a GPS position and a thumbnail), XMP and IPTC in a JPEG, text chunks in a PNG, the
    place and camera keys of an MP4: none of it is in the outputs."""
    import av

    src = tmp_path / "in"
    src.mkdir()
    secret = b"+48.8584+002.2945/"  # where the photo was taken
    ok, body = cv2.imencode(".jpg", picture(1))
    thumb = cv2.imencode(".jpg", picture(2, 24, 32))[1].tobytes()
    exif = b"Exif\x00\x00II*\x00\x08\x00\x00\x00\x01\x00\x25\x88\x04\x00\x01\x00\x00\x00\x1a\x00\x00\x00" + \
        b"\x00\x00\x00\x00GPS " + secret + thumb
    xmp = b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta>" + secret + b"</x:xmpmeta>"
    iptc = b"Photoshop 3.0\x008BIM\x04\x04\x00\x00\x00\x00\x00\x14\x1c\x02\x5a\x00\x10" + secret
    segments = b"".join(b"\xff" + m + (len(p) + 2).to_bytes(2, "big") + p
                        for m, p in ((b"\xe1", exif), (b"\xe1", xmp), (b"\xed", iptc)))
    data = body.tobytes()
    (src / "a.jpg").write_bytes(data[:2] + segments + data[2:])
    png = cv2.imencode(".png", picture(3))[1].tobytes()
    import zlib

    chunk = b"tEXtLocation\x00" + secret
    text = len(chunk[4:]).to_bytes(4, "big") + chunk + zlib.crc32(chunk).to_bytes(4, "big")
    (src / "b.png").write_bytes(png[:33] + text + png[33:])
    video = write_test_video(tmp_path / "plain.mp4", [picture(i) for i in range(3)])
    with av.open(str(video)) as i, av.open(str(src / "c.mov"), "w") as o:
        o.metadata.update({"location": secret.decode(), "make": "Apple", "model": "iPhone 15"})
        streams = {s.index: o.add_stream_from_template(s) for s in i.streams}
        for packet in i.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                o.mux(packet)
    assert all(secret in p.read_bytes() for p in src.iterdir())
    assert run(capsys, "anonymize", src, "-o", tmp_path / "out", "--quiet")[0] == 0
    outputs = sorted((tmp_path / "out").iterdir())
    assert [p.name for p in outputs] == ["a.jpg", "b.png", "c.mov"]
    for path in outputs:
        data = path.read_bytes()
        assert secret not in data and b"iPhone" not in data and b"Exif" not in data and b"xmpmeta" not in data, path
    assert b"tEXt" not in outputs[1].read_bytes()


def test_detect_crops_of_two_inputs_with_one_name_are_refused(tmp_path, capsys, detector):
    for folder, seed in (("a", 1), ("b", 2)):
        (tmp_path / folder).mkdir()
        cv2.imwrite(str(tmp_path / folder / "x.jpg"), picture(seed))
    rc, errors = run(capsys, "detect", tmp_path / "a" / "x.jpg", tmp_path / "b" / "x.jpg", "--crops",
                     tmp_path / "crops", "--quiet")
    assert rc == 2 and len(errors) == 1 and "the crops of" in errors[0], errors
    assert not (tmp_path / "crops").exists()
