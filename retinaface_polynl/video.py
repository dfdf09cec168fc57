"""Video files through PyAV (FFmpeg's libraries): frames in, frames out, sound kept.

:func:`probe` describes a file (frame rate, frame count, displayed size, audio),
:func:`iter_frames` decodes its frames upright (the rotation a phone records is
applied, as players do) as BGR ``uint8`` arrays with their presentation times,
and :class:`VideoWriter` encodes frames into a new file while copying the audio
of a source file into it:

- the audio packets are **remuxed without decoding** when the output container
  accepts the source's audio codec (AAC, MP3, Opus... into MP4 / MOV / MKV);
  otherwise they are decoded and re-encoded with the container's default audio
  codec (AAC for MP4), and a log line says so;
- audio is interleaved with the video as it is written (never held whole in memory);
- each frame keeps the presentation time of the frame it came from, so picture and
  sound stay in sync, the frame rate and frame count are those of the input;
- the video codec is H.264 (libx264, CRF 18: visually lossless, preset veryfast) by default, VP9 in
  WebM, FFV1 (lossless) when the input's own video codec is lossless and the
  container takes it; ``codec=`` chooses any FFmpeg encoder.  When the wanted
  encoder is missing from the PyAV build, the next one that is present is used,
  with a log line naming both.

``cv2.VideoWriter`` is not used for this: it has no audio at all.
"""
from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

# Encoders tried in order when codec="auto" (the first present in this PyAV build wins).
H264_CHAIN = ("libx264", "libopenh264", "h264", "mpeg4")
WEBM_CHAIN = ("libvpx-vp9", "libvpx", "libaom-av1")
LOSSLESS_CODECS = frozenset({"ffv1", "huffyuv", "ffvhuff", "utvideo", "rawvideo", "png", "qtrle", "magicyuv"})
# Containers a written video keeps (others become .mp4).
VIDEO_CONTAINERS = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi"})
DEFAULT_CRF = 18
CONTAINER_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm", ".avi": "avi"}


class VideoError(OSError):
    """A video that cannot be opened, decoded or written (the message names the file)."""


def _av():
    try:
        import av
    except ImportError:  # pragma: no cover - av is a declared dependency
        raise VideoError("reading and writing videos with their sound needs PyAV: pip install av") from None
    return av


def available() -> bool:
    """Whether PyAV can be imported."""
    try:
        import av  # noqa: F401
    except ImportError:  # pragma: no cover
        return False
    return True


@dataclass(frozen=True)
class AudioInfo:
    codec: str
    sample_rate: int
    channels: int
    duration: float | None  # seconds, None when the container does not say


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` / :class:`VideoReader` find: ``width`` x ``height`` as displayed (rotation applied)."""

    fps: Fraction
    frames: int  # from the container header, else estimated from the duration (0 when unknown)
    width: int
    height: int
    codec: str
    rotation: int  # degrees, counter-clockwise, that the player applies
    audio: tuple[AudioInfo, ...]
    time_base: Fraction | None = None  # of the video stream: the unit of each frame's ``pts``
    frames_stated: bool = False  # ``frames`` is the count the container states (not an estimate)
    duration: float | None = None  # seconds the video stream (else the container) states
    tags: tuple = ()  # (key, value) stream tags kept in an output: language, title

    @property
    def lossless(self) -> bool:
        return self.codec in LOSSLESS_CODECS


KEPT_TAGS = ("language", "title")


def _kept_tags(stream) -> tuple:
    meta = getattr(stream, "metadata", None) or {}
    return tuple((k, meta[k]) for k in KEPT_TAGS if meta.get(k))


def _open_input(path: str | Path):
    av = _av()
    try:
        return av.open(str(path))
    except av.FFmpegError as exc:
        raise VideoError(f"{path}: cannot open video ({_reason(exc)})") from None


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _rate(stream) -> Fraction:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            return Fraction(rate)
    return Fraction(25)


def _stream_duration(stream, container) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000  # AV_TIME_BASE
    return None


def _stated_video_seconds(stream) -> float | None:
    """How long the stream itself says it runs: its duration field, else the DURATION tag that
    Matroska/WebM muxers write per stream ('HH:MM:SS.fraction'); ``None`` when it says nothing."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    tag = (getattr(stream, "metadata", None) or {}).get("DURATION")
    if tag:
        try:
            h, m, sec = tag.split(":")
            return int(h) * 3600 + int(m) * 60 + float(sec)
        except ValueError:
            return None
    return None


@dataclass
class Frame:
    index: int
    image: np.ndarray  # BGR uint8, upright
    time: float | None  # presentation time in seconds
    pts: int | None = None  # presentation timestamp in the stream's ``VideoInfo.time_base``
    audio: list = field(default_factory=list)  # the audio packets demuxed since the previous frame


class VideoReader:
    """One video file, opened once: :attr:`info` (what :func:`probe` reports, found while opening:
    the first frame is decoded then for the rotation a phone records, and kept), then
    :meth:`frames` decodes every frame from the same open file, each with its presentation
    timestamp and the audio packets demuxed along with it (so a :class:`VideoWriter` copies
    the sound from them, without opening the file again).

    A video that stops short of what its header states (a file cut off: fewer frames than the
    container's count, or its packets ending well before the stated duration) raises
    :class:`VideoError` after its last frame, as a decoding error part-way does.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._closed = False
        self._released: set = set()
        self.container = _open_input(path)
        try:
            self._setup()
        except BaseException:
            self.container.close()
            raise

    def _setup(self) -> None:
        av = _av()
        container, path = self.container, self.path
        if not container.streams.video:
            raise VideoError(f"{path}: no video stream")
        vs = self.stream = container.streams.video[0]
        vs.thread_type = "AUTO"
        ctx = vs.codec_context
        if not ctx.width or not ctx.height:
            raise VideoError(f"{path}: video stream without a picture size")
        self.audio_streams = list(container.streams.audio)
        fps = _rate(vs)
        stated = int(vs.frames or 0)
        frames = stated
        duration = _stream_duration(vs, container)
        if frames <= 0:
            frames = int(round(duration * fps)) if duration else 0
        self._end = None  # the latest packet end, in seconds, over all streams
        self._video_end = None  # the latest video packet end, in seconds
        self._video_stated = _stated_video_seconds(vs)
        self._video_start = float(vs.start_time * vs.time_base) if vs.start_time is not None and vs.time_base else 0.0
        self._decoded = self._decode()
        try:
            self._first = next(self._decoded, None)
        except av.FFmpegError as exc:
            raise VideoError(f"{path}: video decoding failed before the first frame ({_reason(exc)})") from None
        if self._first is None:
            raise VideoError(f"{path}: video has no readable frames (corrupt or unsupported)")
        rotation = int(self._first[0].rotation or 0) % 360
        w, h = ctx.width, ctx.height
        if rotation in (90, 270):
            w, h = h, w
        audio = tuple(
            AudioInfo(a.codec_context.name, int(a.codec_context.sample_rate or 0), int(a.codec_context.channels or 0),
                      _stream_duration(a, container))
            for a in self.audio_streams
        )
        self.info = VideoInfo(fps, frames, int(w), int(h), ctx.name, rotation, audio,
                              time_base=Fraction(vs.time_base) if vs.time_base else None,
                              frames_stated=stated > 0, duration=duration, tags=_kept_tags(vs))

    def _decode(self):
        """(decoded frame, audio packets since the previous one); remembers the latest packet end."""
        audio: list = []
        wanted = {s.index for s in self.audio_streams}
        for packet in self.container.demux():
            if packet.pts is not None and packet.time_base is not None:
                end = float((packet.pts + (packet.duration or 0)) * packet.time_base)
                self._end = end if self._end is None else max(self._end, end)
                if packet.stream.index == self.stream.index:
                    self._video_end = end if self._video_end is None else max(self._video_end, end)
            if packet.stream.index in wanted:
                if packet.dts is not None or packet.pts is not None:  # not a demuxer flush packet
                    audio.append(packet)
                continue
            if packet.stream.index != self.stream.index:
                continue
            for frame in packet.decode():
                yield frame, audio
                audio = []
        self.tail_audio = audio

    def frames(self, max_frames: int | None = None) -> Iterator[Frame]:
        """Decode the frames upright as BGR uint8 (at most ``max_frames``); :class:`VideoError`
        after the last good frame when decoding fails part-way or the file ends early."""
        av = _av()
        index = 0
        pending: Frame | None = None
        try:
            while True:
                if self._first is not None:
                    item, self._first = self._first, None
                else:
                    item = next(self._decoded, None)
                if item is None:
                    break
                if max_frames is not None and index >= max_frames:
                    self.tail_audio = []
                    if pending is not None:
                        yield pending
                    return
                frame, audio = item
                image = upright(frame.to_ndarray(format="bgr24"), frame.rotation or 0)
                time = float(frame.time) if frame.time is not None else None
                if pending is not None:
                    yield pending
                pending = Frame(index, image, time, frame.pts, audio)
                index += 1
        except av.FFmpegError as exc:
            if pending is not None:
                yield pending
            where = f"after frame {index - 1}" if index else "before the first frame"
            raise VideoError(f"{self.path}: video decoding failed {where} ({_reason(exc)})") from None
        if pending is not None:
            pending.audio = pending.audio + getattr(self, "tail_audio", [])
            yield pending
        short = self._short_by(index)
        if short:
            raise VideoError(f"{self.path}: the video ends early, {short} (truncated or damaged file); "
                             f"the {index} frames read were kept")

    def _short_by(self, count: int) -> str | None:
        """What is missing when the file ended before what its header states, else ``None``."""
        info = self.info
        step = 1.0 / float(info.fps) if info.fps else 0.04
        stated, end = self._video_stated, self._video_end
        if info.frames_stated and count < info.frames:
            if stated is None or end is None or end - self._video_start < stated - 1.5 * step:
                return f"after {count} of the {info.frames} frames its header states"
        if stated and end is not None and end - self._video_start < stated - max(2 * step, 0.1):
            return f"its pictures stop at {end - self._video_start:.2f} s of the {stated:.2f} s its header states"
        duration = self.container.duration
        if duration and self._end is not None:
            start = (self.container.start_time or 0) / 1_000_000
            stated = duration / 1_000_000
            if self._end - start < stated - max(2 * step, 0.1):
                return f"at {self._end - start:.2f} s of the {stated:.2f} s its header states"
        return None

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self.container.close()

    def release(self, side: str) -> None:
        """Close the file once both sides are done with it: ``'reader'`` (no more frames to read)
        and ``'writer'`` (no more output made from its streams: a writer copies the sound with
        the input streams as templates, which must stay open until then)."""
        with self._lock:
            self._released.add(side)
            done = {"reader", "writer"} <= self._released
        if done:
            self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def probe(path: str | Path) -> VideoInfo | None:
    """A video file's :class:`VideoInfo`, or ``None`` when it holds no decodable video stream."""
    try:
        with VideoReader(path) as reader:
            return reader.info
    except VideoError:
        return None


def upright(image: np.ndarray, rotation: int) -> np.ndarray:
    """The frame as a player shows it: rotated ``rotation`` degrees counter-clockwise."""
    k = (int(rotation) // 90) % 4
    return np.ascontiguousarray(np.rot90(image, k)) if k else image


def iter_frames(path: str | Path, max_frames: int | None = None) -> Iterator[Frame]:
    """Decode a video's frames (first video stream) upright, as BGR uint8.

    Raises :class:`VideoError` naming the file when it cannot be opened; a decoding error
    after some frames, or a file that ends before its header says, raises it too, after those
    frames were yielded (the message says where), so a caller keeps what was read.
    """
    with VideoReader(path) as reader:
        yield from reader.frames(max_frames)


def encoder_available(name: str) -> bool:
    av = _av()
    try:
        av.Codec(name, "w")
    except (av.FFmpegError, ValueError, Exception):  # unknown codec: av raises its own error types
        return False
    return True


def choose_codec(suffix: str, wanted: str = "auto", source_codec: str | None = None) -> str:
    """The encoder for an output file: ``wanted`` if given and present, else the usual
    one for the container (see the module docstring), falling back along the chain with
    a log line."""
    suffix = suffix.lower()
    if wanted and wanted != "auto":
        if encoder_available(wanted):
            return wanted
        chain = WEBM_CHAIN if suffix == ".webm" else H264_CHAIN
        fallback = next((c for c in chain if encoder_available(c)), None)
        if fallback is None:
            raise VideoError(f"video encoder {wanted!r} is not available in this PyAV build, nor any of {', '.join(chain)}")
        log.warning("video encoder %s is not available in this PyAV build; writing %s instead", wanted, fallback)
        return fallback
    if source_codec in LOSSLESS_CODECS and suffix in (".mkv", ".avi") and encoder_available("ffv1"):
        return "ffv1"
    chain = WEBM_CHAIN if suffix == ".webm" else H264_CHAIN
    for i, name in enumerate(chain):
        if encoder_available(name):
            if i:
                log.warning("%s is not available in this PyAV build; writing %s instead", chain[0], name)
            return name
    raise VideoError(f"no video encoder for {suffix} files in this PyAV build (tried {', '.join(chain)})")


def output_suffix(source: str | Path) -> str:
    """The container a video written from ``source`` uses: its own when writable, else ``.mp4``."""
    suffix = Path(source).suffix.lower()
    return suffix if suffix in VIDEO_CONTAINERS else ".mp4"


def partial_name(path: str | Path) -> Path:
    """Where an interrupted video is kept: ``clip.mp4`` -> ``clip.partial.mp4``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.partial{path.suffix}")


class VideoWriter:
    """Encode BGR frames into ``path`` at ``fps`` (displayed ``width`` x ``height``), with
    the sound of the source.

    The file is written under a temporary name beside ``path`` (``.<name>.<random><suffix>``)
    and renamed to ``path`` by :meth:`close` once complete, so ``path`` never holds half a video
    (a killed run leaves the temporary file, never a file without its index under the final
    name).  :meth:`close` with ``partial=True`` (an interrupted run) ends the sound where the
    pictures end and keeps the file as :func:`partial_name`; :meth:`abort` deletes it.

    The sound comes either from the packets a :class:`VideoReader` demuxes with each frame
    (``audio_streams=reader.audio_streams``, ``write(..., audio=frame.audio)``: the source is
    not opened again), or from the file ``audio_from`` (opened here).  ``time_base`` (the
    source stream's) makes ``write(image, pts=frame.pts)`` keep each frame's own presentation
    timestamp, so variable frame rates come through tick for tick; otherwise ``write(image,
    time)`` takes seconds (``None``: frame index / fps).  ``audio_until`` (seconds) leaves out
    the sound after that time (``--max-frames``).  ``tags``: (key, value) pairs for the video
    stream (language, title); an audio stream that is copied keeps its own.
    ``audio_mode`` reports what happened to each audio stream: ``"copied"`` or
    ``"transcoded to <codec>"``.
    """

    def __init__(
        self,
        path: str | Path,
        fps: float | Fraction,
        width: int,
        height: int,
        codec: str = "auto",
        audio_from: str | Path | None = None,
        source_codec: str | None = None,
        crf: int = DEFAULT_CRF,
        audio_until: float | None = None,
        time_base: Fraction | None = None,
        audio_streams=None,
        tags=(),
    ) -> None:
        from .fileio import PendingFile

        av = _av()
        self.path = Path(path)
        self.rate = Fraction(fps).limit_denominator(1_000_000) if fps and fps > 0 else Fraction(25)
        self.codec = choose_codec(self.path.suffix, codec, source_codec)
        if time_base is not None and (self.codec == "mpeg4" and Fraction(time_base).denominator > 65535):
            time_base = None  # MPEG-4 part 2 cannot hold that time base: frame times from seconds instead
        self.time_base = Fraction(time_base) if time_base else None
        self._file = PendingFile(self.path, suffix=self.path.suffix)
        try:
            self.container = av.open(self._file.tmp, "w", format=self._format())
        except av.FFmpegError as exc:
            self._file.discard()
            raise VideoError(f"{self.path}: cannot create video ({_reason(exc)})") from None
        self._audio_in = None
        self._closed = False
        self.audio_until = audio_until
        try:
            self.stream = self.container.add_stream(self.codec, rate=self.rate)
            self.stream.width, self.stream.height = int(width), int(height)
            self.stream.pix_fmt = self._pixel_format(int(width), int(height))
            self.stream.options = self._options(crf)
            if self.time_base is not None:
                self.stream.codec_context.time_base = self.time_base
                self.stream.time_base = self.time_base
            for key, value in tags:
                self.stream.metadata[key] = value
            self.audio_mode: list[str] = []
            self._audio: dict = {}  # input stream index -> (output stream, copy?)
            if audio_streams:
                self._add_audio(audio_streams, "the source")
            elif audio_from is not None:
                try:
                    self._audio_in = av.open(str(audio_from))
                except av.FFmpegError as exc:
                    raise VideoError(f"{audio_from}: cannot open for its audio ({_reason(exc)})") from None
                self._add_audio(self._audio_in.streams.audio, audio_from)
        except BaseException:
            self.container.close()
            if self._audio_in is not None:
                self._audio_in.close()
            self._file.discard()
            raise
        self._last_pts = -1
        self._end = 0.0  # seconds: where the last frame written ends
        self._count = 0
        self._queue: deque = deque()  # audio packets given with frames, not yet muxed
        self._packets = self._file_packets() if self._audio_in is not None else iter(())
        self._pending = None  # the next audio packet not yet muxed

    # -- setup ---------------------------------------------------------------------------
    def _format(self) -> str | None:
        """The muxer, named (the temporary file's name ends in the same suffix, but say it anyway)."""
        return CONTAINER_FORMATS.get(self.path.suffix.lower())

    def _pixel_format(self, width: int, height: int) -> str:
        if self.codec == "ffv1":
            return "bgr0"
        if self.codec in ("libx264", "libx265", "libvpx-vp9", "libaom-av1") and (width % 2 or height % 2):
            # 4:2:0 needs even sides; keep the exact size with full-resolution chroma instead.
            log.info("%s: %dx%d has an odd side; encoding yuv444p (4:2:0 needs even sides)", self.path, width, height)
            return "yuv444p"
        return "yuv420p"

    def _options(self, crf: int) -> dict:
        if self.codec in ("libx264", "libx265"):
            return {"crf": str(crf), "preset": "veryfast"}  # the detector, not the encoder, should set the pace
        if self.codec in ("libvpx-vp9", "libvpx", "libaom-av1"):
            return {"crf": str(max(crf + 13, 0)), "b": "0"}
        if self.codec == "mpeg4":
            return {"qscale": "2"}
        return {}

    def _add_audio(self, streams, source) -> None:
        supported = self.container.supported_codecs
        for a in streams:
            name = a.codec_context.name
            if name in supported:
                out = self.container.add_stream_from_template(a)
                self._audio[a.index] = (out, True)
                self.audio_mode.append("copied")
            else:
                target = self.container.default_audio_codec
                if not target or target == "none":
                    log.warning("%s: %s cannot hold audio; the sound of %s is left out", self.path,
                                self.path.suffix, source)
                    continue
                out = self.container.add_stream(target, rate=a.codec_context.sample_rate)
                if a.codec_context.layout is not None:
                    out.layout = a.codec_context.layout
                self._audio[a.index] = (out, False)
                self.audio_mode.append(f"transcoded to {target}")
                log.info("%s: audio codec %s cannot go into %s as it is; transcoding it to %s", self.path, name,
                         self.path.suffix, target)
            for key, value in _kept_tags(a):
                out.metadata[key] = value

    def _file_packets(self):
        wanted = [s for s in self._audio_in.streams.audio if s.index in self._audio]
        if not wanted:
            return
        for packet in self._audio_in.demux(*wanted):
            if packet.dts is None and packet.pts is None:
                continue  # demuxer flush packet
            yield packet

    # -- writing -------------------------------------------------------------------------
    def _next_packet(self):
        if self._queue:
            return self._queue.popleft()
        return next(self._packets, None)

    def _mux_audio(self, until: float | None) -> None:
        """Mux audio packets whose time is before ``until`` seconds (all when ``None``)."""
        if self.audio_until is not None:
            until = self.audio_until if until is None else min(until, self.audio_until)
        while True:
            if self._pending is None:
                self._pending = self._next_packet()
                if self._pending is None:
                    return
            packet = self._pending
            ts = packet.pts if packet.pts is not None else packet.dts
            t = float(ts * packet.time_base)
            if until is not None and t >= until:
                return
            self._pending = None
            entry = self._audio.get(packet.stream.index)
            if entry is None:
                continue
            out, copy = entry
            if copy:
                packet.stream = out
                self.container.mux(packet)
            else:
                for frame in packet.decode():
                    frame.pts = None  # the encoder numbers its own samples
                    for p in out.encode(frame):
                        self.container.mux(p)

    def write(self, image: np.ndarray, time: float | None = None, pts: int | None = None, audio=()) -> None:
        """Append one BGR uint8 frame: shown at its source ``pts`` (with ``time_base``), else at
        ``time`` seconds; ``audio``: the source's audio packets that came with it."""
        av = _av()
        if image.shape[1] != self.stream.width or image.shape[0] != self.stream.height:
            raise VideoError(f"{self.path}: frame of {image.shape[1]}x{image.shape[0]}, the video is "
                             f"{self.stream.width}x{self.stream.height}")
        self._queue.extend(audio)
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
        if self.time_base is not None and pts is not None:
            base = self.time_base
            step = max(1, int(round(1 / (self.rate * base))))
        else:
            base = 1 / self.rate
            pts = self._count if time is None else int(round(time * self.rate))
            step = 1
        pts = max(int(pts), self._last_pts + 1)  # strictly increasing, whatever the input's timestamps
        frame.pts = pts
        frame.time_base = base
        try:
            for packet in self.stream.encode(frame):
                self.container.mux(packet)
            self._mux_audio(float(pts * base))  # interleaved, never all in memory
        except av.FFmpegError as exc:
            raise VideoError(f"{self.path}: cannot write video ({_reason(exc)})") from None
        self._last_pts = pts
        self._end = float((pts + step) * base)
        self._count += 1

    @property
    def frames(self) -> int:
        return self._count

    def close(self, partial: bool = False, cut_audio: bool = False) -> Path:
        """Flush the video encoder, mux the rest of the audio (up to ``audio_until``; with
        ``cut_audio`` or ``partial``, up to the end of the last frame written), close the file and
        rename it to its name (``partial``: to :func:`partial_name`).  Returns where it is."""
        if self._closed:
            return self.path
        self._closed = True
        av = _av()
        try:
            try:
                for packet in self.stream.encode():
                    self.container.mux(packet)
                self._mux_audio(self._end if partial or cut_audio else None)
                for out, copy in self._audio.values():
                    if not copy:
                        for p in out.encode():
                            self.container.mux(p)
            except av.FFmpegError as exc:
                raise VideoError(f"{self.path}: cannot finish video ({_reason(exc)})") from None
            finally:
                self.container.close()
                if self._audio_in is not None:
                    self._audio_in.close()
            return self._file.commit(partial_name(self.path) if partial else None)
        finally:
            if not self._file.done:
                self._file.discard()

    def abort(self) -> None:
        """Stop writing and delete what was written (nothing is left under any name)."""
        if self._closed:
            return
        self._closed = True
        try:
            self.container.close()
        except Exception:  # noqa: BLE001 - the file is deleted anyway
            pass
        if self._audio_in is not None:
            self._audio_in.close()
        self._file.discard()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False
