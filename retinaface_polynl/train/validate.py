"""Validation while training: AP at IoU 0.5 on a held-out set.

The model runs through :mod:`retinaface_polynl.detector`'s own functions
(``resize_scale``, ``preprocess``, ``pad_batch``, ``postprocess``,
``scale_back``), so validation sees exactly what ``Detector`` would return.
The AP is ``widerface_eval.average_precision`` (VOC all-point AP on xyxy
boxes), the project's one implementation of it.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence

import torch

from ..data.records import ImageRecord
from ..pipeline import Detections, STRIDE, pad_batch, postprocess, preprocess, resize_scale, scale_back
from ..media import ImageReadError, read_image

log = logging.getLogger(__name__)


@torch.no_grad()
def detect_records(
    model: torch.nn.Module,
    records: Sequence[ImageRecord],
    device: torch.device | str = "cpu",
    size: int | None = None,
    max_size: int | None = 1024,
    threshold: float = 0.02,
    nms_threshold: float = 0.4,
    top_k: int = 5000,
    max_detections: int = 750,
) -> list[Detections | None]:
    """Run ``model`` (eval mode) on each record's image as ``Detector`` does; original-image pixels.
    An image that cannot be read gets ``None`` (and a warning naming it)."""
    was_training = model.training
    model.eval()
    out = []
    try:
        for rec in records:
            try:
                image = read_image(rec.path)
            except ImageReadError as exc:
                log.warning("%s; left out of the validation", exc)
                out.append(None)
                continue
            h, w = image.shape[:2]
            scale = resize_scale(h, w, size, max_size)
            batch = torch.from_numpy(pad_batch([preprocess(image, scale)], STRIDE)).to(device)
            p = model.predict(batch)
            det = postprocess(p.boxes[0].float().cpu().numpy(), p.scores[0].float().cpu().numpy(),
                              p.landmarks[0].float().cpu().numpy(), threshold, nms_threshold, top_k, max_detections)
            out.append(scale_back(det, scale, h, w))
    finally:
        model.train(was_training)
    return out


def evaluate(model: torch.nn.Module, records: Sequence[ImageRecord], device="cpu", size=None, max_size=1024,
             iou_threshold: float = 0.5) -> dict[str, float]:
    """AP (and max recall) at ``iou_threshold`` of ``model`` on ``records`` (the readable ones)."""
    from widerface_eval.ap import average_precision

    dets = detect_records(model, records, device, size, max_size)
    records = [r for r, d in zip(records, dets) if d is not None]
    dets = [d for d in dets if d is not None]
    keys = [str(i) for i in range(len(records))]
    detections = {k: (d.boxes, d.scores) for k, d in zip(keys, dets)}
    ground_truth = {k: r.boxes for k, r in zip(keys, records)}
    ap, recall, _precision, _scores = average_precision(detections, ground_truth, iou=iou_threshold, return_curve=True)
    return {"ap": float(ap), "recall": float(recall[-1]) if len(recall) else 0.0,
            "num_gt": int(sum(len(r.boxes) for r in records)), "num_det": int(sum(len(d) for d in dets))}
