"""``retinaface-polynl anonymize``: blur every face in photos, folders and videos.

A thin layer over :func:`retinaface_polynl.anonymize` and the run that ``detect``
uses (:func:`.common.run_detection`: the same inputs, progress bar, error lines,
JSON error records, summary and exit status).  Pictures keep their format when it
is lossless (JPEG is rewritten at quality 95); videos keep their frame rate, frame
count, size and sound (see :mod:`retinaface_polynl.video`), and a face found in
frame t is masked in frames t-N .. t+N too (``--persist N``).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..anonymize import (
    DEFAULT_SCALE,
    MAX_REQUIRED_SCORE,
    METHODS,
    MIN_FACE,
    MIN_SCORE,
    ROTATED_THRESHOLD,
    SCORE_PER_EXTENT,
    SHAPES,
)
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

DEFAULT_PERSIST = 3

EXAMPLES = f"""examples:
  retinaface-polynl anonymize photos/ --output public/
  retinaface-polynl anonymize dashcam.mp4 --output out/ --json masked.jsonl
  retinaface-polynl anonymize crowd.jpg --output check/ --preview --threshold 0.1
  retinaface-polynl anonymize 'clips/*.mov' --output out/ --method pixelate --codec libx265 --tta flip

how faces are searched (retinaface_polynl.anonymize.find_faces_for_anonymization): harder than detect.
  Photos: the detector's pass, plus full-resolution tiles when the input size would shrink a {MIN_FACE} px face
    below what the detector finds (every face of {MIN_FACE} px and more, at any photo size), plus passes on the
    photo turned a quarter each way (sideways faces; a face found only there needs {ROTATED_THRESHOLD}, and one
    lying inside an upright face scored at least as high is that face seen askew, and dropped).
    Video frames: the detector's pass alone (turned passes would triple the time per frame).
  --threshold {MIN_SCORE} (detect uses 0.5): the score a small box needs; a box needs {SCORE_PER_EXTENT} x its long
    side over the picture's short side, up to {MAX_REQUIRED_SCORE}, so a huge low-scored box (a hand and a lectern)
    never blurs most of a photo while an unsure small face is still masked. Faces of 24 px and more
    covered, ours vs deface 1.5.0 (docs/tables/anonymize_vs_deface.md, scripts/measure_anonymize_defaults.py):
    FDDB folds 1-8 95.6 vs 94.8 %, WIDER dev 88.5 vs 89.7 %, crowd train 93.3 vs 94.0 %, sideways copies
    of FDDB fold 8 86.0 vs 68.9 %; check a run with --preview.
  --scale {DEFAULT_SCALE}: the detector's boxes run from the brows to the chin; a 1.5x ellipse holds the whole
    forehead-to-chin ellipse of 90.7 % of FDDB fold 8's faces (1.4x: 76.6 %; --shape box: 96.1 %).
  --persist {DEFAULT_PERSIST}: a face missed for up to {2 * DEFAULT_PERSIST} frames in a row between two detections stays masked.

""" + EXIT_STATUS


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "anonymize",
        help="blur, pixelate or fill every face in images, folders and videos (sound kept)",
        description="Anonymise faces in image files, folders (searched recursively), globs and video files: "
        "every detected face's region is blurred (default), pixelated or filled, and nothing else in the "
        "picture changes.  Outputs mirror the input tree under --output: pictures in their own format when "
        "it is lossless (PNG, BMP, TIFF, WebP written lossless), JPEG at quality 95 (4:4:4 chroma), PNG for other formats "
        "(no metadata copied: EXIF and GPS tags are dropped); HEIC photos (with pillow-heif installed) become "
        "PNG; multi-page TIFFs and animated GIF/WebP/PNG are refused with an error line.  Videos keep every "
        "frame with its own presentation time (variable frame rates too), their size and sound (copied "
        "without re-encoding when the container allows) and the language and title of their streams; a frame "
        "on which detection fails is masked whole and reported; a video that ends before its header says is "
        "an error.  Safety: every output path is planned before anything is written and the run is refused "
        "(exit status 2) when an output would overwrite an input or two inputs would write one file (names "
        "that differ only in case count as one); every file is written under a temporary name beside it and "
        "renamed when complete, so a killed run never leaves half a file under an output's name (Ctrl-C or "
        "SIGTERM keep the frames of the video in progress as <name>.partial<ext>, its sound cut where they "
        "end); --resume goes on from a run that stopped.  " + SIZE_HELP,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_detection_args(p, threshold=MIN_SCORE)
    a = p.add_argument_group("anonymisation")
    a.add_argument("--method", choices=METHODS, default="blur",
                   help="blur: Gaussian, sigma 1/6 of the region (scales with the face); pixelate: 8 blocks "
                   "across the region; solid: black; none: change nothing, only record the faces (default: blur)")
    a.add_argument("--shape", choices=SHAPES, default="ellipse",
                   help="mask the ellipse inscribed in each region, or the whole box (default: ellipse)")
    a.add_argument("--scale", type=float, default=DEFAULT_SCALE, metavar="X",
                   help=f"grow each detected box about its centre by X in width and height, so that forehead, "
                   f"hair line and chin are covered (default: {DEFAULT_SCALE})")
    a.add_argument("--persist", type=int, default=DEFAULT_PERSIST, metavar="N",
                   help=f"videos: a face found in frame t is masked in frames t-N .. t+N as well, so a single "
                   f"missed detection does not show an unblurred face (default: {DEFAULT_PERSIST}; 0: off)")
    a.add_argument("--preview", "--dry-run", dest="preview", action="store_true",
                   help="draw the regions that would be masked (red; orange: carried from neighbouring frames) "
                   "instead of masking, to check --threshold and --scale before a long job")
    g = p.add_argument_group("outputs")
    g.add_argument("--output", "-o", metavar="DIR", required=True,
                   help="folder for the anonymised pictures and videos, mirroring the inputs' folders (required; "
                   "when it lies inside an input folder, its files are not taken as inputs; an output that would be "
                   "its own input gets _faces added, one that would be another input is refused)")
    g.add_argument("--json", metavar="FILE",
                   help="JSON lines, one record per image / video frame: {path, frame (videos), width, height, "
                   "boxes, scores, landmarks (the faces found in it), regions [[x1,y1,x2,y2]...] (what was masked, "
                   "in pixels), region_frames (videos: the frame each masked face was found in), output (the file "
                   "written)}, and {path, frame (videos), error} for each input or frame that failed; '-' for "
                   "stdout. Written under a temporary name and renamed when the run ends; with --resume the "
                   "records of the inputs already done are kept")
    g.add_argument("--codec", default="auto", metavar="NAME",
                   help="video encoder, any FFmpeg one in the PyAV build (libx264, libx265, libvpx-vp9, mpeg4, "
                   "ffv1...); default auto: H.264 (libx264) for .mp4/.mov/.mkv/.avi, VP9 for .webm, FFV1 "
                   "(lossless) when the input video is lossless in .mkv/.avi; a missing encoder falls back "
                   "to the next, with a warning")
    g.add_argument("--crf", type=int, default=18, metavar="N",
                   help="quality of libx264/libx265 (CRF, lower is better; VP9 gets N+13) (default: 18, "
                   "visually lossless)")
    add_run_args(p)
    return p


class VideoState:
    def __init__(self, writer, persistence) -> None:
        self.writer = writer
        self.persistence = persistence


class AnonymizeOutputs(Sink):
    """Masks and writes each picture as its detections come; delays video frames by
    ``--persist`` so each is masked with the faces of its neighbours.  A video frame on which
    detection failed is written masked whole (fail closed: never dropped, never shown as it is)."""

    def __init__(self, args: argparse.Namespace) -> None:
        if not args.scale > 0:
            raise ValueError(f"--scale must be positive, got {args.scale}")
        if args.persist < 0:
            raise ValueError(f"--persist must be >= 0 frames, got {args.persist}")
        if args.crf < 0:
            raise ValueError(f"--crf must be >= 0, got {args.crf}")
        if args.codec != "auto":
            from ..video import encoder_available

            if not encoder_available(args.codec):
                raise ValueError(f"--codec {args.codec}: no such video encoder in this PyAV build")
        self.args = args
        self.out_dir = output_folder("--output", args.output)
        self.json = None
        self.names = OutputNames()
        self.videos: dict[Path, VideoState] = {}

    # -- what is written where ------------------------------------------------------------
    def _target(self, source, kind: str) -> Path:
        from ..media import faithful_image_format
        from ..video import output_suffix

        suffix = output_suffix(source.path) if kind == "video" else faithful_image_format(source.path)[0]
        return self.names.target(self.out_dir, source, suffix)

    def plan(self, source, kind: str) -> list:
        return [self._target(source, kind)]

    def open(self, carry=None) -> None:
        output_folder("--output", self.args.output, create=True)
        self.json = JsonLines(self.args.json, carry=carry)

    # -- how faces are found -------------------------------------------------------------
    def find_faces(self, detector, items, tta, batch_size: int = 1) -> list:
        """Every face to mask in each picture of ``items`` (a Detections, or the exception that stopped
        its search): photos one by one with ``find_faces_for_anonymization`` (tiles when they are large,
        turned passes); video frames with the detector's pass alone, ``batch_size`` per forward pass
        (``find_faces_in_frames``; one by one again when a batch fails, to name the frame)."""
        from ..anonymize import ROTATIONS, find_faces_for_anonymization, find_faces_in_frames

        results: list = [None] * len(items)
        frames = [i for i, item in enumerate(items) if item.frame is not None]
        if len(frames) > 1 and batch_size > 1:
            try:
                found = find_faces_in_frames(detector, [items[i].image for i in frames], self.args.threshold,
                                             tta=tta, batch_size=batch_size)
                for i, det in zip(frames, found):
                    results[i] = det
            except (RuntimeError, ValueError, MemoryError):
                pass
        for i, item in enumerate(items):
            if results[i] is not None:
                continue
            video = item.frame is not None
            try:
                results[i] = find_faces_for_anonymization(
                    detector, item.image, threshold=self.args.threshold, tta=tta,
                    rotations=() if video else ROTATIONS, tiles=False if video else None)
            except (RuntimeError, ValueError, MemoryError) as exc:
                results[i] = exc
        return results

    # -- one picture ------------------------------------------------------------------
    def _masked(self, image, faces, carried=None):
        from ..anonymize import anonymize, draw_regions

        a = self.args
        if a.preview:
            return draw_regions(image, faces, shape=a.shape, scale=a.scale, carried=carried)
        return anonymize(image, faces, method=a.method, shape=a.shape, scale=a.scale)

    def _masked_whole(self, image):
        """A frame whose faces are unknown: the whole picture masked (``--method``; blur for --preview)."""
        from ..anonymize import anonymize

        h, w = image.shape[:2]
        method = "blur" if self.args.preview else self.args.method
        return anonymize(image, [[0, 0, w, h]], method=method, shape="box", scale=1.0)

    def _regions(self, image, faces) -> list:
        from ..anonymize import face_regions

        h, w = image.shape[:2]
        out = []
        for x1, y1, x2, y2 in face_regions(faces, self.args.scale):
            out.append([round(max(0.0, float(x1)), 1), round(max(0.0, float(y1)), 1),
                        round(min(float(w), float(x2)), 1), round(min(float(h), float(y2)), 1)])
        return out

    def write(self, item, det) -> None:
        if item.frame is None:
            from ..media import faithful_image_format, write_image

            target = self._target(item.source, "image")
            suffix, params = faithful_image_format(item.path)
            write_image(target, self._masked(item.image, det), params)
            self.json.write(picture_record(item, det, regions=self._regions(item.image, det), output=str(target)))
            return
        state = self.videos.get(item.path)
        if state is None:
            state = self.videos[item.path] = self._open_video(item)
        if det is None:  # detection failed: nothing found, the frame is masked whole when written
            from ..detector import Detections

            det = Detections.empty()
        for done in state.persistence.push(item, det):
            self._write_frame(state, *done)

    # -- videos -------------------------------------------------------------------------
    def _open_video(self, item) -> VideoState:
        from ..anonymize import Persistence

        target = self._target(item.source, "video")
        writer = open_video_output(target, item, self.args.max_frames, codec=self.args.codec, crf=self.args.crf)
        return VideoState(writer, Persistence(self.args.persist))

    def _write_frame(self, state: VideoState, item, det, masked, offsets) -> None:
        if item.detection_failed:
            image = self._masked_whole(item.image)  # its error record is written by the run
        else:
            record = picture_record(item, det, regions=self._regions(item.image, masked),
                                    region_frames=[int(item.frame + o) for o in offsets],
                                    output=str(state.writer.path))
            self.json.write(record)
            image = self._masked(item.image, masked, carried=offsets != 0)
        state.writer.write(image, item.time, pts=item.pts, audio=item.audio)

    def end_video(self, path: Path, cut: bool = False) -> None:
        state = self.videos.pop(path, None)
        if state is None:
            return
        try:
            for done in state.persistence.flush():
                self._write_frame(state, *done)
        except BaseException:
            state.writer.abort()
            raise
        close_video(state.writer, self.args.max_frames, cut=cut)

    def abort_video(self, path: Path) -> None:
        state = self.videos.pop(path, None)
        if state is not None:
            state.writer.abort()

    def interrupt_video(self, path: Path):
        """Ctrl-C / SIGTERM: the frames already masked are kept, with the sound cut where they end,
        as ``<name>.partial<suffix>`` (the frames still waiting for ``--persist`` are dropped: their
        later neighbours were never seen)."""
        state = self.videos.pop(path, None)
        return None if state is None else keep_partial(state.writer)


def run(args: argparse.Namespace) -> int:
    return run_command(args, AnonymizeOutputs, desc="anonymize", output_dirs=(args.output,))
