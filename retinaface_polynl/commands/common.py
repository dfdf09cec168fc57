"""Options and the run loop shared by the commands that run a detector (detect, anonymize)."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def add_model_args(parser: argparse.ArgumentParser, threshold: float = 0.5, engines: bool = True) -> None:
    """``engines=False`` for commands that need the PyTorch model itself (no --backend/--threads)."""
    g = parser.add_argument_group("model")
    g.add_argument(
        "--weights",
        metavar="FILE",
        help="checkpoint: ours (configuration inside) or a Pytorch_Retinaface .pth; "
        "default: the weights shipped with the package",
    )
    g.add_argument(
        "--preset",
        metavar="NAME",
        help="architecture preset (see 'retinaface-polynl presets'); with --weights it overrides "
        "the checkpoint's own, e.g. to add a Poly-NL block to a plain RetinaFace checkpoint",
    )
    g.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    if engines:
        g.add_argument(
            "--backend",
            choices=("auto", "torch", "onnxruntime", "tensorrt"),
            default="auto",
            help="inference engine (default: auto: the fastest that finds the same faces; the shipped weights on a "
            "CPU run on onnxruntime from the ONNX file shipped beside them, on CUDA on TensorRT or PyTorch in "
            "float16; another .pth on PyTorch, an .onnx file on onnxruntime, an engine on tensorrt). torch forces "
            "PyTorch; onnxruntime with a .pth exports it once into ~/.cache/retinaface_polynl; tensorrt with an "
            ".onnx file builds and caches an engine",
        )
        g.add_argument("--threads", type=int, metavar="N",
                       help="intra-op threads of whichever engine runs (default: torch's count: the number of "
                       "cores, or OMP_NUM_THREADS)")
    g.add_argument(
        "--threshold", type=float, default=threshold, help=f"minimum face score to keep (default: {threshold})"
    )
    g.add_argument("--nms-threshold", type=float, default=0.4, help="NMS IoU threshold (default: 0.4)")


def build_detector(args: argparse.Namespace, **overrides):
    from ..detector import Detector

    kwargs = dict(
        weights=args.weights,
        preset=args.preset,
        device=args.device,
        threshold=args.threshold,
        nms_threshold=args.nms_threshold,
        # commands without --backend (attention) need the PyTorch model itself
        backend=getattr(args, "backend", "torch"),
        threads=getattr(args, "threads", None),
        min_size=getattr(args, "min_size", None),
        zoom=getattr(args, "zoom", None),
    )
    kwargs.update(overrides)
    return Detector(**kwargs)


SIZE_HELP = (
    "Input size: by default the network sees each picture at the input size its checkpoint records "
    "as the scale it was trained for (the shipped weights: short side at least 480 px: smaller "
    "pictures are enlarged to it, larger ones never shrunk; long side at most 1024 px), or at its "
    "original size when the checkpoint records none (pictures whose long side exceeds 4096 px are "
    "then downscaled to it, with a warning); --size resizes the short side to exactly PX, --min-size "
    "only enlarges pictures whose short side is smaller, --max-size caps the long side, and any of "
    "them replaces the checkpoint's choice.  Images are read as BGR, as OpenCV does (gray, RGBA, "
    "16-bit and EXIF-rotated files are converted)."
)


def add_size_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("input size", SIZE_HELP)
    size = g.add_mutually_exclusive_group()
    size.add_argument("--size", type=int, metavar="PX", help="resize the short side to exactly PX pixels (default: the "
                      "checkpoint's recorded input size, for the shipped weights a short side of at least 480, "
                      "else original size)")
    size.add_argument("--min-size", type=int, metavar="PX", help="enlarge pictures whose short side is under PX pixels "
                      "to PX; keep larger ones at their own size (e.g. --min-size 640: the most accurate setting on "
                      "small crowd photos, about twice the time on VGA)")
    g.add_argument("--max-size", type=int, metavar="PX", help="cap the long side at PX pixels (default: the checkpoint's "
                   "recorded cap, 1024 for the shipped weights, else none)")
    g.add_argument("--zoom", choices=("auto", "on", "off"), default="auto",
                   help="small-face zoom: when a picture's first pass finds a face smaller than the model is "
                   "reliable for, run it again enlarged and merge the two. auto: as the checkpoint records (the "
                   "shipped weights: x2 when a face is under 48 px; about twice the time on crowd photos, none "
                   "on pictures without small faces); on: also for checkpoints that record none; off: one pass "
                   "(default: auto)")


def add_tta_args(parser: argparse.ArgumentParser, default: str = "none") -> None:
    g = parser.add_argument_group(
        "test-time augmentation",
        "none: single scale (fast). flip: the picture and its mirror image, box-voted (one forward pass "
        "of 2). paper: the Poly-NL supplementary's WIDER FACE test setting: short side 500, 800, 1100, "
        "1400, 1700 px (long side capped by --tta-max-size), shifted by 4 px in (0,0) (0,1) (1,0) (1,1), "
        "and flipped, 40 views in 5 forward passes, merged by box voting. A voted face scores its mean "
        "over the views (0 where a view missed it). TTA replaces the small-face zoom; paper takes about "
        "30x the time of one pass with the zoom.",
    )
    g.add_argument("--tta", choices=("none", "flip", "paper"), default=default, help=f"(default: {default})")
    g.add_argument(
        "--tta-scales",
        metavar="PX,PX,...",
        help="override the TTA short-side scales, e.g. 500,800 ('0' = the single-scale size)",
    )
    g.add_argument("--tta-max-size", type=int, metavar="PX", help="cap on the long side of a TTA view (default: 2000)")


def tta_config(args: argparse.Namespace):
    """The TTAConfig (or None) that ``--tta``, ``--tta-scales`` and ``--tta-max-size`` describe."""
    from ..tta import TTA_PRESETS, resolve_tta

    name = getattr(args, "tta", "none") or "none"
    scales = getattr(args, "tta_scales", None)
    cap = getattr(args, "tta_max_size", None)
    if cap is not None and cap < 1:
        raise ValueError(f"--tta-max-size must be >= 1, got {cap}")
    config = resolve_tta(name)
    if config is None and (scales or cap):
        config = TTA_PRESETS["none"]
    if config is None:
        return None
    changes = {}
    if scales:
        try:
            values = tuple(int(v) for v in scales.split(",") if v.strip())
        except ValueError:
            raise ValueError(f"--tta-scales must be comma-separated integers, got {scales!r}") from None
        changes["scales"] = tuple(None if v == 0 else v for v in values)
    if cap:
        changes["max_size"] = cap
    return config.replace(**changes) if changes else config


# ----------------------------------------------------------------------------------------
# The run shared by detect and anonymize: inputs -> decode (background thread) -> batched
# detection -> a sink that writes; errors named on one line and recorded in the JSON.
# ----------------------------------------------------------------------------------------
EXIT_STATUS = """exit status: 0 every input done; 1 some input failed (each named on an 'error:' line and
recorded in the --json file as {"path": ..., "error": ...}; the others still processed and written);
2 bad options, weights or output paths (nothing run).
"""


class OutputNames:
    """Output paths that mirror the inputs' tree below a folder: ``folder / <path below the
    input folder>`` with a new suffix; never an input itself, never one path for two inputs."""

    def __init__(self) -> None:
        self.used: dict[tuple, Path] = {}

    def target(self, folder: Path, source, suffix: str) -> Path:
        key = (folder, source.path, suffix)
        if key in self.used:
            return self.used[key]
        target = folder / source.relative.with_suffix(suffix)
        if target.resolve() == source.path.resolve():  # never overwrite an input
            target = target.with_name(f"{target.stem}_faces{suffix}")
        taken = set(self.used.values())
        n = 1
        while target in taken:
            target = folder / source.relative.with_name(f"{source.relative.stem}_{n}{suffix}")
            n += 1
        self.used[key] = target
        return target


def open_video_output(target: Path, item, max_frames: int | None = None, codec: str = "auto", crf: int | None = None):
    """A :class:`~retinaface_polynl.video.VideoWriter` for the video ``item`` (its first frame)
    comes from: its exact frame rate, its sound copied, cut where ``--max-frames`` stops the
    pictures; FFV1 when the source is lossless (``codec='auto'``)."""
    from ..video import DEFAULT_CRF, VideoWriter, probe

    info = probe(item.path)
    h, w = item.image.shape[:2]
    fps = info.fps if info is not None else (item.fps or 25.0)
    until = (item.time or 0.0) + max_frames / float(fps) if max_frames else None
    return VideoWriter(target, fps, w, h, codec=codec, audio_from=item.path, source_codec=info.codec if info else None,
                       crf=DEFAULT_CRF if crf is None else crf, audio_until=until)


def output_folder(flag: str, value: str | None) -> Path | None:
    """``value`` as a folder (created), or ``None``; a file of that name is an error."""
    if not value:
        return None
    folder = Path(value)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{flag} {folder}: exists and is not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class JsonLines:
    """The ``--json`` file: one JSON object a line, flushed per record; ``'-'`` is stdout."""

    def __init__(self, target: str | None) -> None:
        self.to_stdout = target == "-"
        self.file = None
        if self.to_stdout:
            self.file = sys.stdout
        elif target:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            self.file = open(target, "w", encoding="utf-8")

    def write(self, record: dict) -> None:
        if self.file is not None:
            self.file.write(json.dumps(record) + "\n")
            self.file.flush()

    def close(self) -> None:
        if self.file is not None and self.file is not sys.stdout:
            self.file.close()


class Sink:
    """What :func:`run_detection` writes through: ``json`` (a :class:`JsonLines`), ``write(item,
    detections)`` per picture, ``end_video(path)`` after a video's last frame; ``close()`` ends
    the videos still open (``self.videos``, keyed by source path) and closes the JSON file."""

    json: JsonLines
    videos: dict

    def write(self, item, det) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def end_video(self, path) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        try:
            for path in list(self.videos):
                try:
                    self.end_video(path)
                except OSError:  # already reported, or the run is ending on an error
                    pass
        finally:
            self.json.close()


def picture_record(item, det, **extra) -> dict:
    """The JSON record of one image or video frame: path, frame (videos), size, faces, ``extra``."""
    h, w = item.image.shape[:2]
    record: dict = {"path": str(item.path)}
    if item.frame is not None:
        record["frame"] = item.frame
    record.update(width=w, height=h, **det.to_dict())
    record.update(extra)
    return record


def error_record(path, frame: int | None, message: str) -> dict:
    """``{"path", "frame" (videos), "error"}``: the error line's text, less the leading path."""
    where = str(path) + (f" frame {frame}" if frame is not None else "")
    reason = message[len(where) + 2:] if message.startswith(where + ": ") else message
    record: dict = {"path": str(path)}
    if frame is not None:
        record["frame"] = frame
    record["error"] = reason
    return record


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def add_run_args(parser: argparse.ArgumentParser) -> None:
    r = parser.add_argument_group("run")
    r.add_argument("--batch-size", type=int, default=1, metavar="N", help="pictures per forward pass (default: 1)")
    r.add_argument("--max-frames", type=int, metavar="N", help="read at most N frames of each video (default: all)")
    r.add_argument("--quiet", "-q", action="store_true", help="no progress bar or per-file lines")


def add_detection_args(parser: argparse.ArgumentParser, threshold: float = 0.5) -> None:
    """The inputs and the model, input-size and TTA options of a command that runs :func:`run_command`."""
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image or video files, folders, globs")
    add_model_args(parser, threshold=threshold)
    add_size_args(parser)
    add_tta_args(parser)


def run_command(args: argparse.Namespace, make_sink, desc: str, output_dirs=()) -> int:
    """Check the options and inputs, build the detector, then :func:`run_detection` into ``make_sink(args)``."""
    sources = prepare_sources(args, output_dirs=output_dirs)
    detector = build_detector(args, size=args.size, max_size=args.max_size)
    return run_detection(args, detector, sources, make_sink(args), desc=desc)


def prepare_sources(args: argparse.Namespace, output_dirs=()) -> list:
    """Check the run options, expand ``args.inputs``, drop files inside any of
    ``output_dirs`` (a second run must not take the first run's outputs as inputs), and
    refuse a ``--json`` that would overwrite a picture."""
    from ..media import expand_inputs, is_media_path

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.max_frames is not None and args.max_frames < 1:
        raise ValueError(f"--max-frames must be >= 1, got {args.max_frames}")
    tta_config(args)  # its errors before any output is opened
    sources = expand_inputs(args.inputs)
    for value in output_dirs:
        if not value:
            continue
        out_dir = Path(value).resolve()
        sources = [s for s in sources if s.root is None or s.error is not None or s.root.resolve() == out_dir
                   or out_dir not in s.path.resolve().parents]
    if args.json and args.json != "-":
        # '--json photos/*.jpg' makes the first photo the JSON file: never overwrite a picture.
        target = Path(args.json)
        if is_media_path(target) or any(s.path.resolve() == target.resolve() for s in sources if s.error is None):
            raise ValueError(f"--json {target}: is an image or video (it would be overwritten); "
                             "give a new file name such as faces.jsonl")
    return sources


def count_pictures(sources, max_frames: int | None) -> int:
    """Images plus video frames (as the container states them), for the progress bar."""
    from ..media import is_video_path, video_info

    total = 0
    for s in sources:
        if s.error is None and is_video_path(s.path):
            info = video_info(s.path)
            frames = info[1] if info else 0
            total += min(frames, max_frames) if max_frames else frames
        else:
            total += 1
    return total


def describe(detector) -> str:
    """The engine that ran (``Detector.describe``) and its input size, or the detector's type for a stand-in."""
    describe_ = getattr(detector, "describe", None)
    if not callable(describe_):
        return type(detector).__name__
    rule = getattr(detector, "describe_input", None)
    zoom = getattr(detector, "zoom_rule", None)
    return describe_() + (f", input {rule()}" if callable(rule) else "") + (f", {zoom.describe()}" if zoom else "")


def run_detection(args: argparse.Namespace, detector, sources: list, sink, desc: str) -> int:
    """Detect faces in every picture of ``sources`` and hand each result to ``sink``.

    ``sink`` has ``json`` (a :class:`JsonLines`), ``write(item, detections)``,
    ``end_video(path)`` and ``close()``; ``write``/``end_video`` may raise ``OSError`` or
    ``ValueError`` for an output they cannot write.  Any failure (unreadable input, failed
    detection, unwritable output) is one ``error:`` line naming the file plus a JSON error
    record, and the run goes on.  Prints the summary; returns the exit status (1 when
    anything failed).
    """
    from tqdm import tqdm

    from ..media import Prefetcher, iter_media

    tta = tta_config(args)
    total = count_pictures(sources, args.max_frames)
    log_stream = sys.stderr if sink.json.to_stdout else sys.stdout
    window = max(1, 4 * args.batch_size) if args.batch_size > 1 else 1
    stats = {"images": 0, "frames": 0, "videos": set(), "faces": 0, "failed": 0}
    progress = tqdm(total=total or None, desc=desc, unit="img", disable=args.quiet or total < 2, file=sys.stderr)
    broken: set = set()  # videos whose output failed: reported once, their later frames dropped

    def report(path, frame, message: str) -> None:
        stats["failed"] += 1
        tqdm.write(f"error: {message}", file=sys.stderr)
        try:
            sink.json.write(error_record(path, frame, message))
        except OSError:  # pragma: no cover - the JSON file itself failing
            pass

    def end_video(path) -> None:
        try:
            sink.end_video(path)
        except (OSError, ValueError) as exc:
            if path not in broken:
                report(path, None, f"{path}: cannot write output ({first_line(exc)})")
        broken.discard(path)

    def process(buffer: list) -> None:
        if not buffer:
            return
        images = [it.image for it in buffer]
        try:
            results = detector.detect_batch(images, batch_size=args.batch_size, tta=tta)
        except (RuntimeError, ValueError, MemoryError) as exc:
            if len(buffer) == 1:
                results = [exc]
            else:  # find the culprit: one at a time
                results = []
                for image in images:
                    try:
                        results.append(detector.detect(image, tta=tta))
                    except (RuntimeError, ValueError, MemoryError) as one:
                        results.append(one)
        for item, det in zip(buffer, results):
            if isinstance(det, BaseException):
                where = f"{item.path}" + (f" frame {item.frame}" if item.frame is not None else "")
                report(item.path, item.frame, f"{where}: detection failed ({first_line(det)})")
            else:
                if item.path not in broken:
                    try:
                        sink.write(item, det)
                    except (OSError, ValueError) as exc:
                        report(item.path, None, f"{item.path}: cannot write output ({first_line(exc)})")
                        if item.frame is not None:
                            broken.add(item.path)
                stats["faces"] += len(det)
                if item.frame is None:
                    stats["images"] += 1
                    if total == 1 and not args.quiet:
                        print(f"{item.path}: {len(det)} face(s)", file=log_stream)
                else:
                    stats["frames"] += 1
                    stats["videos"].add(item.path)
            if item.last_frame:
                end_video(item.path)
            progress.update(1)

    start = time.perf_counter()
    stream = Prefetcher(iter_media(sources, args.max_frames), maxsize=2 * window + 2)
    buffer: list = []
    try:
        for item in stream:
            if item.error is not None:
                process(buffer)
                buffer = []
                report(item.path, None, item.error)
                if item.last_frame:
                    end_video(item.path)
                progress.update(0 if item.is_video else 1)
                continue
            buffer.append(item)
            if len(buffer) >= window:
                process(buffer)
                buffer = []
        process(buffer)
    finally:
        stream.close()
        sink.close()
        progress.close()
    seconds = time.perf_counter() - start
    pictures = stats["images"] + stats["frames"]
    print(
        f"{stats['images']} image(s), {len(stats['videos'])} video(s) / {stats['frames']} frame(s), "
        f"{stats['faces']} face(s), {stats['failed']} failed, {seconds:.1f} s, "
        f"{pictures / max(seconds, 1e-9):.2f} images/s; {describe(detector)}",
        file=log_stream,
    )
    return 1 if stats["failed"] else 0
