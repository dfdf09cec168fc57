"""The webcam demo, headless: a video file in place of the camera, annotated output
written to a file, a frame limit; and a clear error for a camera that is not there."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from retinaface_polynl.cli import main
from test_cli_detect import make_video

REPO = Path(__file__).resolve().parents[1]




def _frames(path):
    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        out.append(frame)
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    return out, fps


def test_webcam_command_headless_on_a_video_file(tmp_path, dlib_faces_dir, mnet_checkpoint, capsys):
    video = make_video(tmp_path / "cam.mp4", dlib_faces_dir, frames=6, fps=12.0)
    out = tmp_path / "live.mp4"
    rc = main(["webcam", str(video), "--weights", str(mnet_checkpoint), "--no-window", "--output", str(out),
               "--max-frames", "4"])
    assert rc == 0
    frames, fps = _frames(out)
    assert len(frames) == 4 and frames[0].shape == (240, 320, 3) and fps == pytest.approx(12.0)
    source, _ = _frames(video)
    assert (frames[0] != source[0]).any()  # annotated (boxes and the FPS text)
    printed = capsys.readouterr().out
    assert "4 frame(s)" in printed and "FPS" in printed


def test_demo_script_runs_headless(tmp_path, dlib_faces_dir, mnet_checkpoint):
    video = make_video(tmp_path / "cam.mp4", dlib_faces_dir, frames=2)
    out = tmp_path / "demo.mp4"
    proc = subprocess.run(
        [sys.executable, str(REPO / "demo" / "webcam.py"), str(video), "--weights", str(mnet_checkpoint),
         "--no-window", "--output", str(out), "--max-frames", "2", "--max-size", "320"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    assert len(_frames(out)[0]) == 2
    assert "2 frame(s)" in proc.stdout


def test_missing_camera_is_a_clear_error(tmp_path, mnet_checkpoint, capsys):
    rc = main(["webcam", str(tmp_path / "no_such_stream.mp4"), "--weights", str(mnet_checkpoint), "--no-window",
               "--max-frames", "1"])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error:") and "no_such_stream.mp4" in err[-1]


class _FakeCamera:
    """A capture whose frames are numbered (pixel value = index), read at camera speed."""

    def __init__(self, frames: int, delay: float = 0.0) -> None:
        self.left, self.index, self.delay = frames, 0, delay

    def read(self):
        import time

        import numpy as np

        if self.left == 0:
            return False, None
        time.sleep(self.delay)
        self.left -= 1
        frame = np.full((4, 4, 3), self.index % 256, np.uint8)
        self.index += 1
        return True, frame


def test_frame_reader_keeps_every_frame_of_a_file_in_order():
    from retinaface_polynl.commands.webcam import FrameReader

    reader = FrameReader(_FakeCamera(30), live=False, maxsize=2)
    seen = [(i, int(frame[0, 0, 0])) for i, frame in reader]
    assert seen == [(i, i) for i in range(30)] and reader.skipped == 0


def test_frame_reader_on_a_camera_hands_the_newest_frame_to_a_slow_detector():
    import time

    from retinaface_polynl.commands.webcam import FrameReader

    reader = FrameReader(_FakeCamera(40, delay=0.002), live=True)
    seen = []
    for i, frame in reader:
        seen.append(i)
        time.sleep(0.02)  # detection ten times slower than the camera
    assert seen == sorted(seen) and seen[-1] == 39  # in order, and the last frame is not lost
    assert len(seen) < 30 and reader.skipped == 40 - len(seen)  # stale frames were skipped, and counted


def test_frame_reader_stops_at_max_frames_and_closes_early():
    from retinaface_polynl.commands.webcam import FrameReader

    assert [i for i, _ in FrameReader(_FakeCamera(30), live=False, max_frames=5)] == [0, 1, 2, 3, 4]
    reader = FrameReader(_FakeCamera(10_000), live=False, maxsize=2)
    next(reader)
    reader.close()  # must not hang on the producer blocked on a full queue
    assert not reader._thread.is_alive()


def test_webcam_summary_names_the_engine(tmp_path, dlib_faces_dir, mnet_checkpoint, capsys):
    video = make_video(tmp_path / "cam.mp4", dlib_faces_dir, frames=3)
    assert main(["webcam", str(video), "--weights", str(mnet_checkpoint), "--no-window", "--threads", "1"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert "3 frame(s)" in line and "FPS" in line and "ms/frame" in line and "on torch fp32, 1 thread" in line
