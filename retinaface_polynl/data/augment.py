"""Training augmentation, as RetinaFace trains.

    random square crop (a random fraction of the short side, faces whose centre
    stays inside are kept and clipped, tiny ones dropped)
    -> photometric distortion (brightness, contrast, saturation, hue)
    -> pad to square when no crop kept a face -> horizontal mirror (left/right
    landmarks swapped) -> resize to the training size
    -> optionally: rotation (tilted heads), motion blur, a lower-quality copy

Every step is a plain function of a :class:`FaceSample` (numpy BGR uint8 image
plus boxes/landmarks in its pixels); the random ones take a
``numpy.random.Generator`` so that a sample's augmentation is reproducible
from a seed.  The mean subtraction and HWC->CHW are :func:`detector.preprocess`,
shared with inference.  Coordinates are continuous pixels: pixel ``i`` spans
``[i, i + 1)``, so a mirror maps ``x`` to ``W - x`` and a crop at ``(x0, y0)``
subtracts ``(x0, y0)``.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..pipeline import BGR_MEAN
from .records import NUM_LANDMARKS

CROP_SCALES = (0.3, 0.45, 0.6, 0.8, 1.0)
# Mirroring swaps the image's left and right: left eye <-> right eye, left <-> right mouth corner.
MIRROR_LANDMARK_ORDER = (1, 0, 2, 4, 3)
INTERPOLATIONS = (cv2.INTER_LINEAR, cv2.INTER_CUBIC, cv2.INTER_AREA, cv2.INTER_NEAREST, cv2.INTER_LANCZOS4)


@dataclass
class FaceSample:
    """An image (BGR uint8, H x W x 3), its faces, its ignore regions (boxes that are
    neither face nor background) and its negative regions (boxes known to hold no face,
    :class:`~.records.ImageRecord`), in its pixels.  Every geometric step moves the negative
    regions as it moves the ignore regions."""

    image: np.ndarray
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    landmarks: np.ndarray = field(default_factory=lambda: np.zeros((0, NUM_LANDMARKS, 2), np.float32))
    has_landmarks: np.ndarray = field(default_factory=lambda: np.zeros((0,), bool))
    ignore: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    negatives: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))

    def select(self, keep: np.ndarray) -> "FaceSample":
        return self.replace(boxes=self.boxes[keep], landmarks=self.landmarks[keep], has_landmarks=self.has_landmarks[keep])

    def replace(self, **changes) -> "FaceSample":
        return dataclasses.replace(self, **changes)


def _clip_boxes(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    boxes = boxes.copy()
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, width)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, height)
    return boxes


def _clip_regions(regions: np.ndarray, width: int, height: int) -> np.ndarray:
    """Regions clipped to a ``width x height`` picture, those left empty dropped."""
    r = _clip_boxes(regions.reshape(-1, 4), width, height)
    return r[((r[:, 2] - r[:, 0]) > 0) & ((r[:, 3] - r[:, 1]) > 0)]


def crop(sample: FaceSample, x0: int, y0: int, width: int, height: int, min_face_size: float = 0.0) -> FaceSample:
    """The ``width x height`` window at ``(x0, y0)``.

    Faces whose box centre lies inside the window are kept, their boxes clipped to
    it; every coordinate moves by ``(-x0, -y0)``.  Kept faces narrower or shorter
    than ``min_face_size`` (window pixels, after clipping) are dropped, and become
    ignore regions (a face too small to learn is still no background); ignore and
    negative regions are clipped to the window, those outside it dropped.
    """
    image = sample.image[y0 : y0 + height, x0 : x0 + width]
    b = sample.boxes
    centres = (b[:, :2] + b[:, 2:]) / 2
    inside = (
        (centres[:, 0] >= x0) & (centres[:, 0] < x0 + width) & (centres[:, 1] >= y0) & (centres[:, 1] < y0 + height)
    )
    offset = np.asarray([x0, y0], np.float32)
    boxes = _clip_boxes(b[inside] - np.tile(offset, 2), width, height)
    landmarks = sample.landmarks[inside] - offset
    has = sample.has_landmarks[inside]
    big = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) >= max(min_face_size, 1e-6)
    ignore = _clip_regions(np.concatenate([sample.ignore - np.tile(offset, 2), boxes[~big]]), width, height)
    negatives = _clip_regions(sample.negatives - np.tile(offset, 2), width, height)
    return FaceSample(image, boxes[big], landmarks[big], has[big], ignore, negatives)


def random_square_crop(
    sample: FaceSample,
    rng: np.random.Generator,
    scales: Sequence[float] = CROP_SCALES,
    out_size: int | None = None,
    min_face_size: float = 0.0,
    max_trials: int = 250,
) -> tuple[FaceSample, bool]:
    """RetinaFace's crop: a square of side ``scale * short side`` at a random place.

    ``min_face_size`` is measured at the training resolution ``out_size`` (the crop
    is resized to it later).  A crop must keep at least one face when the image
    has any; after ``max_trials`` failures the sample is returned whole and the
    flag is ``False`` (the caller pads it to a square instead).
    """
    h, w = sample.image.shape[:2]
    short = min(h, w)
    for _ in range(max_trials):
        side = max(1, int(float(rng.choice(scales)) * short))
        x0 = int(rng.integers(0, w - side + 1))
        y0 = int(rng.integers(0, h - side + 1))
        min_px = min_face_size * side / out_size if out_size else min_face_size
        out = crop(sample, x0, y0, side, side, min_px)
        if len(out.boxes) or not len(sample.boxes):
            return out, True
    return sample, False


def expand(sample: FaceSample, rng: np.random.Generator, max_ratio: float, fill: Sequence[float] = BGR_MEAN) -> FaceSample:
    """SSD's zoom-out: the image at a random place on a mean-coloured canvas ``ratio``
    times its size (``ratio`` uniform in [1, ``max_ratio``]), every coordinate moved by
    the placement offset.  Faces get smaller relative to the picture, so a dataset of
    large faces (FDDB) also teaches small ones."""
    h, w = sample.image.shape[:2]
    ratio = float(rng.uniform(1.0, max_ratio))
    ch, cw = int(h * ratio), int(w * ratio)
    y0, x0 = int(rng.integers(0, ch - h + 1)), int(rng.integers(0, cw - w + 1))
    canvas = np.empty((ch, cw, 3), np.uint8)
    canvas[...] = np.asarray(fill, np.float32).round().astype(np.uint8)
    canvas[y0 : y0 + h, x0 : x0 + w] = sample.image
    return translate(sample, x0, y0).replace(image=canvas)


def translate(sample: FaceSample, dx: float, dy: float) -> FaceSample:
    """Every coordinate moved by ``(dx, dy)`` (the image unchanged)."""
    offset = np.asarray([dx, dy], np.float32)
    return FaceSample(sample.image, sample.boxes + np.tile(offset, 2), sample.landmarks + offset, sample.has_landmarks,
                      sample.ignore + np.tile(offset, 2), sample.negatives + np.tile(offset, 2))


def face_sizes(boxes: np.ndarray) -> np.ndarray:
    """(N,) each box's longer side, the size by which faces are bucketed and sampled."""
    return np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])


def small_face_crop(
    sample: FaceSample,
    rng: np.random.Generator,
    out_size: int,
    size_range: tuple[float, float] = (6.0, 40.0),
    min_face_size: float = 0.0,
) -> tuple[FaceSample, int] | None:
    """Data-anchor sampling (PyramidBox), aimed at small faces: one face drawn at random
    is given a size drawn log-uniformly from ``size_range`` (longer side, pixels at the
    training resolution ``out_size``), and the ``out_size`` window around it (placed at
    random so that it holds the whole face, inside the picture where the picture allows)
    is cut at that scale.  Every face of the picture keeps the same scale, so its
    neighbours in a crowd become as small as it.

    The window is cut from the picture and scaled to ``out_size`` in one step, the part
    of it outside the picture being the mean colour, so a face made 30 times smaller
    costs no more than one made larger.

    Returns ``(window (out_size x out_size), index of the drawn face in it)``, or ``None``
    when the picture has no face.
    """
    if not len(sample.boxes):
        return None
    sizes = face_sizes(sample.boxes)
    i = int(rng.integers(len(sizes)))
    lo, hi = size_range
    target = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    side = max(1, int(round(out_size * sizes[i] / max(target, 1e-6))))
    h, w = sample.image.shape[:2]
    b = sample.boxes[i]

    def place(lo_: float, hi_: float, extent: int) -> int:
        inside_lo, inside_hi = (0, extent - side) if extent >= side else (extent - side, 0)
        a, z = max(lo_, inside_lo), min(hi_, inside_hi)
        if a > z:
            a, z = lo_, hi_
        return int(np.floor(rng.uniform(a, z))) if z > a else int(np.floor(a))

    x0 = place(b[2] - side, b[0], w)
    y0 = place(b[3] - side, b[1], h)
    ix0, iy0, ix1, iy1 = max(0, x0), max(0, y0), min(w, x0 + side), min(h, y0 + side)
    part = crop(sample, ix0, iy0, ix1 - ix0, iy1 - iy0, min_face_size * side / out_size)
    scale = out_size / side
    pw, ph = max(1, int(round((ix1 - ix0) * scale))), max(1, int(round((iy1 - iy0) * scale)))
    dx, dy = int(round((ix0 - x0) * scale)), int(round((iy0 - y0) * scale))
    pw, ph = min(pw, out_size - dx), min(ph, out_size - dy)
    part = resize(part, pw, ph, cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    canvas = np.empty((out_size, out_size, 3), np.uint8)
    canvas[...] = np.asarray(BGR_MEAN, np.float32).round().astype(np.uint8)
    canvas[dy : dy + ph, dx : dx + pw] = part.image
    window = translate(part, dx, dy).replace(image=canvas)
    shifted = (b - np.asarray([x0, y0, x0, y0], np.float32)) * scale
    index = int(np.argmin(np.abs(window.boxes - shifted).sum(1))) if len(window.boxes) else -1
    return window, index


def pad_to_square(sample: FaceSample, fill: Sequence[float] = BGR_MEAN) -> FaceSample:
    """Pad at the bottom/right with the mean colour to a square (coordinates unchanged)."""
    h, w = sample.image.shape[:2]
    side = max(h, w)
    if h == w:
        return sample
    out = np.empty((side, side, 3), np.uint8)
    out[...] = np.asarray(fill, np.float32).round().astype(np.uint8)
    out[:h, :w] = sample.image
    return sample.replace(image=out)


def mirror(sample: FaceSample) -> FaceSample:
    """Horizontal flip: ``x -> W - x``, left/right landmarks swapped (an involution)."""
    w = sample.image.shape[1]
    image = np.ascontiguousarray(sample.image[:, ::-1])
    landmarks = sample.landmarks[:, list(MIRROR_LANDMARK_ORDER)].copy()
    landmarks[..., 0] = w - landmarks[..., 0]

    def flip(regions: np.ndarray) -> np.ndarray:
        out = regions.copy()
        out[:, 0], out[:, 2] = w - regions[:, 2], w - regions[:, 0]
        return out

    return FaceSample(image, flip(sample.boxes), landmarks, sample.has_landmarks.copy(), flip(sample.ignore),
                      flip(sample.negatives))


def resize(sample: FaceSample, width: int, height: int, interpolation: int = cv2.INTER_LINEAR) -> FaceSample:
    """Resize the image to ``width x height``, scaling every coordinate with it."""
    h, w = sample.image.shape[:2]
    sx, sy = width / w, height / h
    image = cv2.resize(sample.image, (width, height), interpolation=interpolation)
    scale = np.asarray([sx, sy], np.float32)
    return FaceSample(image, sample.boxes * np.tile(scale, 2), sample.landmarks * scale, sample.has_landmarks,
                      sample.ignore * np.tile(scale, 2), sample.negatives * np.tile(scale, 2))


def rotate(sample: FaceSample, angle: float, min_face_size: float = 0.0,
           fill: Sequence[float] = BGR_MEAN) -> FaceSample:
    """The picture turned by ``angle`` degrees (counter-clockwise, as OpenCV) about its centre,
    the same size, the corners it uncovers the mean colour: a tilted head.

    Landmarks move exactly.  A face box becomes the bounding box of its inscribed ellipse
    turned by ``angle`` (a face is round: the box of the turned corners would add background
    that no annotator draws; at 90 degrees width and height swap, at any angle a circle stays
    the same square), and so does a negative region (a hand or a fist is as compact; the box of
    its turned corners would reach onto its neighbours).  An ignore region becomes the box of its
    turned corners, so it still covers what it covered.  Faces whose centre leaves the picture are
    dropped and the others clipped, as :func:`crop` does; those left narrower than
    ``min_face_size`` become ignore regions.
    """
    h, w = sample.image.shape[:2]
    # OpenCV's pixel (i, j) is the point (i + 0.5, j + 0.5) of our continuous coordinates
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), float(angle), 1.0)
    image = cv2.warpAffine(sample.image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                           borderValue=tuple(float(v) for v in fill))

    def move(points: np.ndarray) -> np.ndarray:
        return ((points - 0.5) @ m[:, :2].T + m[:, 2] + 0.5).astype(np.float32)

    c, s = abs(np.cos(np.radians(angle))), abs(np.sin(np.radians(angle)))

    def turn_ellipse(b: np.ndarray) -> np.ndarray:
        centres = move((b[:, :2] + b[:, 2:]) / 2)
        half = (b[:, 2:] - b[:, :2]) / 2
        extent = np.stack([np.hypot(half[:, 0] * c, half[:, 1] * s), np.hypot(half[:, 0] * s, half[:, 1] * c)], 1)
        return np.concatenate([centres - extent, centres + extent], 1).astype(np.float32).reshape(-1, 4)

    boxes = turn_ellipse(sample.boxes)
    landmarks = move(sample.landmarks.reshape(-1, 2)).reshape(sample.landmarks.shape)
    g = sample.ignore
    corners = move(np.stack([g[:, [0, 1]], g[:, [2, 1]], g[:, [0, 3]], g[:, [2, 3]]], 1).reshape(-1, 2)).reshape(-1, 4, 2)
    ignore = np.concatenate([corners.min(1), corners.max(1)], 1).astype(np.float32)
    turned = FaceSample(image, boxes, landmarks, sample.has_landmarks, ignore.reshape(-1, 4),
                        turn_ellipse(sample.negatives))
    return crop(turned, 0, 0, w, h, min_face_size)


def motion_blur(image: np.ndarray, length: float, angle: float) -> np.ndarray:
    """A BGR uint8 ``image`` smeared along a line of ``length`` pixels at ``angle`` degrees (a
    moving subject or a shaking camera), the same size; a length of 1 or less leaves it as it was."""
    if length <= 1:
        return image.copy()
    n = int(np.ceil(length)) // 2 * 2 + 1  # an odd kernel that holds the line
    line = np.zeros((n, n), np.float32)
    half = (length - 1) / 2
    line[n // 2, int(round(n // 2 - half)) : int(round(n // 2 + half)) + 1] = 1.0
    turn = cv2.getRotationMatrix2D((n // 2, n // 2), float(angle), 1.0)
    kernel = cv2.warpAffine(line, turn, (n, n), flags=cv2.INTER_LINEAR)
    return cv2.filter2D(image, -1, kernel / kernel.sum(), borderType=cv2.BORDER_REFLECT)


def photometric_distort(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """RetinaFace/SSD colour jitter on a BGR uint8 image, each part with probability 1/2:
    brightness +-32, contrast x[0.5, 1.5] (before or after the HSV part),
    saturation x[0.5, 1.5], hue +-18 degrees."""
    img = image.astype(np.float32)

    def contrast(x):
        return x * rng.uniform(0.5, 1.5) if rng.random() < 0.5 else x

    if rng.random() < 0.5:
        img += rng.uniform(-32, 32)
    contrast_first = rng.random() < 0.5
    if contrast_first:
        img = contrast(img)
    hsv = cv2.cvtColor(img.clip(0, 255).astype(np.uint8), cv2.COLOR_BGR2HSV).astype(np.float32)
    if rng.random() < 0.5:
        hsv[..., 1] *= rng.uniform(0.5, 1.5)
    if rng.random() < 0.5:
        hsv[..., 0] = (hsv[..., 0] + rng.uniform(-9, 9)) % 180  # OpenCV hue is degrees / 2
    img = cv2.cvtColor(hsv.clip(0, [179, 255, 255]).astype(np.uint8), cv2.COLOR_HSV2BGR).astype(np.float32)
    if not contrast_first:
        img = contrast(img)
    return img.clip(0, 255).astype(np.uint8)


def degrade(image: np.ndarray, rng: np.random.Generator, max_factor: float, jpeg_prob: float = 0.5) -> np.ndarray:
    """A lower-quality copy of a BGR uint8 ``image``, the same size: shrunk by factors drawn
    independently for x and y from [1, ``max_factor``] and enlarged back (a photo stored small,
    stretched and resized, or out of focus), then with probability ``jpeg_prob`` JPEG-encoded at
    a quality in [30, 90].  Boxes and landmarks keep their places."""
    h, w = image.shape[:2]
    fx, fy = rng.uniform(1.0, max_factor, size=2)
    small = cv2.resize(image, (max(1, round(w / fx)), max(1, round(h / fy))), interpolation=cv2.INTER_AREA)
    back = INTERPOLATIONS[int(rng.integers(len(INTERPOLATIONS)))]
    out = cv2.resize(small, (w, h), interpolation=back)
    if rng.random() < jpeg_prob:
        ok, data = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(30, 91))])
        if ok:
            out = cv2.imdecode(data, cv2.IMREAD_COLOR)
    return out


# What hides part of a face in crowd photos: sunglasses (a band over the eyes), a hand, scarf or
# mask (the lower part), a hat, helmet or hair (the upper part), another head or a shoulder (a side).
OCCLUDERS = ("eyes", "lower", "upper", "side")


def occluder_region(box: np.ndarray, eye_y: float | None, kind: str, rng: np.random.Generator) -> np.ndarray:
    """The region ``(x1, y1, x2, y2)`` an occluder of ``kind`` (:data:`OCCLUDERS`) covers on a
    face ``box``, drawn at random: the eyes band is 18-30 % of the box's height, centred on
    ``eye_y`` (the eyes' mean height, or 40 % down the box when there are no landmarks) and
    inset 8 % from either side; the lower part covers the box from 45-65 % of its height down;
    the upper part down to 20-40 %; a side 25-45 % of its width from the left or the right.
    Each reaches a little past the box on its open sides, as a hand or a hat does."""
    x1, y1, x2, y2 = (float(v) for v in box)
    w, h = x2 - x1, y2 - y1
    if kind == "eyes":
        y = y1 + 0.4 * h if eye_y is None else float(eye_y)
        half = rng.uniform(0.18, 0.30) * h / 2
        return np.array([x1 + 0.08 * w, y - half, x2 - 0.08 * w, y + half], np.float32)
    if kind == "lower":
        return np.array([x1 - 0.05 * w, y1 + rng.uniform(0.45, 0.65) * h, x2 + 0.05 * w, y2 + 0.1 * h], np.float32)
    if kind == "upper":
        return np.array([x1 - 0.1 * w, y1 - 0.2 * h, x2 + 0.1 * w, y1 + rng.uniform(0.2, 0.4) * h], np.float32)
    if kind == "side":
        cover = rng.uniform(0.25, 0.45) * w
        if rng.random() < 0.5:
            return np.array([x1 - 0.1 * w, y1 - 0.05 * h, x1 + cover, y2 + 0.05 * h], np.float32)
        return np.array([x2 - cover, y1 - 0.05 * h, x2 + 0.1 * w, y2 + 0.05 * h], np.float32)
    raise ValueError(f"unknown occluder {kind!r}; expected one of {', '.join(OCCLUDERS)}")


def occlude(sample: FaceSample, rng: np.random.Generator, face_prob: float, min_face_size: float = 16.0) -> FaceSample:
    """Faces partly hidden, as sunglasses, hands, scarves, hats, hair or other heads hide them in
    crowds: each face at least ``min_face_size`` pixels on its shorter side is, with probability
    ``face_prob``, covered over an :func:`occluder_region` of a random kind by either a patch of the
    same picture taken from elsewhere (cloth, hair, background: real texture) or a flat colour
    (dark for the eyes band). Boxes and landmarks stay as they are: annotators, WIDER FACE's
    included, draw an occluded face's whole box, and its hidden landmarks are still where they are."""
    image = sample.image.copy()
    h, w = image.shape[:2]
    for i, box in enumerate(sample.boxes):
        if min(box[2] - box[0], box[3] - box[1]) < min_face_size or rng.random() >= face_prob:
            continue
        kind = OCCLUDERS[int(rng.integers(len(OCCLUDERS)))]
        eye_y = sample.landmarks[i, :2, 1].mean() if sample.has_landmarks[i] else None
        region = np.clip(np.round(occluder_region(box, eye_y, kind, rng)), 0, [w, h, w, h])
        x1, y1, x2, y2 = (int(v) for v in region)
        rw, rh = x2 - x1, y2 - y1
        if rw < 1 or rh < 1:
            continue
        if rng.random() < 0.5 and rw < w and rh < h:
            sx, sy = int(rng.integers(0, w - rw + 1)), int(rng.integers(0, h - rh + 1))
            image[y1:y2, x1:x2] = sample.image[sy : sy + rh, sx : sx + rw]
        else:
            top = 60 if kind == "eyes" else 256
            image[y1:y2, x1:x2] = rng.integers(0, top, size=3).astype(np.uint8)
    return sample.replace(image=image)


@dataclass(frozen=True)
class TrainAugment:
    """The training pipeline (crop, distort, pad, mirror, resize) with its knobs.

    Attributes:
        image_size: the square training resolution.
        crop_scales: crop side as fractions of the image's short side; empty: no crop.
        distort: apply :func:`photometric_distort`.
        mirror_prob: probability of a horizontal flip.
        min_face_size: faces smaller than this at ``image_size`` are dropped by the crop.
        random_interpolation: resize with a random OpenCV interpolation (RetinaFace);
            otherwise bilinear.
        expand_prob, expand_ratio: probability of :func:`expand` (zoom out by up to
            ``expand_ratio``) before the crop; 0 (RetinaFace's recipe) never does.
        small_face_prob, small_face_range: probability of :func:`small_face_crop` instead
            of the expand-and-crop path: a face drawn at random is shown at a size drawn
            from ``small_face_range`` (longer side, pixels at ``image_size``).
        rotate_prob, rotate_max: probability of :func:`rotate` by an angle drawn from
            [-``rotate_max``, ``rotate_max``] degrees, after the final resize.
        motion_blur_prob, motion_blur_max: probability of :func:`motion_blur` along a line of
            3 to ``motion_blur_max`` pixels (at ``image_size``) in a random direction.
        degrade_prob, degrade_max: probability of :func:`degrade` (shrink by up to
            ``degrade_max`` and enlarge back, maybe JPEG) after the final resize.
        occlude_prob: probability that :func:`occlude` hides part of each face of 16 px or
            more (at ``image_size``), after the final resize and before the rotation.

    A step whose probability is 0 draws nothing from the generator, so a recipe that does
    not use it augments exactly as before it existed.
    """

    image_size: int = 640
    crop_scales: tuple[float, ...] = CROP_SCALES
    distort: bool = True
    mirror_prob: float = 0.5
    min_face_size: float = 2.0
    random_interpolation: bool = True
    expand_prob: float = 0.0
    expand_ratio: float = 2.0
    small_face_prob: float = 0.0
    small_face_range: tuple[float, float] = (6.0, 40.0)
    degrade_prob: float = 0.0
    degrade_max: float = 3.0
    rotate_prob: float = 0.0
    rotate_max: float = 30.0
    motion_blur_prob: float = 0.0
    motion_blur_max: float = 9.0
    occlude_prob: float = 0.0

    def __call__(self, sample: FaceSample, rng: np.random.Generator) -> FaceSample:
        cropped = False
        small = None
        if self.small_face_prob > 0 and rng.random() < self.small_face_prob:
            small = small_face_crop(sample, rng, self.image_size, self.small_face_range, self.min_face_size)
        if small is not None:
            sample, cropped = small[0], True
        elif self.expand_prob > 0 and rng.random() < self.expand_prob:
            sample = expand(sample, rng, self.expand_ratio)
        if self.crop_scales and small is None:
            sample, cropped = random_square_crop(
                sample, rng, self.crop_scales, out_size=self.image_size, min_face_size=self.min_face_size
            )
        if self.distort:
            sample = sample.replace(image=photometric_distort(sample.image, rng))
        if not cropped:
            sample = pad_to_square(sample)
        if rng.random() < self.mirror_prob:
            sample = mirror(sample)
        interp = INTERPOLATIONS[int(rng.integers(len(INTERPOLATIONS)))] if self.random_interpolation else cv2.INTER_LINEAR
        sample = resize(sample, self.image_size, self.image_size, interp)
        if self.occlude_prob > 0:
            sample = occlude(sample, rng, self.occlude_prob)
        if self.rotate_prob > 0 and rng.random() < self.rotate_prob:
            sample = rotate(sample, rng.uniform(-self.rotate_max, self.rotate_max), self.min_face_size)
        if self.motion_blur_prob > 0 and rng.random() < self.motion_blur_prob:
            length = rng.uniform(3.0, max(3.0, self.motion_blur_max))
            sample = sample.replace(image=motion_blur(sample.image, length, rng.uniform(0.0, 180.0)))
        if self.degrade_prob > 0 and rng.random() < self.degrade_prob:
            sample = sample.replace(image=degrade(sample.image, rng, self.degrade_max))
        return sample
