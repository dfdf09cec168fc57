"""``retinaface-polynl submit``: a WIDER FACE submission folder (and zip) from an image tree.

Runs unchanged under ``torchrun --nproc_per_node=N`` (one or many nodes): each
rank takes its own share of the images; rank 0 waits for the others, then zips
and evaluates.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .common import add_model_args, add_size_args, add_tta_args, build_detector, tta_config


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "submit",
        help="write a WIDER FACE submission (official layout) for an image tree",
        description="Detect faces in every image below --images (WIDER_val/images or WIDER_test/images: "
        "<event>/<image>.jpg) and write <out>/<event>/<image>.txt in the official layout (name, count, "
        "'x y w h score' lines), one file per image even with no face. Finished files are written "
        "atomically and skipped on a re-run, so an interrupted run resumes. Under torchrun each rank "
        "takes its share of the images. With --gt the result is evaluated at the end.",
    )
    p.add_argument("--images", required=True, metavar="DIR", help="WIDER image tree (<event>/<image>.jpg)")
    p.add_argument("--out", required=True, metavar="DIR", help="submission folder to write")
    add_model_args(p, threshold=0.02)  # the benchmark's PR curves want low-score detections too
    add_size_args(p)
    add_tta_args(p)
    p.add_argument("--zip", action="store_true", help="also write <out>.zip for upload")
    p.add_argument("--gt", metavar="DIR", help="WIDER FACE ground-truth folder (.mat files): evaluate when done")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _distributed() -> tuple[int, int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def run(args: argparse.Namespace) -> int:
    from ..submission import write_submission, zip_submission

    rank, world, local_rank = _distributed()
    device = args.device
    if world > 1:  # under torchrun: the ranks meet through torch.distributed (one process needs no torch)
        import torch
        import torch.distributed as dist

        if device.startswith("cuda"):
            device = f"cuda:{local_rank}"
            torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    try:
        detector = build_detector(args, device=device, size=args.size, max_size=args.max_size)
        tta = tta_config(args)
        report = write_submission(
            detector, args.images, args.out, tta=tta, rank=rank, world_size=world, progress=not args.no_progress
        )
        failed = len(report.failed)
        if world > 1:
            counts = torch.tensor([report.written, report.skipped, report.faces, failed], dtype=torch.int64)
            dist.all_reduce(counts)  # also the barrier: every rank has finished writing
            written, skipped, faces, failed = (int(v) for v in counts)
        else:
            written, skipped, faces = report.written, report.skipped, report.faces
        if rank == 0:
            print(f"{written} file(s) written, {skipped} already there, {faces} face(s), {failed} image(s) failed")
            if args.zip:
                print(f"zip: {zip_submission(args.out, Path(args.out).with_suffix('.zip'))}")
            if args.gt:
                from widerface_eval import evaluate

                result = evaluate(args.out, args.gt)
                print(" ".join(f"{s}: {result[s] * 100:.2f}" for s in ("easy", "medium", "hard")))
        if report.failed:
            print(f"error: {len(report.failed)} image(s) could not be read: {', '.join(report.failed[:5])}", file=sys.stderr)
        return 1 if failed else 0
    finally:
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()
