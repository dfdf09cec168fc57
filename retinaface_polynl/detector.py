"""``Detector``: the Python API everything else (CLI, TTA, evaluation) stands on.

    image (BGR uint8, as OpenCV reads it) -> resize (optional) -> minus BGR mean
    -> backend (the network + anchor decoding) -> score threshold -> top-k
    -> NMS (torchvision) -> boxes / scores / landmarks in original-image pixels

Input size is explicit: by default the network sees the image at its original
size; ``size`` resizes the short side to that many pixels and ``max_size`` caps
the long side (both may be given; the smaller scale wins).  Colour order is BGR
unless ``rgb=True``.

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
from dataclasses import dataclass
from pathlib import Path
import operator
from typing import Any, NamedTuple

import cv2
import numpy as np
import torch
from torchvision.ops import nms

from .checkpoints import load_model
from .media import Prefetcher, decode_image, read_image, to_bgr_uint8
from .presets import ModelConfig, get_preset

log = logging.getLogger(__name__)

BGR_MEAN = (104.0, 117.0, 123.0)
STRIDE = 32  # the coarsest pyramid stride: batches are padded to a multiple of it
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
        return dict(self.seconds, forward_passes=self.forward_passes)


class Face(NamedTuple):
    """One face of a :class:`Detections`: ``box`` (4,) ``x1, y1, x2, y2``, ``score``,
    ``landmarks`` (5, 2), in the image's pixels."""

    box: np.ndarray
    score: float
    landmarks: np.ndarray


@dataclass
class Detections:
    """Faces found in one image, in that image's pixels.

    Attributes:
        boxes: (N, 4) float32 ``x1, y1, x2, y2``.
        scores: (N,) float32 face probability, descending.
        landmarks: (N, 5, 2) float32: left eye, right eye, nose, left and right
            mouth corners (left/right as seen in the image).
    """

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray

    @classmethod
    def empty(cls) -> "Detections":
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0, 5, 2), np.float32))

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def __getitem__(self, i: int) -> Face:
        """The ``i``-th face (scores descending) as a :class:`Face`; :meth:`select` takes masks and index arrays."""
        try:
            i = operator.index(i)
        except TypeError:
            raise TypeError(f"a face index must be an integer, got {type(i).__name__}; "
                            "use .select(mask_or_indices) for several faces") from None
        return Face(self.boxes[i], float(self.scores[i]), self.landmarks[i])

    def __iter__(self) -> Iterator[Face]:
        """``for face in detections``: each :class:`Face`, best first."""
        return (self[i] for i in range(len(self)))

    def select(self, keep: np.ndarray) -> "Detections":
        """The faces picked by a boolean mask or index array, e.g. ``d.select(d.scores >= 0.8)``."""
        return Detections(self.boxes[keep], self.scores[keep], self.landmarks[keep])

    def to_dict(self) -> dict[str, list]:
        """Plain Python: ``{"boxes": [[x1, y1, x2, y2], ...], "scores": [...], "landmarks": [[[x, y] x5], ...]}``."""
        return {
            "boxes": np.round(self.boxes.astype(float), 2).tolist(),
            "scores": np.round(self.scores.astype(float), 5).tolist(),
            "landmarks": np.round(self.landmarks.astype(float), 2).tolist(),
        }

    def to_xywh(self) -> np.ndarray:
        """Boxes as ``x, y, w, h`` (the WIDER FACE submission layout)."""
        b = self.boxes.copy()
        b[:, 2:] -= b[:, :2]
        return b

    def align(self, image: np.ndarray, size: int = 112) -> np.ndarray:
        """Aligned face crops (N, size, size, 3) of ``image`` (the picture these faces were found
        in): the five landmarks mapped onto the ArcFace template, see :mod:`retinaface_polynl.align`."""
        from .align import align_faces

        return align_faces(image, self.landmarks, size)


def _shipped_folder(package_dir: str, repo_dir: str) -> list[Path]:
    """Where a folder shipped with the package lives: installed as ``retinaface_polynl/<package_dir>``
    (a plain ``pip install``), or at the top of the source tree (an editable install)."""
    from importlib import resources

    candidates = []
    try:
        candidates.append(Path(str(resources.files("retinaface_polynl") / package_dir)))
    except (ModuleNotFoundError, TypeError):  # pragma: no cover - unusual installs
        pass
    candidates.append(Path(__file__).resolve().parents[1] / repo_dir)
    return candidates


def default_weights_path() -> Path | None:
    """The checkpoint shipped with the package, if any (no download, ever)."""
    for folder in _shipped_folder("_weights", "weights"):
        default = folder / "default.pth"
        if default.is_file():
            return default
    return None


def demo_dir() -> Path | None:
    """The demo photos shipped with the package (``demo/astronaut.jpg``), if any."""
    for folder in _shipped_folder("_demo", "demo"):
        if (folder / "astronaut.jpg").is_file():
            return folder
    return None


def resize_scale(height: int, width: int, size: int | None, max_size: int | None) -> float:
    """Scale factor that brings the short side to ``size`` and keeps the long side <= ``max_size``."""
    scale = 1.0
    if size is not None:
        scale = size / min(height, width)
    if max_size is not None and max(height, width) * scale > max_size:
        scale = max_size / max(height, width)
    return scale


def preprocess(image_bgr: np.ndarray, scale: float = 1.0, multiple: int | None = None) -> np.ndarray:
    """BGR uint8 (H, W, 3) -> float32 (3, H', W'), resized by ``scale``, minus the BGR mean.

    ``multiple``: also pad the result with zeros (the mean colour) at the bottom and right to
    sides that are multiples of it, as :func:`pad_batch` would, without a second copy."""
    if scale != 1.0:
        h, w = image_bgr.shape[:2]
        new = (max(1, round(w * scale)), max(1, round(h * scale)))
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        image_bgr = cv2.resize(image_bgr, new, interpolation=interp)
    # One pass per channel, straight from HWC uint8 into CHW float32 (about 6x faster at
    # VGA than converting, subtracting and transposing as three whole-image steps).
    h, w = image_bgr.shape[:2]
    if multiple:
        ph, pw = -(-h // multiple) * multiple, -(-w // multiple) * multiple
        x = np.zeros((3, ph, pw), np.float32) if (ph, pw) != (h, w) else np.empty((3, h, w), np.float32)
    else:
        x = np.empty((3, h, w), np.float32)
    for c, mean in enumerate(BGR_MEAN):
        np.subtract(image_bgr[:, :, c], np.float32(mean), out=x[c, :h, :w], dtype=np.float32)
    return x


def pad_batch(arrays: Sequence[np.ndarray], multiple: int = STRIDE) -> np.ndarray:
    """Stack (3, h, w) arrays into (B, 3, H, W), zero-padded (i.e. mean-coloured) at the bottom/right.
    One array whose sides are already multiples of ``multiple`` comes back as a view, uncopied."""
    h = max(a.shape[1] for a in arrays)
    w = max(a.shape[2] for a in arrays)
    h, w = -(-h // multiple) * multiple, -(-w // multiple) * multiple
    if len(arrays) == 1 and arrays[0].shape[1:] == (h, w):
        return arrays[0][None]
    out = np.zeros((len(arrays), 3, h, w), np.float32)
    for i, a in enumerate(arrays):
        out[i, :, : a.shape[1], : a.shape[2]] = a
    return out


@contextmanager
def torch_threads(threads: int | None):
    """Run a block with ``threads`` torch intra-op threads, then restore the caller's count
    (``None``: leave torch's setting alone).  Per call rather than process-wide, so two
    detectors with different settings, or the caller's own torch code, do not change each other."""
    before = torch.get_num_threads()
    if threads is None or threads == before:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class TorchBackend:
    """Runs the PyTorch model; returns decoded boxes, scores and landmarks for every anchor.

    ``threads``: torch intra-op threads during each call (``None``: torch's own setting).
    ``precision="fp16"``: the network (backbone to heads) runs under float16 autocast and
    the anchors are decoded in float32, as the fp16 ONNX export does; the model's own
    weights stay float32 (so the first BatchNorm's variance, above float16's range, is
    never stored in float16), and ``model`` stays the one the caller may fine-tune.
    """

    name = "torch"

    def __init__(
        self, model: torch.nn.Module, device: torch.device, threads: int | None = None, precision: str = "fp32"
    ) -> None:
        if precision not in ("fp32", "fp16"):
            raise ValueError(f"the torch backend runs fp32 or fp16, got precision={precision!r}")
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.threads = threads
        self.precision = precision

    @torch.inference_mode()
    def __call__(self, batch: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        with torch_threads(self.threads):
            x = torch.from_numpy(batch).to(self.device)
            if self.precision == "fp16":
                p = self._predict_half(x)
            else:
                p = self.model.predict(x)
            return p.boxes.float().cpu(), p.scores.float().cpu(), p.landmarks.float().cpu()

    def _predict_half(self, x: torch.Tensor):
        m = self.model
        with torch.autocast(self.device.type, dtype=torch.float16):
            features = m.features(x)
            out = m.heads(features)
        out = type(out)(*(t.float() for t in out))
        anchors = m.anchor_generator.grid_anchors([f.shape[-2:] for f in features], dtype=torch.float32, device=x.device)
        return m.decode(out, anchors)


def postprocess(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    landmarks: torch.Tensor,
    threshold: float,
    nms_threshold: float,
    top_k: int,
    max_detections: int,
) -> Detections:
    """One image's decoded anchors -> thresholded, NMS-ed detections (input pixels)."""
    if scores.device.type == "cpu":  # numpy finds the few anchors above the threshold ~10x faster
        keep = torch.from_numpy(np.flatnonzero(scores.numpy() > threshold))
    else:
        keep = torch.nonzero(scores > threshold).squeeze(1)
    boxes, scores, landmarks = boxes[keep], scores[keep], landmarks[keep]
    if scores.numel() > top_k:
        scores, order = scores.topk(top_k)
        boxes, landmarks = boxes[order], landmarks[order]
    keep = nms(boxes, scores, nms_threshold)[:max_detections]  # one class: what batched_nms would do
    return Detections(boxes[keep].numpy(), scores[keep].numpy(), landmarks[keep].numpy())


def scale_back(det: Detections, scale: float, height: int, width: int) -> Detections:
    """Input-pixel detections -> original-image pixels (boxes clipped to the image)."""
    boxes = det.boxes / scale
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, width)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, height)
    return Detections(boxes.astype(np.float32), det.scores, (det.landmarks / scale).astype(np.float32))


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
            ``recommended_max_size`` long-side cap: the scale range it was trained for,
            recorded as ``inference`` in the checkpoint or the exported file's metadata).
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
            call and restored after it); default: torch's current count (the number of
            cores, or ``OMP_NUM_THREADS``), so the two engines never ask for more
            threads than the machine has.  onnxruntime's threads do not spin between
            calls, so a caller that alternates detectors is not slowed by idle ones.
        providers: onnxruntime execution providers; ``intra_op_threads``: old name of ``threads``.

    ``self.backend`` is the one seam to the network: any callable taking a
    float32 batch (B, 3, H, W) and returning decoded ``boxes (B, A, 4)``,
    ``scores (B, A)`` and ``landmarks (B, A, 5, 2)`` torch tensors (as
    :class:`TorchBackend` does) can replace it.
    """

    # The checkpoint's own advice on input size (``inference: {"size": S, "max_size": N}``:
    # short side, long-side cap), used only when neither the Detector nor the call chooses
    # a size (see ``input_scale``).
    recommended_size: int | None = None
    recommended_max_size: int | None = None

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
        backend: str = "auto",
        providers: list | None = None,
        intra_op_threads: int | None = None,
        model: torch.nn.Module | None = None,
        threads: int | None = None,
        precision: str = "auto",
    ) -> None:
        self.device = _device(device)
        threads = _resolve_threads(threads, intra_op_threads)
        if precision not in ("auto", "fp32", "fp16"):
            raise ValueError(f"unknown precision {precision!r}; choose auto, fp32 or fp16")
        _check_options(threshold, size, max_size)
        if not 0.0 <= nms_threshold <= 1.0:
            raise ValueError(f"nms_threshold must be between 0 and 1 (an IoU), got {nms_threshold}")
        config = get_preset(preset) if isinstance(preset, str) else preset
        if model is not None and (weights is not None or config is not None):
            raise ValueError("give model= alone: it carries its own weights and configuration")
        if weights is None and config is None and model is None:
            weights = default_weights_path()
            if weights is None:
                raise ValueError(
                    "no default weights are installed with this package; pass weights=PATH "
                    "(e.g. a Pytorch_Retinaface mobilenet0.25_Final.pth) or preset=NAME for an untrained model"
                )
        self.weights = Path(weights) if weights is not None else None
        self.model: torch.nn.Module | None = None
        if backend not in ("auto", "torch", "onnxruntime", "tensorrt"):
            raise ValueError(f"unknown backend {backend!r}; choose auto, torch, onnxruntime or tensorrt")
        exported = self.weights is not None and _exported(self.weights)
        picked = None
        if exported and precision == "fp16":
            raise ValueError(f"{self.weights} is an exported file: it runs at the precision it was exported in; "
                             "drop precision= (export with --format onnx-fp16 for float16)")
        if backend == "auto" and not exported and self.weights is not None and config is None:
            from .export.auto import auto_backend

            picked = auto_backend(self.weights, self.device, threads=threads, providers=providers, precision=precision)
        if picked is not None or (self.weights is not None and (backend not in ("auto", "torch") or exported)):
            if config is not None:
                raise ValueError(f"{self.weights} runs as an exported model that carries its own preset; "
                                 "drop preset= (or pass backend='torch')")
            if picked is not None:
                self.backend, self.config = picked, picked.config
            else:
                from .export.runtime import load_backend

                self.backend, self.config = load_backend(
                    self.weights, device=self.device, providers=providers, intra_op_threads=threads,
                    backend=backend,
                )
            metadata = getattr(self.backend, "metadata", None)
            self._take_inference_hint(getattr(metadata, "inference", None))
            if precision != "auto" and self.precision != precision:
                raise ValueError(f"{self.weights} runs on {self.backend_name} at {self.precision}, not {precision}; "
                                 "pass backend='torch' to choose the precision")
        else:
            if model is not None:
                self.model, self.config = model.to(self.device).eval(), model.config
            elif self.weights is not None:
                loaded = load_model(self.weights, config=config, device=self.device)
                self.model, self.config = loaded.model, loaded.config
                self._take_inference_hint(loaded.extra.get("inference"))
            else:
                from .models.retinaface import RetinaFace

                log.warning("preset %s without weights: the network is untrained, its detections are noise", config.name)
                self.model, self.config = RetinaFace(config).eval(), config
            if precision == "auto":
                precision = "fp16" if self.device.type == "cuda" else "fp32"
            self.backend = TorchBackend(self.model, self.device, threads=threads, precision=precision)
        self.threads = threads
        self.threshold = threshold
        self.nms_threshold = nms_threshold
        self.top_k = top_k
        self.max_detections = max_detections
        self.size = size
        self.max_size = max_size
        self.size_limit = size_limit
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
            return self.threads if self.threads is not None else torch.get_num_threads()
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

    def _take_inference_hint(self, inference: dict | None) -> None:
        hint = inference or {}
        self.recommended_size, self.recommended_max_size = hint.get("size"), hint.get("max_size")

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
        """The (short side, long-side cap) a call uses: its arguments, else the Detector's,
        else the checkpoint's ``recommended_size`` / ``recommended_max_size``; ``None`` for both
        means the original size."""
        size = self.size if size is None else size
        max_size = self.max_size if max_size is None else max_size
        if size is None and max_size is None:
            size, max_size = self.recommended_size, self.recommended_max_size
        return size, max_size

    def input_scale(self, height: int, width: int, size: int | None = None, max_size: int | None = None) -> float:
        """Single-scale resize factor for an image at :meth:`input_size` (limited by
        ``size_limit`` when no ``max_size`` is set)."""
        size, max_size = self.input_size(size, max_size)
        scale = resize_scale(height, width, size, max_size)
        if max_size is None and self.size_limit is not None and max(height, width) * scale > self.size_limit:
            limited = self.size_limit / max(height, width)
            log.warning(
                "image of %dx%d would enter the network at %dx%d; downscaled to a long side of %d "
                "(size_limit; pass max_size= / --max-size to choose)",
                width,
                height,
                round(width * scale),
                round(height * scale),
                self.size_limit,
            )
            scale = limited
        return scale

    def predict_raw(self, batch: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
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
        from .tta import resolve_tta

        config = resolve_tta(tta)
        if config is not None:
            from .tta import detect_tta

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
        from .tta import detect_tta, resolve_tta

        config = resolve_tta(tta)
        if config is not None:
            return [detect_tta(self, im, config, threshold, size, max_size) for im in images]
        prepared = []
        with self.timings.measure("preprocess"):
            for bgr in images:
                h, w = bgr.shape[:2]
                scale = self.input_scale(h, w, size, max_size)
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


def _check_options(threshold: float | None = None, size: int | None = None, max_size: int | None = None) -> None:
    """Refuse a threshold outside [0, 1] or a size below 1 px: either would silently find no face."""
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be between 0 and 1 (a face probability), got {threshold}")
    for name, value in (("size", size), ("max_size", max_size)):
        if value is not None and value < 1:
            raise ValueError(f"{name} must be a positive number of pixels, got {value}")


def _is_many(images: Any) -> bool:
    """A list/tuple/generator of images, or a 4-D (B, H, W, C) array, as opposed to one image."""
    if isinstance(images, np.ndarray):
        return images.ndim == 4
    if isinstance(images, (str, Path, bytes, bytearray, memoryview)):
        return False
    return isinstance(images, Iterable)


def _exported(path: Path) -> bool:
    """Whether ``path`` is an exported model (ONNX or TensorRT engine) rather than a checkpoint."""
    from .export.runtime import detect_format

    return path.is_file() and detect_format(path) != "torch"


def _device(device: str | torch.device) -> torch.device:
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"unknown device {device!r}; use 'cpu', 'cuda' or 'cuda:N'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available on this machine; use device='cpu'")
    return dev
