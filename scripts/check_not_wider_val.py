#!/usr/bin/env python
"""Refuse a training set that holds a WIDER FACE validation photo, under its own name or another.

WIDER FACE val is what this project is judged on (the dev photos here, a hidden set of others),
so no val photo may ever be trained on. Public copies of WIDER rename photos freely (one public
repository holds 399 val photos as ``0.jpg`` ... ``398.jpg`` beside 1,000 train photos under
their own names), so three tests, each of which a renamed or re-encoded copy fails:

1. **name**: the photo's file name is one of the 3,226 val names (``wider_face_val_bbx_gt.txt``);
2. **faces**: its annotated faces are a val photo's: brought to WIDER's 1024 px width (every
   WIDER original has it, so a resized copy comes back to the val boxes), at least 80 % of its
   faces lie within 6 px and 25 % of width of that photo's faces (3 px and 5 % for a photo's only
   face), and the val photo holds at most about twice as many;
3. **picture**: its 32x24 grey thumbnail is within 4 grey levels of a local val photo's
   (``--val-images``, default the 103 dev photos; stretched copies too, since both sides are
   resized to 32x24).

    python scripts/check_not_wider_val.py /tmp/wider_train/labels/train      # any --labels layout

Prints the photos that match and exits 1 when there is one; 0 and one line when none does.

Measured (December 2026): on the 399 renamed val photos of that repository it finds all 399
by their faces (59 are one-face photos, whose copies sit within 2.5 px of the val box);
on its 999 train photos none. A one-face photo is weak evidence: on sets that are not WIDER at
all it flags about 1 % by coincidence (FDDB 29 of 2,241, Caltech Web Faces 28 of 2,778,
faces_mask 3 of 682, all one-face photos scaled up to 1024 px), so it errs towards refusing,
and it guards the WIDER-derived sets (``scripts/train_teachers4.sh`` runs it on ``WIDER_TRAIN``).
"""
from __future__ import annotations

import argparse
import logging
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from retinaface_polynl.data import load_annotations  # noqa: E402
from retinaface_polynl.data.shanghaitech import NEAR_DUPLICATE, thumbnail  # noqa: E402
from retinaface_polynl.data.validate import image_size  # noqa: E402
from retinaface_polynl.data.wider import read_wider_bbx_gt  # noqa: E402

SHARED = REPO.parent / "shared" / "data"
WIDER_WIDTH = 1024  # every WIDER FACE original is 1024 px wide
GRID = 8  # px, the face index's cells
FACE_NEAR, FACE_WIDTH = 6.0, 0.25  # a face is a val face: centres within 6 px, widths within 25 %
SINGLE_NEAR, SINGLE_WIDTH = 3.0, 0.05  # a photo's only face must match closer
MIN_SHARE = 0.8  # of a photo's faces found among one val photo's


def scaled_to_wider(boxes: np.ndarray, path: Path) -> np.ndarray:
    """Boxes at the scale of WIDER's originals, which are all 1024 px wide."""
    size = image_size(path)
    return np.asarray(boxes, np.float64).reshape(-1, 4) * (WIDER_WIDTH / size[0] if size else 1.0)


class FaceIndex:
    """Val faces by their centre on an 8 px grid (at WIDER's 1024 px width), to vote for the val photo
    whose faces a training photo's faces are."""

    def __init__(self, val) -> None:
        self.cells: dict[tuple[int, int], list[tuple[int, float, float, float]]] = defaultdict(list)
        self.paths = [r.path for r in val]
        self.counts = [len(r.boxes) for r in val]
        for k, r in enumerate(val):
            for cx, cy, w in self._centres(r.boxes):
                self.cells[(int(cx // GRID), int(cy // GRID))].append((k, cx, cy, w))

    @staticmethod
    def _centres(boxes: np.ndarray) -> np.ndarray:
        b = np.asarray(boxes, np.float64).reshape(-1, 4)
        return np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, b[:, 2] - b[:, 0]], 1)

    def match(self, boxes: np.ndarray) -> Path | None:
        """The val photo holding (nearly) all of ``boxes`` (WIDER scale) and not many more, if any."""
        n = len(boxes)
        if n == 0:
            return None
        near, rel = (SINGLE_NEAR, SINGLE_WIDTH) if n == 1 else (FACE_NEAR, FACE_WIDTH)
        votes: dict[int, int] = defaultdict(int)
        for cx, cy, w in self._centres(boxes):
            hit = set()
            i, j = int(cx // GRID), int(cy // GRID)
            for di in (-1, 0, 1):
                for dj in (-1, 0, 1):
                    for k, vx, vy, vw in self.cells.get((i + di, j + dj), ()):
                        if abs(vx - cx) <= near and abs(vy - cy) <= near and abs(vw - w) <= rel * max(vw, w) + 1:
                            hit.add(k)
            for k in hit:
                votes[k] += 1
        best = max(votes, key=votes.get, default=None)
        if best is None or votes[best] < MIN_SHARE * n or self.counts[best] > 2 * n + 1:
            return None
        return self.paths[best]


def val_matches(records, val, val_images: Path | None) -> dict[Path, str]:
    """``{training photo: why}`` for every training photo that is a val photo."""
    names = {r.path.name: r.path for r in val}
    faces = FaceIndex(val)
    thumbs = []
    if val_images is not None and val_images.is_dir():
        thumbs = [(p, t) for p in sorted(val_images.rglob("*.jpg")) if (t := thumbnail(p)) is not None]
    out = {}
    for r in records:
        if r.path.name in names:
            out[r.path] = f"the name of val photo {names[r.path.name].parent.name}/{r.path.name}"
            continue
        hit = faces.match(scaled_to_wider(r.boxes, r.path))
        if hit is not None:
            out[r.path] = f"the faces of val photo {hit.name}"
            continue
        if thumbs:
            t = thumbnail(r.path)
            hit = None if t is None else next(
                (p for p, u in thumbs if float(np.abs(t - u).mean()) < NEAR_DUPLICATE), None)
            if hit is not None:
                out[r.path] = f"the picture of val photo {hit.name}"
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("labels", type=Path, help="the training set (any layout that train --labels reads)")
    p.add_argument("--images", type=Path, help="its image root (default: the layout's)")
    p.add_argument("--gt", type=Path, default=SHARED / "widerface_val_gt" / "wider_face_val_bbx_gt.txt",
                   help="WIDER FACE val ground truth, text layout (default: ../shared/data's)")
    p.add_argument("--val-images", type=Path, default=SHARED / "widerface_val_dev" / "images",
                   help="val photos to compare pictures with (default: the 103 dev photos)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s: %(message)s")
    if not args.gt.is_file():
        p.error(f"--gt {args.gt}: not found; the check needs the WIDER FACE val ground truth")
    records = load_annotations(args.labels, args.images)
    val = read_wider_bbx_gt(args.gt, args.gt.parent, min_size=0.0, keep_invalid=True)
    matches = val_matches(records, val, args.val_images)
    for path, why in sorted(matches.items()):
        print(f"{path}: {why}")
    if matches:
        print(f"error: {len(matches)} of {len(records)} photos in {args.labels} are WIDER FACE val photos; "
              "never train on them", file=sys.stderr)
        return 1
    print(f"{args.labels}: none of its {len(records)} photos is one of the {len(val)} WIDER FACE val photos "
          f"(by name, faces or picture{'' if args.val_images.is_dir() else '; no val photos to compare pictures'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
