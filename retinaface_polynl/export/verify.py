"""Does an exported file find the faces its PyTorch model finds?  Per image, per face.

:func:`verify_export` runs the reference (PyTorch) and the exported detector on the
same photos and checks every face either of them reports at the detection threshold
against the other's detections:

* the box: IoU with the other's best-matching box;
* the score: absolute difference;
* the five landmarks: the largest point error as a fraction of the face's size
  (square root of the reference box's area), so a 2-pixel error means the same on a
  40-pixel and on a 400-pixel face.

Thresholds are where exported models usually disagree: a face at score 0.52 in
PyTorch may come out at 0.48 in INT8.  So each side's faces at the threshold are
matched against the other side's detections at ``threshold - max_score_diff``:
a face counts as lost only when it moved further than the score tolerance allows.

:data:`TOLERANCES` holds the limits per precision, the ones the tests assert on real
photos with a real checkpoint, with their reasons:

* fp32 (onnxruntime or TensorRT without reduced precision): float32 kernels in another
  order, relative errors ~1e-6: IoU >= 0.99, score within 1e-3, landmarks within 0.5 %
  of the face size.
* fp16: 11 significant bits (relative step 4.9e-4) inside the network, decoding in
  float32: IoU >= 0.99, score within 5e-3, landmarks within 1 %.
* int8 / int8-qdq: one activation step is 1/255 of a tensor's calibrated range, so
  regression outputs move by ~1 % of the anchor size per step: IoU >= 0.75, score
  within 0.1, landmarks within 10 % of the face size (measured on dlib's photos with
  the Pytorch_Retinaface MobileNet-0.25: IoU >= 0.83, landmarks <= 4 %).
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Tolerance:
    """How far an exported model's faces may move from PyTorch's."""

    min_iou: float
    max_score_diff: float
    max_landmark_error: float  # largest landmark point error / sqrt(face box area)


TOLERANCES: dict[str, Tolerance] = {
    "fp32": Tolerance(min_iou=0.99, max_score_diff=1e-3, max_landmark_error=0.005),
    "fp16": Tolerance(min_iou=0.99, max_score_diff=5e-3, max_landmark_error=0.01),
    "int8": Tolerance(min_iou=0.75, max_score_diff=0.1, max_landmark_error=0.10),
    "int8-qdq": Tolerance(min_iou=0.75, max_score_diff=0.1, max_landmark_error=0.10),
}


def tolerance_for(precision: str) -> Tolerance:
    """The :data:`TOLERANCES` entry of a file's recorded precision (``fp32``, ``fp16``, ``int8``, ``int8-qdq``)."""
    try:
        return TOLERANCES[precision]
    except KeyError:
        raise ValueError(f"no tolerance known for precision {precision!r}; known: {', '.join(TOLERANCES)}") from None


def landmark_errors(reference: Any, other: Any, match: np.ndarray) -> np.ndarray:
    """Per reference face: the largest of its five landmark point errors against
    ``other``'s face ``match[i]``, divided by the reference face's size (sqrt of box area)."""
    if len(match) == 0:
        return np.zeros(0, np.float32)
    dist = np.linalg.norm(reference.landmarks - other.landmarks[match], axis=-1).max(axis=-1)
    wh = (reference.boxes[:, 2:] - reference.boxes[:, :2]).clip(min=1e-6)
    return (dist / np.sqrt(wh[:, 0] * wh[:, 1])).astype(np.float32)


@dataclass
class ImageCheck:
    """One image's agreement; the worst face decides.

    ``faces``: faces at the threshold (reference, exported); ``lost``: faces of either
    side with no counterpart at ``threshold - max_score_diff`` (or only one whose IoU is
    below the tolerance); the ``min_iou`` / ``max_*`` fields cover the matched faces.
    """

    image: str
    size: int | None
    faces: tuple[int, int]
    lost: int = 0
    min_iou: float = 1.0
    max_score_diff: float = 0.0
    max_landmark_error: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _match(want: Any, pool: Any, tol: Tolerance) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each face of ``want`` -> (index of its best-IoU box in ``pool`` or -1, IoU, matched mask)."""
    from ..boxes import box_iou

    if len(want) == 0:
        return np.zeros(0, int), np.zeros(0, np.float32), np.zeros(0, bool)
    if len(pool) == 0:
        return np.full(len(want), -1), np.zeros(len(want), np.float32), np.zeros(len(want), bool)
    iou = box_iou(want.boxes, pool.boxes)
    idx = iou.argmax(1)
    best = iou[np.arange(len(idx)), idx]
    return idx, best, best >= tol.min_iou


def compare_faces(
    reference: Any, exported: Any, threshold: float, tolerance: Tolerance, image: str = "", size: int | None = None
) -> ImageCheck:
    """Compare two ``Detections`` of one image taken at ``threshold - tolerance.max_score_diff``
    (see the module docstring); faces at ``threshold`` are the ones that must agree."""
    low = threshold - tolerance.max_score_diff
    ref_low, exp_low = (d.select(d.scores >= max(low, 0.0)) for d in (reference, exported))
    ref, exp = (d.select(d.scores >= threshold) for d in (ref_low, exp_low))
    check = ImageCheck(image=image, size=size, faces=(len(ref), len(exp)))
    ious, score_diffs, lm_errors = [], [], []
    for want, pool, name in ((ref, exp_low, "PyTorch"), (exp, ref_low, "exported")):
        idx, best, ok = _match(want, pool, tolerance)
        check.lost += int((~ok).sum())
        for i in np.flatnonzero(~ok):
            x1, y1, x2, y2 = want.boxes[i].round().astype(int)
            check.problems.append(
                f"{name} face at ({x1},{y1},{x2},{y2}) score {want.scores[i]:.3f} has no counterpart "
                f"(best IoU {best[i]:.2f} < {tolerance.min_iou})"
            )
        if ok.any():
            ious.append(best[ok])
            score_diffs.append(np.abs(want.scores[ok] - pool.scores[idx[ok]]))
            lm_errors.append(landmark_errors(want.select(ok), pool, idx[ok]))
    if ious:
        check.min_iou = float(np.concatenate(ious).min())
        check.max_score_diff = float(np.concatenate(score_diffs).max())
        check.max_landmark_error = float(np.concatenate(lm_errors).max())
    if check.max_score_diff > tolerance.max_score_diff:
        check.problems.append(f"score moved by {check.max_score_diff:.4f} > {tolerance.max_score_diff}")
    if check.max_landmark_error > tolerance.max_landmark_error:
        check.problems.append(
            f"a landmark moved by {100 * check.max_landmark_error:.2f} % of its face's size "
            f"> {100 * tolerance.max_landmark_error:.2f} %"
        )
    return check


def verify_export(
    reference: Any,
    exported: Any,
    images: Iterable[str | Path],
    tolerance: Tolerance | None = None,
    max_sizes: Sequence[int | None] = (None,),
    threshold: float | None = None,
) -> list[ImageCheck]:
    """Run two :class:`~retinaface_polynl.Detector` objects (PyTorch reference, exported file)
    on each image at each long-side cap in ``max_sizes`` and compare their faces
    (:func:`compare_faces`).  ``None`` in ``max_sizes`` means the exported detector's default
    input size (the one its file records, else the original size), given to both, so a
    reference built with ``Detector(model=...)``, which records none, sees the same pixels.
    ``tolerance`` defaults to the exported backend's precision's entry in :data:`TOLERANCES`;
    ``threshold`` to the exported detector's.  Both run without small-face zoom (its second
    pass is the same network at another scale, and whether it runs must not hinge on a face
    straddling the rule's size by a rounding error).  An unreadable image raises
    ``ImageReadError`` naming it."""
    if tolerance is None:
        tolerance = tolerance_for(getattr(exported.backend, "precision", "fp32"))
    threshold = exported.threshold if threshold is None else threshold
    low = max(threshold - tolerance.max_score_diff, 0.0)
    checks = []
    with _one_pass(reference), _one_pass(exported):
        for path in images:
            image = reference.prepare(path)
            for size in max_sizes:
                # the exported file's own rule (a floor on the short side, a cap on the long one)
                # as the short side it gives this picture, handed to both detectors
                given, cap = same_input(exported, image) if size is None else (None, size)
                want = reference.detect(image, threshold=low, size=given, max_size=cap)
                got = exported.detect(image, threshold=low, size=given, max_size=cap)
                checks.append(compare_faces(want, got, threshold, tolerance, image=str(path), size=size))
    return checks


@contextmanager
def _one_pass(detector: Any):
    """``detector`` without small-face zoom for the duration (its own setting restored after)."""
    before = getattr(detector, "zoom_setting", None)
    if hasattr(detector, "zoom_setting"):
        detector.zoom_setting = False
    try:
        yield detector
    finally:
        if hasattr(detector, "zoom_setting"):
            detector.zoom_setting = before


def same_input(detector: Any, image) -> tuple[int, int | None]:
    """``(size, max_size)`` that make any Detector, whatever input rule it records, resize
    ``image`` by exactly ``detector``'s own scale for it (``detector.input_scale``).

    Where the rule's floor (or nothing) decided, the short side it gives is an integer and is
    handed on alone.  Where the long-side cap decided, a short side of ``round(short)`` would
    rescale the picture by ``round(short) / short`` and miss the cap by a pixel, so the cap
    itself is handed on with a short side just above the scaled one, which the cap then
    overrides."""
    h, w = image.shape[:2]
    scale = detector.input_scale(h, w)
    short = min(h, w) * scale
    if abs(short - round(short)) < 1e-6:
        return max(1, round(short)), None
    return math.ceil(short) + 1, max(1, round(max(h, w) * scale))


def format_checks(checks: Sequence[ImageCheck], tolerance: Tolerance) -> str:
    """A plain-text table of :func:`verify_export`'s result, worst values per image, plus a verdict."""
    lines = [
        f"{'image':40s} {'size':>7s} {'faces torch/export':>18s} {'lost':>4s} {'min IoU':>8s} "
        f"{'score diff':>10s} {'landmarks %':>11s}  ok"
    ]
    for c in checks:
        name = Path(c.image).name[-40:]
        lines.append(
            f"{name:40s} {str(c.size or 'default'):>7s} {f'{c.faces[0]}/{c.faces[1]}':>18s} {c.lost:>4d} "
            f"{c.min_iou:>8.3f} {c.max_score_diff:>10.4f} {100 * c.max_landmark_error:>11.2f}  {'yes' if c.ok else 'NO'}"
        )
    failed = [c for c in checks if not c.ok]
    faces = sum(c.faces[0] for c in checks)
    lines.append(
        f"tolerance: IoU >= {tolerance.min_iou}, score within {tolerance.max_score_diff}, landmarks within "
        f"{100 * tolerance.max_landmark_error:.1f} % of the face size; {faces} reference faces compared; "
        + ("all agree" if not failed else f"{len(failed)} of {len(checks)} image(s) disagree")
    )
    for c in failed:
        lines.extend(f"  {Path(c.image).name}: {p}" for p in c.problems)
    return "\n".join(lines)
