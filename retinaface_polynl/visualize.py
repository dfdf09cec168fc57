"""Attention maps: the Poly-NL supplementary's §5 figures for one image.

For the detector's attention block, the norm over channels at every position of
its input ``X``, its attention contribution ``Y`` and its output ``Z = X + Y``,
each laid over the picture as a heat map, side by side with the picture itself.

    >>> maps = attention_maps(detector, image_bgr)          # {"X": (h, w), "Y": ..., "Z": ...}
    >>> figure = render_attention_figure(image_bgr, maps)   # BGR uint8, 4 panels
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from .detector import STRIDE, pad_batch, preprocess

PARTS = ("X", "Y", "Z")
CAPTIONS = {"X": "X: block input", "Y": "Y: attention contribution", "Z": "Z = X + Y: output"}


class NoAttentionError(ValueError):
    """The model has no attention block to visualise."""


def attention_maps(detector, image, size: int | None = None, max_size: int | None = None, rgb: bool = False) -> dict:
    """Per-position channel norms of the attention block's ``X``, ``Y``, ``Z`` for one image.

    Returns float32 (h, w) arrays at the block's feature resolution, cropped to the
    picture (the batch's stride padding removed), plus ``"stride"``.  Uses a forward
    hook on ``model.attention`` that calls the block's ``forward_parts`` (or, for a
    block without it, takes ``Y = Z - X``).
    """
    model = detector.model
    if model is None:
        raise NoAttentionError(
            f"{detector.weights} runs on the {getattr(detector.backend, 'name', 'exported')} backend; attention maps need the PyTorch "
            "checkpoint (.pth)"
        )
    block = getattr(model, "attention", None)
    if block is None:
        name = getattr(getattr(detector, "config", None), "name", "this model")
        raise NoAttentionError(
            f"{name} has no attention block to visualise; use a checkpoint or --preset with one "
            "(e.g. r18x025_polynl, r50_polynl, mnet025_polynl)"
        )
    bgr = detector.prepare(image, rgb=rgb)
    h, w = bgr.shape[:2]
    scale = detector.input_scale(h, w, size, max_size)
    x = preprocess(bgr, scale)
    batch = pad_batch([x])
    captured: dict = {}

    def hook(module, inputs, output):
        with torch.no_grad():
            if hasattr(module, "forward_parts"):
                X, Y, Z = module.forward_parts(inputs[0])
            else:
                X, Z = inputs[0], output
                Y = Z - X
        captured.update(X=X, Y=Y, Z=Z)

    handle = block.register_forward_hook(hook)
    try:
        with torch.inference_mode():
            device = next(model.parameters()).device
            model.predict(torch.from_numpy(batch).to(device))
    finally:
        handle.remove()
    if not captured:
        raise RuntimeError("the attention block was not called during the forward pass")
    fh, fw = captured["X"].shape[-2:]
    stride = batch.shape[2] / fh
    # The valid (unpadded) part of the feature map.
    vh, vw = max(1, int(np.ceil(x.shape[1] / stride))), max(1, int(np.ceil(x.shape[2] / stride)))
    out = {
        k: torch.linalg.vector_norm(captured[k][0].float(), dim=0)[:vh, :vw].cpu().numpy().astype(np.float32)
        for k in PARTS
    }
    out["stride"] = int(round(stride)) if stride >= 1 else STRIDE
    return out


def _heat(norm: np.ndarray, height: int, width: int, vmax: float | None = None) -> np.ndarray:
    lo = float(norm.min())
    hi = float(norm.max()) if vmax is None else vmax
    span = hi - lo
    unit = (norm - lo) / span if span > 1e-12 else np.zeros_like(norm)
    unit = cv2.resize(unit.clip(0, 1), (width, height), interpolation=cv2.INTER_CUBIC).clip(0, 1)
    return cv2.applyColorMap((unit * 255).astype(np.uint8), cv2.COLORMAP_JET)


def render_attention_figure(image_bgr: np.ndarray, maps: dict, alpha: float = 0.55, panel_height: int = 360) -> np.ndarray:
    """Four panels side by side: the picture, then X, Y and Z heat maps over it.

    Each map is normalised to its own range (the figures show where each part is
    large, not the absolute scale); a map that is constant everywhere (e.g. ``Y`` of
    a newly inserted, identity-initialised block) is shown flat, captioned so.
    """
    h, w = image_bgr.shape[:2]
    scale = panel_height / h
    size = (max(1, round(w * scale)), panel_height)
    base = cv2.resize(image_bgr, size, interpolation=cv2.INTER_AREA)
    panels = [_caption(base.copy(), "image")]
    for k in PARTS:
        norm = maps[k]
        heat = _heat(norm, size[1], size[0])
        panel = cv2.addWeighted(base, 1 - alpha, heat, alpha, 0)
        flat = float(norm.max() - norm.min()) <= 1e-12
        text = CAPTIONS[k] + (" (zero everywhere)" if flat and float(norm.max()) == 0 else " (constant)" if flat else "")
        panels.append(_caption(panel, text))
    gap = np.full((panel_height + 28, 6, 3), 255, np.uint8)
    row = []
    for i, p in enumerate(panels):
        row += [p] + ([gap] if i < len(panels) - 1 else [])
    return np.concatenate(row, axis=1)


def _caption(panel: np.ndarray, text: str) -> np.ndarray:
    bar = np.full((28, panel.shape[1], 3), 255, np.uint8)
    cv2.putText(bar, text, (6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([bar, panel], axis=0)
