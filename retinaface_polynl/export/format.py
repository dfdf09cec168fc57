"""What an exported file records and a runtime reads: names, pre-processing, metadata.

This module imports neither torch nor onnx (``read_metadata`` imports onnx when called), so the
light install (numpy, OpenCV, onnxruntime) can open and trust a file we exported: onnxruntime
hands its ``metadata_props`` to :func:`parse_metadata`.  The exporter
(:mod:`retinaface_polynl.export.onnx`) writes what this module describes.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..pipeline import BGR_MEAN, STRIDE  # the pre-processing the file records is the package's own
from ..presets import ModelConfig

__all__ = [
    "ENGINE_MAGIC",
    "ExportError",
    "FORMAT_VERSION",
    "HEAD_NAMES",
    "INPUT_NAME",
    "META_PREFIX",
    "NMS_OUTPUT",
    "NmsOptions",
    "OUTPUT_NAMES",
    "OnnxMetadata",
    "PRECISIONS",
    "PREPROCESSING",
    "keep_selected",
    "metadata_for",
    "parse_metadata",
    "read_metadata",
    "set_metadata",
    "TensorRTUnavailable",
]

FORMAT_VERSION = "1"
META_PREFIX = "retinaface_polynl."
INPUT_NAME = "input"
OUTPUT_NAMES = ("boxes", "scores", "landmarks")
HEAD_NAMES = ("box_deltas", "class_logits", "landmark_deltas")
NMS_OUTPUT = "selected"

PREPROCESSING = {
    "color": "BGR",
    "mean": list(BGR_MEAN),
    "scale": 1.0,  # no scaling: pixel values minus the mean
    "layout": "NCHW",
    "dtype": "float32",
    "stride": STRIDE,  # Detector pads the batch to a multiple of this (any size runs, though)
}

PRECISIONS = ("fp32", "fp16", "int8", "int8-qdq")


class ExportError(ValueError):
    """An export that cannot be done: bad destination, unsupported option, failed check."""


class TensorRTUnavailable(ExportError):
    """TensorRT, or a CUDA GPU, is not available here."""


ENGINE_MAGIC = b"RFPNLTRT"
"""First bytes of a TensorRT engine file written by ``retinaface-polynl export --format tensorrt``."""


@dataclass(frozen=True)
class NmsOptions:
    """In-graph ONNX ``NonMaxSuppression`` settings (per image, one class).

    ``max_detections`` caps the kept boxes per image; ``score_threshold`` drops
    anchors below it before NMS; ``iou_threshold`` is the suppression IoU.
    """

    iou_threshold: float = 0.4
    score_threshold: float = 0.5
    max_detections: int = 750

    def __post_init__(self) -> None:
        if not 0.0 < self.iou_threshold <= 1.0:
            raise ValueError(f"NMS iou_threshold must be in (0, 1], got {self.iou_threshold}")
        if not 0.0 <= self.score_threshold < 1.0:
            raise ValueError(f"NMS score_threshold must be in [0, 1), got {self.score_threshold}")
        if self.max_detections < 1:
            raise ValueError(f"NMS max_detections must be >= 1, got {self.max_detections}")


def set_metadata(model_proto: Any, values: dict[str, str]) -> None:
    """Add or replace ``metadata_props`` entries."""
    existing = {p.key: p for p in model_proto.metadata_props}
    for key, value in values.items():
        if key in existing:
            existing[key].value = value
        else:
            entry = model_proto.metadata_props.add()
            entry.key, entry.value = key, value


def metadata_for(config: ModelConfig, precision: str, nms: NmsOptions | None = None, **extra: Any) -> dict[str, str]:
    meta = {
        META_PREFIX + "format_version": FORMAT_VERSION,
        META_PREFIX + "config": json.dumps(config.to_dict(), sort_keys=True),
        META_PREFIX + "preprocessing": json.dumps(PREPROCESSING, sort_keys=True),
        META_PREFIX + "precision": precision,
        META_PREFIX + "outputs": json.dumps(list(OUTPUT_NAMES) + ([NMS_OUTPUT] if nms else [])),
        META_PREFIX + "head_outputs": json.dumps(list(HEAD_NAMES)),
        META_PREFIX + "nms": json.dumps(asdict(nms) if nms else None),
    }
    for key, value in extra.items():
        meta[META_PREFIX + key] = value if isinstance(value, str) else json.dumps(value)
    return meta


@dataclass
class OnnxMetadata:
    """What :func:`read_metadata` finds in a file we exported."""

    config: ModelConfig
    preprocessing: dict[str, Any]
    precision: str
    nms: NmsOptions | None
    head_outputs: tuple[str, ...]
    raw: dict[str, str]
    inference: dict[str, Any] = field(default_factory=dict)  # the checkpoint's advice, e.g. {"size": 480, "max_size": 1024}


def read_metadata(model: str | Path | Any) -> OnnxMetadata:
    """The preset, preprocessing and precision recorded in an exported file (path or ``ModelProto``).

    Raises :class:`ExportError` for an ONNX file this package did not export.
    """
    import onnx

    if isinstance(model, (str, Path)):
        proto = onnx.load(str(model), load_external_data=False)
        where = str(model)
    else:
        proto, where = model, "model"
    raw = {p.key: p.value for p in proto.metadata_props}
    return parse_metadata(raw, where)


def parse_metadata(raw: dict[str, str], where: str = "model") -> OnnxMetadata:
    key = META_PREFIX + "config"
    if key not in raw:
        raise ExportError(
            f"{where}: no '{key}' metadata; this ONNX file was not exported by 'retinaface-polynl export' "
            "(re-export it, or run it with onnxruntime directly)"
        )
    try:
        config = ModelConfig.from_dict(json.loads(raw[key]))
        pre = json.loads(raw.get(META_PREFIX + "preprocessing", "null")) or dict(PREPROCESSING)
        nms_d = json.loads(raw.get(META_PREFIX + "nms", "null"))
        heads = tuple(json.loads(raw.get(META_PREFIX + "head_outputs", json.dumps(HEAD_NAMES))))
        inference = json.loads(raw.get(META_PREFIX + "inference", "null")) or {}
    except (ValueError, TypeError) as exc:
        raise ExportError(f"{where}: unreadable retinaface_polynl metadata ({exc})") from None
    return OnnxMetadata(
        config=config,
        preprocessing=pre,
        precision=raw.get(META_PREFIX + "precision", "fp32"),
        nms=NmsOptions(**nms_d) if nms_d else None,
        head_outputs=heads,
        raw=raw,
        inference=inference,
    )


def keep_selected(scores: np.ndarray, selected: np.ndarray) -> np.ndarray:
    """Scores (B, A) with every anchor not listed in ``selected`` (K, 3: batch, class, anchor) set to 0
    (a file exported with in-graph NMS: the caller's threshold + NMS then reproduces its result)."""
    scores = np.asarray(scores)
    selected = np.asarray(selected, np.int64).reshape(-1, 3)
    out = np.zeros_like(scores)
    out[selected[:, 0], selected[:, 2]] = scores[selected[:, 0], selected[:, 2]]
    return out
