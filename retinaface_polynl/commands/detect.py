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
from pathlib import Path

from .common import (
    EXIT_STATUS,
    SIZE_HELP,
    JsonLines,
    OutputNames,
    Sink,
    add_detection_args,
    add_run_args,
    close_video,
    keep_partial,
    open_video_output,
    output_folder,
    picture_record,
    run_command,
)

EXAMPLES = """examples:
  retinaface-polynl detect photo.jpg --weights model.pth --output out/
  retinaface-polynl detect photos/ 'more/**/*.png' --json faces.jsonl --batch-size 8
  retinaface-polynl detect clip.mp4 --output out/ --json frames.jsonl --max-size 1280
  retinaface-polynl detect images/ --tta paper --threshold 0.02 --wider-txt predictions/
  retinaface-polynl detect photos/ --crops crops/ --crop-size 112 --json faces.jsonl

""" + EXIT_STATUS


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
    add_detection_args(p)
    g = p.add_argument_group("outputs")
    g.add_argument(
        "--output",
        "-o",
        metavar="DIR",
        help="folder for annotated images and videos (videos: .mp4, H.264, the sound kept); "
        "when it lies inside an input folder, its files are not taken as inputs",
    )
    g.add_argument(
        "--json",
        metavar="FILE",
        help="JSON lines, one record per image / video frame: {path, frame (videos), width, height, "
        "boxes [[x1,y1,x2,y2]...], scores, landmarks [[[x,y] x5]...], crops (with --crops), output (the "
        "annotated file, with --output)} in pixels, "
        "and {path, error} for each input that failed; '-' for stdout",
    )
    g.add_argument(
        "--wider-txt",
        metavar="DIR",
        help="also write one WIDER FACE submission file per image: name line, count line, 'x y w h score' "
        "lines (use a low --threshold, e.g. 0.02, for evaluation)",
    )
    g.add_argument(
        "--crops",
        metavar="DIR",
        help="also write one aligned face crop per face (PNG): the five landmarks mapped by a similarity "
        "transform onto the ArcFace template, as face recognisers expect; named <image>_<i>.png after the "
        "face's index i in the JSON record (videos: <video>/<frame>_<i>.png), folders mirrored",
    )
    g.add_argument("--crop-size", type=int, default=112, metavar="PX",
                   help="side of the square crops; the template scales with it (default: 112, ArcFace's)")
    g.add_argument("--show-scores", action="store_true", help="write each face's score on the picture")
    g.add_argument("--no-landmarks", action="store_true", help="draw boxes only")
    add_run_args(p)
    return p


class Outputs(Sink):
    """Writes everything a detection produces, as it comes."""

    def __init__(self, args: argparse.Namespace) -> None:
        if args.crops and args.crop_size < 8:
            raise ValueError(f"--crop-size must be >= 8 pixels, got {args.crop_size}")
        self.args = args
        self.out_dir = output_folder("--output", args.output)
        self.wider_dir = output_folder("--wider-txt", args.wider_txt)
        self.crops_dir = output_folder("--crops", args.crops)
        self.crop_size = args.crop_size
        self.max_frames = args.max_frames
        self.show_scores = args.show_scores
        self.landmarks = not args.no_landmarks
        self.json = None
        self.names = OutputNames()
        self.videos: dict[Path, object] = {}  # source path -> video.VideoWriter

    # -- what is written where ------------------------------------------------------------
    def _target(self, source, kind: str) -> Path:
        from ..media import WRITABLE_IMAGE_EXTENSIONS

        if kind == "video":
            return self.names.target(self.out_dir, source, ".mp4")
        suffix = source.path.suffix.lower()
        return self.names.target(self.out_dir, source, suffix if suffix in WRITABLE_IMAGE_EXTENSIONS else ".png")

    def plan(self, source, kind: str) -> list:
        """The annotated picture or video (--output) and an image's WIDER file (--wider-txt);
        crops (named after the faces found) and a video's per-frame WIDER files go in folders of
        their own, checked as they are written."""
        out = []
        if self.out_dir is not None:
            out.append(self._target(source, kind))
        if self.wider_dir is not None and kind == "image":
            out.append(self.names.target(self.wider_dir, source, ".txt"))
        return out

    def claims(self, source, kind: str) -> list:
        """Names two inputs must not share though no file has exactly that name: an image's
        crops (``<stem>_<i>.png``), a video's folder of crops or of WIDER files."""
        out = []
        if self.crops_dir is not None:
            base = self.names.target(self.crops_dir, source, ".png" if kind == "image" else "")
            out.append((base.with_name(f"{base.stem}_<i>.png") if kind == "image" else base / "<frame>_<i>.png",
                        "the crops"))
        if self.wider_dir is not None and kind == "video":
            out.append((self.wider_dir / source.relative.with_suffix("") / "<frame>.txt", "the WIDER files"))
        return out

    def open(self, carry=None) -> None:
        for flag, value in (("--output", self.args.output), ("--wider-txt", self.args.wider_txt),
                            ("--crops", self.args.crops)):
            output_folder(flag, value, create=True)
        self.json = JsonLines(self.args.json, carry=carry)

    def _crop_paths(self, item, count: int) -> list[Path]:
        if item.frame is None:
            base = self.names.target(self.crops_dir, item.source, ".png")
            return [base.with_name(f"{base.stem}_{i}.png") for i in range(count)]
        folder = self.names.target(self.crops_dir, item.source, "")
        return [folder / f"{item.frame:06d}_{i}.png" for i in range(count)]

    def write(self, item, det) -> None:
        from ..media import draw_detections, write_image

        if det is None:  # a video frame on which detection failed: kept as it is, so the video keeps its timing
            if self.out_dir is not None:
                self._video(item).write(item.image, item.time, pts=item.pts, audio=item.audio)
            return
        crops = self._crop_paths(item, len(det)) if self.crops_dir is not None else None
        extra = {"crops": [str(c) for c in crops]} if crops is not None else {}
        if self.out_dir is not None:
            drawn = draw_detections(item.image, det, self.show_scores, landmarks=self.landmarks)
            if item.frame is None:
                target = write_image(self._target(item.source, "image"), drawn)
            else:
                writer = self._video(item)
                writer.write(drawn, item.time, pts=item.pts, audio=item.audio)
                target = writer.path
            extra["output"] = str(target)
        self.json.write(picture_record(item, det, **extra))
        if crops:
            for path, crop in zip(crops, det.align(item.image, self.crop_size)):
                write_image(path, crop)
        if self.wider_dir is not None:  # last: a name the official layout cannot hold is refused here
            from widerface_eval import write_prediction_file

            if item.frame is None:
                target, name = self.names.target(self.wider_dir, item.source, ".txt"), item.path.stem
            else:
                folder = self.wider_dir / item.source.relative.with_suffix("")
                target, name = folder / f"{item.frame:06d}.txt", f"{item.frame:06d}"
            target.parent.mkdir(parents=True, exist_ok=True)
            write_prediction_file(target, name, det.to_xywh(), det.scores)

    def _video(self, item):
        writer = self.videos.get(item.path)
        if writer is None:
            target = self._target(item.source, "video")
            writer = self.videos[item.path] = open_video_output(target, item, self.max_frames)
        return writer

    def end_video(self, path: Path, cut: bool = False) -> None:
        writer = self.videos.pop(path, None)
        if writer is not None:
            close_video(writer, self.max_frames, cut=cut)

    def abort_video(self, path: Path) -> None:
        writer = self.videos.pop(path, None)
        if writer is not None:
            writer.abort()

    def interrupt_video(self, path: Path):
        writer = self.videos.pop(path, None)
        return None if writer is None else keep_partial(writer)


def run(args: argparse.Namespace) -> int:
    return run_command(args, Outputs, desc="detect", output_dirs=(args.output, args.crops))
