"""Non-maximum suppression on the inference path: our numpy NMS against torchvision and OpenCV.

    python scripts/bench_nms.py [--threshold 0.02] [--repeat 20]

On real network outputs (the shipped model's anchors on the 13 check photos, at one pass
without zoom, above ``--threshold``, the top 5,000 as ``Detector`` keeps them) it runs
``retinaface_polynl.boxes.nms``, ``torchvision.ops.nms`` (when torch is installed) and
``cv2.dnn.NMSBoxes`` (boxes as x, y, w, h) at IoU 0.4, and prints one row each: how many
photos keep exactly torchvision's boxes in torchvision's order, and the median and total
time per photo.  This is the measurement behind the choice of the numpy NMS (issue 39).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ship_default_onnx import check_photos  # noqa: E402


def raw_candidates(photos: list[Path], threshold: float, top_k: int = 5000) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each photo's decoded anchors above ``threshold`` (at most ``top_k``), as Detector feeds NMS."""
    from retinaface_polynl import Detector
    from retinaface_polynl.pipeline import STRIDE, pad_batch, preprocess

    det = Detector(zoom=False)
    out = []
    for photo in photos:
        image = det.prepare(photo)
        scale = det.input_scale(*image.shape[:2])
        boxes, scores, _ = det.predict_raw(pad_batch([preprocess(image, scale, multiple=STRIDE)]))
        keep = np.flatnonzero(scores[0] > threshold)
        b, s = boxes[0][keep], scores[0][keep]
        order = np.argsort(-s, kind="stable")[:top_k]
        out.append((np.ascontiguousarray(b[order]), np.ascontiguousarray(s[order])))
    return out


def opencv_nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1).astype(np.float64)
    kept = cv2.dnn.NMSBoxes(xywh.tolist(), scores.astype(float).tolist(), 0.0, iou)
    return np.asarray(kept, np.int64).reshape(-1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threshold", type=float, default=0.02, help="score threshold before NMS")
    parser.add_argument("--iou", type=float, default=0.4)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args(argv)
    from retinaface_polynl.boxes import nms

    candidates = raw_candidates(check_photos(crowd_val=False), args.threshold)
    methods = {"numpy (retinaface_polynl.boxes.nms)": lambda b, s: nms(b, s, args.iou),
               "OpenCV cv2.dnn.NMSBoxes": lambda b, s: opencv_nms(b, s, args.iou)}
    reference = None
    try:
        import torch
        from torchvision.ops import nms as tv_nms

        torch.set_num_threads(1)
        methods = {"torchvision.ops.nms": lambda b, s: tv_nms(torch.from_numpy(b), torch.from_numpy(s), args.iou).numpy(),
                   **methods}
        reference = [methods["torchvision.ops.nms"](b, s) for b, s in candidates]
    except ImportError:
        print("torch is not installed: no torchvision column", file=sys.stderr)
    sizes = [len(s) for _, s in candidates]
    print(f"{len(candidates)} photos, {min(sizes)}-{max(sizes)} boxes each above {args.threshold}, IoU {args.iou}, "
          f"{args.repeat} repeats, 1 thread")
    print("| NMS | photos equal to torchvision (same boxes, same order) | median ms per photo | total ms (13 photos) |")
    print("|---|---:|---:|---:|")
    for name, run in methods.items():
        times, equal = [], 0
        for k, (b, s) in enumerate(candidates):
            kept = run(b, s)
            if reference is not None and np.array_equal(kept, reference[k]):
                equal += 1
            start = time.perf_counter()
            for _ in range(args.repeat):
                run(b, s)
            times.append((time.perf_counter() - start) / args.repeat * 1000)
        agree = f"{equal}/{len(candidates)}" if reference is not None else "n/a"
        print(f"| {name} | {agree} | {statistics.median(times):.3f} | {sum(times):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
