"""FDDB: the official discrete / continuous ROC protocol, plus AP@0.5 on the ellipses' boxes.

The official FDDB evaluation (``evaluate.cpp``, ``Matching.cpp``,
``Results.cpp`` of Jain & Learned-Miller's benchmark) does, per image:

* rasterise every annotated ellipse and every detected rectangle as a filled
  region on the image's pixel grid (OpenCV ``cvEllipse`` / ``cvRectangle``,
  so regions are clipped to the image);
* overlap of annotation ``a`` and detection ``d`` = ``|a ∩ d| / |a ∪ d|`` in
  pixels;
* for every distinct detection score ``st`` of the image (ascending), keep the
  detections with ``score >= st`` and solve a maximum-weight bipartite
  (Hungarian) assignment between annotations and kept detections on the
  overlap matrix; matched pairs with overlap ``> 0`` count;
* discrete score of a pair = 1 if overlap > 0.5 else 0; continuous score =
  the overlap; ``TP = sum of pair scores``; ``FP = #kept detections -
  #pairs with overlap > 0.5`` (the same FP count for both curves);
* the per-image tables are merged over all images: at every distinct score
  ``t`` of the whole set, each image contributes its result for the
  detections with ``score >= t``; the ROC is ``TPR = TP / #annotations``
  against ``FP``.

Our rasterisation follows OpenCV's conventions: pixel ``(x, y)`` is the
integer grid point; a rectangle ``x y w h`` covers columns
``round(x) .. round(x + w)`` (both ends included) and the same for rows; an
ellipse is drawn with its centre rounded to the nearest pixel and its
semi-axes truncated to integers (as ``cvSize((int)ra, (int)rb)`` does), with
the major axis along ``(cos θ, sin θ)`` in image coordinates (y down) and a
pixel inside when its centre satisfies the ellipse equation (boundary
included).  OpenCV fills
a polygon approximation of the ellipse, so a few boundary pixels may differ
from the official program; overlaps agree to well under 1 %.  Overlaps are
computed exactly on that grid with a summed-area table of each ellipse.

The Hungarian step uses :func:`scipy.optimize.linear_sum_assignment`.  When a
lower threshold only adds detections that overlap no annotation, the optimal
assignment cannot change and is reused.

``ap50`` is the generic VOC AP (:func:`widerface_eval.ap.average_precision`)
at IoU 0.5 against the ellipses' exact bounding boxes (``boxes_xyxy`` of
``annotations.json``).
"""
from __future__ import annotations

import json
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Mapping

import numpy as np

from .ap import Detections, as_boxes_scores, average_precision
from .errors import GroundTruthError, MissingPredictionsWarning, PredictionFormatError
from .io import check_inside, text_lines

__all__ = [
    "FDDBAnnotation",
    "FDDBResult",
    "ellipse_bounding_boxes",
    "ellipse_mask",
    "evaluate_fddb",
    "load_fddb_annotations",
    "read_fddb_detections",
    "region_overlaps",
    "write_fddb_detections",
]


@dataclass
class FDDBAnnotation:
    """One FDDB image: ellipses ``(k, 5)`` = ``major_radius minor_radius angle(rad) cx cy``.

    ``width``/``height`` (pixels) bound the rasterised regions; ``None`` means
    no clipping.  ``boxes_xyxy`` are the ellipses' bounding boxes.
    """

    ellipses: np.ndarray
    width: int | None = None
    height: int | None = None
    boxes_xyxy: np.ndarray | None = None
    fold: int | None = None

    def __post_init__(self) -> None:
        self.ellipses = np.asarray(self.ellipses, dtype=np.float64).reshape(-1, 5)
        if self.boxes_xyxy is None:
            self.boxes_xyxy = ellipse_bounding_boxes(self.ellipses)
        self.boxes_xyxy = np.asarray(self.boxes_xyxy, dtype=np.float64).reshape(-1, 4)


def ellipse_bounding_boxes(ellipses: np.ndarray) -> np.ndarray:
    """Exact axis-aligned bounding boxes ``x1 y1 x2 y2`` of ``(k, 5)`` ellipses."""
    e = np.asarray(ellipses, dtype=np.float64).reshape(-1, 5)
    a, b, t, cx, cy = e.T
    hx = np.sqrt((a * np.cos(t)) ** 2 + (b * np.sin(t)) ** 2)
    hy = np.sqrt((a * np.sin(t)) ** 2 + (b * np.cos(t)) ** 2)
    return np.stack([cx - hx, cy - hy, cx + hx, cy + hy], axis=1)


def _ellipse_window(ellipse, width, height):
    """Rasterised ellipse restricted to its bounding window: (mask, x0, y0)."""
    ra, rb, theta, cx, cy = (float(v) for v in ellipse)
    a = max(float(int(ra)), 0.5)  # cvSize((int)ra, (int)rb); a zero axis still covers its centre line
    b = max(float(int(rb)), 0.5)
    cxr, cyr = float(np.rint(cx)), float(np.rint(cy))
    c, s = math.cos(theta), math.sin(theta)
    hx = math.sqrt((a * c) ** 2 + (b * s) ** 2)
    hy = math.sqrt((a * s) ** 2 + (b * c) ** 2)
    x0, x1 = int(math.floor(cxr - hx)), int(math.ceil(cxr + hx))
    y0, y1 = int(math.floor(cyr - hy)), int(math.ceil(cyr + hy))
    if width is not None:
        x0, x1 = max(x0, 0), min(x1, int(width) - 1)
    if height is not None:
        y0, y1 = max(y0, 0), min(y1, int(height) - 1)
    if x1 < x0 or y1 < y0:
        return np.zeros((0, 0), dtype=bool), x0, y0
    dx = np.arange(x0, x1 + 1, dtype=np.float64)[None, :] - cxr
    dy = np.arange(y0, y1 + 1, dtype=np.float64)[:, None] - cyr
    u = dx * c + dy * s
    v = -dx * s + dy * c
    # (u/a)^2 + (v/b)^2 <= 1, multiplied out and with a relative tolerance of 1e-9 so that lattice
    # points exactly on the boundary are inside whatever the rounding of cos/sin (cos(pi/2) != 0)
    return (u * b) ** 2 + (v * a) ** 2 <= (a * b) ** 2 * (1 + 1e-9), x0, y0


def ellipse_mask(ellipse, width: int, height: int) -> np.ndarray:
    """Full ``(height, width)`` boolean mask of one ellipse (for inspection and tests)."""
    out = np.zeros((height, width), dtype=bool)
    m, x0, y0 = _ellipse_window(ellipse, width, height)
    out[y0 : y0 + m.shape[0], x0 : x0 + m.shape[1]] = m
    return out


def _rect_pixels(boxes_xyxy: np.ndarray, width, height) -> np.ndarray:
    """Inclusive integer pixel ranges ``xa xb ya yb`` of rectangles (OpenCV rounding, clipped)."""
    b = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    r = np.rint(b).astype(np.int64)  # cvPointFrom32f -> cvRound (half to even, like np.rint)
    xa, ya, xb, yb = r[:, 0], r[:, 1], r[:, 2], r[:, 3]
    if width is not None:
        xa, xb = np.clip(xa, 0, None), np.clip(xb, None, int(width) - 1)
    if height is not None:
        ya, yb = np.clip(ya, 0, None), np.clip(yb, None, int(height) - 1)
    return np.stack([xa, xb, ya, yb], axis=1)


def region_overlaps(ellipses: np.ndarray, boxes_xyxy: np.ndarray, width=None, height=None) -> np.ndarray:
    """Pixel-region IoU ``(n_ellipses, n_boxes)`` between ellipses and rectangles (see module docs)."""
    ellipses = np.asarray(ellipses, dtype=np.float64).reshape(-1, 5)
    rp = _rect_pixels(boxes_xyxy, width, height)
    rw = np.clip(rp[:, 1] - rp[:, 0] + 1, 0, None)
    rh = np.clip(rp[:, 3] - rp[:, 2] + 1, 0, None)
    rect_area = rw * rh
    out = np.zeros((len(ellipses), len(rp)), dtype=np.float64)
    for i, e in enumerate(ellipses):
        m, x0, y0 = _ellipse_window(e, width, height)
        area = int(m.sum())
        if m.size == 0 or len(rp) == 0:
            inter = np.zeros(len(rp))
        else:
            sat = np.zeros((m.shape[0] + 1, m.shape[1] + 1), dtype=np.int64)
            sat[1:, 1:] = m.cumsum(0).cumsum(1)
            h, w = m.shape
            xa = np.clip(rp[:, 0] - x0, 0, w)
            xb = np.clip(rp[:, 1] - x0 + 1, 0, w)
            ya = np.clip(rp[:, 2] - y0, 0, h)
            yb = np.clip(rp[:, 3] - y0 + 1, 0, h)
            inter = sat[yb, xb] - sat[ya, xb] - sat[yb, xa] + sat[ya, xa]
            inter = np.where((xb > xa) & (yb > ya), inter, 0)
        union = area + rect_area - inter
        with np.errstate(divide="ignore", invalid="ignore"):
            out[i] = np.where(union > 0, inter / union, 0.0)
    return out


def _image_table(overlap: np.ndarray, scores: np.ndarray):
    """Per-threshold (descending distinct scores) TP_disc, TP_cont, FP for one image."""
    uniq = np.unique(scores)[::-1]
    n_valid = np.searchsorted(np.sort(-scores), -uniq, side="right")  # number of dets with score >= u
    tpd = np.zeros(len(uniq))
    tpc = np.zeros(len(uniq))
    order = np.argsort(-scores, kind="stable")
    col_nonzero = (overlap > 0).any(axis=0) if overlap.size else np.zeros(len(scores), dtype=bool)
    prev_n, cur_d, cur_c = 0, 0.0, 0.0
    for k, n in enumerate(n_valid):
        added = order[prev_n:n]
        if col_nonzero[added].any():
            valid = order[:n]
            sub = overlap[:, valid]
            rows = np.flatnonzero((sub > 0).any(axis=1))
            cols = np.flatnonzero((sub > 0).any(axis=0))
            sub = sub[np.ix_(rows, cols)]
            r, c = _linear_sum_assignment()(sub, maximize=True)
            v = sub[r, c]
            v = v[v > 0]
            cur_d, cur_c = float(np.count_nonzero(v > 0.5)), float(v.sum())
        tpd[k], tpc[k] = cur_d, cur_c
        prev_n = n
    fp = n_valid - tpd
    return uniq, tpd, tpc, fp


@dataclass
class FDDBResult:
    """ROC (discrete and continuous) and AP@0.5 of one detection set on FDDB.

    Arrays run over the distinct detection scores, descending (so ``fp`` is
    non-decreasing): ``thresholds``, ``fp`` (false positives), ``tp_discrete``
    and ``tp_continuous`` (true-positive scores summed over images).
    """

    thresholds: np.ndarray
    fp: np.ndarray
    tp_discrete: np.ndarray
    tp_continuous: np.ndarray
    num_faces: int
    num_images: int
    ap50: float
    pr_recall: np.ndarray = field(repr=False)
    pr_precision: np.ndarray = field(repr=False)
    missing_images: list = field(default_factory=list, repr=False)

    @property
    def tpr_discrete(self) -> np.ndarray:
        return self.tp_discrete / self.num_faces if self.num_faces else np.zeros_like(self.tp_discrete)

    @property
    def tpr_continuous(self) -> np.ndarray:
        return self.tp_continuous / self.num_faces if self.num_faces else np.zeros_like(self.tp_continuous)

    def tpr_at(self, fp: float = 1000, kind: str = "discrete") -> float:
        """Highest TPR among ROC points with at most ``fp`` false positives (0 if none)."""
        tpr = {"discrete": self.tpr_discrete, "continuous": self.tpr_continuous}[kind]
        ok = self.fp <= fp
        return float(tpr[ok].max()) if ok.any() else 0.0

    def to_dict(self, include_curves: bool = True) -> dict:
        d = {
            "ap50": float(self.ap50),
            "tpr_at_1000fp_discrete": self.tpr_at(1000, "discrete"),
            "tpr_at_1000fp_continuous": self.tpr_at(1000, "continuous"),
            "tpr_at_100fp_discrete": self.tpr_at(100, "discrete"),
            "num_faces": int(self.num_faces),
            "num_images": int(self.num_images),
            "num_missing_images": len(self.missing_images),
        }
        if include_curves:
            d["roc"] = {
                "thresholds": self.thresholds.tolist(),
                "fp": self.fp.tolist(),
                "tpr_discrete": self.tpr_discrete.tolist(),
                "tpr_continuous": self.tpr_continuous.tolist(),
            }
            d["pr50"] = {"recall": self.pr_recall.tolist(), "precision": self.pr_precision.tolist()}
        return d


def fddb_image_tables(
    detections: Mapping[str, tuple[np.ndarray, np.ndarray]], annotations: Mapping[str, FDDBAnnotation]
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Each image's ROC contribution: ``{name: (distinct scores descending, increments of
    TP_discrete, TP_continuous and FP at each)}``; images without detections are left out.
    ``merge_fddb_tables`` of any collection of them (a bootstrap resample, say) is that
    collection's ROC, because FDDB matches detections to faces within an image only."""
    tables = {}
    for name, ann in annotations.items():
        boxes, scores = detections.get(name, (np.zeros((0, 4)), np.zeros(0)))
        if len(scores) == 0:
            continue
        ov = region_overlaps(ann.ellipses, boxes, ann.width, ann.height)
        u, tpd, tpc, fp = _image_table(ov, scores)
        tables[name] = (u, np.diff(tpd, prepend=0.0), np.diff(tpc, prepend=0.0), np.diff(fp, prepend=0.0))
    return tables


def merge_fddb_tables(tables: Iterable[tuple[np.ndarray, ...]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-image tables -> (thresholds, TP_discrete, TP_continuous, FP) over distinct scores, descending."""
    tables = list(tables)
    if not tables:
        return np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64)
    s, d, c, f = (np.concatenate(col) for col in zip(*tables))
    order = np.argsort(-s, kind="stable")
    s = s[order]
    tpd, tpc, fp = np.cumsum(d[order]), np.cumsum(c[order]), np.cumsum(f[order])
    last = np.flatnonzero(np.append(s[1:] != s[:-1], True))  # last entry of each distinct score
    return s[last], tpd[last], tpc[last], np.rint(fp[last]).astype(np.int64)


def evaluate_fddb(
    detections: Mapping[str, Detections],
    annotations: Mapping[str, FDDBAnnotation],
    iou: float = 0.5,
    warn_missing: bool = True,
) -> FDDBResult:
    """Evaluate ``{image name: (boxes_xyxy (N,4), scores (N,))}`` on FDDB ``annotations``.

    Every image of ``annotations`` is evaluated; those absent from
    ``detections`` have no detections (a :class:`MissingPredictionsWarning`
    says how many).  Detections for an image not in ``annotations`` raise
    :class:`PredictionFormatError`.  Returns an :class:`FDDBResult`.
    """
    unknown = [k for k in detections if k not in annotations]
    if unknown:
        raise PredictionFormatError(None, f"detections for image(s) not in the FDDB annotations: {', '.join(unknown[:5])}")
    parsed = {k: as_boxes_scores(v, k) for k, v in detections.items()}
    missing = [k for k in annotations if k not in parsed]
    if missing and warn_missing:
        warnings.warn(
            f"{len(missing)} FDDB image(s) have no detections entry and count as no detections: "
            + ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else ""),
            MissingPredictionsWarning,
            stacklevel=2,
        )
    num_faces = sum(len(ann.ellipses) for ann in annotations.values())
    thresholds, tpd, tpc, fp = merge_fddb_tables(fddb_image_tables(parsed, annotations).values())
    gt_boxes = {k: a.boxes_xyxy for k, a in annotations.items()}
    ap, rec, prec, _ = average_precision(parsed, gt_boxes, iou=iou, return_curve=True)
    return FDDBResult(
        thresholds=thresholds,
        fp=fp,
        tp_discrete=tpd,
        tp_continuous=tpc,
        num_faces=num_faces,
        num_images=len(annotations),
        ap50=ap,
        pr_recall=rec,
        pr_precision=prec,
        missing_images=missing,
    )


# ----------------------------------------------------------------------------- files


def _parse_folds(folds: Iterable[int] | str | None) -> set[int] | None:
    if folds is None:
        return None
    if isinstance(folds, str):
        out: set[int] = set()
        for part in folds.split(","):
            part = part.strip()
            if "-" in part:
                a, b = part.split("-", 1)
                out.update(range(int(a), int(b) + 1))
            elif part:
                out.add(int(part))
        return out
    return {int(f) for f in folds}


def load_fddb_annotations(path: str | Path, folds: Iterable[int] | str | None = None) -> dict[str, FDDBAnnotation]:
    """Load FDDB annotations -> ``{image name: FDDBAnnotation}`` (in file order).

    ``path`` is the FDDB folder (holding ``annotations.json``, or else
    ``FDDB-folds/FDDB-fold-XX-ellipseList.txt``) or ``annotations.json``
    itself.  Without ``annotations.json`` image sizes are unknown and regions
    are not clipped.  ``folds`` selects folds (e.g. ``[1, 2]`` or ``"1-8"``).
    """
    p = Path(path)
    wanted = _parse_folds(folds)
    json_path = p if p.suffix == ".json" else p / "annotations.json"
    out: dict[str, FDDBAnnotation] = {}
    if json_path.is_file():
        try:
            data = json.loads(json_path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise GroundTruthError(json_path, f"not valid JSON ({exc})") from None
        for name, rec in data.items():
            try:
                fold = rec.get("fold")
                if wanted is not None and fold not in wanted:
                    continue
                out[name] = FDDBAnnotation(
                    ellipses=np.asarray(rec["ellipses"], dtype=np.float64).reshape(-1, 5),
                    width=rec.get("width"),
                    height=rec.get("height"),
                    boxes_xyxy=rec.get("boxes_xyxy"),
                    fold=fold,
                )
            except (KeyError, ValueError, TypeError, AttributeError) as exc:
                raise GroundTruthError(json_path, f"entry {name!r} is malformed ({exc})") from None
        return out
    folds_dir = p / "FDDB-folds" if (p / "FDDB-folds").is_dir() else p
    files = sorted(folds_dir.glob("FDDB-fold-*-ellipseList.txt"))
    if not files:
        raise GroundTruthError(p, "no FDDB annotations: expected annotations.json or FDDB-folds/FDDB-fold-XX-ellipseList.txt")
    for f in files:
        fold = int(re.search(r"fold-(\d+)", f.name).group(1))
        if wanted is not None and fold not in wanted:
            continue
        for name, arr in _read_blocks(f, 6, GroundTruthError).items():
            out[name] = FDDBAnnotation(ellipses=arr[:, :5], fold=fold)
    return out


_CHUNK = 4096  # rows converted at a time: a file is never held as text split into Python strings


def _parse_rows(rows: list[str], first: int, ncols: int, path: Path, error) -> np.ndarray:
    """``rows`` (lines ``first``, ``first + 1``, ... 0-based) -> ``(len(rows), ncols)`` float64; the
    first faulty line raises ``error`` with its line number, checked as :func:`float` reads it."""
    fields = [ln.split() for ln in rows]
    if all(len(f) == ncols for f in fields):
        try:
            arr = np.fromiter((float(v) for f in fields for v in f), dtype=np.float64, count=len(fields) * ncols)
        except ValueError:
            arr = None
        if arr is not None and np.isfinite(arr).all():
            return arr.reshape(-1, ncols)
    for k, (ln, f) in enumerate(zip(rows, fields)):  # locate the first faulty line, line by line
        if len(f) != ncols:
            raise error(path, f"expected {ncols} numbers, got {len(f)}: {ln.strip()[:60]!r}", line=first + k + 1)
        try:
            row = [float(v) for v in f]
        except ValueError:
            raise error(path, f"non-numeric field in {ln.strip()[:60]!r}", line=first + k + 1) from None
        if not all(math.isfinite(v) for v in row):
            raise error(path, "NaN or infinite value", line=first + k + 1)
    raise AssertionError("unreachable: a chunk failed as a whole but no line failed alone")  # pragma: no cover


def _iter_blocks(path: Path, ncols: int, error) -> Iterator[tuple[str, np.ndarray]]:
    """FDDB blocks ``name / count / count rows of ncols numbers`` one at a time, with line-accurate
    errors, streaming: memory holds one block's array and :data:`_CHUNK` lines of text."""
    size = path.stat().st_size
    lines = enumerate(text_lines(path))
    seen: set[str] = set()
    for i, line in lines:
        name = line.strip()
        if not name:
            continue
        count = next(lines, (None, None))[1]
        if count is None or not count.strip().isdigit():
            raise error(path, f"expected the number of entries of {name!r}", line=i + 2)
        n = int(count)
        # a count the file cannot hold is found short below; never allocate for it up front
        arr = np.empty((min(n, size // (2 * ncols) + 1), ncols), dtype=np.float64)
        done = 0
        chunk: list[str] = []

        def flush() -> None:
            nonlocal arr, done
            if done + len(chunk) > len(arr):  # pragma: no cover - rows need at least 2 bytes a number
                arr = np.concatenate([arr, np.empty((len(chunk), ncols))])
            arr[done:done + len(chunk)] = _parse_rows(chunk, i + 2 + done, ncols, path, error)
            done += len(chunk)
            chunk.clear()

        for k in range(n):
            row = next(lines, (None, None))[1]
            if row is None:
                flush()  # a faulty row before the end is reported first, as line by line
                raise error(path, f"{name!r} announces {n} entries but the file ends", line=i + 2 + k + 1)
            chunk.append(row)
            if len(chunk) == _CHUNK:
                flush()
        flush()
        if name in seen:
            raise error(path, f"image {name!r} appears twice", line=i + 1)
        seen.add(name)
        yield name, arr[:n]


def _read_blocks(path: Path, ncols: int, error) -> dict[str, np.ndarray]:
    """Read FDDB blocks ``name / count / count rows of ncols numbers`` with line-accurate errors."""
    return dict(_iter_blocks(path, ncols, error))


def read_fddb_detections(path: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Read detections in the official FDDB rectangle format -> ``{name: (boxes_xyxy, scores)}``.

    Format: ``<image name>``, ``<N>``, then ``N`` lines ``x y w h score``
    (left, top, width, height).  ``path`` is one file or a folder whose
    ``*.txt`` files are all read (e.g. one per fold).  Negative width, height
    or score and NaN are errors (:class:`PredictionFormatError`), and so is a
    file of the folder that is a symbolic link leading out of it
    (:func:`~widerface_eval.io.check_inside`, as for WIDER FACE).  Files are
    read streaming, an image at a time: memory holds the result (40 bytes a
    box) plus one image's rows and a bounded chunk of text.
    """
    p = Path(path)
    files = sorted(p.glob("*.txt")) if p.is_dir() else [p]
    if not files or not files[0].exists():
        raise PredictionFormatError(p, "no FDDB detection file found")
    if p.is_dir():
        check_inside(p, files)
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for f in files:
        for name, arr in _iter_blocks(f, 5, PredictionFormatError):
            if name in out:
                raise PredictionFormatError(f, f"image {name!r} has detections in two files")
            if (arr[:, 2:5] < 0).any():
                raise PredictionFormatError(f, f"image {name!r}: negative width, height or score")
            boxes = arr[:, :4].copy()
            boxes[:, 2] += boxes[:, 0]
            boxes[:, 3] += boxes[:, 1]
            out[name] = (boxes, arr[:, 4].copy())
    return out


def write_fddb_detections(path: str | Path, detections: Mapping[str, Detections], names: Iterable[str] | None = None) -> Path:
    """Write ``{name: (boxes_xyxy, scores)}`` in the official FDDB format (``names`` fixes the order)."""
    path = Path(path)
    parts = []
    for name in names if names is not None else detections:
        boxes, scores = as_boxes_scores(detections.get(name, (np.zeros((0, 4)), np.zeros(0))), name)
        parts.append(f"{name}\n{len(scores)}\n")
        for (x1, y1, x2, y2), s in zip(boxes, scores):
            parts.append(f"{x1:.2f} {y1:.2f} {x2 - x1:.2f} {y2 - y1:.2f} {s:.9g}\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(parts), encoding="utf-8")
    tmp.replace(path)
    return path


def _linear_sum_assignment():
    """SciPy's Hungarian solver, imported when an FDDB image first needs one (SciPy comes with the
    ``eval`` extra; WIDER FACE evaluation on the text ground truth needs none)."""
    try:
        from scipy.optimize import linear_sum_assignment
    except ImportError:
        raise ModuleNotFoundError(
            "FDDB evaluation matches faces with SciPy's Hungarian solver: pip install 'retinaface-polynl[eval]'"
        ) from None
    return linear_sum_assignment
