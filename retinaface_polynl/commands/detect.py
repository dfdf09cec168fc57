"""``retinaface-polynl detect``: faces in photos, folders and videos.

A thin layer over :class:`retinaface_polynl.Detector` and :mod:`retinaface_polynl.media`:
inputs are expanded (files, folders searched recursively, globs, videos by
extension or content), decoded in a background thread behind a bounded queue,
batched through ``Detector.detect_batch`` and written as they go (annotated
pictures and videos, JSON lines flushed per record, WIDER-format text files), so a
folder of any size or a video of any length never sits whole in memory.  A file
that cannot be read is reported on one line naming it and the run goes on; the
exit status is 1 when any input failed.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .common import SIZE_HELP, add_model_args, add_size_args, add_tta_args, build_detector, tta_config

EXAMPLES = """examples:
  retinaface-polynl detect photo.jpg --weights model.pth --output out/
  retinaface-polynl detect photos/ 'more/**/*.png' --json faces.jsonl --batch-size 8
  retinaface-polynl detect clip.mp4 --output out/ --json frames.jsonl --max-size 1280
  retinaface-polynl detect images/ --tta paper --threshold 0.02 --wider-txt predictions/

exit status: 0 every input done; 1 some input failed (each named on an 'error:' line, the
others still processed and written); 2 bad options, weights or output paths (nothing run).
"""


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "detect",
        help="detect faces in images, folders and videos",
        description="Detect faces in image files, folders (searched recursively), globs and video files. "
        "Writes annotated pictures/videos to --output (box brightness encodes confidence, landmarks as "
        "dots), one JSON record per image or video frame to --json, and optionally WIDER-format "
        "text files. " + SIZE_HELP,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image or video files, folders, globs")
    add_model_args(p)
    add_size_args(p)
    add_tta_args(p)
    g = p.add_argument_group("outputs")
    g.add_argument(
        "--output",
        "-o",
        metavar="DIR",
        help="folder for annotated images and videos (.mp4, mp4v); "
        "when it lies inside an input folder, its files are not taken as inputs",
    )
    g.add_argument(
        "--json",
        metavar="FILE",
        help="JSON lines, one record per image / video frame: {path, frame (videos), width, height, "
        "boxes [[x1,y1,x2,y2]...], scores, landmarks [[[x,y] x5]...]} in pixels; '-' for stdout",
    )
    g.add_argument(
        "--wider-txt",
        metavar="DIR",
        help="also write one WIDER FACE submission file per image: name line, count line, 'x y w h score' "
        "lines (use a low --threshold, e.g. 0.02, for evaluation)",
    )
    g.add_argument("--show-scores", action="store_true", help="write each face's score on the picture")
    g.add_argument("--no-landmarks", action="store_true", help="draw boxes only")
    r = p.add_argument_group("run")
    r.add_argument("--batch-size", type=int, default=1, metavar="N", help="pictures per forward pass (default: 1)")
    r.add_argument("--max-frames", type=int, metavar="N", help="read at most N frames of each video")
    r.add_argument("--quiet", "-q", action="store_true", help="no progress bar or per-file lines")
    return p


class Outputs:
    """Writes everything a detection produces, as it comes."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.out_dir = Path(args.output) if args.output else None
        self.wider_dir = Path(args.wider_txt) if args.wider_txt else None
        self.show_scores = args.show_scores
        self.landmarks = not args.no_landmarks
        self.json_to_stdout = args.json == "-"
        self.json_file = None
        if args.json == "-":
            self.json_file = sys.stdout
        elif args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            self.json_file = open(args.json, "w", encoding="utf-8")
        for flag, d in (("--output", self.out_dir), ("--wider-txt", self.wider_dir)):
            if d:
                if d.exists() and not d.is_dir():
                    raise ValueError(f"{flag} {d}: exists and is not a folder")
                d.mkdir(parents=True, exist_ok=True)
        self.videos: dict[Path, object] = {}  # source path -> cv2.VideoWriter
        self.used: dict[Path, Path] = {}  # source path -> output path (avoid collisions)

    def _target(self, folder: Path, source, suffix: str) -> Path:
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

    def write(self, item, det) -> None:
        from ..media import WRITABLE_IMAGE_EXTENSIONS, draw_detections, open_video_writer, write_image

        h, w = item.image.shape[:2]
        if self.json_file is not None:
            record = {"path": str(item.path)}
            if item.frame is not None:
                record["frame"] = item.frame
            record.update(width=w, height=h, **det.to_dict())
            self.json_file.write(json.dumps(record) + "\n")
            self.json_file.flush()
        if self.out_dir is not None:
            drawn = draw_detections(item.image, det, self.show_scores, landmarks=self.landmarks)
            if item.frame is None:
                suffix = item.path.suffix.lower()
                suffix = suffix if suffix in WRITABLE_IMAGE_EXTENSIONS else ".png"
                write_image(self._target(self.out_dir, item.source, suffix), drawn)
            else:
                writer = self.videos.get(item.path)
                if writer is None:
                    target = self._target(self.out_dir, item.source, ".mp4")
                    writer = self.videos[item.path] = open_video_writer(target, item.fps or 25.0, w, h)
                writer.write(drawn)
        if self.wider_dir is not None:  # last: a name the official layout cannot hold is refused here
            from widerface_eval import write_prediction_file

            if item.frame is None:
                target, name = self._target(self.wider_dir, item.source, ".txt"), item.path.stem
            else:
                folder = self.wider_dir / item.source.relative.with_suffix("")
                target, name = folder / f"{item.frame:06d}.txt", f"{item.frame:06d}"
            target.parent.mkdir(parents=True, exist_ok=True)
            write_prediction_file(target, name, det.to_xywh(), det.scores)

    def end_video(self, path: Path) -> None:
        writer = self.videos.pop(path, None)
        if writer is not None:
            writer.release()

    def close(self) -> None:
        for path in list(self.videos):
            self.end_video(path)
        if self.json_file is not None and self.json_file is not sys.stdout:
            self.json_file.close()


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..media import Prefetcher, expand_inputs, is_media_path, is_video_path, iter_media, video_info

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.max_frames is not None and args.max_frames < 1:
        raise ValueError(f"--max-frames must be >= 1, got {args.max_frames}")
    tta = tta_config(args)
    sources = expand_inputs(args.inputs)
    if args.output:
        # 'detect photos/ --output photos/out': a second run must not detect on the first run's drawings
        out_dir = Path(args.output).resolve()
        sources = [s for s in sources if s.root is None or s.error is not None or s.root.resolve() == out_dir
                   or out_dir not in s.path.resolve().parents]
    if args.json and args.json != "-":
        # 'detect --json photos/*.jpg' makes the first photo the JSON file: never overwrite a picture.
        target = Path(args.json)
        if is_media_path(target) or any(s.path.resolve() == target.resolve() for s in sources if s.error is None):
            raise ValueError(f"--json {target}: is an image or video (it would be overwritten); "
                             "give a new file name such as faces.jsonl")
    total = 0
    for s in sources:
        if s.error is None and is_video_path(s.path):
            info = video_info(s.path)
            frames = info[1] if info else 0
            total += min(frames, args.max_frames) if args.max_frames else frames
        else:
            total += 1
    detector = build_detector(args, size=args.size, max_size=args.max_size)
    outputs = Outputs(args)
    log_stream = sys.stderr if outputs.json_to_stdout else sys.stdout
    window = max(1, 4 * args.batch_size) if args.batch_size > 1 else 1
    stats = {"images": 0, "frames": 0, "videos": set(), "faces": 0, "failed": 0}
    progress = tqdm(total=total or None, desc="detect", unit="img", disable=args.quiet or total < 2, file=sys.stderr)

    def report(message: str) -> None:
        stats["failed"] += 1
        tqdm.write(f"error: {message}", file=sys.stderr)

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
                report(f"{where}: detection failed ({str(det).strip().splitlines()[0] if str(det).strip() else type(det).__name__})")
            else:
                try:
                    outputs.write(item, det)
                except (OSError, ValueError) as exc:
                    report(f"{item.path}: cannot write output ({exc})")
                stats["faces"] += len(det)
                if item.frame is None:
                    stats["images"] += 1
                    if total == 1 and not args.quiet:
                        print(f"{item.path}: {len(det)} face(s)", file=log_stream)
                else:
                    stats["frames"] += 1
                    stats["videos"].add(item.path)
            if item.last_frame:
                outputs.end_video(item.path)
            progress.update(1)

    start = time.perf_counter()
    stream = Prefetcher(iter_media(sources, args.max_frames), maxsize=2 * window + 2)
    buffer: list = []
    try:
        for item in stream:
            if item.error is not None:
                process(buffer)
                buffer = []
                report(item.error)
                if item.last_frame:
                    outputs.end_video(item.path)
                progress.update(0 if item.is_video else 1)
                continue
            buffer.append(item)
            if len(buffer) >= window:
                process(buffer)
                buffer = []
        process(buffer)
    finally:
        stream.close()
        outputs.close()
        progress.close()
    seconds = time.perf_counter() - start
    pictures = stats["images"] + stats["frames"]
    print(
        f"{stats['images']} image(s), {len(stats['videos'])} video(s) / {stats['frames']} frame(s), "
        f"{stats['faces']} face(s), {stats['failed']} failed, {seconds:.1f} s, "
        f"{pictures / max(seconds, 1e-9):.2f} images/s",
        file=log_stream,
    )
    return 1 if stats["failed"] else 0
