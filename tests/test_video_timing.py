"""Videos through anonymize: every frame's presentation time carried over (variable frame rate
included), a file cut short or failing part-way is an error (exit status 1), a frame whose
detection fails is masked whole (not dropped, not shown as it is), the tags of copied streams
kept, and each video opened once."""
from __future__ import annotations

import json
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

from retinaface_polynl import Detections
from retinaface_polynl.cli import main
from retinaface_polynl.video import iter_frames, probe

from test_media import audio_seconds, write_test_video

NAMES = ("2008_002506.jpg", "2008_002470.jpg", "2009_004587.jpg")


def photos(dlib_faces_dir, count, size=(160, 120)):
    images = [cv2.resize(cv2.imread(str(dlib_faces_dir / n)), size, interpolation=cv2.INTER_AREA) for n in NAMES]
    return [images[i % len(images)] for i in range(count)]


class Stand:
    """A stand-in detector (these tests are about timing and files): one fixed face in every frame;
    raises on the pictures whose call index is in ``fail``."""

    def __init__(self, fail=()) -> None:
        self.fail, self.calls = set(fail), 0

    def detect(self, image, threshold=None, tta=None, **_):  # one picture, as anonymize's search asks
        return self.detect_batch([image])[0]

    def input_scale(self, height, width, size=None, max_size=None):  # pictures enter at their own size
        return 1.0

    def detect_batch(self, images, batch_size=1, tta=None):
        out = []
        for _ in images:
            index, self.calls = self.calls, self.calls + 1
            if index in self.fail:
                raise RuntimeError("out of memory (simulated)")
            out.append(Detections(np.array([[40, 30, 80, 80]], np.float32), np.array([0.9], np.float32),
                                  np.zeros((1, 5, 2), np.float32)))
        return out


@pytest.fixture()
def stand(monkeypatch):
    import retinaface_polynl.commands.common as common

    holder = {"detector": Stand()}
    monkeypatch.setattr(common, "build_detector", lambda args, **kw: holder["detector"])
    return holder


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err
    return rc, [line for line in err.splitlines() if line.startswith("error:")]


def vfr_video(path, frames, gaps_ms, tags=None):
    """Frames shown for irregular spans (``gaps_ms``, cycled) in a 1/1000 s time base, with a tone
    as long as the pictures (its stream tagged ``tags``)."""
    rate, tb = 16000, Fraction(1, 1000)
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=25)
        h, w = frames[0].shape[:2]
        v.width, v.height, v.pix_fmt = w, h, "yuv420p"
        v.codec_context.time_base = tb
        v.time_base = tb
        a = c.add_stream("aac", rate=rate)
        a.layout = "mono"
        for key, value in (tags or {}).items():
            a.metadata[key] = value
        stamps, t = [], 0
        for i in range(len(frames)):
            stamps.append(t)
            t += gaps_ms[i % len(gaps_ms)]
        total = rate * t // 1000
        wave = (0.3 * np.sin(2 * np.pi * 440 * np.arange(total) / rate)).astype(np.float32)
        done = 0

        def audio_until(end: int) -> None:  # encode the sound up to sample ``end``, 1,024 samples a frame
            nonlocal done
            while done < min(end, total):
                chunk = wave[done: done + 1024]
                af = av.AudioFrame.from_ndarray(chunk[None], format="fltp", layout="mono")
                af.sample_rate, af.pts = rate, done
                for p in a.encode(af):
                    c.mux(p)
                done += len(chunk)

        for image, pts in zip(frames, stamps):
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts, frame.time_base = pts, tb
            for p in v.encode(frame):
                c.mux(p)
            audio_until(rate * (pts + gaps_ms[0]) // 1000)
        audio_until(total)
        for stream in (v, a):
            for p in stream.encode():
                c.mux(p)
    return path


def frame_times(path):
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return [float(f.pts * s.time_base) for f in c.decode(s)], s.time_base


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_variable_frame_rate_keeps_every_frame_time(tmp_path, capsys, dlib_faces_dir, stand, suffix):
    """40 frames shown 20, 20, 90 and 150 ms: each comes out at its own time (within one tick of
    the time bases), so the untouched sound stays in sync; rounding to the average rate moved
    them by up to a frame and pushed them forward."""
    src = vfr_video(tmp_path / f"vfr{suffix}", photos(dlib_faces_dir, 40), gaps_ms=(20, 20, 90, 150))
    rc, errors = run(capsys, "anonymize", src, "-o", tmp_path / "out", "--quiet")
    assert rc == 0 and not errors
    before, tb_in = frame_times(src)
    after, tb_out = frame_times(tmp_path / "out" / src.name)
    assert len(after) == len(before) == 40
    tick = float(max(tb_in, tb_out))
    assert np.abs(np.array(after) - np.array(before)).max() <= tick + 1e-9
    assert audio_seconds(tmp_path / "out" / src.name) == pytest.approx(audio_seconds(src), abs=1e-3)


def cut(path, share, faststart=False):
    """The first ``share`` of the file's bytes (a fast-start MP4: its index first, as phones and
    web videos have it)."""
    if faststart:
        moved = path.with_name("fs_" + path.name)
        with av.open(str(path)) as i, av.open(str(moved), "w", options={"movflags": "faststart"}) as o:
            streams = {s.index: o.add_stream_from_template(s) for s in i.streams}
            for packet in i.demux():
                if packet.dts is None:
                    continue
                packet.stream = streams[packet.stream.index]
                o.mux(packet)
        data = moved.read_bytes()
        assert data.find(b"moov") < data.find(b"mdat")
    else:
        data = path.read_bytes()
    out = path.with_name("cut_" + path.name)
    out.write_bytes(data[: int(len(data) * share)])
    return out


@pytest.mark.parametrize("suffix, faststart", [(".mp4", True), (".mkv", False)])
def test_a_video_cut_short_is_an_error(tmp_path, capsys, dlib_faces_dir, stand, suffix, faststart):
    full = write_test_video(tmp_path / f"clip{suffix}", photos(dlib_faces_dir, 60), fps=12)
    src = cut(full, 0.6, faststart=faststart)
    jsonl = tmp_path / "faces.jsonl"
    rc, errors = run(capsys, "anonymize", src, "-o", tmp_path / "out", "--json", jsonl, "--quiet")
    assert rc == 1 and len(errors) == 1 and str(src) in errors[0], errors
    assert "ends early" in errors[0] or "decoding failed" in errors[0]
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [r for r in records if "error" in r] and all(r["path"] == str(src) for r in records)
    # the frames it holds were masked and written, the file closed properly, the sound cut with them
    kept = list(iter_frames(tmp_path / "out" / src.name))
    assert 0 < len(kept) < 60
    assert audio_seconds(tmp_path / "out" / src.name) <= len(kept) / 12 + 0.1


def test_a_video_damaged_part_way_is_an_error(tmp_path, capsys, dlib_faces_dir, stand):
    """2 KB zeroed in the middle of an MKV: the demuxer loses its place and stops there without an
    error of its own; the stated duration gives it away."""
    src = write_test_video(tmp_path / "clip.mkv", photos(dlib_faces_dir, 60), fps=12)
    data = bytearray(src.read_bytes())
    data[len(data) // 2: len(data) // 2 + 2000] = bytes(2000)
    src.write_bytes(bytes(data))
    rc, errors = run(capsys, "anonymize", src, "-o", tmp_path / "out", "--quiet")
    assert rc == 1 and len(errors) == 1 and str(src) in errors[0] and "ends early" in errors[0], errors
    kept = list(iter_frames(tmp_path / "out" / "clip.mkv"))
    assert 0 < len(kept) < 60
    # the sound stops where the pictures read stop (not the source's 5 s)
    assert audio_seconds(tmp_path / "out" / "clip.mkv") == pytest.approx(len(kept) / 12, abs=0.1)


def test_a_frame_whose_detection_fails_is_masked_whole_and_reported(tmp_path, capsys, dlib_faces_dir, stand):
    stand["detector"] = Stand(fail={3})
    frames = photos(dlib_faces_dir, 8)
    src = write_test_video(tmp_path / "cam.mkv", frames, codec="ffv1", pix_fmt="bgr0", audio_codec="pcm_s16le")
    jsonl = tmp_path / "faces.jsonl"
    rc, errors = run(capsys, "anonymize", src, "-o", tmp_path / "out", "--json", jsonl, "--quiet", "--persist", "0",
                     "--method", "solid")
    assert rc == 1 and len(errors) == 1 and f"{src} frame 3" in errors[0] and "detection failed" in errors[0], errors
    out = list(iter_frames(tmp_path / "out" / "cam.mkv"))
    assert [f.index for f in out] == list(range(8))  # not dropped
    assert [f.time for f in out] == pytest.approx([f.time for f in iter_frames(src)])
    assert out[3].image.max() == 0  # fully masked (solid: black)
    assert all(f.image.max() > 0 for i, f in enumerate(out) if i != 3)
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [r["frame"] for r in records if "error" in r] == [3]


def test_stream_tags_of_copied_audio_are_kept(tmp_path, capsys, dlib_faces_dir, stand):
    src = vfr_video(tmp_path / "talk.mkv", photos(dlib_faces_dir, 6), gaps_ms=(40,),
                    tags={"language": "fra", "title": "Commentaire"})
    assert run(capsys, "anonymize", src, "-o", tmp_path / "out", "--quiet")[0] == 0
    with av.open(str(tmp_path / "out" / "talk.mkv")) as c:
        meta = c.streams.audio[0].metadata
    assert meta.get("language") == "fra" and meta.get("title") == "Commentaire"


def test_each_video_is_opened_once(tmp_path, capsys, dlib_faces_dir, stand, monkeypatch):
    src = write_test_video(tmp_path / "clip.mp4", photos(dlib_faces_dir, 5), fps=8)
    opened = []
    real = av.open

    def counting(file, *args, **kwargs):
        mode = args[0] if args else kwargs.get("mode", "r")
        if mode == "r":
            opened.append(str(file))
        return real(file, *args, **kwargs)

    monkeypatch.setattr(av, "open", counting)
    assert run(capsys, "anonymize", src, "-o", tmp_path / "out", "--quiet")[0] == 0
    assert opened == [str(src)]
    monkeypatch.setattr(av, "open", real)
    assert probe(tmp_path / "out" / "clip.mp4").frames == 5 and audio_seconds(tmp_path / "out" / "clip.mp4") > 0.5


def test_rotated_phone_video_comes_out_upright(tmp_path, capsys, dlib_faces_dir, stand):
    frames = photos(dlib_faces_dir, 4, size=(64, 48))
    src = write_test_video(tmp_path / "phone.mp4", frames, rotation=90)
    assert run(capsys, "anonymize", src, "-o", tmp_path / "out", "--quiet", "--method", "none")[0] == 0
    a, b = probe(src), probe(tmp_path / "out" / "phone.mp4")
    assert (a.width, a.height, a.rotation) == (48, 64, 90) and (b.width, b.height, b.rotation) == (48, 64, 0)
    x, y = next(iter_frames(src)).image, next(iter_frames(tmp_path / "out" / "phone.mp4")).image
    assert np.abs(x.astype(int) - y.astype(int)).mean() < 6
