"""``Detector``: the Python API the CLI and evaluation stand on.

    image (BGR uint8, as OpenCV reads it) -> resize (optional) -> minus BGR mean
    -> backend (the network + anchor decoding) -> score threshold -> top-k
    -> NMS (numpy, :mod:`retinaface_polynl.boxes`) -> boxes / scores / landmarks in original-image pixels

``Detector`` composes parts that live below it and know nothing of it: the steps
before and after the network (:mod:`retinaface_polynl.pipeline`: ``resize_scale``,
``preprocess``, ``pad_batch``, ``postprocess``, ``scale_back``, ``Detections``), the
backend, opened by :func:`retinaface_polynl.backends.open_backend` (PyTorch, onnxruntime,
TensorRT; numpy arrays at its boundary, so the default path needs no torch) and
test-time augmentation (:mod:`retinaface_polynl.tta`, handed the Detector as its
runner).  Those names are re-exported here, where they used to be defined.

Input size is explicit: by default the network sees the image at the size its
checkpoint records (the shipped weights: short side at least 480 px, never shrunk,
long side at most 1024 px), else at its original size; ``size`` resizes the short
side to that many pixels, ``min_size`` only enlarges pictures whose short side is
smaller, and ``max_size`` caps the long side (the smaller scale wins).  Colour order
is BGR unless ``rgb=True``.

Small-face zoom (:mod:`retinaface_polynl.zoom`): when the first pass finds a face
smaller than the model is reliable for, the picture is run again enlarged and the two
passes merged; the shipped weights record the rule (``inference["zoom"]``: x1.5 when a
face is under 48 input pixels), ``zoom=False`` turns it off.  It applies to single-scale
detection (TTA has its own scales).

Single-scale detection has a safety limit: when neither ``max_size`` (call) nor
``max_size`` (Detector) is given, an image whose long side would exceed
``size_limit`` (default 4096 px) is downscaled to it, with a warning, so that a
huge picture cannot exhaust memory; ``size_limit=None`` disables it.  Test-time
augmentation (``tta=``, see :mod:`retinaface_polynl.tta`) caps its scaled views
with its own ``TTAConfig.max_size`` (default 2000).

Batches (``detect_batch``, ``detect_iter``) group images by their padded network
input size, so results equal one-at-a-time ``detect``; ``padding="largest"`` pads
mixed sizes into one batch instead (fewer, fuller batches, but the padding changes
features near the bottom/right borders and the Poly-NL block's global average, so
results differ slightly: measured by ``scripts/bench_detect.py``).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .backends import Device, open_backend
from .media import Prefetcher, decode_image, read_image, to_bgr_uint8
# The shared steps live below this module (``Detector`` composes them); their names are
# re-exported here, where they were first defined, so ``from retinaface_polynl.detector
# import preprocess`` and the like keep working.
from .pipeline import (
    BGR_MEAN,
    STRIDE,
    Detections,
    Face,
    InputRule,
    hint_rule,
    pad_batch,
    postprocess,
    preprocess,
    resize_scale,
    scale_back,
)
from .presets import ModelConfig, get_preset
from .shipped import default_weights_path, demo_dir  # noqa: F401 (demo_dir re-exported)
from .tta import detect_tta, resolve_tta
from .zoom import ZoomRule, cut_by_region, merge_zoom, needs_zoom, resolve_zoom, shift, zoom_region, zoom_scale

if TYPE_CHECKING:  # pragma: no cover
    import torch

log = logging.getLogger(__name__)

SIZE_LIMIT = 4096  # default single-scale cap on the long side when no max_size is given


class StageTimes:
    """Seconds spent per stage (``decode``, ``preprocess``, ``network``, ``postprocess``).

    Every :class:`Detector` keeps one in ``detector.timings``; ``reset()`` it before a
    measurement.  The network stage includes the device transfer of the outputs (which
    synchronises a GPU).
    """

    STAGES = ("decode", "preprocess", "network", "postprocess")

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {k: 0.0 for k in self.STAGES}
        self.forward_passes = 0
        self.zoomed = 0  # pictures that took the small-face zoom's second pass

    def reset(self) -> None:
        self.__init__()

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

    @contextmanager
    def measure(self, stage: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - start)
            if stage == "network":
                self.forward_passes += 1

    def as_dict(self) -> dict[str, float]:
        return dict(self.seconds, forward_passes=self.forward_passes, zoomed=self.zoomed)


ImageLike = np.ndarray | str | Path | bytes


class Detector:
    """A RetinaFace / Poly-NL face detector.

    Args:
        weights: a checkpoint (ours or Pytorch_Retinaface's); ``None`` with no
            ``preset`` uses the weights shipped with the package.
        model: an in-memory :class:`~retinaface_polynl.models.retinaface.RetinaFace`
            instead of ``weights`` (it is moved to ``device`` and put in eval mode).
        preset: a preset name (``retinaface-polynl presets`` lists them) or a
            :class:`ModelConfig`.  With ``weights`` it overrides the checkpoint's
            own configuration (e.g. add a Poly-NL block to a plain checkpoint);
            alone it builds an untrained model (for benchmarks and training).
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        threshold: minimum face score kept.
        nms_threshold: IoU above which NMS suppresses the lower-scored box.
        top_k: boxes kept per image before NMS; ``max_detections`` after it.
        size, max_size: default input size (short side, long-side cap) for
            single-scale detection; ``None`` keeps the original size, unless the
            checkpoint recommends an input size (``recommended_size`` short side,
            ``recommended_max_size`` long-side cap, ``recommended_upscale_only``: the
            short side is a floor: the scale range it was trained for, recorded as
            ``inference`` in the checkpoint or the exported file's metadata).
        min_size: instead of ``size``, a floor on the short side: smaller pictures are
            enlarged to it, larger ones keep their size (up to ``max_size``).
        zoom: small-face zoom (:mod:`retinaface_polynl.zoom`): ``None``/``"auto"`` as the
            checkpoint records (``recommended_zoom``; the shipped weights: a second pass at
            1.5x when a face is under 48 input pixels), ``False``/``"off"`` never,
            ``True``/``"on"`` the recorded rule or else the default :class:`ZoomRule`, or a
            :class:`ZoomRule`.  The input size (``size``/``min_size``/``max_size``) is the
            first pass's either way.
        size_limit: when no ``max_size`` is given, images whose long side exceeds
            this are downscaled to it with a warning (``None``: no limit).
        backend: ``"auto"``: the fastest engine that finds the same faces on this
            device (:mod:`retinaface_polynl.export.auto`): for the shipped weights on
            CPU, onnxruntime on the ONNX file shipped beside them (PyTorch when
            onnxruntime is not installed); on CUDA, a TensorRT engine when TensorRT
            imports, else PyTorch in float16; for another ``.pth``, PyTorch; an
            ``.onnx`` file runs on onnxruntime, an engine file on TensorRT.
            ``"torch"`` forces PyTorch (needed for ``model``: attention maps,
            fine-tuning); ``"onnxruntime"`` with a ``.pth`` exports it once into the
            cache (``~/.cache/retinaface_polynl/onnx``) and runs that; ``"tensorrt"``
            builds a cached engine from an ``.onnx`` file (or a ``.pth``, exported first).
        precision: ``"auto"`` (float16 for PyTorch on CUDA, float32 otherwise; an
            exported file runs at the precision it was exported in), ``"fp32"`` or
            ``"fp16"`` (PyTorch: the network under float16 autocast, decoding in float32).
        threads: intra-op threads of whichever engine runs (torch's are set for each
            call and restored after it, one such call at a time, since the count is the
            process's); default: ``OMP_NUM_THREADS``, else the number of cores this
            process may use (PyTorch: torch's own setting), so engines never ask for more
            threads than the machine has.  onnxruntime's threads do not spin between
            calls, so a caller that alternates detectors is not slowed by idle ones.
        providers: onnxruntime execution providers; ``intra_op_threads``: old name of ``threads``.

    ``self.backend`` is the one seam to the network: any callable taking a
    float32 batch (B, 3, H, W) and returning decoded ``boxes (B, A, 4)``,
    ``scores (B, A)`` and ``landmarks (B, A, 5, 2)`` float32 numpy arrays (as every
    backend of :func:`~retinaface_polynl.backends.open_backend` does) can replace it.

    Threads: ``detect`` may be called from several threads at once on one Detector (onnxruntime
    sessions run concurrently; PyTorch calls that set a thread count are serialised); the
    ``timings`` it keeps are then approximate.
    """

    # The checkpoint's own advice on input size (``inference: {"min_size": S, "max_size": N}``:
    # short side at least S, never shrunk, long side at most N; or ``{"size": S, ...}``: short
    # side S exactly), used only when neither the Detector nor the call chooses a size (see
    # ``input_rule``).
    recorded_rule: InputRule = InputRule()
    # ``Detector(min_size=...)``: a floor on the short side chosen by the caller (None: none)
    min_size: int | None = None
    # the checkpoint's small-face zoom (``inference["zoom"]``) and the caller's choice (see ``zoom_rule``)
    recommended_zoom: ZoomRule | None = None
    zoom_setting: Any = None

    def __init__(
        self,
        weights: str | Path | None = None,
        preset: str | ModelConfig | None = None,
        device: str = "cpu",
        threshold: float = 0.5,
        nms_threshold: float = 0.4,
        top_k: int = 5000,
        max_detections: int = 750,
        size: int | None = None,
        max_size: int | None = None,
        size_limit: int | None = SIZE_LIMIT,
        min_size: int | None = None,
        backend: str = "auto",
        providers: list | None = None,
        intra_op_threads: int | None = None,
        model: "torch.nn.Module | None" = None,
        threads: int | None = None,
        precision: str = "auto",
        zoom: "bool | str | ZoomRule | None" = None,
    ) -> None:
        self.device = Device.parse(device)
        resolve_zoom(zoom, None)  # refuse a malformed choice before loading anything
        threads = _resolve_threads(threads, intra_op_threads)
        _check_options(threshold, size, max_size, min_size)
        if size is not None and min_size is not None:
            raise ValueError("give size= (the short side exactly) or min_size= (a floor on it), not both")
        if not 0.0 <= nms_threshold <= 1.0:
            raise ValueError(f"nms_threshold must be between 0 and 1 (an IoU), got {nms_threshold}")
        if weights is None and preset is None and model is None:
            weights = default_weights_path()
            if weights is None:
                raise ValueError(
                    "no default weights are installed with this package; pass weights=PATH "
                    "(e.g. a Pytorch_Retinaface mobilenet0.25_Final.pth) or preset=NAME for an untrained model"
                )
        self.weights = Path(weights) if weights is not None else None
        opened = open_backend(self.weights, backend=backend, device=self.device, precision=precision,
                              threads=threads, providers=providers, config=preset, model=model,
                              shipped=default_weights_path())
        self.backend, self.config, self.model = opened.backend, opened.config, opened.model
        self.recorded_rule, self.recommended_zoom = opened.rule, opened.zoom
        self.threads = threads
        self.threshold = threshold
        self.nms_threshold = nms_threshold
        self.top_k = top_k
        self.max_detections = max_detections
        self.size = size
        self.min_size = min_size
        self.max_size = max_size
        self.size_limit = size_limit
        self.zoom_setting = zoom
        self.timings = StageTimes()

    @property
    def backend_name(self) -> str:
        """``"torch"``, ``"onnxruntime"``, ``"tensorrt"`` (or a replacement backend's name)."""
        return getattr(self.backend, "name", type(self.backend).__name__)

    @property
    def precision(self) -> str:
        """The precision the network runs at: ``fp32``, ``fp16``, ``int8`` or ``int8-qdq``."""
        return str(getattr(self.backend, "precision", "fp32"))

    @property
    def intra_op_threads(self) -> int | None:
        """Intra-op threads the engine uses per call (``None``: a GPU engine, or unknown)."""
        threads = getattr(self.backend, "intra_op_threads", None)
        if threads is not None:
            return int(threads)
        if self.backend_name == "torch" and self.device.type == "cpu":
            if self.threads is not None:
                return self.threads
            import torch  # the torch backend is running: torch is there

            return torch.get_num_threads()
        return None

    def describe(self) -> str:
        """One line for summaries: ``r18x025_polynl on onnxruntime fp32, 2 threads (default.onnx)``."""
        threads = self.intra_op_threads
        where = f", {threads} thread{'s' if threads != 1 else ''}" if threads else f" on {self.device}"
        source = getattr(self.backend, "path", None) or self.weights
        return f"{self.config.name} on {self.backend_name} {self.precision}{where}" + (
            f" ({Path(source).name})" if source else ""
        )

    def __repr__(self) -> str:
        return (
            f"Detector(preset={self.config.name!r}, backbone={self.config.backbone!r}, "
            f"attention={self.config.attention!r}, weights={str(self.weights) if self.weights else None!r}, "
            f"backend={self.backend_name!r}, precision={self.precision!r}, "
            f"threads={self.intra_op_threads!r}, device={str(self.device)!r})"
        )

    # The recorded rule's parts, by their old names (scripts set them to None to run at original size).
    @property
    def recommended_size(self) -> int | None:
        return self.recorded_rule.size

    @recommended_size.setter
    def recommended_size(self, value: int | None) -> None:
        self.recorded_rule = self.recorded_rule._replace(size=value)

    @property
    def recommended_max_size(self) -> int | None:
        return self.recorded_rule.max_size

    @recommended_max_size.setter
    def recommended_max_size(self, value: int | None) -> None:
        self.recorded_rule = self.recorded_rule._replace(max_size=value)

    @property
    def recommended_upscale_only(self) -> bool:
        return self.recorded_rule.upscale_only

    @property
    def zoom_rule(self) -> ZoomRule | None:
        """The small-face zoom single-scale detection applies (``None``: one pass only)."""
        return resolve_zoom(self.zoom_setting, self.recommended_zoom)

    def describe_zoom(self) -> str:
        """The zoom rule in words, for summaries: ``zoom x2 when a face is under 48 px`` or ``no zoom``."""
        rule = self.zoom_rule
        return rule.describe() if rule is not None else "no zoom"

    def input_rule(self, size: int | None = None, max_size: int | None = None) -> InputRule:
        """The :class:`~retinaface_polynl.pipeline.InputRule` of a call: each of its ``size`` /
        ``max_size`` or else the Detector's (``size`` exactly, or ``min_size`` as a floor that a
        call's ``size`` replaces); when none of them is set, the rule the weights record.
        Unpacks as ``(short side, long-side cap, upscale_only)``."""
        short = self.size if size is None else size
        cap = self.max_size if max_size is None else max_size
        if size is None and self.min_size is not None:
            return InputRule(self.min_size, cap, True)
        if short is not None or cap is not None:
            return InputRule(short, cap, False)
        return self.recorded_rule

    def describe_input(self, size: int | None = None, max_size: int | None = None) -> str:
        """The input-size rule in words, for summaries: ``short side at least 480, long side <= 1024``."""
        return self.input_rule(size, max_size).describe()

    # -- helpers shared with TTA -------------------------------------------------------
    def prepare(self, image: ImageLike, rgb: bool = False) -> np.ndarray:
        """Any accepted image (path, encoded file bytes, BGR/RGB/gray/RGBA array, 8/16-bit) -> BGR uint8 (H, W, 3)."""
        with self.timings.measure("decode"):
            if isinstance(image, (str, Path)):
                return read_image(image)
            if isinstance(image, (bytes, bytearray, memoryview)):
                return decode_image(image)
            return to_bgr_uint8(image, rgb=rgb)

    def input_size(self, size: int | None = None, max_size: int | None = None) -> tuple[int | None, int | None]:
        """The (short side, long-side cap) a call uses (see :meth:`input_rule`); ``None`` for both
        means the original size."""
        rule = self.input_rule(size, max_size)
        return rule.size, rule.max_size

    def input_scale(self, height: int, width: int, size: int | None = None, max_size: int | None = None) -> float:
        """Single-scale resize factor for an image under :meth:`input_rule` (limited by
        ``size_limit`` when no ``max_size`` is set, with a warning)."""
        rule = self.input_rule(size, max_size)
        scale, wanted = rule.scale(height, width, self.size_limit), rule.scale(height, width)
        if scale < wanted:
            log.warning(
                "image of %dx%d would enter the network at %dx%d; downscaled to a long side of %d "
                "(size_limit; pass max_size= / --max-size to choose)",
                width, height, round(width * wanted), round(height * wanted), self.size_limit,
            )
        return scale

    def predict_raw(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Preprocessed batch (B, 3, H, W) -> decoded boxes (B, A, 4), scores (B, A), landmarks (B, A, 5, 2)
        in network-input pixels, for every anchor."""
        return self.backend(batch)

    def postprocess(self, boxes, scores, landmarks, threshold: float | None = None) -> Detections:
        return postprocess(
            boxes,
            scores,
            landmarks,
            self.threshold if threshold is None else threshold,
            self.nms_threshold,
            self.top_k,
            self.max_detections,
        )

    # -- public API ----------------------------------------------------------------------
    def detect(
        self,
        image: ImageLike | Sequence[ImageLike],
        threshold: float | None = None,
        size: int | None = None,
        max_size: int | None = None,
        rgb: bool = False,
        tta: Any = None,
    ) -> Detections | list[Detections]:
        """Detect faces in one image: a path, the bytes of an image file, or an array (BGR
        as OpenCV reads it, or RGB with ``rgb=True``; gray, RGBA and 16-bit are accepted).

        ``tta``: ``None``/"none" (single scale), "flip", "paper" or a
        :class:`~retinaface_polynl.tta.TTAConfig`.  Given a list (or a 4-D array) of
        images, returns a list, as :meth:`detect_batch` does.
        """
        _check_options(threshold, size, max_size)
        if _is_many(image):
            return self.detect_batch(image, threshold=threshold, size=size, max_size=max_size, rgb=rgb, tta=tta)
        config = resolve_tta(tta)
        if config is not None:
            return detect_tta(self, self.prepare(image, rgb=rgb), config, threshold, size, max_size)
        return self.detect_batch([image], threshold=threshold, size=size, max_size=max_size, rgb=rgb)[0]

    def detect_batch(
        self,
        images: Iterable[ImageLike] | ImageLike,
        threshold: float | None = None,
        size: int | None = None,
        max_size: int | None = None,
        rgb: bool = False,
        batch_size: int = 8,
        tta: Any = None,
        padding: str = "exact",
    ) -> list[Detections]:
        """Detect faces in several images of any sizes, ``batch_size`` per forward pass.

        ``padding="exact"`` (default) groups images by their network-input size padded
        to a multiple of 32, so the results equal :meth:`detect` run one image at a
        time.  ``padding="largest"`` batches images in input order, each batch padded
        to its largest member: fuller batches for mixed sizes, slightly different
        results (see the module docstring).  With ``tta`` each image runs its own
        augmented views (batched per scale).  A single image gives a list of one.
        """
        if not _is_many(images):
            images = [images]
        return self._detect_prepared(
            [self.prepare(im, rgb=rgb) for im in images], threshold, size, max_size, batch_size, tta, padding
        )

    def detect_iter(
        self,
        images: Iterable[ImageLike],
        threshold: float | None = None,
        size: int | None = None,
        max_size: int | None = None,
        rgb: bool = False,
        batch_size: int = 8,
        tta: Any = None,
        window: int | None = None,
        prefetch: int = 2,
    ) -> Iterator[Detections]:
        """Stream version of :meth:`detect_batch` for inputs of any length (a video, a
        folder): yields one :class:`Detections` per image, in order, holding at most
        ``window`` (default ``4 * batch_size``) decoded images.  Images are decoded in a
        background thread (``prefetch`` windows ahead; 0 decodes inline)."""
        window = window or max(1, 4 * batch_size)
        decoded = (self.prepare(im, rgb=rgb) for im in images)
        source = Prefetcher(decoded, maxsize=prefetch * window) if prefetch > 0 else decoded
        try:
            buffer: list[np.ndarray] = []
            for image in source:
                buffer.append(image)
                if len(buffer) >= window:
                    yield from self._detect_prepared(buffer, threshold, size, max_size, batch_size, tta)
                    buffer = []
            if buffer:
                yield from self._detect_prepared(buffer, threshold, size, max_size, batch_size, tta)
        finally:
            if isinstance(source, Prefetcher):
                source.close()

    # -- internals ------------------------------------------------------------------------
    def _detect_prepared(
        self,
        images: Sequence[np.ndarray],
        threshold: float | None,
        size: int | None,
        max_size: int | None,
        batch_size: int,
        tta: Any = None,
        padding: str = "exact",
    ) -> list[Detections]:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        _check_options(threshold, size, max_size)
        if padding not in ("exact", "largest"):
            raise ValueError(f"padding must be 'exact' or 'largest', got {padding!r}")
        config = resolve_tta(tta)
        if config is not None:
            return [detect_tta(self, im, config, threshold, size, max_size) for im in images]
        scales = [self.input_scale(im.shape[0], im.shape[1], size, max_size) for im in images]
        threshold = self.threshold if threshold is None else threshold
        rule = self.zoom_rule
        if rule is None:
            return self._run_scaled(images, scales, threshold, batch_size, padding)
        # small-face zoom: the first pass also keeps faces down to the rule's own score, so that
        # whether a picture is enlarged does not depend on the caller's threshold
        first = self._run_scaled(images, scales, min(threshold, rule.score), batch_size, padding)
        limit = getattr(self.backend, "max_input_hw", None)  # an engine with a fixed largest input
        crops = []  # (image index, region or None for the whole picture, crop, second scale)
        for i, (det, scale) in enumerate(zip(first, scales)):
            if not needs_zoom(det, scale, rule):
                continue
            h, w = images[i].shape[:2]
            region = zoom_region(det, scale, rule, h, w)
            if region == (0, 0, w, h):
                region, crop = None, images[i]
            else:
                x0, y0, x1, y1 = region
                crop = images[i][y0:y1, x0:x1]
            enlarged = zoom_scale(crop.shape[0], crop.shape[1], scale, rule, limit)
            if enlarged is not None:
                crops.append((i, region, crop, enlarged))
        results = [det.select(det.scores > threshold) for det in first]
        if crops:
            second_pass = self._run_scaled([c for _, _, c, _ in crops], [z for *_, z in crops], threshold,
                                           batch_size, padding)
            with self.timings.measure("postprocess"):
                for (i, region, _, _), det in zip(crops, second_pass):
                    if region is not None:
                        h, w = images[i].shape[:2]
                        det = shift(det, region[0], region[1])
                        det = det.select(~cut_by_region(det, region, h, w))
                    results[i] = merge_zoom(results[i], det, scales[i], rule, self.nms_threshold,
                                            self.max_detections, region)
            self.timings.zoomed += len(crops)
        return results

    def _run_scaled(self, images: Sequence[np.ndarray], scales: Sequence[float], threshold: float,
                    batch_size: int, padding: str) -> list[Detections]:
        """One single-scale pass: each image at its own scale, batched by padded input size
        (``padding="exact"``) or in order (``"largest"``); detections in original pixels."""
        prepared = []
        with self.timings.measure("preprocess"):
            for bgr, scale in zip(images, scales):
                h, w = bgr.shape[:2]
                prepared.append((preprocess(bgr, scale, multiple=STRIDE), scale, h, w))
        results: list[Detections | None] = [None] * len(prepared)
        if padding == "exact":
            padded_shape = lambda a: (-(-a.shape[1] // STRIDE), -(-a.shape[2] // STRIDE))  # noqa: E731
            groups: dict[tuple[int, int], list[int]] = {}
            for i, (arr, *_rest) in enumerate(prepared):
                groups.setdefault(padded_shape(arr), []).append(i)
            chunks = [
                idx[start : start + batch_size] for idx in groups.values() for start in range(0, len(idx), batch_size)
            ]
        else:
            order = list(range(len(prepared)))
            chunks = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
        for chunk in chunks:
            with self.timings.measure("preprocess"):
                batch = pad_batch([prepared[i][0] for i in chunk])
            with self.timings.measure("network"):
                boxes, scores, landmarks = self.predict_raw(batch)
            with self.timings.measure("postprocess"):
                for j, i in enumerate(chunk):
                    _, scale, h, w = prepared[i]
                    det = self.postprocess(boxes[j], scores[j], landmarks[j], threshold)
                    results[i] = scale_back(det, scale, h, w)
        return results  # type: ignore[return-value]


def _resolve_threads(threads: int | None, intra_op_threads: int | None) -> int | None:
    if threads is not None and intra_op_threads is not None and threads != intra_op_threads:
        raise ValueError(f"threads={threads} and intra_op_threads={intra_op_threads} disagree; give threads= alone")
    threads = threads if threads is not None else intra_op_threads
    if threads is not None and (isinstance(threads, bool) or int(threads) != threads or threads < 1):
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    return None if threads is None else int(threads)


def _check_options(threshold: float | None = None, size: int | None = None, max_size: int | None = None,
                   min_size: int | None = None) -> None:
    """Refuse a threshold outside [0, 1] or a size below 1 px: either would silently find no face."""
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be between 0 and 1 (a face probability), got {threshold}")
    for name, value in (("size", size), ("max_size", max_size), ("min_size", min_size)):
        if value is not None and value < 1:
            raise ValueError(f"{name} must be a positive number of pixels, got {value}")


def _is_many(images: Any) -> bool:
    """A list/tuple/generator of images, or a 4-D (B, H, W, C) array, as opposed to one image."""
    if isinstance(images, np.ndarray):
        return images.ndim == 4
    if isinstance(images, (str, Path, bytes, bytearray, memoryview)):
        return False
    return isinstance(images, Iterable)
