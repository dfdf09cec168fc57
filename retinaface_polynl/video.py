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
from collections.abc import Iterator
from dataclasses import dataclass
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
    """What :func:`probe` finds: ``width`` x ``height`` as displayed (rotation applied)."""

    fps: Fraction
    frames: int  # from the container header, else estimated from the duration (0 when unknown)
    width: int
    height: int
    codec: str
    rotation: int  # degrees, counter-clockwise, that the player applies
    audio: tuple[AudioInfo, ...]

    @property
    def lossless(self) -> bool:
        return self.codec in LOSSLESS_CODECS


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


def probe(path: str | Path) -> VideoInfo | None:
    """A video file's :class:`VideoInfo`, or ``None`` when it holds no decodable video stream."""
    av = _av()
    try:
        container = av.open(str(path))
    except av.FFmpegError:
        return None
    try:
        if not container.streams.video:
            return None
        vs = container.streams.video[0]
        ctx = vs.codec_context
        if not ctx.width or not ctx.height:
            return None
        fps = _rate(vs)
        frames = int(vs.frames or 0)
        if frames <= 0:
            duration = _stream_duration(vs, container)
            frames = int(round(duration * fps)) if duration else 0
        rotation = 0
        # The rotation is only known for certain from a decoded frame (side data); decode one.
        try:
            for frame in container.decode(vs):
                rotation = int(frame.rotation or 0) % 360
                break
            else:
                return None
        except av.FFmpegError:
            return None
        w, h = ctx.width, ctx.height
        if rotation in (90, 270):
            w, h = h, w
        audio = tuple(
            AudioInfo(a.codec_context.name, int(a.codec_context.sample_rate or 0), int(a.codec_context.channels or 0),
                      _stream_duration(a, container))
            for a in container.streams.audio
        )
        return VideoInfo(fps, frames, int(w), int(h), ctx.name, rotation, audio)
    finally:
        container.close()


def upright(image: np.ndarray, rotation: int) -> np.ndarray:
    """The frame as a player shows it: rotated ``rotation`` degrees counter-clockwise."""
    k = (int(rotation) // 90) % 4
    return np.ascontiguousarray(np.rot90(image, k)) if k else image


@dataclass
class Frame:
    index: int
    image: np.ndarray  # BGR uint8, upright
    time: float | None  # presentation time in seconds


def iter_frames(path: str | Path, max_frames: int | None = None) -> Iterator[Frame]:
    """Decode a video's frames (first video stream) upright, as BGR uint8.

    Raises :class:`VideoError` naming the file when it cannot be opened; a decoding error
    after some frames raises it too, after those frames were yielded (the message says at
    which frame), so a caller keeps what was read.
    """
    av = _av()
    container = _open_input(path)
    try:
        if not container.streams.video:
            raise VideoError(f"{path}: no video stream")
        vs = container.streams.video[0]
        vs.thread_type = "AUTO"
        index = 0
        try:
            for frame in container.decode(vs):
                if max_frames is not None and index >= max_frames:
                    return
                image = upright(frame.to_ndarray(format="bgr24"), frame.rotation or 0)
                time = float(frame.time) if frame.time is not None else None
                yield Frame(index, image, time)
                index += 1
        except av.FFmpegError as exc:
            where = f"after frame {index - 1}" if index else "before the first frame"
            raise VideoError(f"{path}: video decoding failed {where} ({_reason(exc)})") from None
    finally:
        container.close()


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


class VideoWriter:
    """Encode BGR frames into ``path`` at ``fps`` (displayed ``width`` x ``height``),
    copying the audio of ``audio_from`` (a file) into it.

    ``write(image, time)`` takes the frame's presentation time in seconds (``None``:
    frame index / fps); ``close()`` flushes the encoder and the rest of the audio.
    ``audio_until`` (seconds) leaves out the sound after that time: a video cut short
    (``--max-frames``) keeps sound only as long as its pictures.
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
    ) -> None:
        av = _av()
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rate = Fraction(fps).limit_denominator(1_000_000) if fps and fps > 0 else Fraction(25)
        self.codec = choose_codec(self.path.suffix, codec, source_codec)
        try:
            self.container = av.open(str(self.path), "w")
        except av.FFmpegError as exc:
            raise VideoError(f"{self.path}: cannot create video ({_reason(exc)})") from None
        self._audio_in = None
        self._closed = False
        self.audio_until = audio_until
        try:
            self.stream = self.container.add_stream(self.codec, rate=self.rate)
            self.stream.width, self.stream.height = int(width), int(height)
            self.stream.pix_fmt = self._pixel_format(int(width), int(height))
            self.stream.options = self._options(crf)
            self.audio_mode: list[str] = []
            self._audio: list = []  # (input stream, output stream, copy?)
            if audio_from is not None:
                self._add_audio(audio_from)
        except BaseException:
            self.container.close()
            if self._audio_in is not None:
                self._audio_in.close()
            raise
        self._last_pts = -1
        self._count = 0
        self._packets = self._audio_packets()
        self._pending = None  # the next audio packet not yet muxed

    # -- setup ---------------------------------------------------------------------------
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

    def _add_audio(self, source: str | Path) -> None:
        av = _av()
        try:
            self._audio_in = av.open(str(source))
        except av.FFmpegError as exc:
            raise VideoError(f"{source}: cannot open for its audio ({_reason(exc)})") from None
        supported = self.container.supported_codecs
        for a in self._audio_in.streams.audio:
            name = a.codec_context.name
            if name in supported:
                out = self.container.add_stream_from_template(a)
                self._audio.append((a, out, True))
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
                self._audio.append((a, out, False))
                self.audio_mode.append(f"transcoded to {target}")
                log.info("%s: audio codec %s cannot go into %s as it is; transcoding it to %s", self.path, name,
                         self.path.suffix, target)

    def _audio_packets(self):
        if not self._audio:
            return iter(())
        by_index = {a.index: (out, copy) for a, out, copy in self._audio}

        def packets():
            for packet in self._audio_in.demux(*[a for a, _, _ in self._audio]):
                if packet.dts is None and packet.pts is None:
                    continue  # demuxer flush packet
                out, copy = by_index[packet.stream.index]
                yield packet, out, copy

        return packets()

    # -- writing -------------------------------------------------------------------------
    def _mux_audio(self, until: float | None) -> None:
        """Mux audio packets whose time is before ``until`` seconds (all when ``None``)."""
        if self.audio_until is not None:
            until = self.audio_until if until is None else min(until, self.audio_until)
        while True:
            if self._pending is None:
                self._pending = next(self._packets, None)
                if self._pending is None:
                    return
            packet, out, copy = self._pending
            ts = packet.pts if packet.pts is not None else packet.dts
            t = float(ts * packet.time_base)
            if until is not None and t >= until:
                return
            self._pending = None
            if copy:
                packet.stream = out
                self.container.mux(packet)
            else:
                for frame in packet.decode():
                    frame.pts = None  # the encoder numbers its own samples
                    for p in out.encode(frame):
                        self.container.mux(p)

    def write(self, image: np.ndarray, time: float | None = None) -> None:
        """Append one BGR uint8 frame shown at ``time`` seconds."""
        av = _av()
        if image.shape[1] != self.stream.width or image.shape[0] != self.stream.height:
            raise VideoError(f"{self.path}: frame of {image.shape[1]}x{image.shape[0]}, the video is "
                             f"{self.stream.width}x{self.stream.height}")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
        pts = self._count if time is None else int(round(time * self.rate))
        pts = max(pts, self._last_pts + 1)  # strictly increasing, whatever the input's timestamps
        frame.pts = pts
        frame.time_base = 1 / self.rate
        try:
            for packet in self.stream.encode(frame):
                self.container.mux(packet)
            # audio up to half a second past this frame: interleaved, never all in memory
            self._mux_audio(float(pts / self.rate) + 0.5)
        except av.FFmpegError as exc:
            raise VideoError(f"{self.path}: cannot write video ({_reason(exc)})") from None
        self._last_pts = pts
        self._count += 1

    @property
    def frames(self) -> int:
        return self._count

    def close(self) -> None:
        """Flush the video encoder, mux the rest of the audio (up to ``audio_until``), close the file."""
        if self._closed:
            return
        self._closed = True
        av = _av()
        try:
            for packet in self.stream.encode():
                self.container.mux(packet)
            self._mux_audio(None)
            for _, out, copy in self._audio:
                if not copy:
                    for p in out.encode():
                        self.container.mux(p)
        except av.FFmpegError as exc:
            raise VideoError(f"{self.path}: cannot finish video ({_reason(exc)})") from None
        finally:
            self.container.close()
            if self._audio_in is not None:
                self._audio_in.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
