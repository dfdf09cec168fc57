"""Reading images and videos robustly, input expansion, the prefetch queue, writers."""
from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest

from retinaface_polynl.detector import Detections
from retinaface_polynl.media import (
    ImageReadError,
    Prefetcher,
    draw_detections,
    expand_inputs,
    iter_media,
    open_video_writer,
    read_image,
    to_bgr_uint8,
)


def _gradient(h=40, w=60) -> np.ndarray:
    """A BGR picture whose channels differ, so colour-order mistakes show."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 4 % 256, y * 6 % 256, (x + y) * 2 % 256], axis=-1).astype(np.uint8)


def exif_jpeg(image_bgr: np.ndarray, orientation: int) -> bytes:
    """A JPEG with a minimal EXIF APP1 segment holding only the Orientation tag."""
    ok, jpg = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, 100])
    assert ok
    tiff = b"II*\x00" + (8).to_bytes(4, "little")
    tiff += (1).to_bytes(2, "little")  # one IFD entry
    tiff += (0x0112).to_bytes(2, "little") + (3).to_bytes(2, "little") + (1).to_bytes(4, "little")
    tiff += orientation.to_bytes(2, "little") + b"\x00\x00"
    tiff += (0).to_bytes(4, "little")
    payload = b"Exif\x00\x00" + tiff
    app1 = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    data = jpg.tobytes()
    return data[:2] + app1 + data[2:]


def test_read_gray_rgba_16bit_png(tmp_path):
    bgr = _gradient()
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    cv2.imwrite(str(tmp_path / "gray.png"), gray)
    out = read_image(tmp_path / "gray.png")
    assert out.shape == (40, 60, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[:, :, 0], gray)

    bgra = np.dstack([bgr, np.full(bgr.shape[:2], 128, np.uint8)])
    cv2.imwrite(str(tmp_path / "rgba.png"), bgra)
    np.testing.assert_array_equal(read_image(tmp_path / "rgba.png"), bgr)

    deep = bgr.astype(np.uint16) * 257
    cv2.imwrite(str(tmp_path / "deep.png"), deep)
    np.testing.assert_array_equal(read_image(tmp_path / "deep.png"), bgr)


def test_read_exif_rotated_jpeg(tmp_path):
    bgr = np.zeros((40, 60, 3), np.uint8)
    bgr[:10, :20] = 255  # a white block at the top-left
    (tmp_path / "rot.jpg").write_bytes(exif_jpeg(bgr, 6))  # 6: rotate 90 degrees clockwise to display
    out = read_image(tmp_path / "rot.jpg")
    assert out.shape == (60, 40, 3)
    assert out[:20, -10:].mean() > 200 and out[-20:, :10].mean() < 30  # the block moved to the top-right


def test_to_bgr_uint8_variants():
    bgr = _gradient()
    rgb = bgr[:, :, ::-1]
    np.testing.assert_array_equal(to_bgr_uint8(rgb, rgb=True), bgr)
    np.testing.assert_array_equal(to_bgr_uint8(bgr.astype(np.float32) / 255), bgr)
    assert to_bgr_uint8(bgr[:, :, :1]).shape == (40, 60, 3)
    with pytest.raises(ValueError, match="shape"):
        to_bgr_uint8(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ValueError, match="empty"):
        to_bgr_uint8(np.zeros((0, 4, 3), np.uint8))


def test_pil_image_error_says_how_to_pass_it():
    """np.asarray(pil) without rgb=True runs, silently in the wrong colour order: say so up front."""
    from PIL import Image

    with pytest.raises(TypeError, match=r"np\.asarray\(image\) with rgb=True"):
        to_bgr_uint8(Image.fromarray(_gradient()))


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("empty.jpg", b"", "empty file"),
        ("text.jpg", b"this is not an image\n" * 10, "not a decodable image"),
    ],
)
def test_read_errors_name_the_file(tmp_path, name, content, message):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ImageReadError, match=message) as info:
        read_image(tmp_path / name)
    assert name in str(info.value)


def test_read_truncated_jpeg_and_png(tmp_path):
    ok, jpg = cv2.imencode(".jpg", _gradient(200, 200))
    (tmp_path / "cut.jpg").write_bytes(jpg.tobytes()[: len(jpg) // 2])
    with pytest.raises(ImageReadError, match="truncated JPEG"):
        read_image(tmp_path / "cut.jpg")
    ok, png = cv2.imencode(".png", _gradient(200, 200))
    (tmp_path / "cut.png").write_bytes(png.tobytes()[: len(png) // 2])
    with pytest.raises(ImageReadError, match="truncated PNG"):
        read_image(tmp_path / "cut.png")


def test_expand_inputs_folders_globs_and_missing(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for rel in ("a/1.jpg", "a/b/2.PNG", "a/b/3.mp4", "a/notes.txt"):
        (tmp_path / rel).write_bytes(b"x")
    sources = expand_inputs([tmp_path / "a", str(tmp_path / "a" / "*.jpg"), tmp_path / "missing.jpg"])
    names = [(s.path.name, s.error is None) for s in sources]
    assert names == [("1.jpg", True), ("2.PNG", True), ("3.mp4", True), ("1.jpg", True), ("missing.jpg", False)]
    assert str(sources[1].relative) == "b/2.PNG"
    assert "no such file" in sources[-1].error
    assert "no files match" in expand_inputs([str(tmp_path / "*.gif")])[0].error


def test_iter_media_video_frames_and_errors(tmp_path):
    writer = open_video_writer(tmp_path / "v.mp4", 10, 64, 48)
    for i in range(5):
        writer.write(np.full((48, 64, 3), i * 40, np.uint8))
    writer.release()
    (tmp_path / "bad.mp4").write_bytes(b"\x00" * 100)
    items = list(iter_media(expand_inputs([tmp_path / "v.mp4", tmp_path / "bad.mp4"])))
    frames = [it for it in items if it.error is None]
    assert [it.frame for it in frames] == [0, 1, 2, 3, 4]
    assert frames[-1].last_frame and not frames[0].last_frame
    assert frames[0].fps == pytest.approx(10)
    assert items[-1].error and "bad.mp4" in items[-1].error
    assert len(list(iter_media(expand_inputs([tmp_path / "v.mp4"]), max_frames=2))) == 2


def test_prefetcher_order_bounded_errors_and_close():
    produced = []

    def gen():
        for i in range(100):
            produced.append(i)
            yield i

    p = Prefetcher(gen(), maxsize=3)
    assert next(p) == 0
    time.sleep(0.2)
    assert len(produced) <= 6  # bounded: the producer waits for the consumer
    assert list(p)[:3] == [1, 2, 3]

    def failing():
        yield 1
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        list(Prefetcher(failing()))

    endless = Prefetcher(iter(int, 1), maxsize=2)  # never ends by itself
    next(endless)
    endless.close()
    assert not any(t.name == "prefetch" and t.is_alive() for t in threading.enumerate() if t is endless._thread)


def test_draw_brightness_encodes_confidence():
    image = np.zeros((100, 200, 3), np.uint8)
    det = Detections(
        np.array([[10, 10, 60, 60], [110, 10, 160, 60]], np.float32),
        np.array([1.0, 0.1], np.float32),
        np.zeros((2, 5, 2), np.float32),
    )
    out = draw_detections(image, det, landmarks=False, thickness=1)
    strong, weak = out[10, 30], out[10, 130]
    assert strong[0] == 0 and weak[0] == 0  # yellow: no blue
    assert strong[2] > weak[2] > 0  # brighter for the higher score
    assert image.max() == 0  # a copy was drawn on


# -- videos through PyAV -------------------------------------------------------------------------------
def write_test_video(path, frames, fps=8, codec="libx264", pix_fmt="yuv420p", tone_hz=440.0, sample_rate=16000,
                     audio_codec="aac", rotation=None):
    """A video of ``frames`` (BGR arrays) at ``fps``, muxed with PyAV, with a sine tone as long as the
    pictures (``tone_hz=None``: silent, no audio stream).  Returns ``path``."""
    import av

    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as c:
        v = c.add_stream(codec, rate=fps)
        v.width, v.height, v.pix_fmt = w, h, pix_fmt
        if rotation:
            v.set_display_rotation(rotation)
        a = None
        if tone_hz:
            a = c.add_stream(audio_codec, rate=sample_rate)
            a.layout = "mono"
        total = int(round(sample_rate * len(frames) / fps))
        wave = 0.3 * np.sin(2 * np.pi * tone_hz * np.arange(total) / sample_rate) if tone_hz else None
        done = 0
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts = i
            for p in v.encode(frame):
                c.mux(p)
            while a is not None and done < total * (i + 1) // len(frames):
                chunk = wave[done: done + 1024]
                fmt = a.codec_context.format.name
                data = chunk.astype(np.float32)[None] if fmt == "fltp" else (chunk * 32767).astype(np.int16)[None]
                af = av.AudioFrame.from_ndarray(data, format=fmt, layout="mono")
                af.sample_rate, af.pts = sample_rate, done
                for p in a.encode(af):
                    c.mux(p)
                done += len(chunk)
        for stream in (v, a):
            if stream is not None:
                for p in stream.encode():
                    c.mux(p)
    return path


def test_pyav_reader_applies_rotation_like_opencv(tmp_path):
    from retinaface_polynl.video import probe

    image = np.zeros((48, 64, 3), np.uint8)
    image[:10, :20] = 255  # a white block at the top-left of the stored frame
    path = write_test_video(tmp_path / "phone.mp4", [image] * 3, rotation=90, tone_hz=None)
    info = probe(path)
    assert (info.width, info.height, info.rotation, info.frames) == (48, 64, 90, 3)
    frames = [it for it in iter_media(expand_inputs([path])) if it.error is None]
    cap = cv2.VideoCapture(str(path))  # OpenCV shows it rotated, as players do
    ok, shown = cap.read()
    cap.release()
    assert ok and frames[0].image.shape == shown.shape == (64, 48, 3)
    np.testing.assert_allclose(frames[0].image.astype(int), shown.astype(int), atol=40)
    assert [it.time for it in frames] == pytest.approx([0, 1 / 8, 2 / 8])


def test_video_writer_keeps_odd_sizes_timing_and_sound(tmp_path):
    """An odd-sized picture (4:2:0 cannot hold it) is kept at its size; the frame times and the
    AAC sound of the source come through, the sound's packets unchanged (copied, not re-encoded)."""
    import av

    from retinaface_polynl.video import VideoWriter, iter_frames, probe

    rng = np.random.default_rng(0)
    frames = [cv2.resize(rng.integers(0, 256, (8, 8, 3), np.uint8), (65, 49), interpolation=cv2.INTER_NEAREST)
              for _ in range(5)]
    src = write_test_video(tmp_path / "odd.mkv", frames, fps=10, pix_fmt="yuv444p")
    out = tmp_path / "copy.mkv"
    with VideoWriter(out, 10, 65, 49, audio_from=src) as writer:
        for f in iter_frames(src):
            writer.write(f.image, f.time)
    assert writer.audio_mode == ["copied"] and writer.codec == "libx264"
    a, b = probe(src), probe(out)
    assert (b.width, b.height, b.fps) == (65, 49, 10)
    assert [f.time for f in iter_frames(out)] == pytest.approx([f.time for f in iter_frames(src)])  # 5 frames
    assert b.audio[0].codec == "aac"
    assert audio_seconds(out) == pytest.approx(audio_seconds(src), abs=1e-3)
    assert audio_seconds(src) == pytest.approx(0.5, abs=0.1)  # AAC: whole 1024-sample frames, plus priming

    def packets(path):
        with av.open(str(path)) as c:
            return [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]

    assert packets(out) == packets(src)


def audio_seconds(path) -> float:
    """The first audio stream's span, from its packets' timestamps (containers disagree on durations)."""
    import av

    with av.open(str(path)) as c:
        stamps = [(p.pts, p.duration or 0, p.time_base) for p in c.demux(c.streams.audio[0]) if p.size]
    first, last = stamps[0], stamps[-1]
    return float((last[0] + last[1] - first[0]) * first[2])


def test_video_writer_transcodes_audio_the_container_cannot_hold(tmp_path, caplog):
    import logging

    from retinaface_polynl.video import VideoWriter, iter_frames, probe

    frames = [np.full((48, 64, 3), 40 * i, np.uint8) for i in range(4)]
    src = write_test_video(tmp_path / "pcm.mkv", frames, audio_codec="pcm_s16le")
    with caplog.at_level(logging.INFO, logger="retinaface_polynl.video"):
        with VideoWriter(tmp_path / "out.webm", 8, 64, 48, audio_from=src) as writer:
            for f in iter_frames(src):
                writer.write(f.image, f.time)
    assert writer.codec == "libvpx-vp9" and writer.audio_mode[0].startswith("transcoded")
    assert any("transcoding" in r.getMessage() for r in caplog.records)
    info = probe(tmp_path / "out.webm")
    assert info.audio and audio_seconds(tmp_path / "out.webm") == pytest.approx(0.5, abs=0.03)
    assert len(list(iter_frames(tmp_path / "out.webm"))) == 4


def test_missing_encoder_falls_back_with_a_log_line(caplog, monkeypatch):
    import logging

    from retinaface_polynl import video

    real = video.encoder_available
    monkeypatch.setattr(video, "encoder_available", lambda name: name != "libx264" and real(name))
    with caplog.at_level(logging.WARNING, logger="retinaface_polynl.video"):
        assert video.choose_codec(".mp4") not in ("libx264", None)
    assert any("libx264 is not available" in r.getMessage() for r in caplog.records)
    with caplog.at_level(logging.WARNING, logger="retinaface_polynl.video"):
        assert video.choose_codec(".mp4", "libx264") != "libx264"
    assert video.choose_codec(".mkv", source_codec="ffv1") == "ffv1"


def test_reader_packets_feed_the_writer_copied_or_transcoded(tmp_path):
    """One open of the source (VideoReader): the audio packets that come with its frames are copied
    into a container that takes them and decoded and re-encoded for one that does not (PCM into
    WebM), also after the reader has finished reading."""
    from retinaface_polynl.video import VideoReader, VideoWriter, probe

    frames = [np.full((48, 64, 3), 30 * i, np.uint8) for i in range(6)]
    src = write_test_video(tmp_path / "pcm.mkv", frames, audio_codec="pcm_s16le")
    for name, mode in (("copy.mkv", "copied"), ("out.webm", "transcoded to libopus")):
        reader = VideoReader(src)
        read = list(reader.frames())  # the whole file read before anything is written
        reader.release("reader")
        info = reader.info
        assert (info.frames, info.width, info.height, info.frames_stated) == (6, 64, 48, False)
        assert sum(len(f.audio) for f in read) > 0
        with VideoWriter(tmp_path / name, info.fps, 64, 48, time_base=info.time_base,
                         audio_streams=reader.audio_streams) as writer:
            for f in read:
                writer.write(f.image, f.time, pts=f.pts, audio=f.audio)
        reader.release("writer")
        assert writer.audio_mode[0].startswith(mode.split()[0]), writer.audio_mode
        assert probe(tmp_path / name).frames == 6
        assert audio_seconds(tmp_path / name) == pytest.approx(audio_seconds(src), abs=0.03)
