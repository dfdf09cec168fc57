"""``retinaface-polynl detect``: faces in images, written as annotated pictures and JSON lines."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .common import add_model_args, build_detector

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".jp2", ".pgm", ".ppm"}


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "detect",
        help="detect faces in images and folders",
        description="Detect faces in image files and folders (searched recursively). Writes annotated "
        "images to --output and one JSON record per image to --json. Images are read as BGR; the network "
        "sees each image at its original size unless --size/--max-size resize it.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders")
    add_model_args(p)
    p.add_argument("--output", "-o", metavar="DIR", help="folder for annotated images")
    p.add_argument("--json", metavar="FILE", help="JSON lines: {path, boxes, scores, landmarks} per image")
    p.add_argument("--size", type=int, help="resize the short side to this many pixels before detection")
    p.add_argument("--max-size", type=int, help="cap the long side at this many pixels")
    p.add_argument("--show-scores", action="store_true", help="write each face's score on the picture")
    return p


def expand_inputs(inputs: list[str]) -> list[Path]:
    paths: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            paths.extend(sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS))
        else:
            paths.append(path)
    return paths


def run(args: argparse.Namespace) -> int:
    import cv2
    from tqdm import tqdm

    from ..media import ImageReadError, draw_detections, read_image

    detector = build_detector(args, size=args.size, max_size=args.max_size)
    paths = expand_inputs(args.inputs)
    out_dir = Path(args.output) if args.output else None
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
    json_file = open(args.json, "a", encoding="utf-8") if args.json else None
    failed = faces = 0
    start = time.perf_counter()
    try:
        for path in tqdm(paths, desc="detect", unit="img", disable=len(paths) < 2):
            try:
                image = read_image(path)
            except ImageReadError as exc:
                print(f"error: {exc}", file=sys.stderr)
                failed += 1
                continue
            det = detector.detect(image)
            faces += len(det)
            if json_file:
                json_file.write(json.dumps({"path": str(path), **det.to_dict()}) + "\n")
                json_file.flush()
            if out_dir:
                cv2.imwrite(str(out_dir / f"{path.stem}.jpg"), draw_detections(image, det, args.show_scores))
            if len(paths) == 1:
                print(f"{path}: {len(det)} face(s)")
    finally:
        if json_file:
            json_file.close()
    seconds = time.perf_counter() - start
    done = len(paths) - failed
    print(f"{done} image(s), {faces} face(s), {failed} failed, {seconds:.1f} s ({done / max(seconds, 1e-9):.2f} img/s)")
    return 1 if failed else 0
