"""anonymize on videos: every frame masked, same frame rate / count / size, the sound copied,
--persist around a face found in one frame only, --max-frames cutting the sound with the pictures."""
from __future__ import annotations

import json

import av
import cv2
import numpy as np
import pytest

from retinaface_polynl import Detections
from retinaface_polynl.cli import build_parser, main
from retinaface_polynl.video import iter_frames, probe

from test_anonymize import energy_ratios  # tests/ is on sys.path (pytest rootdir-relative import)
from test_media import audio_seconds, write_test_video

NAMES = ("2008_002506.jpg", "2008_002470.jpg", "2009_004587.jpg")
ANNOTATED = (3, 6, 2)  # faces dlib's testing.xml annotates on each


def photo_frames(dlib_faces_dir, count, size=(320, 240)):
    """Real photos, resized, two frames each."""
    photos = [cv2.resize(cv2.imread(str(dlib_faces_dir / n)), size, interpolation=cv2.INTER_AREA) for n in NAMES]
    return [photos[(i // 2) % len(photos)] for i in range(count)]


def audio_packets(path):
    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_video_keeps_rate_count_size_and_sound(tmp_path, dlib_faces_dir):
    src = write_test_video(tmp_path / "street.mp4", photo_frames(dlib_faces_dir, 6), fps=8)
    out, jsonl = tmp_path / "out", tmp_path / "masked.jsonl"
    # 320x240 frames of dlib's photos (3, 6 and 2 annotated faces, shrunk to 15-45 px): the
    # default input size (a 480 px short side for small pictures) misses some; a 640 px floor
    # finds at least as many as each photo's annotation holds, which the masking checks below need
    assert main(["anonymize", str(src), "--output", str(out), "--json", str(jsonl), "--quiet",
                 "--min-size", "640"]) == 0
    result = out / "street.mp4"
    a, b = probe(src), probe(result)
    assert (b.frames, b.fps, b.width, b.height) == (a.frames, a.fps, a.width, a.height) == (6, 8, 320, 240)
    assert b.codec == "h264" and b.audio[0].codec == "aac"
    assert audio_seconds(result) == pytest.approx(audio_seconds(src), abs=1e-3)
    assert audio_packets(result) == audio_packets(src)  # copied, not re-encoded
    records = read_jsonl(jsonl)
    assert [r["frame"] for r in records] == list(range(6))
    before, after = list(iter_frames(src)), list(iter_frames(result))
    assert [f.time for f in after] == pytest.approx([f.time for f in before])
    for r, x, y in zip(records, before, after):
        assert len(r["boxes"]) >= ANNOTATED[r["frame"] // 2 % 3] and len(r["regions"]) >= len(r["boxes"])
        own = r["boxes"]
        assert max(energy_ratios(x.image, y.image, own)) < 0.15, r["frame"]


class OneFaceDetector:
    """Finds one face, in frame ``at`` only (the frames come one per call, in order)."""

    def __init__(self, at: int, box) -> None:
        self.at, self.box, self.calls = at, box, 0

    def detect_batch(self, images, threshold=None, batch_size=1, tta=None):
        out = []
        for _ in images:
            if self.calls == self.at:
                out.append(Detections(np.array([self.box], np.float32), np.array([0.9], np.float32),
                                      np.zeros((1, 5, 2), np.float32)))
            else:
                out.append(Detections.empty())
            self.calls += 1
        return out

    def detect(self, image, threshold=None, tta=None, **_):
        """One picture, as anonymize's search asks for it (``find_faces_for_anonymization``)."""
        return self.detect_batch([image])[0]

    def input_scale(self, height, width, size=None, max_size=None):  # pictures enter at their own size
        return 1.0


@pytest.mark.parametrize("persist", [0, 2])
def test_face_found_in_one_frame_is_masked_around_it(tmp_path, dlib_faces_dir, monkeypatch, persist):
    """A lossless (FFV1) video keeps lossless, so every unmasked frame comes back bit for bit and the
    masked ones differ only inside the region: the face found in frame 4 is masked in 4 +- persist."""
    import retinaface_polynl.commands.common as common

    box = [100, 60, 180, 160]
    monkeypatch.setattr(common, "build_detector", lambda args, **kw: OneFaceDetector(4, box))
    src = write_test_video(tmp_path / "cam.mkv", photo_frames(dlib_faces_dir, 9), codec="ffv1", pix_fmt="bgr0",
                           audio_codec="pcm_s16le")
    out, jsonl = tmp_path / "out", tmp_path / "masked.jsonl"
    assert main(["anonymize", str(src), "--output", str(out), "--json", str(jsonl), "--quiet",
                 "--persist", str(persist)]) == 0
    assert probe(out / "cam.mkv").codec == "ffv1"
    assert audio_packets(out / "cam.mkv") == audio_packets(src)  # PCM copied into MKV as it is
    masked_frames = []
    for x, y in zip(iter_frames(src), iter_frames(out / "cam.mkv"), strict=True):
        changed = (x.image != y.image).any(axis=2)
        if changed.any():
            masked_frames.append(x.index)
            ys, xs = np.nonzero(changed)
            assert xs.min() >= 60 and xs.max() < 220 and ys.min() >= 10 and ys.max() < 210  # the 1.5x region only
            assert energy_ratios(x.image, y.image, [box])[0] < 0.1
    assert masked_frames == list(range(4 - persist, 5 + persist))
    records = read_jsonl(jsonl)
    assert [len(r["boxes"]) for r in records] == [int(r["frame"] == 4) for r in records]  # found: frame 4 only
    assert [r["region_frames"] for r in records if r["regions"]] == [[4]] * (2 * persist + 1)


def test_max_frames_cuts_the_sound_with_the_pictures(tmp_path, dlib_faces_dir, monkeypatch):
    import retinaface_polynl.commands.common as common

    monkeypatch.setattr(common, "build_detector", lambda args, **kw: OneFaceDetector(-1, [0, 0, 1, 1]))
    src = write_test_video(tmp_path / "long.mp4", photo_frames(dlib_faces_dir, 8), fps=8)
    out = tmp_path / "out"
    assert main(["anonymize", str(src), "--output", str(out), "--quiet", "--max-frames", "4"]) == 0
    assert probe(out / "long.mp4").frames == 4
    # 4 frames at 8 fps: half a second of sound, give or take an AAC packet (64 ms here) and its priming
    assert audio_seconds(src) > 0.95 and audio_seconds(out / "long.mp4") == pytest.approx(0.5, abs=0.1)


def test_batch_size_batches_frames_and_finds_the_same_faces(tmp_path, dlib_faces_dir, monkeypatch):
    """--batch-size N: anonymize hands video frames to the network N at a time (find_faces_in_frames)
    and masks the same faces as frame by frame (find_faces_for_anonymization without turned passes)."""
    import retinaface_polynl.commands.common as common
    from retinaface_polynl.anonymize import find_faces_for_anonymization, find_faces_in_frames

    frames = photo_frames(dlib_faces_dir, 6)
    args = build_parser().parse_args(["anonymize", "x", "-o", str(tmp_path), "--min-size", "640"])
    detector = common.build_detector(args, size=args.size, max_size=args.max_size)  # as run_command builds it
    alone = [find_faces_for_anonymization(detector, f, rotations=(), tiles=False) for f in frames]
    together = find_faces_in_frames(detector, frames, batch_size=4)
    assert [len(d) for d in together] == [len(d) for d in alone] and min(len(d) for d in alone) >= 2
    for a, b in zip(alone, together):
        np.testing.assert_allclose(b.boxes, a.boxes, atol=0.5)

    calls = []
    real_batch = type(detector).detect_batch

    def spy(self, images, *a, **kw):
        images = list(images)
        calls.append(len(images))
        return real_batch(self, images, *a, **kw)

    monkeypatch.setattr(type(detector), "detect_batch", spy)
    src = write_test_video(tmp_path / "street.mp4", frames, fps=8)
    records = {}
    for n in (1, 4):
        jsonl = tmp_path / f"masked{n}.jsonl"
        calls.clear()
        assert main(["anonymize", str(src), "--output", str(tmp_path / f"out{n}"), "--json", str(jsonl), "--quiet",
                     "--min-size", "640", "--batch-size", str(n)]) == 0
        records[n] = read_jsonl(jsonl)
        assert (max(calls) if calls else 1) == (1 if n == 1 else 6)  # one window of 4 x 4 frames holds all six
    assert [r["frame"] for r in records[4]] == list(range(6))
    for one, many in zip(records[1], records[4]):
        np.testing.assert_allclose(many["boxes"], one["boxes"], atol=0.5)
