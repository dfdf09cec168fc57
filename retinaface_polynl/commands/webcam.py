"""``retinaface-polynl webcam``: live face detection from a camera, a stream or a video file.

Shows the annotated picture with the frames per second in a window (``q`` or Esc
quits) when OpenCV has a GUI; headless (``--no-window``, or an OpenCV build without
GUI support) it can write the annotated stream to ``--output`` and stops after
``--max-frames`` frames or at the end of a file, so it also runs on a server or in
tests.  ``demo/webcam.py`` is the same program as a standalone script.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time

from .common import add_model_args, add_size_args, add_tta_args, build_detector, tta_config

log = logging.getLogger(__name__)

EXAMPLES = """examples:
  retinaface-polynl webcam                       # camera 0, window, q to quit
  retinaface-polynl webcam 1 --max-size 640      # camera 1, long side capped at 640 px
  retinaface-polynl webcam rtsp://host/stream --no-window --output live.mp4
  retinaface-polynl webcam clip.mp4 --no-window --output out.mp4 --max-frames 100
"""


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "webcam",
        help="live detection from a camera, stream URL or video file",
        description="Live face detection with the FPS shown: from a camera index (0, 1, ...), a stream URL "
        "or a video file. 'q' or Esc quits the window. Without a GUI use --no-window with --output.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    configure_parser(p)
    return p


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", nargs="?", default="0", help="camera index, stream URL or video file (default: 0)")
    add_model_args(p)
    add_size_args(p)
    add_tta_args(p)
    p.set_defaults(max_size=640)
    p.add_argument("--no-window", action="store_true", help="do not open a window (headless)")
    p.add_argument("--output", "-o", metavar="FILE", help="write the annotated stream to this video (.mp4: mp4v)")
    p.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames")
    p.add_argument("--show-scores", action="store_true", help="write each face's score on the picture")
    p.add_argument("--fps", type=float, metavar="FPS", help="frame rate of --output (default: the source's, or 25)")


def _open_source(source: str):
    import cv2

    target = int(source) if source.isdigit() else source
    cap = cv2.VideoCapture(target)
    if not cap.isOpened():
        cap.release()
        kind = "camera" if isinstance(target, int) else "stream or video"
        raise OSError(f"{source}: cannot open {kind}")
    return cap


def window_available() -> bool:
    """Whether OpenCV can show windows here (headless wheels raise on imshow)."""
    import cv2

    if not hasattr(cv2, "imshow"):
        return False
    try:
        cv2.namedWindow("retinaface-polynl", cv2.WINDOW_NORMAL)
        return True
    except cv2.error:
        return False


def draw_fps(image, fps: float, faces: int):
    import cv2

    text = f"{fps:5.1f} FPS  {faces} face(s)"
    cv2.putText(image, text, (10, 26), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 4, cv2.LINE_AA)
    cv2.putText(image, text, (10, 26), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 1, cv2.LINE_AA)
    return image


def run(args: argparse.Namespace) -> int:
    import cv2

    from ..media import draw_detections, open_video_writer

    show = not args.no_window
    if show and not window_available():
        log.warning("this OpenCV build cannot open windows (headless); running without one")
        show = False
    if not show and not args.output and args.max_frames is None and not _is_file(args.source):
        log.warning("no window and no --output: detections are only counted (Ctrl-C stops)")
    tta = tta_config(args)
    detector = build_detector(args, size=args.size, max_size=args.max_size)
    cap = _open_source(args.source)
    writer = None
    frames = faces = 0
    fps = 0.0
    start = last = time.perf_counter()
    try:
        while args.max_frames is None or frames < args.max_frames:
            ok, frame = cap.read()
            if not ok or frame is None:
                break
            det = detector.detect(frame, tta=tta)
            now = time.perf_counter()
            instant = 1.0 / max(now - last, 1e-6)
            fps = instant if frames == 0 else 0.9 * fps + 0.1 * instant  # smoothed
            last = now
            frames += 1
            faces += len(det)
            drawn = draw_fps(draw_detections(frame, det, args.show_scores), fps, len(det))
            if args.output:
                if writer is None:
                    rate = args.fps or cap.get(cv2.CAP_PROP_FPS) or 25.0
                    writer = open_video_writer(args.output, rate, drawn.shape[1], drawn.shape[0])
                writer.write(drawn)
            if show:
                cv2.imshow("retinaface-polynl", drawn)
                if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                    break
    finally:
        cap.release()
        if writer is not None:
            writer.release()
        if show:
            cv2.destroyAllWindows()
    seconds = time.perf_counter() - start
    print(f"{frames} frame(s), {faces} face(s), {seconds:.1f} s, {frames / max(seconds, 1e-9):.2f} FPS")
    if frames == 0:
        print(f"error: {args.source}: no frame could be read", file=sys.stderr)
        return 1
    return 0


def _is_file(source: str) -> bool:
    from pathlib import Path

    return Path(source).is_file()


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``demo/webcam.py``."""
    parser = argparse.ArgumentParser(
        prog="webcam.py",
        description="Live face detection (RetinaFace / Poly-NL) from a camera, stream URL or video file.",
        epilog=EXAMPLES.replace("retinaface-polynl webcam", "python demo/webcam.py"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    configure_parser(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    try:
        return run(args)
    except KeyboardInterrupt:
        return 130
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
