"""ShanghaiTech crowd counting, parts A and B, as training photos for the face detector.

The set (Zhang et al., CVPR 2016; research use) marks every *head* with a point and gives no
face box: ``part_{A,B}/{train,test}_data/images/IMG_N.jpg`` with
``ground-truth/GT_IMG_N.mat`` (``image_info[0, 0][0, 0][0]``: the (N, 2) head points x, y).
Faces come from the teachers (``scripts/make_crowd_labels.py --sets shanghaitech --shanghaitech
DIR``); the heads give *ignore regions*: a head the teachers do not report as a face (seen from
behind, too small, hidden) must not be taught as background.  A head's box is a square centred on
its point, as wide as the mean distance to its three nearest heads (where heads are dense, that is
about one head), at least 6 px and at most 96 px (sparse scenes: the distance says nothing there),
32 px where a photo has fewer than four heads.  ``ignore_below`` (``make_crowd_labels.py
--head-ignore-below PX``) keeps only the heads smaller than PX as ignore regions: a larger head that
no teacher reports (not even as an uncertain face, which becomes an ignore region of its own) is
visible and faceless, a head seen from behind, and is taught as background.  Phase 7's ShanghaiTech
run ignored every head and lost WIDER dev Easy (``weights/results/teachers4_dec2026/``).

The 38 photos of ``crowds_shanghaitech/`` in the shared data are the out-of-domain check and must
stay out of training: :func:`shanghaitech_records` leaves out every photo that matches one of them
by name (``{split}_IMG_N.jpg`` there, ``part_B/{split}_data/images/IMG_N.jpg`` here), by file
content (SHA-256) or by picture (a near-duplicate: the mean absolute difference of 32x24 grey
thumbnails under 4 levels, which survives re-encoding).
"""
from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path

import cv2
import numpy as np

from .records import ImageRecord

log = logging.getLogger(__name__)

HEAD_NEIGHBOURS = 3
HEAD_MIN, HEAD_MAX, HEAD_DEFAULT = 6.0, 96.0, 32.0
NEAR_DUPLICATE = 4.0  # grey levels, mean absolute difference of 32x24 thumbnails
_IMAGE = re.compile(r"^IMG_(\d+)\.jpg$", re.IGNORECASE)


def read_head_points(mat_file: str | Path) -> np.ndarray:
    """The (N, 2) head points (x, y in pixels) of a ShanghaiTech ``GT_IMG_N.mat``."""
    from scipy.io import loadmat

    info = loadmat(str(mat_file))["image_info"]
    return np.asarray(info[0, 0][0, 0][0], np.float32).reshape(-1, 2)


def head_boxes(points: np.ndarray, neighbours: int = HEAD_NEIGHBOURS) -> np.ndarray:
    """Square head boxes (x1 y1 x2 y2) centred on ``points``, sized by the distance to the nearest heads."""
    points = np.asarray(points, np.float32).reshape(-1, 2)
    if not len(points):
        return np.zeros((0, 4), np.float32)
    if len(points) <= neighbours:
        side = np.full(len(points), HEAD_DEFAULT, np.float32)
    else:
        d = np.sqrt(((points[:, None, :] - points[None, :, :]) ** 2).sum(-1))
        np.fill_diagonal(d, np.inf)
        side = np.clip(np.sort(d, 1)[:, :neighbours].mean(1), HEAD_MIN, HEAD_MAX)
    half = side[:, None] / 2
    return np.concatenate([points - half, points + half], 1).astype(np.float32)


def thumbnail(path: Path) -> np.ndarray | None:
    """A 32x24 grey thumbnail (whatever the aspect), to find a re-encoded or resized copy of a picture."""
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    return None if image is None else cv2.resize(image, (32, 24), interpolation=cv2.INTER_AREA).astype(np.float32)


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def shanghaitech_photos(root: str | Path) -> list[tuple[Path, Path, str]]:
    """``(image, ground-truth .mat, "part_B/train")`` of every photo under ``root`` that has its points."""
    root = Path(root)
    out = []
    for part in ("part_A", "part_B"):
        for split in ("train", "test"):
            folder = root / part / f"{split}_data"
            for image in sorted((folder / "images").glob("*"), key=lambda p: (len(p.name), p.name)):
                m = _IMAGE.match(image.name)
                if not m:
                    continue
                gt = folder / "ground-truth" / f"GT_IMG_{m.group(1)}.mat"
                if gt.is_file():
                    out.append((image, gt, f"{part}/{split}"))
    if not out:
        raise FileNotFoundError(f"{root}: no part_A/ or part_B/ {{train,test}}_data/images/IMG_N.jpg with its "
                                "ground-truth/GT_IMG_N.mat")
    return out


def held_out_matches(photos: list[tuple[Path, Path, str]], held_out: str | Path | None) -> dict[Path, str]:
    """``{image: why}`` for the photos that match one of ``held_out``'s (by name, content or picture)."""
    if held_out is None or not Path(held_out).is_dir():
        return {}
    local = sorted(Path(held_out).glob("*.jpg"))
    names = {}
    for p in local:
        m = re.match(r"^(train|test)_IMG_(\d+)\.jpg$", p.name)
        if m:
            names[(m.group(1), m.group(2))] = p.name
    hashes = {_sha256(p): p.name for p in local}
    thumbs = [(p.name, t) for p in local if (t := thumbnail(p)) is not None]
    out = {}
    for image, _, where in photos:
        split = where.split("/")[1]
        num = _IMAGE.match(image.name).group(1)
        if where.startswith("part_B") and (split, num) in names:
            out[image] = f"name of {names[(split, num)]}"
            continue
        h = _sha256(image)
        if h in hashes:
            out[image] = f"same file as {hashes[h]}"
            continue
        t = thumbnail(image)
        if t is not None:
            for name, u in thumbs:
                if t.shape == u.shape and float(np.abs(t - u).mean()) < NEAR_DUPLICATE:
                    out[image] = f"same picture as {name}"
                    break
    return out


def head_ignore_regions(points: np.ndarray, ignore_below: float | None = None) -> np.ndarray:
    """The heads' boxes (:func:`head_boxes`) that become ignore regions: all of them, or (with
    ``ignore_below``) those narrower than ``ignore_below`` px."""
    boxes = head_boxes(points)
    if ignore_below is None:
        return boxes
    return boxes[(boxes[:, 2] - boxes[:, 0]) < ignore_below]


def shanghaitech_records(root: str | Path, held_out: str | Path | None = None,
                         ignore_below: float | None = None) -> tuple[list[ImageRecord], dict]:
    """Records of every ShanghaiTech photo under ``root`` (no faces; every head an ignore region,
    or only those under ``ignore_below`` px: :func:`head_ignore_regions`), leaving out those that
    match a photo of ``held_out`` (``crowds_shanghaitech/``); returns ``(records, {left-out image: why})``."""
    if ignore_below is not None and not ignore_below > 0:
        raise ValueError(f"ignore_below must be a positive size in pixels, got {ignore_below}")
    photos = shanghaitech_photos(root)
    excluded = held_out_matches(photos, held_out)
    records = [ImageRecord.from_boxes(image, np.zeros((0, 4)),
                                      ignore=head_ignore_regions(read_head_points(gt), ignore_below))
               for image, gt, _ in photos if image not in excluded]
    for image, why in excluded.items():
        log.info("%s left out of training: %s (an out-of-domain check photo)", image, why)
    return records, excluded
