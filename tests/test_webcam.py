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
