"""Reading images and videos robustly, and writing annotated outputs.

Every reader returns BGR ``uint8`` arrays of shape (H, W, 3), as OpenCV does,
whatever the file holds (grayscale, RGBA, 16-bit, EXIF-rotated JPEG), and raises
:class:`ImageReadError` naming the file when it cannot (missing, empty, a folder,
not an image, corrupt, truncated JPEG/PNG).

Streams: :func:`expand_inputs` turns command-line inputs (files, folders searched
recursively, globs) into sources, :func:`iter_media` yields one :class:`MediaItem`
per image or video frame (errors as items, so a run can go on), and
:class:`Prefetcher` moves any such iterator into a background thread behind a
bounded queue, so that decoding overlaps the network and nothing is held whole in
memory.
"""
from __future__ import annotations

import glob
import logging
import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".dib", ".tif", ".tiff", ".webp", ".jp2", ".pgm", ".ppm", ".pbm", ".pnm",
     ".pfm", ".sr", ".ras", ".exr", ".hdr", ".pic", ".avif", ".gif", ".heic", ".heif"}
)
VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".ts", ".mts",
     ".m2ts", ".mjpeg", ".mjpg", ".ogv", ".vob"}
)


class ImageReadError(ValueError):
    """A file that is missing, empty or not a decodable image."""


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file to BGR uint8 (EXIF orientation applied)."""
    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"{path}: no such file")
    if path.is_dir():
        raise ImageReadError(f"{path}: is a folder, not an image")
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return decode_image(data, path)


def _jpeg_truncated(data: bytes) -> bool:
    """Whether a JPEG (``data`` starts with SOI) ends before its end-of-image marker, decided from
    its structure: the marker segments are walked by their lengths (an EXIF thumbnail's own
    markers lie inside its APP1 segment and are skipped with it), each scan's entropy-coded data
    is skipped up to the next marker (``FF00`` stuffing and ``RSTn`` belong to it), and the file
    is whole when an EOI marker follows.  Bytes after EOI (a phone's motion-photo video, an
    appended thumbnail) do not matter.  A structure that is broken rather than cut short is not
    called truncated here: the decoder names it."""
    n, pos = len(data), 2
    markers = None  # where entropy-coded data can end: FF followed by a byte other than 00, RSTn, FF
    while True:
        if pos < n and data[pos] != 0xFF:  # not a marker where one must be: broken, not cut
            return False
        while pos < n and data[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= n:
            return True
        marker = data[pos]
        pos += 1
        if marker == 0xD9:  # EOI
            return False
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # TEM, RSTn: no length
            continue
        if pos + 2 > n:
            return True
        length = (data[pos] << 8) | data[pos + 1]
        if length < 2:
            return False
        pos += length
        if pos > n:
            return True
        if marker == 0xDA:  # SOS: entropy-coded data up to the next marker that is not FF00 / RSTn
            if markers is None:
                a = np.frombuffer(data, np.uint8)
                ff = np.flatnonzero(a[:-1] == 0xFF)
                following = a[ff + 1]
                markers = ff[(following != 0) & (following != 0xFF) & ((following < 0xD0) | (following > 0xD7))]
            i = int(np.searchsorted(markers, pos))
            if i >= len(markers):
                return True
            pos = int(markers[i])


def _truncation(data: np.ndarray) -> str | None:
    """Why ``data`` is a truncated JPEG/PNG, or ``None``.  libjpeg decodes a cut-off
    JPEG into a partly grey picture with only a warning; refuse it instead."""
    head = data[:8].tobytes()
    if head[:2] == b"\xff\xd8" and _jpeg_truncated(data.tobytes()):
        return "truncated JPEG (it ends before its end-of-image marker)"
    if head == b"\x89PNG\r\n\x1a\n" and b"IEND" not in data[-64:].tobytes():
        return "truncated PNG (no IEND chunk)"
    return None


# HEIF (the container of HEIC photos, which iPhones write): 'ftyp' then one of these brands.
HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"})
HEIF_HINT = "pip install pillow-heif (or pip install 'retinaface-polynl[heif]')"


def _is_heif(data: np.ndarray) -> bool:
    return data[4:8].tobytes() == b"ftyp" and data[8:12].tobytes() in HEIF_BRANDS


def _decode_heif(data: np.ndarray, name) -> np.ndarray:
    """A HEIC/HEIF photo through pillow-heif (its rotation and mirroring applied, upright), or a
    refusal that says what to install."""
    try:
        import pillow_heif
    except ImportError:
        raise ImageReadError(f"{name}: a HEIC/HEIF photo, and reading it needs pillow-heif, which is not "
                             f"installed: {HEIF_HINT}") from None
    try:
        heif = pillow_heif.open_heif(data.tobytes(), convert_hdr_to_8bit=True)
        if len(heif) > 1:
            log.info("%s: HEIF file holds %d images; reading its primary image", name, len(heif))
        image = np.asarray(heif.to_pillow().convert("RGB"))
    except (ValueError, RuntimeError, OSError) as exc:
        raise ImageReadError(f"{name}: not a decodable HEIC/HEIF photo ({exc})") from None
    return cv2.cvtColor(image, cv2.COLOR_RGB2BGR)


MULTI_PAGE_HINT = "split it into single pictures first (one PNG per page or frame)"


def _tiff_pages(b: bytes) -> int:
    """Full-resolution pages of a TIFF or BigTIFF: its IFD chain, less the pages whose
    NewSubfileType (tag 254) marks a reduced-resolution copy (a thumbnail)."""
    order = "little" if b[:2] == b"II" else "big"
    big = int.from_bytes(b[2:4], order) == 43
    word, entry, count_size = (8, 20, 8) if big else (4, 12, 2)
    offset = int.from_bytes(b[8:16] if big else b[4:8], order)
    pages, seen = 0, set()
    while offset and offset not in seen and offset + count_size <= len(b) and len(seen) < 100_000:
        seen.add(offset)
        count = int.from_bytes(b[offset: offset + count_size], order)
        start = offset + count_size
        subfile = 0
        for i in range(min(count, (len(b) - start) // entry)):
            e = start + i * entry
            if int.from_bytes(b[e: e + 2], order) == 254:
                subfile = int.from_bytes(b[e + 4 + 2 + word: e + 4 + 2 + word + 4], order) if big else \
                    int.from_bytes(b[e + 8: e + 12], order)
        pages += not (subfile & 1)
        next_at = start + count * entry
        offset = int.from_bytes(b[next_at: next_at + word], order) if next_at + word <= len(b) else 0
    return pages


def _gif_frames(b: bytes) -> int:
    """Image descriptors in a GIF (its frames), walking its blocks."""
    pos = 13 + (3 << ((b[10] & 7) + 1) if b[10] & 0x80 else 0)
    frames = 0

    def skip_sub_blocks(pos: int) -> int:
        while pos < len(b) and b[pos]:
            pos += b[pos] + 1
        return pos + 1

    while pos < len(b):
        kind = b[pos]
        if kind == 0x2C:  # image descriptor
            frames += 1
            flags = b[pos + 9] if pos + 9 < len(b) else 0
            pos += 10 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
            pos = skip_sub_blocks(pos + 1)  # LZW code size, then the data
        elif kind == 0x21:  # extension
            pos = skip_sub_blocks(pos + 2)
        else:  # 0x3B trailer, or garbage
            break
    return frames


def _webp_frames(b: bytes) -> int:
    """ANMF chunks of an animated WebP (1 for a still one)."""
    pos, frames = 12, 0
    while pos + 8 <= len(b):
        fourcc, size = b[pos: pos + 4], int.from_bytes(b[pos + 4: pos + 8], "little")
        frames += fourcc == b"ANMF"
        pos += 8 + size + (size & 1)
    return max(frames, 1)


def _apng_frames(b: bytes) -> int:
    """num_frames of an animated PNG's acTL chunk (1 for a plain PNG)."""
    pos = 8
    while pos + 8 <= len(b):
        length, kind = int.from_bytes(b[pos: pos + 4], "big"), b[pos + 4: pos + 8]
        if kind == b"acTL":
            return int.from_bytes(b[pos + 8: pos + 12], "big")
        if kind in (b"IDAT", b"IEND"):
            break
        pos += 12 + length
    return 1


def _extra_pages(data: np.ndarray) -> tuple[int, str] | None:
    """``(count, 'pages' | 'frames')`` for a multi-page TIFF or an animated GIF / PNG / WebP
    (reduced-resolution TIFF pages, i.e. thumbnails, not counted), else ``None``.  Read from the
    files' own structure (OpenCV decodes the first page or frame alone, without a word)."""
    head = data[:16].tobytes()
    try:
        if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
            count, kind = _tiff_pages(data.tobytes()), "pages"
        elif head[:4] == b"GIF8":
            count, kind = _gif_frames(data.tobytes()), "frames"
        elif head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            count, kind = _webp_frames(data.tobytes()), "frames"
        elif head[:8] == b"\x89PNG\r\n\x1a\n":
            count, kind = _apng_frames(data[:1 << 20].tobytes()), "frames"
        else:
            return None
    except IndexError:  # a structure cut short: the decoder says what is wrong
        return None
    return (count, kind) if count > 1 else None


def decode_image(data: bytes | np.ndarray, name: str | Path = "<bytes>") -> np.ndarray:
    """Encoded image bytes -> BGR uint8 (EXIF orientation applied); :class:`ImageReadError` naming ``name``."""
    data = np.frombuffer(data, np.uint8) if isinstance(data, (bytes, bytearray, memoryview)) else data
    if data.size == 0:
        raise ImageReadError(f"{name}: empty file")
    why = _truncation(data)
    if why:
        raise ImageReadError(f"{name}: {why}")
    if _is_heif(data):
        return _decode_heif(data, name)
    pages = _extra_pages(data)
    if pages:
        count, kind = pages
        raise ImageReadError(f"{name}: holds {count} {kind}; refused rather than reading the first alone "
                             f"(multi-page and animated pictures are not anonymised {kind[:-1]} by {kind[:-1]}): "
                             f"{MULTI_PAGE_HINT}")
    # IMREAD_COLOR converts gray/RGBA/16-bit to 8-bit BGR and applies EXIF orientation.
    try:
        image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    except cv2.error as exc:  # pragma: no cover - decoder-specific
        raise ImageReadError(f"{name}: not a decodable image ({str(exc).strip().splitlines()[-1]})") from None
    if image is None or image.size == 0:
        raise ImageReadError(f"{name}: not a decodable image (corrupt, truncated or unsupported format)")
    return image


def to_bgr_uint8(image: np.ndarray, rgb: bool = False) -> np.ndarray:
    """An image array -> BGR uint8 (H, W, 3).

    Accepts (H, W) grayscale, (H, W, 1), (H, W, 3) colour (BGR, or RGB with
    ``rgb=True``) and (H, W, 4) with alpha (dropped); uint8, uint16 (scaled by
    1/257) or float (taken as 0..255 if its maximum exceeds 1, else 0..1).
    """
    if not isinstance(image, np.ndarray):
        hint = ""
        if hasattr(image, "getbands"):  # a PIL image: its arrays are RGB
            hint = " (for a PIL image pass np.asarray(image) with rgb=True)"
        raise TypeError(f"expected a numpy image array, got {type(image).__name__}{hint}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise ValueError(f"expected an (H, W), (H, W, 3) or (H, W, 4) image, got shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"empty image of shape {image.shape}")
    if image.dtype == np.uint16:
        image = (image.astype(np.float32) / 257.0).round().astype(np.uint8)
    elif image.dtype != np.uint8:
        f = image.astype(np.float32)
        if not np.isfinite(f).all():
            raise ValueError("image contains NaN or infinite values")
        if f.max(initial=0) <= 1.0:
            f = f * 255.0
        image = f.clip(0, 255).round().astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_RGBA2BGR if rgb else cv2.COLOR_BGRA2BGR)
        return image
    if rgb:
        return cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    return np.ascontiguousarray(image)


def draw_detections(
    image_bgr: np.ndarray,
    detections,
    show_scores: bool = False,
    thickness: int | None = None,
    landmarks: bool = True,
):
    """A copy of the image with each face's box and landmarks drawn.

    As in the Poly-NL supplementary's Figure 3, boxes are yellow and their
    brightness encodes the confidence (dim = low score, bright = high).
    Landmarks: eyes blue/green, nose red, mouth corners magenta/cyan.
    """
    out = image_bgr.copy()
    h, w = out.shape[:2]
    t = thickness or max(1, round(min(h, w) / 300))
    point_colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 0, 255), (255, 255, 0)]
    for box, score, marks in zip(detections.boxes, detections.scores, detections.landmarks):
        level = 0.35 + 0.65 * float(np.clip(score, 0.0, 1.0))
        colour = (0, int(255 * level), int(255 * level))  # BGR yellow, brightness = confidence
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, t, cv2.LINE_AA)
        for (px, py), c in zip(marks if landmarks else (), point_colours):
            cv2.circle(out, (int(round(px)), int(round(py))), max(1, t), c, -1, cv2.LINE_AA)
        if show_scores:
            cv2.putText(out, f"{score:.2f}", (x1, max(0, y1 - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.4 * t, colour, t, cv2.LINE_AA)
    return out


# ----------------------------------------------------------------------------------------
# inputs: files, folders, globs, videos
# ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Source:
    """One input file; ``root`` is the folder it was found under (for output names)."""

    path: Path
    root: Path | None = None
    error: str | None = None  # e.g. a missing path: reported, not raised

    @property
    def relative(self) -> Path:
        """The path below its root folder (or just the file name)."""
        if self.root is not None:
            try:
                return self.path.relative_to(self.root)
            except ValueError:
                pass
        return Path(self.path.name)


def is_video_path(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def is_media_path(path: str | Path) -> bool:
    """Whether ``path`` has an image or video extension."""
    suffix = Path(path).suffix.lower()
    return suffix in IMAGE_EXTENSIONS or suffix in VIDEO_EXTENSIONS


def expand_inputs(inputs: Iterable[str | Path]) -> list[Source]:
    """Files, folders (searched recursively for image/video extensions) and globs ->
    sources, in a stable order.  A path that does not exist (and matches no glob)
    becomes a source with ``error`` set, so the caller reports it and goes on."""
    out: list[Source] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and is_media_path(p))
            if not files:
                out.append(Source(path, error=f"{path}: folder holds no image or video files"))
            out.extend(Source(p, root=path) for p in files)
        elif path.exists():
            out.append(Source(path))
        elif glob.has_magic(str(item)):
            matches = sorted(Path(m) for m in glob.glob(str(item), recursive=True))
            files = [m for m in matches if m.is_file()]
            if not files:
                out.append(Source(path, error=f"{item}: no files match"))
            out.extend(Source(m) for m in files)
        else:
            out.append(Source(path, error=f"{path}: no such file or folder"))
    return out


@dataclass
class MediaItem:
    """One decoded picture (an image, or a frame of a video) or one failure.

    ``frame`` is the frame index for videos (``None`` for images); ``fps`` and
    ``frame_count`` describe the video it came from, ``time`` is the frame's
    presentation time in seconds (when the reader knows it).
    """

    source: Source
    image: np.ndarray | None = None
    frame: int | None = None
    fps: float | None = None
    frame_count: int | None = None
    error: str | None = None
    last_frame: bool = False  # set on a video's final item (frame or error)
    time: float | None = None
    pts: int | None = None  # the frame's presentation timestamp, in ``video.info.time_base``
    video: object | None = None  # the video.VideoReader it came from: its ``info`` and ``audio_streams``
    audio: list = field(default_factory=list)  # the source's audio packets demuxed with this frame
    detection_failed: bool = False  # set by the run when the detector failed on it

    @property
    def path(self) -> Path:
        return self.source.path

    @property
    def is_video(self) -> bool:
        return self.frame is not None or self.fps is not None


def iter_video(source: Source, max_frames: int | None = None) -> Iterator[MediaItem]:
    """The frames of a video file (or a camera index / stream URL as ``source.path``).

    Files are decoded with PyAV (upright, with presentation times; a decoding error after
    some frames keeps them and ends the video with an error item), cameras and URLs (and
    files, when PyAV is missing) with OpenCV."""
    from . import video

    target = source.path
    if video.available() and not str(target).isdigit() and "://" not in str(target):
        yield from _iter_video_av(source, max_frames)
        return
    cap = cv2.VideoCapture(int(str(target)) if str(target).isdigit() else str(target))
    if not cap.isOpened():
        cap.release()
        yield MediaItem(source, error=f"{target}: cannot open video (unreadable or unsupported)", last_frame=True)
        return
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0) or 25.0
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    index = 0
    pending: MediaItem | None = None
    try:
        while max_frames is None or index < max_frames:
            ok, frame = cap.read()
            if not ok or frame is None:
                break
            if pending is not None:
                yield pending
            pending = MediaItem(source, to_bgr_uint8(frame), frame=index, fps=fps, frame_count=count)
            index += 1
    finally:
        cap.release()
    if pending is None:
        yield MediaItem(source, error=f"{target}: video has no readable frames (corrupt or unsupported)",
                        fps=fps, last_frame=True)
        return
    pending.last_frame = True
    yield pending


def _iter_video_av(source: Source, max_frames: int | None) -> Iterator[MediaItem]:
    """One open of the file (:class:`~retinaface_polynl.video.VideoReader`): what it found travels
    with every frame (``item.video``), and so do the audio packets demuxed with it."""
    from . import video

    try:
        reader = video.VideoReader(source.path)
    except video.VideoError as exc:
        yield MediaItem(source, error=str(exc), last_frame=True)
        return
    try:
        info = reader.info
        fps, count = float(info.fps), info.frames
        pending: MediaItem | None = None
        error = None
        try:
            for frame in reader.frames(max_frames):
                if pending is not None:
                    yield pending
                pending = MediaItem(source, frame.image, frame=frame.index, fps=fps, frame_count=count,
                                    time=frame.time, pts=frame.pts, video=reader, audio=frame.audio)
        except video.VideoError as exc:
            error = str(exc)
        if error is not None or pending is None:
            if pending is not None:
                yield pending
            yield MediaItem(source, error=error or f"{source.path}: video has no readable frames (corrupt or "
                            "unsupported)", fps=fps, last_frame=True, video=reader)
            return
        pending.last_frame = True
        yield pending
    finally:
        # the file stays open until its consumer also calls reader.release("writer") (a writer may
        # still copy the sound with its streams as templates); unreleased, it closes when collected
        reader.release("reader")


def media_kind(path: str | Path) -> str:
    """``'video'`` or ``'image'``: by extension, else by content (OpenCV's readers for the image
    formats it knows, HEIF's header; anything else is tried as a video)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    if suffix in IMAGE_EXTENSIONS:
        return "image"
    try:
        with open(path, "rb") as f:
            head = np.frombuffer(f.read(16), np.uint8)
    except OSError:
        return "image"  # unreadable: reading it as an image says why
    if head.size == 0 or _is_heif(head):
        return "image"
    try:
        return "image" if cv2.haveImageReader(str(path)) else "video"
    except cv2.error:  # pragma: no cover
        return "video"


def iter_media(sources: Iterable[Source], max_frames: int | None = None) -> Iterator[MediaItem]:
    """Decode sources one at a time, images and videos told apart by :func:`media_kind`."""
    for source in sources:
        if source.error:
            yield MediaItem(source, error=source.error)
            continue
        if media_kind(source.path) == "video":
            yield from iter_video(source, max_frames)
            continue
        try:
            yield MediaItem(source, read_image(source.path))
        except ImageReadError as exc:
            yield MediaItem(source, error=str(exc))


class Prefetcher:
    """Runs an iterator in a background thread, ``maxsize`` items ahead (bounded memory).

    Exceptions raised by the iterator are re-raised in the consumer; ``close()``
    (or leaving a ``with`` block) stops the producer early.
    """

    _DONE = object()

    def __init__(self, iterable: Iterable, maxsize: int = 8) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, maxsize))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(iter(iterable),), daemon=True, name="prefetch")
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, iterator: Iterator) -> None:
        try:
            for item in iterator:
                if not self._put((True, item)):
                    return
        except BaseException as exc:  # handed to the consumer
            self._put((False, exc))
            return
        self._put((True, self._DONE))

    def __iter__(self):
        return self

    def __next__(self):
        if self._stop.is_set():
            raise StopIteration
        ok, item = self._queue.get()
        if not ok:
            self.close()
            raise item
        if item is self._DONE:
            self.close()
            raise StopIteration
        return item

    def close(self) -> None:
        self._stop.set()
        try:  # unblock a producer waiting on a full queue
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


# ----------------------------------------------------------------------------------------
# outputs
# ----------------------------------------------------------------------------------------
FOURCC_BY_EXTENSION = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}


def open_video_writer(path: str | Path, fps: float, width: int, height: int) -> cv2.VideoWriter:
    """A ``cv2.VideoWriter`` with a codec that suits the extension (mp4v for .mp4/.mov,
    MJPG for .avi/.mkv); raises ``OSError`` if OpenCV cannot open it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fourcc = FOURCC_BY_EXTENSION.get(path.suffix.lower(), "mp4v")
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), float(fps) if fps > 0 else 25.0,
                             (int(width), int(height)))
    if not writer.isOpened():
        raise OSError(f"{path}: cannot open a video writer (codec {fourcc})")
    return writer


WRITABLE_IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})


LOSSLESS_IMAGE_EXTENSIONS = frozenset({".png", ".bmp", ".tif", ".tiff"})
JPEG_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe"})
JPEG_QUALITY = 95


def faithful_image_format(path: str | Path) -> tuple[str, list[int]]:
    """``(suffix, cv2.imencode params)`` that change a picture read from ``path`` least:
    its own lossless format (PNG, BMP, TIFF; WebP written lossless), JPEG at quality 95 with
    4:4:4 chroma for a JPEG (already lossy: re-encoding it at high quality), PNG for anything else."""
    suffix = Path(path).suffix.lower()
    if suffix in LOSSLESS_IMAGE_EXTENSIONS:
        return suffix, []
    if suffix == ".webp":
        return suffix, [cv2.IMWRITE_WEBP_QUALITY, 101]  # > 100: lossless
    if suffix in JPEG_EXTENSIONS:
        # Full-resolution chroma: 4:2:0 (OpenCV's default) alone moves colour edges by up to ~50 levels.
        return suffix, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY,
                        cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
    return ".png", []


def write_image(path: str | Path, image_bgr: np.ndarray, params: list[int] | None = None) -> Path:
    """Write an 8-bit BGR image (format from the extension, ``cv2.imencode`` ``params``) under a
    temporary name beside ``path``, renamed to ``path`` once whole: a full disk or a killed run
    never leaves a truncated picture under its name.  Raises ``OSError`` on failure."""
    from .fileio import atomic_path

    path = Path(path)
    ok, data = cv2.imencode(path.suffix or ".png", image_bgr, params or [])
    if not ok:
        raise OSError(f"{path}: cannot encode image")
    with atomic_path(path, suffix=path.suffix or ".png") as tmp:
        with open(tmp, "wb") as f:
            f.write(data.tobytes())
    return path
