#!/usr/bin/env python
"""Benchmark the evaluators on the full ground truth with synthetic detections.

WIDER FACE val (3,226 images, 39,708 faces): every face is detected with a
probability that grows with its size, its box jittered by a fraction of its
size; random false positives are added per image; scores are drawn higher for
true boxes than for false ones.  The detections are written in the official
layout, read back and evaluated under both protocols (``matlab``, the
default, and ``python-port``); the time of each stage and the APs are
printed.  FDDB (folds of ``faces_fddb``) is evaluated the same way in memory
when present.  Prints only, asserts nothing.  ``--repeat N`` runs everything N times
and reports each stage's fastest and slowest run; ``--markdown FILE`` also keeps that
table (with the date and machine) for docs/evaluation.md.

    OMP_NUM_THREADS=1 python scripts/bench_eval.py [--gt ../shared/data/widerface_val_gt] [--fp-per-image 50]
    OMP_NUM_THREADS=1 python scripts/bench_eval.py --repeat 3 --markdown docs/tables/bench_eval.md
"""
from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import widerface_eval as we  # noqa: E402

sys.path.insert(0, str(REPO / "scripts"))
from markdown_report import cpu_description, tee_stdout  # noqa: E402

SHARED = Path(os.environ.get("RETINAFACE_POLYNL_SHARED_DATA", REPO.parent / "shared" / "data"))


def synth_wider(gt: we.WiderGroundTruth, fp_per_image: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    out = {}
    for name, b in zip(gt.images, gt.boxes):
        h = np.maximum(b[:, 3], 1.0)
        p_hit = 1.0 / (1.0 + np.exp(-(h - 12.0) / 4.0))  # small faces are often missed
        hit = rng.random(len(b)) < p_hit
        bb = b[hit].copy()
        size = np.maximum(bb[:, 2:4], 1.0)
        bb[:, :2] += rng.normal(0, 0.08, (len(bb), 2)) * size
        bb[:, 2:4] = np.maximum(size * np.exp(rng.normal(0, 0.08, (len(bb), 2))), 1.0)
        s_tp = np.clip(rng.beta(5, 1.5, len(bb)), 0, 1)
        n_fp = rng.poisson(fp_per_image)
        w = rng.uniform(4, 120, n_fp)
        fp = np.stack([rng.uniform(0, 1000, n_fp), rng.uniform(0, 1000, n_fp), w, w * rng.uniform(1.0, 1.4, n_fp)], 1)
        s_fp = rng.beta(1.2, 6, n_fp)
        out[name] = np.concatenate([np.concatenate([bb, fp]), np.concatenate([s_tp, s_fp])[:, None]], 1)
    return out


def synth_fddb(ann, fp_per_image: int, rng) -> dict:
    dets = {}
    for name, a in ann.items():
        b = a.boxes_xyxy.copy()
        wh = (b[:, 2:] - b[:, :2])
        b += rng.normal(0, 0.05, b.shape) * np.concatenate([wh, wh], 1)
        n_fp = rng.poisson(fp_per_image)
        xy = rng.uniform(0, 400, (n_fp, 2))
        fp = np.concatenate([xy, xy + rng.uniform(20, 100, (n_fp, 1))], 1)
        dets[name] = (np.concatenate([b, fp]), np.concatenate([rng.beta(5, 1.5, len(b)), rng.beta(1.2, 6, n_fp)]))
    return dets


def run_once(args, rng: np.random.Generator, rows: dict[str, list[float]]) -> dict:
    """Every stage once, its seconds appended to ``rows[label]``; returns what the summary prints."""

    def stage(label, fn):
        t = time.perf_counter()
        out = fn()
        rows.setdefault(label, []).append(time.perf_counter() - t)
        return out

    gt = stage("load ground truth (4 `.mat` files)", lambda: we.load_ground_truth(args.gt))
    preds = synth_wider(gt, args.fp_per_image, rng)
    n_pred = sum(len(p) for p in preds.values())
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp) / "preds"

        def write():
            event_of = dict(zip(gt.images, gt.events))
            for name, p in preds.items():
                we.write_prediction_file(folder / event_of[name] / f"{name}.txt", name, p[:, :4], p[:, 4])

        stage(f"write prediction files ({len(preds):,})", write)
        read = stage("read prediction files", lambda: we.read_predictions(folder, gt, progress=False))
        res = stage("Easy + Medium + Hard, `matlab`", lambda: we.evaluate_predictions(read, gt))
        port = stage("Easy + Medium + Hard, `python-port`",
                     lambda: we.evaluate_predictions(read, gt, protocol="python-port"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            stage("`evaluate(pred_dir, gt)` end to end (`matlab`)",
                  lambda: we.evaluate(folder, gt, progress=False, timings={}))
        png = Path(tmp) / "pr.png"
        stage("PR curve plots (4 PNGs)", lambda: we.plot_pr_curves({"synthetic": res}, png))

    fddb = dets = None
    if args.fddb.exists():
        ann = stage("FDDB: load annotations", lambda: we.load_fddb_annotations(args.fddb))
        dets = synth_fddb(ann, max(args.fp_per_image // 10, 1), rng)
        fddb = stage("FDDB ROC + AP@0.5", lambda: we.evaluate_fddb(dets, ann))
    return {"gt": gt, "n_pred": n_pred, "res": res, "port": port, "fddb": fddb, "dets": dets}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gt", type=Path, default=SHARED / "widerface_val_gt")
    ap.add_argument("--fddb", type=Path, default=SHARED / "faces_fddb")
    ap.add_argument("--fp-per-image", type=int, default=50, help="mean number of random false positives per image")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", type=Path, help="write the prediction folder here (default: a temporary folder)")
    ap.add_argument("--repeat", type=int, default=1, help="run every stage this many times (default: %(default)s)")
    ap.add_argument("--markdown", type=Path, help="also write the stage table (fastest / slowest) to this file")
    args = ap.parse_args()
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    if not args.gt.exists():
        print(f"WIDER FACE ground truth not found at {args.gt}; nothing to benchmark")
        return
    rows: dict[str, list[float]] = {}
    for _ in range(args.repeat):
        out = run_once(args, np.random.default_rng(args.seed), rows)
    gt, res, port, fddb, dets = out["gt"], out["res"], out["port"], out["fddb"], out["dets"]

    print(f"\nWIDER FACE val: {len(gt.images)} images, {gt.num_faces()} faces, {out['n_pred']} synthetic detections "
          f"({args.fp_per_image} false positives per image on average)")
    if fddb is not None:
        print(f"FDDB: {fddb.num_images} images, {fddb.num_faces} faces, "
              f"{sum(len(d[1]) for d in dets.values())} synthetic detections")
    print()
    with tee_stdout(args.markdown):
        threads = os.environ.get("OMP_NUM_THREADS", "unset")
        runs = f"{args.repeat} run{'s' if args.repeat != 1 else ''}"
        print(f"Measured {datetime.date.today().isoformat()} on {cpu_description()} "
              f"(OMP_NUM_THREADS={threads}), numpy {np.__version__}, {runs}:")
        print()
        print(f"| stage ({runs}, fastest / slowest) | seconds |")
        print("|---|---|")
        for label, secs in rows.items():
            print(f"| {label} | {min(secs):.2f} / {max(secs):.2f} |")
    print(f"\n{'setting':<10} {'AP matlab':>10} {'AP port':>10} {'faces':>7}")
    print("-" * 40)
    for s in gt.settings:
        print(f"{s:<10} {res[s]:10.4f} {port[s]:10.4f} {res['num_faces'][s]:7d}")
    if fddb is not None:
        print(f"\nFDDB  AP@0.5 {fddb.ap50:.4f}   TPR@1000FP discrete {fddb.tpr_at(1000):.4f}"
              f"   continuous {fddb.tpr_at(1000, 'continuous'):.4f}")


if __name__ == "__main__":
    main()
