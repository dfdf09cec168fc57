#!/usr/bin/env python
"""Detection throughput over a folder of real photos, stage by stage.

Images per second at several batch sizes, single scale and with each TTA preset,
with the time spent decoding (JPEG -> BGR), pre-processing (resize, mean, padding,
TTA view rendering), in the network (forward pass incl. the device transfer of its
outputs) and post-processing (threshold, top-k, NMS, mapping back, box voting)
reported separately, plus the forward passes each mode costs.  Printed as a
Markdown table.

    python scripts/bench_detect.py --vga --tta ''                 # the default Detector() on VGA photos
    python scripts/bench_detect.py --vga --backend torch --tta ''  # the same through PyTorch
    python scripts/bench_detect.py --weights mobilenet0.25_Final.pth
    python scripts/bench_detect.py --weights m.pth --limit 24 --tta-limit 3 --tta-max-size 1100 --device cuda

Default weights: the shipped model, with the engine ``Detector()`` picks (onnxruntime on
CPU).  ``--vga`` resizes every photo to 640x480 first.  ``outside network %`` is the share
of the end-to-end time per photo (JPEG decoding excluded: in the CLI it runs in a
background thread) that is not the network: pre-processing, thresholding, NMS, mapping
back and the Python around them (``other ms``: wall time not inside any timed stage).

Default photos: ../shared/data/faces_dlib and the first FDDB photos in
../shared/data/faces_fddb/originalPics.  One untimed warm-up pass runs first (the
first call on a new input shape is slow on CPU and GPU alike); the numbers are the
steady state.  Batches group pictures by padded size (``padding="exact"``, the
default: results equal one-at-a-time detection); the ``largest`` row pads a batch
to its largest picture instead and reports how far the boxes move.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from retinaface_polynl.detector import Detector  # noqa: E402
from retinaface_polynl.media import IMAGE_EXTENSIONS, read_image  # noqa: E402
from retinaface_polynl.tta import count_forward_passes, resolve_tta  # noqa: E402
from markdown_report import tee_stdout  # noqa: E402

SHARED = REPO.parent / "shared" / "data"


def collect(folders: list[Path], limit: int, per_folder: int | None) -> list[Path]:
    paths: list[Path] = []
    for folder in folders:
        found = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
        paths += found[:per_folder] if per_folder else found
    return paths[:limit]


def run_mode(detector: Detector, images, batch_size: int, tta, padding: str = "exact"):
    detector.timings.reset()
    start = time.perf_counter()
    if tta is None:
        results = detector.detect_batch(images, batch_size=batch_size, padding=padding)
    else:
        results = [detector.detect(im, tta=tta) for im in images]
    wall = time.perf_counter() - start
    return results, dict(detector.timings.seconds), detector.timings.forward_passes, wall


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--folders", nargs="*", type=Path,
                   default=[SHARED / "faces_dlib", SHARED / "faces_fddb" / "originalPics"])
    p.add_argument("--limit", type=int, default=24, help="photos in the single-scale runs (default: 24)")
    p.add_argument("--per-folder", type=int, default=12, help="photos taken from each folder (default: 12)")
    p.add_argument("--weights", help="checkpoint or exported file (default: the shipped weights)")
    p.add_argument("--preset")
    p.add_argument("--device", default="cpu")
    p.add_argument("--backend", default="auto", help="auto, torch, onnxruntime or tensorrt (default: auto)")
    p.add_argument("--threads", type=int, help="intra-op threads of the engine (default: torch's count)")
    p.add_argument("--vga", action="store_true", help="resize every photo to 640x480 first")
    p.add_argument("--size", type=int, help="single-scale short side (default: the weights' recorded size)")
    p.add_argument("--batch-sizes", default="1,4,16")
    p.add_argument("--max-size", type=int, help="single-scale long-side cap (default: original size)")
    p.add_argument("--zoom", choices=("auto", "on", "off"), default="auto",
                   help="small-face zoom (default: auto, as the weights record; 'fwd passes / photo' counts "
                   "the second passes)")
    p.add_argument("--tta", default="flip,paper", help="TTA presets to time (default: flip,paper)")
    p.add_argument("--tta-limit", type=int, default=3, help="photos in the TTA runs (default: 3)")
    p.add_argument("--tta-max-size", type=int, help="override the TTA long-side cap (default: the preset's, 2000)")
    p.add_argument("--markdown", type=Path, help="also write the report (header line, table, notes) here, for "
                   "the pages that quote it (scripts/sync_docs.py)")
    args = p.parse_args(argv)
    with tee_stdout(args.markdown, lstrip="# "):
        return run(args)


def run(args) -> int:

    paths = collect(args.folders, args.limit, args.per_folder)
    if not paths:
        print(f"no photos found in {', '.join(map(str, args.folders))}", file=sys.stderr)
        return 2
    detector = Detector(weights=args.weights, preset=args.preset, device=args.device, size=args.size,
                        max_size=args.max_size, backend=args.backend, threads=args.threads, zoom=args.zoom)
    t = time.perf_counter()
    images = [read_image(q) for q in paths]
    decode = (time.perf_counter() - t) / len(images)
    if args.vga:
        images = [cv2.resize(im, (640, 480), interpolation=cv2.INTER_AREA) for im in images]
    pixels = np.mean([im.shape[0] * im.shape[1] for im in images]) / 1e6
    sizes = len({im.shape[:2] for im in images})
    h0, w0 = images[0].shape[:2]
    print(f"# bench_detect: {len(images)} photos ({sizes} distinct sizes, mean {pixels:.2f} Mpx; network input of "
          f"the first, {w0}x{h0}: scale {detector.input_scale(h0, w0):.3f}), {detector.describe()}, "
          f"torch threads {torch.get_num_threads()}\n")
    header = ("| mode | batch | photos | fwd passes / photo | decode ms | preprocess ms | network ms | "
              "postprocess ms | other ms | total ms / photo | photos / s | outside network % |")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))

    def row(mode, batch, imgs, seconds, passes, wall):
        n = len(imgs)
        ms = {k: 1000 * v / n for k, v in seconds.items()}
        e2e = 1000 * wall / n  # detect_batch / detect wall time per photo, JPEG decoding excluded
        other = max(0.0, e2e - ms["preprocess"] - ms["network"] - ms["postprocess"])
        total = decode * 1000 + e2e
        outside = 100 * (e2e - ms["network"]) / e2e
        print(f"| {mode} | {batch} | {n} | {passes / n:.2f} | {decode * 1000:.1f} | {ms['preprocess']:.1f} | "
              f"{ms['network']:.1f} | {ms['postprocess']:.1f} | {other:.1f} | {total:.1f} | {1000 / total:.2f} | "
              f"{outside:.1f} |", flush=True)

    batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b]
    run_mode(detector, images, max(batch_sizes), None)  # warm-up: every shape once
    exact = None
    for b in batch_sizes:
        results, seconds, passes, wall = run_mode(detector, images, b, None)
        exact = results if exact is None else exact
        row("single scale", b, images, seconds, passes, wall)
    b = max(batch_sizes)
    run_mode(detector, images, b, None, padding="largest")  # warm-up of the padded shapes
    results, seconds, passes, wall = run_mode(detector, images, b, None, padding="largest")
    row("single scale, padding=largest", b, images, seconds, passes, wall)
    moved = [float(np.abs(a.boxes - r.boxes).max()) for a, r in zip(exact, results) if len(a) == len(r) and len(a)]
    changed = sum(len(a) != len(r) for a, r in zip(exact, results))
    score_diff = max((float(np.abs(a.scores - r.scores).max()) for a, r in zip(exact, results)
                      if len(a) == len(r) and len(a)), default=0.0)

    tta_images = images[: args.tta_limit]
    notes = []
    for name in [t for t in args.tta.split(",") if t]:
        config = resolve_tta(name)
        if config is not None and args.tta_max_size:
            config = config.replace(max_size=args.tta_max_size)
        planned = np.mean([count_forward_passes(config, *im.shape[:2]) for im in tta_images])
        run_mode(detector, tta_images[:1], 1, config)  # warm-up
        _, seconds, passes, wall = run_mode(detector, tta_images, 1, config)
        label = f"TTA {name}" + (f" (max_size {config.max_size})" if config is not None else "")
        row(label, "views", tta_images, seconds, passes, wall)
        notes.append(f"{name}: {planned:.2f} forward passes per photo planned, "
                     f"{config.views_per_scale if config else 1} views per scale")
    print()
    print(f"padding=largest vs exact (batch {b}): {changed} photos with a different face count, boxes moved by up "
          f"to {max(moved, default=0):.2f} px, scores by up to {score_diff:.4f}.")
    for n in notes:
        print(f"TTA {n}.")
    print("Decode is timed once per photo (in the CLI it runs in a background thread, overlapping the network).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
