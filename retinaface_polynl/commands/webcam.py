"""``retinaface-polynl webcam``: live face detection from a camera, a stream or a video file.

Shows the annotated picture with the frames per second in a window (``q`` or Esc
quits) when OpenCV has a GUI; headless (``--no-window``, or an OpenCV build without
GUI support) it can write the annotated stream to ``--output`` and stops after
``--max-frames`` frames or at the end of a file, so it also runs on a server or in
tests.  ``demo/webcam.py`` is the same program as a standalone script.

A pipeline of three stages, so that none waits for another: a thread reads frames
(:class:`FrameReader`: from a camera or stream only the newest is kept, so a slower
detector shows the present; from a file every frame), the main thread detects and shows
the window, and a thread draws and writes ``--output`` (:class:`FrameWriter`).  The
summary reports frames per second, the detection time per frame and the engine that ran.
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
    p.add_argument(
        "--keep-all-frames",
        action="store_true",
        help="from a camera or stream, detect on every frame even when detection is slower than the source "
        "(default: the newest frame is taken and older ones skipped, so the picture stays live; a video file "
        "always keeps every frame)",
    )


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


def is_live(source: str) -> bool:
    """A camera index or a stream URL (frames arrive in real time), as opposed to a video file."""
    return source.isdigit() or ("://" in source and not _is_file(source))


class FrameReader:
    """Reads frames from a ``cv2.VideoCapture``-like object in a background thread.

    ``live=True`` (a camera, a stream): only the newest frame is kept, so a detector slower
    than the camera always works on the present and the camera's own buffer never fills;
    the frames it replaced are counted in ``skipped``.  ``live=False`` (a video file):
    every frame, in order, at most ``maxsize`` decoded ahead.  Iterating yields
    ``(index, frame)`` until the source ends, ``max_frames`` were read, or ``close()``.
    """

    def __init__(self, capture, live: bool, max_frames: int | None = None, maxsize: int = 4) -> None:
        import queue
        import threading

        self.capture, self.live, self.max_frames = capture, live, max_frames
        self.skipped = 0
        self.read_seconds = 0.0
        self._queue: queue.Queue = queue.Queue(maxsize=1 if live else max(1, maxsize))
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="frame-reader")
        self._thread.start()

    _END = object()

    def _put(self, item) -> None:
        import queue

        if self.live and item is not self._END:
            try:  # drop the frame nobody took yet: the consumer gets the newest
                self._queue.get_nowait()
                self.skipped += 1
            except queue.Empty:
                pass
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                if self.live and item is not self._END:
                    try:
                        self._queue.get_nowait()
                        self.skipped += 1
                    except queue.Empty:
                        pass

    def _run(self) -> None:
        index = 0
        try:
            while not self._stop.is_set() and (self.max_frames is None or index < self.max_frames):
                start = time.perf_counter()
                ok, frame = self.capture.read()
                self.read_seconds += time.perf_counter() - start
                if not ok or frame is None:
                    break
                self._put((index, frame))
                index += 1
        except BaseException as exc:  # handed to the consumer
            self._error = exc
        self._put(self._END)

    def __iter__(self):
        return self

    def __next__(self):
        import queue

        while True:
            try:
                item = self._queue.get(timeout=0.1)
                break
            except queue.Empty:
                if self._stop.is_set():
                    raise StopIteration from None
        if item is self._END:
            self._stop.set()
            if self._error is not None:
                raise self._error
            raise StopIteration
        return item

    def close(self) -> None:
        import queue

        self._stop.set()
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass
        self._thread.join(timeout=5)


class FrameWriter:
    """Draws and writes annotated frames in a background thread (in order, every frame:
    a bounded queue makes the detector wait rather than drop output)."""

    def __init__(self, path: str, rate: float, show_scores: bool, maxsize: int = 8) -> None:
        import queue
        import threading

        self.path, self.rate, self.show_scores = path, rate, show_scores
        self.writer = None
        self.write_seconds = 0.0
        self._queue: queue.Queue = queue.Queue(maxsize=maxsize)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="frame-writer")
        self._thread.start()

    def put(self, frame, det=None, fps: float = 0.0, drawn=None) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put((frame, det, fps, drawn))

    def _run(self) -> None:
        from ..media import draw_detections, open_video_writer

        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is not None:
                continue  # drain after a failure; put() reports it
            frame, det, fps, drawn = item
            start = time.perf_counter()
            try:
                if drawn is None:
                    drawn = draw_fps(draw_detections(frame, det, self.show_scores), fps, len(det))
                if self.writer is None:
                    self.writer = open_video_writer(self.path, self.rate, drawn.shape[1], drawn.shape[0])
                self.writer.write(drawn)
            except BaseException as exc:
                self._error = exc
            self.write_seconds += time.perf_counter() - start

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        if self.writer is not None:
            self.writer.release()
        if self._error is not None:
            raise self._error


def run(args: argparse.Namespace) -> int:
    import cv2

    from ..media import draw_detections

    show = not args.no_window
    if show and not window_available():
        log.warning("this OpenCV build cannot open windows (headless); running without one")
        show = False
    if not show and not args.output and args.max_frames is None and not _is_file(args.source):
        log.warning("no window and no --output: detections are only counted (Ctrl-C stops)")
    if args.max_frames is not None and args.max_frames < 1:
        raise ValueError(f"--max-frames must be >= 1, got {args.max_frames}")
    tta = tta_config(args)
    detector = build_detector(args, size=args.size, max_size=args.max_size)
    cap = _open_source(args.source)
    live = is_live(args.source) and not args.keep_all_frames
    # capture (thread) -> detection (this thread; the window must be shown from it) -> drawing and writing (thread)
    rate = args.fps or cap.get(cv2.CAP_PROP_FPS) or 25.0  # asked before the reader thread owns the capture
    reader = FrameReader(cap, live=live, max_frames=args.max_frames)
    writer = FrameWriter(args.output, rate, args.show_scores) if args.output else None
    frames = faces = 0
    fps = 0.0
    detect_seconds = 0.0
    start = last = time.perf_counter()
    try:
        for _, frame in reader:
            t = time.perf_counter()
            det = detector.detect(frame, tta=tta)
            detect_seconds += time.perf_counter() - t
            now = time.perf_counter()
            instant = 1.0 / max(now - last, 1e-6)
            fps = instant if frames == 0 else 0.9 * fps + 0.1 * instant  # smoothed
            last = now
            frames += 1
            faces += len(det)
            drawn = draw_fps(draw_detections(frame, det, args.show_scores), fps, len(det)) if show else None
            if writer is not None:
                writer.put(frame, det, fps, drawn)
            if show:
                cv2.imshow("retinaface-polynl", drawn)
                if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                    break
    finally:
        reader.close()
        cap.release()
        try:
            if writer is not None:
                writer.close()
        finally:
            if show:
                cv2.destroyAllWindows()
    seconds = time.perf_counter() - start
    rate = frames / max(seconds, 1e-9)
    skipped = f"; {reader.skipped} older camera frame(s) skipped to keep up" if reader.skipped else ""
    print(f"{frames} frame(s), {faces} face(s), {seconds:.1f} s, {rate:.2f} FPS "
          f"(detection {1000 * detect_seconds / max(frames, 1):.1f} ms/frame; {detector.describe()}){skipped}")
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
