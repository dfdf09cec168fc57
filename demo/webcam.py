#!/usr/bin/env python
"""Webcam demo: live face detection with RetinaFace / Poly-NL, FPS shown, 'q' to quit.

    python demo/webcam.py --weights model.pth              # camera 0
    python demo/webcam.py rtsp://host/stream --weights model.pth
    python demo/webcam.py clip.mp4 --weights model.pth --no-window --output out.mp4 --max-frames 100

The same program as ``retinaface-polynl webcam`` (see its --help); without a GUI
(headless OpenCV, a server) use --no-window and --output.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from retinaface_polynl.commands.webcam import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
