"""Record (or check) the faces the default path finds, to prove a rewrite finds the same ones.

    python scripts/record_reference_faces.py --output faces.npz            # record
    python scripts/record_reference_faces.py --check faces.npz              # compare now with then

For every photo (the 13 check photos: ``demo/astronaut.jpg`` and ``../shared/data/faces_dlib``;
with ``--crowd-val`` also the 171 photos of ``faces_mask/val.txt``) and every mode
(``single``: one pass, no zoom; ``zoom``: the shipped small-face zoom; ``paper``: the paper's
TTA), it stores boxes, scores and landmarks at threshold ``--threshold`` (default 0.02, so
that non-maximum suppression and voting see many boxes).  ``--check`` prints a table of the
largest differences per mode and exits 1 when any photo's faces differ in number or by more
than ``--tolerance`` (default 1e-4) in any coordinate or score.

Issue 39 recorded ``tests/data/reference_faces.npz`` (the check photos, all three modes) with
the PyTorch-based post-processing, before it was rewritten in numpy (recorded again for the
weights shipped on 7 December 2026, with the numpy path);
``tests/test_numpy_core.py`` checks the numpy path against that file.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ship_default_onnx import check_photos  # noqa: E402  (the same 13 photos, and the crowd-val ones)

MODES = ("single", "zoom", "paper")


def detect_modes(photos: list[Path], modes: tuple[str, ...], threshold: float, threads: int | None) -> dict:
    from tqdm import tqdm

    from retinaface_polynl import Detector

    plain = Detector(threshold=threshold, zoom=False, threads=threads)
    zoomed = Detector(threshold=threshold, threads=threads)
    out: dict[str, np.ndarray] = {}
    for mode in modes:
        for photo in tqdm(photos, desc=mode, unit="photo", file=sys.stderr):
            if mode == "single":
                det = plain.detect(photo)
            elif mode == "zoom":
                det = zoomed.detect(photo)
            else:
                det = plain.detect(photo, tta="paper")
            key = f"{mode}/{photo.name}"
            out[key + "/boxes"] = det.boxes
            out[key + "/scores"] = det.scores
            out[key + "/landmarks"] = det.landmarks
    return out


def compare(then: dict, now: dict, tolerance: float) -> tuple[list[str], bool]:
    rows, ok = [], True
    for mode in MODES:
        keys = sorted({k.rsplit("/", 1)[0] for k in then if k.startswith(mode + "/")})
        if not keys:
            continue
        worst, count_mismatch, faces = 0.0, 0, 0
        for key in keys:
            a = [then[f"{key}/{f}"] for f in ("boxes", "scores", "landmarks")]
            b = [now[f"{key}/{f}"] for f in ("boxes", "scores", "landmarks")]
            faces += len(a[1])
            if len(a[1]) != len(b[1]):
                count_mismatch += 1
                continue
            if len(a[1]):
                worst = max(worst, *(float(np.abs(x - y).max()) for x, y in zip(a, b)))
        bad = count_mismatch > 0 or worst > tolerance
        ok &= not bad
        rows.append(f"| {mode} | {len(keys)} | {faces} | {count_mismatch} | {worst:.2e} | {'no' if bad else 'yes'} |")
    return rows, ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--output", type=Path, help="record the faces into this .npz file")
    group.add_argument("--check", type=Path, help="compare today's faces with this recorded .npz file")
    parser.add_argument("--crowd-val", action="store_true", help="also the 171 photos of faces_mask/val.txt")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {', '.join(MODES)}")
    parser.add_argument("--threshold", type=float, default=0.02)
    parser.add_argument("--tolerance", type=float, default=1e-4)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    modes = tuple(m.strip() for m in args.modes.split(",") if m.strip())
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        parser.error(f"unknown modes {unknown}; choose of {', '.join(MODES)}")
    photos = check_photos(args.crowd_val)
    if args.check:
        then = dict(np.load(args.check))
        names = {k.split("/")[1] for k in then}
        photos = [p for p in photos if p.name in names]
        modes = tuple(m for m in modes if any(k.startswith(m + "/") for k in then))
    now = detect_modes(photos, modes, args.threshold, args.threads)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(args.output, **now)
        print(f"recorded {len(photos)} photos x {len(modes)} modes into {args.output}")
        return 0
    rows, ok = compare({k: v for k, v in then.items() if k in now or k.rsplit("/", 2)[0] in modes}, now,
                       args.tolerance)
    print("| mode | photos | faces then | photos whose count differs | largest difference | same |")
    print("|---|---:|---:|---:|---:|---|")
    print("\n".join(rows))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
