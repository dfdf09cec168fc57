"""Face anonymisation: blur, pixelate or fill every face, leaving the rest of the picture untouched.

    >>> from retinaface_polynl import Detector, anonymize
    >>> detector = Detector()
    >>> image = cv2.imread("street.jpg")
    >>> safe = anonymize(image, find_faces_for_anonymization(detector, image))  # a new array
    >>> safe = anonymize(image, faces, method="pixelate", shape="box", scale=1.5)

Each face's *region* is its detected box grown about its centre by ``scale`` in
width and height (:data:`DEFAULT_SCALE`: forehead, hair line and chin, which the
detector's brows-to-chin boxes leave out), then either the ellipse inscribed in
it (``shape="ellipse"``, the default: a face's own outline) or the whole box.
Only pixels inside a region change; every other pixel keeps its exact value.

Methods (the strength scales with the region, so a large face is as unreadable
as a small one):

``blur``      a Gaussian-like blur (OpenCV's stack blur, constant cost whatever the kernel)
              with sigma = :data:`BLUR_SIGMA` x the region's long side
              (one sixth, about a quarter of the face's width: what remains is less than
              one cycle per face width, where recognition needs eight or more; eyes, nose
              and mouth merge into one smooth patch.  It was one eighth until the crowd
              release, whose blur-trained detector still scored a face blurred so at 0.51).
``pixelate``  a mosaic of :data:`PIXELATE_BLOCKS` blocks across the region's long
              side, each the mean colour of its pixels.
``solid``     one colour (``colour=``, default black).
``none``      nothing changes (the command line still records the faces in its JSON).

Finding the faces to mask (:func:`find_faces_for_anonymization`): a missed face costs more
than a blurred shoulder, so the defaults look harder than ``detect`` does: a score that a box
needs growing with the share of the picture it would blur (:data:`MIN_SCORE` for small boxes, no
huge low-scored box), tiles at the photo's own resolution when the detector's input rule would
shrink a :data:`MIN_FACE` px face below what it finds (a 48-megapixel photo), and passes on the
picture turned a quarter each way (sideways faces).  Measured by
scripts/measure_anonymize_defaults.py (docs/anonymize.md, "Privacy-first defaults").

    >>> faces = find_faces_for_anonymization(Detector(), image)
    >>> safe = anonymize(image, faces)

Videos: :class:`Persistence` delays a stream of per-frame detections by ``n``
frames and gives each frame the faces found within ``n`` frames of it, so that a
face the detector misses in one frame is still masked there (``--persist``).
"""
from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator

import cv2
import numpy as np

from .boxes import box_overlap_of_smaller, nms

METHODS = ("blur", "pixelate", "solid", "none")
SHAPES = ("ellipse", "box")
# Measured by scripts/measure_anonymize_defaults.py with the shipped weights (docs/anonymize.md has
# the tables): a 1.5x ellipse holds the whole forehead-to-chin ellipse of 91 % of the detected faces
# of FDDB fold 8 (held out of training; 1.4x: 77 %, 1.3x: 48 %: docs/tables/anonymize_scale.md).
DEFAULT_SCALE = 1.5
# One plain detector pass at this threshold (below detect's 0.5) is what anonymisation ran before
# find_faces_for_anonymization; the function replaces it, with the rule below.
ANONYMIZE_THRESHOLD = 0.2
# A missed face costs more than a blurred shoulder, and a false box costs the area it blurs: a box
# needs a score of at least SCORE_PER_EXTENT x (its long side / the picture's short side), never
# less than MIN_SCORE, never more than MAX_REQUIRED_SCORE (a box over a quarter of the short side
# needs 0.375, one over half of it 0.75).  Chosen by the sweeps of scripts/measure_anonymize_defaults.py
# --only defaults --sweep (FDDB folds 1-8, WIDER dev, the crowd set's train split; docs/anonymize.md,
# "Privacy-first defaults").
MIN_SCORE = 0.05
SCORE_PER_EXTENT = 1.5
MAX_REQUIRED_SCORE = 0.8
BLUR_SIGMA = 1 / 6
PIXELATE_BLOCKS = 8


def face_boxes(faces) -> np.ndarray:
    """``faces`` as an (N, 4) float array of ``x1, y1, x2, y2``: a :class:`Detections`, one
    :class:`Face`, a sequence of faces or boxes, or an (N, 4) / (4,) array."""
    if faces is None:
        return np.zeros((0, 4), np.float32)
    if isinstance(faces, np.ndarray):
        boxes = faces
    elif hasattr(faces, "boxes"):  # Detections
        boxes = faces.boxes
    elif hasattr(faces, "box"):  # one Face
        boxes = [faces.box]
    else:  # Faces or boxes
        boxes = [getattr(f, "box", f) for f in faces]
    b = np.asarray(boxes, np.float32)
    if b.size == 0:
        return np.zeros((0, 4), np.float32)
    if b.ndim == 1:
        b = b[None]
    if b.ndim != 2 or b.shape[1] < 4:
        raise ValueError(f"expected faces as Detections or (N, 4) boxes x1, y1, x2, y2; got shape {b.shape}")
    b = b[:, :4]
    if not np.isfinite(b).all():
        raise ValueError("face boxes contain NaN or infinite values")
    return b


def face_regions(faces, scale: float = DEFAULT_SCALE) -> np.ndarray:
    """Each face's region: its box grown about its centre by ``scale`` (N, 4), unclipped."""
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    b = face_boxes(faces)
    centre = (b[:, :2] + b[:, 2:]) / 2
    half = np.abs(b[:, 2:] - b[:, :2]) * (scale / 2)
    return np.concatenate([centre - half, centre + half], axis=1)


def _window(region, height: int, width: int):
    """The integer pixel window (x1, y1, x2, y2) a region touches, clipped; None if outside."""
    x1, y1, x2, y2 = region
    ix1, iy1 = max(0, int(np.floor(x1))), max(0, int(np.floor(y1)))
    ix2, iy2 = min(width, int(np.ceil(x2))), min(height, int(np.ceil(y2)))
    if ix2 <= ix1 or iy2 <= iy1:
        return None
    return ix1, iy1, ix2, iy2


def _shape_mask(region, window, shape: str) -> np.ndarray:
    """Boolean mask over ``window``'s pixels whose centres lie inside the region's shape."""
    x1, y1, x2, y2 = region
    ix1, iy1, ix2, iy2 = window
    ys = np.arange(iy1, iy2, dtype=np.float32)[:, None] + 0.5
    xs = np.arange(ix1, ix2, dtype=np.float32)[None, :] + 0.5
    if shape == "box":
        return np.broadcast_to((xs >= x1) & (xs <= x2) & (ys >= y1) & (ys <= y2), (iy2 - iy1, ix2 - ix1))
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    ax, ay = max((x2 - x1) / 2, 0.5), max((y2 - y1) / 2, 0.5)
    return ((xs - cx) / ax) ** 2 + ((ys - cy) / ay) ** 2 <= 1.0


def region_mask(image_shape, faces, shape: str = "ellipse", scale: float = DEFAULT_SCALE) -> np.ndarray:
    """(H, W) bool: the pixels :func:`anonymize` may change for these faces (the union of regions)."""
    _check(shape=shape)
    h, w = image_shape[:2]
    mask = np.zeros((h, w), bool)
    for region in face_regions(faces, scale):
        win = _window(region, h, w)
        if win is not None:
            x1, y1, x2, y2 = win
            mask[y1:y2, x1:x2] |= _shape_mask(region, win, shape)
    return mask


def _check(method: str = "blur", shape: str = "ellipse") -> None:
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; choose one of {', '.join(SHAPES)}")


def _blurred(roi: np.ndarray, extent: float) -> np.ndarray:
    """Stack blur (OpenCV's fast Gaussian approximation: a tent of radius r has sigma ~ r / sqrt 6)
    at sigma = BLUR_SIGMA x extent; its cost does not grow with the kernel, a true Gaussian's
    does (66 ms against 0.5 ms for one 225 px face)."""
    sigma = max(1.0, BLUR_SIGMA * extent)
    radius = max(1, round(6 ** 0.5 * sigma))
    return cv2.stackBlur(roi, (2 * radius + 1, 2 * radius + 1))


def _pixelated(roi: np.ndarray, extent: float) -> np.ndarray:
    block = max(2.0, extent / PIXELATE_BLOCKS)
    h, w = roi.shape[:2]
    small = cv2.resize(roi, (max(1, round(w / block)), max(1, round(h / block))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


def anonymize(
    image: np.ndarray,
    faces,
    method: str = "blur",
    shape: str = "ellipse",
    scale: float = DEFAULT_SCALE,
    colour=(0, 0, 0),
    inplace: bool = False,
) -> np.ndarray:
    """``image`` with every face's region blurred, pixelated or filled (see the module docstring).

    Args:
        image: (H, W) or (H, W, C) array, any channel order (``colour`` is in that order).
        faces: :class:`~retinaface_polynl.Detections` (or boxes, see :func:`face_boxes`), in
            ``image``'s pixels.
        method: ``blur`` (default), ``pixelate``, ``solid`` or ``none``.
        shape: ``ellipse`` (default) or ``box``.
        scale: growth of each box about its centre (default :data:`DEFAULT_SCALE`).
        colour: the ``solid`` fill.
        inplace: change ``image`` itself instead of a copy.

    Returns the anonymised picture; pixels outside :func:`region_mask` keep their values.
    """
    _check(method, shape)
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3) or 0 in image.shape[:2]:
        raise ValueError(f"expected an (H, W) or (H, W, C) image array, got {getattr(image, 'shape', type(image))}")
    out = image if inplace else image.copy()
    if method == "none":
        return out
    h, w = out.shape[:2]
    for region in face_regions(faces, scale):
        win = _window(region, h, w)
        if win is None:
            continue
        x1, y1, x2, y2 = win
        roi = out[y1:y2, x1:x2]
        mask = _shape_mask(region, win, shape)
        extent = float(max(region[2] - region[0], region[3] - region[1]))
        if method == "solid":
            fill = np.empty_like(roi)
            fill[...] = np.asarray(colour, dtype=roi.dtype)[: roi.shape[2]] if roi.ndim == 3 else colour[0]
        elif method == "pixelate":
            fill = _pixelated(roi, extent)
        else:
            fill = _blurred(roi, extent)
        roi[mask] = fill.reshape(roi.shape)[mask]
    return out


def draw_regions(
    image: np.ndarray,
    faces,
    shape: str = "ellipse",
    scale: float = DEFAULT_SCALE,
    scores=None,
    carried=None,
) -> np.ndarray:
    """A copy of ``image`` (BGR) with the regions :func:`anonymize` would mask outlined
    (``--preview``): red for faces found in this picture, orange for faces ``carried`` in
    from neighbouring video frames (a boolean per face), with each face's score."""
    _check(shape=shape)
    out = image.copy()
    h, w = out.shape[:2]
    t = max(1, round(min(h, w) / 300))
    regions = face_regions(faces, scale)
    scores = np.asarray(scores if scores is not None else getattr(faces, "scores", [np.nan] * len(regions)), float)
    carried = np.zeros(len(regions), bool) if carried is None else np.asarray(carried, bool)
    for region, score, moved in zip(regions, scores, carried):
        colour = (0, 140, 255) if moved else (0, 0, 255)
        x1, y1, x2, y2 = (float(v) for v in region)
        if shape == "box":
            cv2.rectangle(out, (round(x1), round(y1)), (round(x2), round(y2)), colour, t, cv2.LINE_AA)
        else:
            centre = (round((x1 + x2) / 2), round((y1 + y2) / 2))
            axes = (max(1, round((x2 - x1) / 2)), max(1, round((y2 - y1) / 2)))
            cv2.ellipse(out, centre, axes, 0, 0, 360, colour, t, cv2.LINE_AA)
        if np.isfinite(score):
            cv2.putText(out, f"{score:.2f}", (round(x1), max(10, round(y1) - 3)), cv2.FONT_HERSHEY_SIMPLEX,
                        0.4 * t, colour, t, cv2.LINE_AA)
    return out


def concat_faces(parts):
    """Several :class:`Detections` -> one holding all their faces (in order)."""
    from .detector import Detections

    parts = list(parts)
    if not parts:
        return Detections.empty()
    return Detections(
        np.concatenate([p.boxes for p in parts]).astype(np.float32),
        np.concatenate([p.scores for p in parts]).astype(np.float32),
        np.concatenate([p.landmarks for p in parts]).astype(np.float32),
    )


class Persistence:
    """Masks a face found in frame t in frames t-n .. t+n too.

    ``push(payload, detections)`` for each frame in order returns the frames now complete
    (those n frames behind), each as ``(payload, detections, masked, offsets)``:
    ``masked`` holds the faces of the frame itself first, then those of the frames within
    ``n`` of it; ``offsets`` (one per face of ``masked``) is the frame distance each came
    from (0 for the frame's own faces).  ``flush()`` returns the rest at the end of a video.
    At most ``n`` frames wait in memory.
    """

    def __init__(self, n: int) -> None:
        if int(n) != n or n < 0:
            raise ValueError(f"persist must be a whole number of frames >= 0, got {n}")
        self.n = int(n)
        self._past: deque = deque(maxlen=self.n or 1)  # detections of emitted frames
        self._waiting: deque = deque()  # (payload, detections) not yet emitted

    def _emit(self):
        payload, det = self._waiting.popleft()
        parts, offsets = [det], [np.zeros(len(det), int)]
        if self.n:
            for k, (_, later) in enumerate(list(self._waiting)[: self.n], start=1):
                parts.append(later)
                offsets.append(np.full(len(later), k))
            for k, earlier in enumerate(reversed(self._past), start=1):
                parts.append(earlier)
                offsets.append(np.full(len(earlier), -k))
            self._past.append(det)
        return payload, det, concat_faces(parts), np.concatenate(offsets)

    def push(self, payload, detections) -> list:
        self._waiting.append((payload, detections))
        ready = []
        while len(self._waiting) > self.n:
            ready.append(self._emit())
        return ready

    def flush(self) -> list:
        ready = []
        while self._waiting:
            ready.append(self._emit())
        self._past.clear()
        return ready


def persist_faces(frames: Iterable, n: int) -> Iterator:
    """``(payload, detections)`` pairs of consecutive frames -> ``(payload, detections, masked,
    offsets)`` as :class:`Persistence` gives them, in order."""
    state = Persistence(n)
    for payload, det in frames:
        yield from state.push(payload, det)
    yield from state.flush()


# -- finding the faces to mask ----------------------------------------------------------------
# The defaults below were chosen by scripts/measure_anonymize_defaults.py (docs/anonymize.md,
# "Defaults and how they were measured"); the numbers quoted there come from that script.
MIN_FACE = 24  # px in the photo: every face this tall or taller is looked for at any photo size
# The shipped detector finds a face from about this many network-input pixels (with its small-face
# zoom); a photo whose input rule would shrink a MIN_FACE face below it is also searched in tiles.
DETECTABLE_FACE = 16
TILE = 1024  # tile side at the photo's own resolution (one forward pass each)
TILE_OVERLAP = 256  # px; a face up to this size lies whole in some tile, larger ones in the whole pass
ROTATIONS = (90, 270)  # extra passes on the picture turned clockwise by these angles (sideways faces)
ROTATED_THRESHOLD = 0.9  # a face found only on a turned picture needs this score
# A turned pass also finds upright faces, askew and with boxes up to twice their side: a turned face
# whose smaller box lies this much inside an upright face scored at least as high is that face, and
# is dropped (measured with the fourth phase-7 file on FDDB fold 8, WIDER dev, every 5th crowd photo
# and sideways copies of FDDB fold 8 and WIDER dev: background change 0.40 -> 0.28 and 1.63 -> 1.56,
# faces covered the same or more on every set; docs/anonymize.md)
TURNED_DUPLICATE_OVERLAP = 0.5
TTA = None  # test-time augmentation of the upright pass (None or "flip")


def _turn_back(det, angle: int, height: int, width: int):
    """Detections found on the picture turned clockwise by ``angle`` (90, 180, 270) -> the
    upright picture's pixels (``height`` x ``width``): boxes and landmarks."""
    from .detector import Detections

    if angle % 360 == 0 or not len(det):
        return det
    x, y = det.landmarks[..., 0], det.landmarks[..., 1]
    b = det.boxes
    if angle == 90:  # turned clockwise: x' = H - y, y' = x
        boxes = np.stack([b[:, 1], height - b[:, 2], b[:, 3], height - b[:, 0]], 1)
        marks = np.stack([y, height - x], -1)
    elif angle == 270:  # counter-clockwise: x' = y, y' = W - x
        boxes = np.stack([width - b[:, 3], b[:, 0], width - b[:, 1], b[:, 2]], 1)
        marks = np.stack([width - y, x], -1)
    elif angle == 180:
        boxes = np.stack([width - b[:, 2], height - b[:, 3], width - b[:, 0], height - b[:, 1]], 1)
        marks = np.stack([width - x, height - y], -1)
    else:
        raise ValueError(f"rotations are multiples of 90 degrees, got {angle}")
    return Detections(boxes.astype(np.float32), det.scores.astype(np.float32), marks.astype(np.float32))


_TURN = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}


def tile_windows(height: int, width: int, tile: int = TILE, overlap: int = TILE_OVERLAP) -> list[tuple[int, int, int, int]]:
    """Windows ``(x1, y1, x2, y2)`` of side ``tile`` (or the picture's side when smaller) that
    cover a ``height`` x ``width`` picture, neighbours sharing at least ``overlap`` pixels, spread
    evenly so that no window is a thin sliver."""
    if tile <= overlap:
        raise ValueError(f"tile ({tile}) must be larger than its overlap ({overlap})")

    def starts(n: int) -> list[int]:
        if n <= tile:
            return [0]
        count = int(np.ceil((n - overlap) / (tile - overlap)))
        return [round(i * (n - tile) / (count - 1)) for i in range(count)]

    return [(x, y, min(width, x + tile), min(height, y + tile)) for y in starts(height) for x in starts(width)]


def needs_tiles(detector, height: int, width: int, min_face: int = MIN_FACE) -> bool:
    """Whether the detector's input rule shrinks a ``min_face`` px face of this picture below
    :data:`DETECTABLE_FACE` input pixels (then :func:`detection_passes` adds tiles)."""
    return min_face * detector.input_scale(height, width) < DETECTABLE_FACE


def detection_passes(detector, image: np.ndarray, threshold: float = MIN_SCORE, *,
                     rotations=ROTATIONS, tiles: bool | None = None, tta=TTA, min_face: int = MIN_FACE,
                     tile: int = TILE, overlap: int = TILE_OVERLAP) -> dict:
    """Each pass of :func:`find_faces_for_anonymization` on one BGR picture, in its pixels,
    faces scoring at least ``threshold``: ``{"upright": ..., "tiles": ..., "turned 90": ...}``.

    ``tiles``: None (default) adds them when :func:`needs_tiles` says the input rule would
    shrink a ``min_face`` face too far; True / False force them on / off; ``tile`` / ``overlap``:
    their side and overlap in the photo's pixels."""
    from .zoom import shift

    h, w = image.shape[:2]
    passes = {"upright": detector.detect(image, threshold=threshold, tta=tta)}
    if tiles is None:
        tiles = needs_tiles(detector, h, w, min_face)
    if tiles:
        found = []
        for x1, y1, x2, y2 in tile_windows(h, w, tile, overlap):
            part = image[y1:y2, x1:x2]
            # the tile at its own resolution: short side exactly its short side, long side capped at its long side
            det = detector.detect(part, threshold=threshold, size=min(part.shape[:2]), max_size=max(part.shape[:2]))
            if len(det):
                found.append(shift(det, x1, y1))  # into the photo's pixels
        passes["tiles"] = concat_faces(found)
    for angle in rotations:
        turned = cv2.rotate(image, _TURN[angle % 360]) if angle % 360 else image
        passes[f"turned {angle}"] = _turn_back(detector.detect(turned, threshold=threshold), angle % 360, h, w)
    return passes


def required_score(boxes: np.ndarray, image_shape, threshold: float = MIN_SCORE,
                   score_per_extent: float = SCORE_PER_EXTENT, max_required: float = MAX_REQUIRED_SCORE) -> np.ndarray:
    """The score each box needs to be masked: ``score_per_extent`` x its long side over the
    picture's short side, clipped to [``threshold``, ``max(threshold, max_required)``]: what a false
    box costs is the share of the picture it blurs (the issue's 0.12 box over a hand and a lectern
    would blur most of a photo; a small face the detector is unsure of blurs little)."""
    h, w = image_shape[:2]
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    extent = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) / max(1, min(h, w))
    return np.clip(score_per_extent * extent, threshold, max(threshold, max_required)).astype(np.float32)


def choose_faces(passes: dict, image_shape, threshold: float = MIN_SCORE, *,
                 rotated_threshold: float = ROTATED_THRESHOLD, score_per_extent: float = SCORE_PER_EXTENT,
                 max_required: float = MAX_REQUIRED_SCORE, nms_threshold: float = 0.4,
                 turned_overlap: float = TURNED_DUPLICATE_OVERLAP):
    """The faces to mask from :func:`detection_passes`, scores descending.

    Upright and tile faces scoring at least :func:`required_score` (``threshold`` for small
    boxes, more for larger ones) are merged by NMS (``nms_threshold``) in the picture's pixels;
    so are the turned passes' faces scoring ``rotated_threshold`` as well.  A turned face is
    then dropped when ``turned_overlap`` of the smaller box lies in an upright face scored at
    least as high: the same face seen askew, whose box is a poor fit (an upright face of 1.0
    found at 0.93 on the turned picture with a box twice its side).  A turned face never
    removes an upright one: where both stand, both are masked."""
    from .detector import Detections

    h, w = image_shape[:2]

    def merged(turned: bool):
        kept = []
        for name, det in passes.items():
            if not len(det) or name.startswith("turned") != turned:
                continue
            floor = required_score(det.boxes, image_shape, threshold, score_per_extent, max_required)
            if turned:
                floor = np.maximum(floor, rotated_threshold)
            kept.append(det.select(det.scores >= floor))
        faces = concat_faces(kept)
        if not len(faces):
            return faces
        boxes = faces.boxes.copy()
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
        keep = nms(boxes, faces.scores, nms_threshold)
        return Detections(boxes[keep], faces.scores[keep], faces.landmarks[keep])

    upright, turned = merged(False), merged(True)
    if len(upright) and len(turned):
        same = box_overlap_of_smaller(turned.boxes, upright.boxes) >= turned_overlap
        turned = turned.select(~(same & (upright.scores[None, :] >= turned.scores[:, None])).any(axis=1))
    faces = concat_faces([upright, turned])
    if not len(faces):
        return Detections.empty()
    order = np.argsort(-faces.scores, kind="stable")
    return Detections(faces.boxes[order], faces.scores[order], faces.landmarks[order])


def find_faces_in_frames(detector, frames, threshold: float = MIN_SCORE, *, tta=TTA,
                         batch_size: int = 8) -> list:
    """:func:`find_faces_for_anonymization` with ``rotations=()`` and ``tiles=False`` (a video
    frame's search) for several BGR frames at once, ``batch_size`` per forward pass
    (``detector.detect_batch``): the same faces, frame by frame, in fewer network calls."""
    frames = list(frames)
    found = detector.detect_batch(frames, threshold=threshold, batch_size=batch_size, tta=tta)
    return [choose_faces({"upright": det}, frame.shape, threshold) for frame, det in zip(frames, found)]


def find_faces_for_anonymization(detector, image, threshold: float = MIN_SCORE, *,
                                 rotations=ROTATIONS, tiles: bool | None = None, tta=TTA):
    """Every face to mask in one picture, with the measured privacy-first defaults.

    Args:
        detector: a :class:`~retinaface_polynl.Detector` (its own ``threshold`` is not used).
        image: a BGR array (or anything ``detector.detect`` reads: a path, file bytes).
        threshold: the score a small box needs (default :data:`MIN_SCORE`); larger boxes need
            more (:func:`required_score`).
        rotations: extra passes on the picture turned clockwise by these angles (default
            :data:`ROTATIONS`: a quarter turn each way, for sideways faces); ``()`` for none
            (video frames, where they triple the cost).
        tiles: None (default): tiles at the photo's own resolution when the input rule would
            shrink a :data:`MIN_FACE` px face below what the detector finds; True / False force it.
        tta: test-time augmentation of the upright pass (default :data:`TTA`).

    Returns :class:`~retinaface_polynl.Detections` in the picture's pixels, for :func:`anonymize`.
    """
    if not isinstance(image, np.ndarray):
        image = detector.prepare(image)
    passes = detection_passes(detector, image, threshold, rotations=rotations, tiles=tiles, tta=tta)
    return choose_faces(passes, image.shape, threshold)
