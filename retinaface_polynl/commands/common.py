"""Options and the run loop shared by the commands that run a detector (detect, anonymize)."""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)


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
                   "shipped weights: x1.5 when a face is under 48 px; up to about twice the time on crowd photos, none "
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
2 bad options, weights or output paths (nothing run, nothing written: also when an output would
overwrite an input, or two inputs would write the same output file); 130 interrupted (Ctrl-C, SIGTERM).
"""


def path_key(path) -> str:
    """One spelling for every name of a file: absolute, symlinks resolved, case folded (macOS and
    Windows file systems take IMG.JPG and IMG.jpg for one file)."""
    return os.path.normcase(str(Path(path).resolve())).casefold()


class OutputNames:
    """Output paths that mirror the inputs' tree below a folder: ``folder / <path below the
    input folder>`` with a new suffix (``<stem>_faces<suffix>`` when that is the input itself).
    Whether two outputs, or an output and another input, meet is checked before anything is
    written, by :func:`plan_outputs`, which refuses the run then."""

    def __init__(self) -> None:
        self.used: dict[tuple, Path] = {}

    def target(self, folder: Path, source, suffix: str) -> Path:
        key = (folder, source.path, suffix)
        if key in self.used:
            return self.used[key]
        target = folder / source.relative.with_suffix(suffix)
        if path_key(target) == path_key(source.path):  # never the input itself
            target = target.with_name(f"{target.stem}_faces{suffix}")
        self.used[key] = target
        return target


def open_video_output(target: Path, item, max_frames: int | None = None, codec: str = "auto", crf: int | None = None):
    """A :class:`~retinaface_polynl.video.VideoWriter` for the video ``item`` (its first frame)
    comes from, from what its reader found (``item.video``; the file is not opened again): its
    exact frame rate and each frame's own timestamp, its sound copied from the packets that come
    with the frames (cut where the pictures end by :func:`close_video` when ``--max-frames``
    stopped them), the tags of its streams; FFV1 when the source is lossless (``codec='auto'``)."""
    from ..video import DEFAULT_CRF, VideoWriter

    reader = item.video
    info = reader.info if reader is not None else None
    h, w = item.image.shape[:2]
    fps = info.fps if info is not None else (item.fps or 25.0)
    return VideoWriter(target, fps, w, h, codec=codec, source_codec=info.codec if info else None,
                       crf=DEFAULT_CRF if crf is None else crf,
                       time_base=info.time_base if info else None,
                       audio_streams=reader.audio_streams if reader is not None else None,
                       tags=info.tags if info else ())


def close_video(writer, max_frames: int | None, cut: bool = False) -> None:
    """Finish a video written by :func:`open_video_output`: its sound stops where its pictures do
    (at the end of the last frame: exact for variable frame rates) when ``--max-frames`` cut them
    or the source ended early (``cut``: a damaged or truncated file)."""
    writer.close(cut_audio=cut or (bool(max_frames) and writer.frames >= max_frames))


def keep_partial(writer):
    """An interrupted run (Ctrl-C, SIGTERM): keep the frames ``writer`` holds as
    ``<name>.partial<suffix>``, its sound cut where they end; a video without a frame yet is
    deleted.  Returns where it is kept, or ``None``."""
    if writer.frames == 0:
        writer.abort()
        return None
    return writer.close(partial=True)


def output_folder(flag: str, value: str | None, create: bool = False) -> Path | None:
    """``value`` as a folder (created with ``create``), or ``None``; a file of that name is an error."""
    if not value:
        return None
    folder = Path(value)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{flag} {folder}: exists and is not a folder")
    if create:
        folder.mkdir(parents=True, exist_ok=True)
    return folder


class JsonLines:
    r"""The ``--json`` file: one JSON object a line, flushed per record; ``'-'`` is stdout.

    A file is written under a temporary name beside it and renamed when the run ends (also when
    it ends on an error or an interruption: each line is a whole record), so an earlier file of
    that name stays whole until then.  ``carry`` (``--resume``): the set of :func:`path_key`\ s of
    inputs finished earlier, whose records are copied from the earlier file (and from what a
    killed run left under the temporary name) before the new ones."""

    SUFFIX = ".tmp"

    def __init__(self, target: str | None, carry: set | None = None) -> None:
        self.to_stdout = target == "-"
        self.file = None
        self.carried = 0
        self._pending = None
        if self.to_stdout:
            self.file = sys.stdout
        elif target:
            from ..fileio import PendingFile, stale_temporaries

            self.target = Path(target)
            earlier = stale_temporaries(self.target, self.SUFFIX)
            previous = self._previous(earlier, carry) if carry else []
            self._pending = PendingFile(self.target, self.SUFFIX)
            self.file = open(self._pending.tmp, "w", encoding="utf-8")
            for line in previous:
                self.file.write(line)
            self.file.flush()
            self.carried = len(previous)
            self._stale = earlier

    def _previous(self, stale: list, carry: set) -> list[str]:
        """The earlier records (lines) of the inputs in ``carry``: from the file and from a killed
        run's temporary files, newest last; one line per (path, frame, error?)."""
        records: dict = {}
        sources = [p for p in (self.target,) if p.is_file()] + list(stale)
        for file in sorted(sources, key=lambda p: p.stat().st_mtime):
            for line in file.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # the last line a killed run was writing
                if not isinstance(record, dict) or "path" not in record or path_key(record["path"]) not in carry:
                    continue
                records[(record["path"], record.get("frame"), "error" in record)] = line + "\n"
        return list(records.values())

    def write(self, record: dict) -> None:
        if self.file is not None:
            self.file.write(json.dumps(record) + "\n")
            self.file.flush()

    def close(self) -> None:
        if self.file is not None and self.file is not sys.stdout:
            self.file.close()
            self.file = None
            self._pending.commit()
            for stale in self._stale:  # a killed run's records: carried over above, or not wanted
                stale.unlink(missing_ok=True)


class Sink:
    """What :func:`run_detection` writes through.

    ``plan(source, kind)`` lists the files the sink will write for a source (``kind``: 'image'
    or 'video'), before anything is written; ``open(carry)`` then opens the outputs (``json``,
    a :class:`JsonLines`); ``write(item, detections)`` per picture; ``end_video(path)`` after a
    video's last frame, ``abort_video(path)`` for a video whose output failed (deleted);
    ``close(interrupted)`` ends the videos still open (``self.videos``, keyed by source path:
    interrupted ones are kept as ``<name>.partial<suffix>``) and closes the JSON file."""

    json: JsonLines
    videos: dict

    def plan(self, source, kind: str) -> list:  # pragma: no cover - interface
        raise NotImplementedError

    def open(self, carry: set | None = None) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def write(self, item, det) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def end_video(self, path, cut: bool = False) -> None:  # pragma: no cover - interface
        """The video's last frame was handed over (``cut``: its source ended early, on an error)."""
        raise NotImplementedError

    def abort_video(self, path) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def interrupt_video(self, path):  # pragma: no cover - interface
        """Keep what was written of ``path``'s output as a partial file; returns its path or ``None``."""
        raise NotImplementedError

    def close(self, interrupted: bool = False) -> None:
        try:
            for path in list(self.videos):
                try:
                    if interrupted:
                        kept = self.interrupt_video(path)
                        if kept is not None:
                            print(f"interrupted: {path}: the frames done so far are in {kept}", file=sys.stderr)
                    else:
                        self.end_video(path)
                except (OSError, ValueError):  # already reported, or the run is ending on an error
                    self.abort_video(path)
        finally:
            if getattr(self, "json", None) is not None:
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


def plan_outputs(args: argparse.Namespace, sources: list, sink) -> tuple[list, set]:
    """Every output path of the run, before anything is written: refuses (``ValueError``: one
    ``error:`` line, exit status 2) when an output would be an input (the same path, another
    spelling of it on a case-insensitive file system, or the same file through a link) or two
    outputs would be one file.  With ``--resume``, drops the inputs whose outputs all exist and
    are newer than the input (written completely by an earlier run: outputs only ever appear
    under their names once complete).  Returns (sources to run, keys of the finished inputs)."""
    from ..media import media_kind

    good = [s for s in sources if s.error is None]
    inputs = {path_key(s.path): s.path for s in good}
    written: dict[str, tuple] = {}
    planned: dict = {}
    identities: dict | None = None  # (st_dev, st_ino) -> the first input that is that file

    def input_at(path: Path):
        """The input that ``path`` (an existing file) is under another name (a hard or symbolic
        link), else ``None``: os.path.samefile's test, with the inputs stat'ed once for the run
        rather than once per existing output."""
        nonlocal identities
        if identities is None:
            identities = {}
            for src in good:
                try:
                    st = os.stat(src.path)
                except OSError:
                    continue
                identities.setdefault((st.st_dev, st.st_ino), src.path)
        try:
            st = os.stat(path)
        except OSError:
            return None
        return identities.get((st.st_dev, st.st_ino))

    def claim(path: Path, what: str) -> None:
        key = path_key(path)
        if key in inputs:
            raise ValueError(f"{path}: {what} would overwrite the input {inputs[key]} (inputs are never "
                             "overwritten; choose another --output folder)")
        if path.exists():
            same = input_at(path)
            if same is not None:
                raise ValueError(f"{path}: {what} would overwrite the input {same} (the same file "
                                 "under another name); choose another --output folder")
        if key in written:
            raise ValueError(f"{path}: {what} and {written[key][1]} would be the same file; "
                             "rename one of the inputs or run them into different --output folders")
        written[key] = (path, what)

    json_target = getattr(args, "json", None)
    if json_target and json_target != "-":
        claim(Path(json_target), "the --json file")
    for source in good:
        kind = media_kind(source.path)
        outputs = sink.plan(source, kind)
        planned[source.path] = outputs
        for path in outputs:
            claim(path, f"the output of {source.path}")
        for path, what in getattr(sink, "claims", lambda s, k: [])(source, kind):
            claim(path, f"{what} of {source.path}")
    sink.planned = [path for outputs in planned.values() for path in outputs]
    finished: set = set()
    if getattr(args, "resume", False):
        for source in good:
            outputs = planned[source.path]
            try:
                born = source.path.stat().st_mtime
                if outputs and all(p.is_file() and p.stat().st_size > 0 and p.stat().st_mtime >= born
                                   for p in outputs):
                    finished.add(path_key(source.path))
            except OSError:
                continue
        sources = [s for s in sources if s.error is not None or path_key(s.path) not in finished]
    return sources, finished


def add_run_args(parser: argparse.ArgumentParser) -> None:
    r = parser.add_argument_group("run")
    r.add_argument("--batch-size", type=int, default=1, metavar="N",
                   help="pictures per forward pass (default: 1); anonymize batches video frames and searches "
                   "each photo on its own (its tiles and turned passes)")
    r.add_argument("--max-frames", type=int, metavar="N", help="read at most N frames of each video (default: all)")
    r.add_argument("--resume", action="store_true",
                   help="continue a run that stopped: skip each input whose outputs all exist and are newer than "
                   "it (files appear under their names only once complete, so these are whole), keep the "
                   "--json records of those inputs and add the rest (an input without output files, e.g. detect with "
                   "--json alone, is always done again). Without --resume every input is done again and existing "
                   "outputs are replaced (each only once its new version is complete)")
    r.add_argument("--quiet", "-q", action="store_true", help="no progress bar or per-file lines")


def add_detection_args(parser: argparse.ArgumentParser, threshold: float = 0.5) -> None:
    """The inputs and the model, input-size and TTA options of a command that runs :func:`run_command`."""
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image or video files, folders, globs")
    add_model_args(parser, threshold=threshold)
    add_size_args(parser)
    add_tta_args(parser)


def run_command(args: argparse.Namespace, make_sink, desc: str, output_dirs=()) -> int:
    """Check the options and inputs, plan every output (:func:`plan_outputs`), build the detector,
    then open the outputs and :func:`run_detection` into them: nothing is written before all
    checks passed."""
    sources = prepare_sources(args, output_dirs=output_dirs)
    sink = make_sink(args)
    sources, finished = plan_outputs(args, sources, sink)
    detector = build_detector(args, size=args.size, max_size=args.max_size)
    sink.open(carry=finished)
    remove_stale_temporaries(getattr(sink, "planned", ()))
    if finished and not args.quiet:
        print(f"--resume: {len(finished)} input(s) already done, skipped", file=sys.stderr)
    return run_detection(args, detector, sources, sink, desc=desc)


def prepare_sources(args: argparse.Namespace, output_dirs=()) -> list:
    """Check the run options, expand ``args.inputs`` (an input named twice, e.g. by a folder and a
    glob, is kept once), drop files inside any of ``output_dirs`` (a second run must not take the
    first run's outputs as inputs), and refuse a ``--json`` that would overwrite a picture."""
    from ..media import expand_inputs, is_media_path

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.max_frames is not None and args.max_frames < 1:
        raise ValueError(f"--max-frames must be >= 1, got {args.max_frames}")
    tta_config(args)  # its errors before any output is opened
    sources, seen = [], set()
    for s in expand_inputs(args.inputs):
        key = path_key(s.path) if s.error is None else None
        if key is not None and key in seen:
            continue
        seen.add(key)
        sources.append(s)
    for value in output_dirs:
        if not value:
            continue
        out_dir = Path(value).resolve()
        sources = [s for s in sources if s.root is None or s.error is not None or s.root.resolve() == out_dir
                   or out_dir not in s.path.resolve().parents]
    if args.json and args.json != "-":
        # '--json photos/*.jpg' makes the first photo the JSON file: never overwrite a picture.
        target = Path(args.json)
        if is_media_path(target) or any(path_key(s.path) == path_key(target) for s in sources if s.error is None):
            raise ValueError(f"--json {target}: is an image or video (it would be overwritten); "
                             "give a new file name such as faces.jsonl")
    return sources


def remove_stale_temporaries(outputs) -> None:
    """Delete the temporary files a killed run left beside these outputs (``.<name>.<random><suffix>``:
    never under an output's own name; a run that ends, even on an error, removes its own)."""
    from ..fileio import stale_temporaries

    for path in outputs:
        for stale in stale_temporaries(path, path.suffix or ".tmp"):
            log.info("%s: removing %s, left by a run that was killed", path, stale.name)
            stale.unlink(missing_ok=True)


def describe(detector) -> str:
    """The engine that ran (``Detector.describe``) and its input size, or the detector's type for a stand-in."""
    describe_ = getattr(detector, "describe", None)
    if not callable(describe_):
        return type(detector).__name__
    rule = getattr(detector, "describe_input", None)
    zoom = getattr(detector, "zoom_rule", None)
    return describe_() + (f", input {rule()}" if callable(rule) else "") + (f", {zoom.describe()}" if zoom else "")


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is: the outputs being written are ended cleanly."""


def _on_sigterm(signum, frame):
    raise Terminated()


def run_detection(args: argparse.Namespace, detector, sources: list, sink, desc: str) -> int:
    """Detect faces in every picture of ``sources`` and hand each result to ``sink``.

    ``sink`` is an opened :class:`Sink`; ``write``/``end_video`` may raise ``OSError`` or
    ``ValueError`` for an output they cannot write (that video's output is then deleted).  Any
    failure (unreadable input, failed detection, unwritable output) is one ``error:`` line naming
    the file plus a JSON error record, and the run goes on; a video frame whose detection failed
    is still handed to the sink (``item.detection_failed``), so the video keeps every frame
    (anonymize masks it whole).  Ctrl-C and SIGTERM end the videos being written as partial files
    and re-raise.  Prints the summary; returns the exit status (1 when anything failed).
    """
    from tqdm import tqdm

    from ..media import Prefetcher, iter_media, media_kind

    tta = tta_config(args)
    # a sink may search pictures its own way (``find_faces(detector, items, tta, batch_size)`` -> one
    # Detections or exception per item: anonymize's tiles, turned passes and score rule); otherwise
    # batches of detector.detect
    find = getattr(sink, "find_faces", None)
    # images count one each; a video's frames join the total when it is opened (it is opened once)
    total = sum(1 for s in sources if s.error is not None or media_kind(s.path) != "video")
    videos_total = len(sources) - total
    log_stream = sys.stderr if sink.json.to_stdout else sys.stdout
    window = max(1, 4 * args.batch_size) if args.batch_size > 1 else 1
    stats = {"images": 0, "frames": 0, "videos": set(), "faces": 0, "failed": 0}
    progress = tqdm(total=total if not videos_total else None, desc=desc, unit="img",
                    disable=args.quiet or (not videos_total and total < 2), file=sys.stderr)
    counted: set = set()
    readers: dict = {}  # video path -> its VideoReader, released once its output is finished
    broken: set = set()  # videos whose output failed: reported once, their later frames dropped

    def report(path, frame, message: str) -> None:
        stats["failed"] += 1
        tqdm.write(f"error: {message}", file=sys.stderr)
        try:
            sink.json.write(error_record(path, frame, message))
        except OSError:  # pragma: no cover - the JSON file itself failing
            pass

    def end_video(path, cut: bool = False) -> None:
        try:
            if path in broken:
                sink.abort_video(path)
                broken.discard(path)
                return
            try:
                sink.end_video(path, cut=cut)
            except (OSError, ValueError) as exc:
                sink.abort_video(path)
                report(path, None, f"{path}: cannot write output ({first_line(exc)})")
        finally:
            reader = readers.pop(path, None)
            if reader is not None:
                reader.release("writer")

    def count(item) -> None:
        if item.video is not None and item.path not in counted:
            counted.add(item.path)
            readers[item.path] = item.video
            frames = item.video.info.frames
            progress.total = (progress.total or total) + (min(frames, args.max_frames) if args.max_frames else frames)
            progress.refresh()

    def process(buffer: list) -> None:
        if not buffer:
            return
        images = [it.image for it in buffer]
        try:
            if find is not None:  # the sink's own search (anonymize's)
                results = find(detector, buffer, tta, args.batch_size)
            else:
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
                if item.frame is None:
                    progress.update(1)
                    continue
                item.detection_failed = True  # a video keeps the frame: the sink decides how (masked whole)
                det = None
            if item.path not in broken:
                try:
                    sink.write(item, det)
                except (OSError, ValueError) as exc:
                    report(item.path, None, f"{item.path}: cannot write output ({first_line(exc)})")
                    if item.frame is not None:
                        broken.add(item.path)
            if det is not None:
                stats["faces"] += len(det)
                if item.frame is None:
                    stats["images"] += 1
                    if len(sources) == 1 and not args.quiet:
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
    interrupted = False
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if _main_thread() else None
    try:
        for item in stream:
            count(item)
            if item.error is not None:
                process(buffer)
                buffer = []
                report(item.path, None, item.error)
                if item.last_frame:
                    end_video(item.path, cut=True)  # its sound stops where the pictures read stop
                progress.update(0 if item.is_video or item.last_frame else 1)  # a video's frames were counted
                continue
            buffer.append(item)
            if len(buffer) >= window:
                process(buffer)
                buffer = []
        process(buffer)
    except BaseException:  # Ctrl-C, SIGTERM, or a failure no input explains: no video gets its final name
        interrupted = True
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        stream.close()
        try:
            sink.close(interrupted=interrupted)
        finally:
            progress.close()
            for reader in readers.values():
                reader.release("writer")
    seconds = time.perf_counter() - start
    pictures = stats["images"] + stats["frames"]
    print(
        f"{stats['images']} image(s), {len(stats['videos'])} video(s) / {stats['frames']} frame(s), "
        f"{stats['faces']} face(s), {stats['failed']} failed, {seconds:.1f} s, "
        f"{pictures / max(seconds, 1e-9):.2f} images/s; {describe(detector)}",
        file=log_stream,
    )
    return 1 if stats["failed"] else 0


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
