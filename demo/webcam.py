#!/usr/bin/env python
"""Webcam demo: live face detection with RetinaFace / Poly-NL, FPS shown, 'q' to quit.

    python demo/webcam.py                                  # camera 0, the shipped model (onnxruntime on CPU)
    python demo/webcam.py rtsp://host/stream --weights model.pth
    python demo/webcam.py clip.mp4 --no-window --output out.mp4 --max-frames 100

Capture, detection and writing run in a pipeline of threads; from a camera the newest
frame is taken when detection is slower than the camera (--keep-all-frames to keep all).

The same program as ``retinaface-polynl webcam`` (see its --help); without a GUI
(headless OpenCV, a server) use --no-window and --output.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from retinaface_polynl.commands.webcam import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
