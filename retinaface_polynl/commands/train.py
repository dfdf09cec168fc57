"""``retinaface-polynl train``: train a preset from scratch or from a checkpoint.

One process (CPU or one GPU)::

    retinaface-polynl train --preset r18x025_polynl --labels WIDER_train/label.txt \
        --images WIDER_train/images --output runs/r18_polynl

Many GPUs / machines: the same command under ``torchrun``::

    torchrun --nproc_per_node=8 -m retinaface_polynl train --preset r50_polynl ...

Every option left out takes the preset's training default
(:func:`retinaface_polynl.train.default_train_config`), or, with ``--resume``,
the value saved in the checkpoint.
"""
from __future__ import annotations

import argparse
import logging
import os

log = logging.getLogger(__name__)

# flag -> TrainConfig field, for the options that map one to one
_OVERRIDES = {
    "epochs": "epochs", "max_iters": "max_iters", "batch_size": "batch_size", "image_size": "image_size",
    "lr": "lr", "momentum": "momentum", "weight_decay": "weight_decay", "schedule": "schedule",
    "milestones": "milestones", "gamma": "gamma", "warmup_epochs": "warmup_epochs", "warmup_iters": "warmup_iters",
    "grad_clip": "grad_clip", "workers": "workers", "seed": "seed", "freeze_epochs": "freeze_epochs",
    "attention_stage": "attention_stage", "save_every": "save_every", "keep": "keep_checkpoints",
    "log_every": "log_every", "val_every": "val_every", "val_size": "val_size", "box_weight": "box_weight",
    "landmark_weight": "landmark_weight", "crop_scales": "crop_scales", "mirror_prob": "mirror_prob",
    "expand_prob": "expand_prob", "expand_ratio": "expand_ratio", "distill": "distill_teacher",
    "distill_weight": "distill_weight", "distill_temperature": "distill_temperature",
}
_SWITCHES = {"deterministic": ("deterministic", True), "sync_bn": ("sync_bn", True), "freeze_bn": ("freeze_bn", True),
             "no_amp": ("amp", False), "no_distort": ("distort", False)}


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.replace(",", " ").split())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "train",
        help="train a detector (from scratch, from a checkpoint, or resume)",
        description="Train a RetinaFace / Poly-NL detector on any supported annotation layout (detected from "
        "content): RetinaFace label.txt, wider_face_train_bbx_gt.txt, FDDB (faces_fddb folder, annotations.json "
        "or FDDB-folds files, with --folds), dlib imglab XML, or a generic JSON/CSV. Runs on CPU, one GPU, or "
        "many GPUs and machines under torchrun. Options left out take the preset's training defaults.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Example: retinaface-polynl train --preset r18x025_polynl --labels ../shared/data/faces_fddb "
        "--folds 1-7 --val-labels ../shared/data/faces_fddb --val-folds 8 --output runs/fddb",
    )
    d = p.add_argument_group("data")
    d.add_argument("--labels", required=True, metavar="FILE", help="training annotations (any supported layout)")
    d.add_argument("--images", metavar="DIR", help="image root (default depends on the layout)")
    d.add_argument("--folds", metavar="SPEC", help="FDDB folds, e.g. 1-7 or 1,3,5 (default: all)")
    d.add_argument("--val-labels", metavar="FILE", help="validation annotations (AP@0.5 every --val-every epochs)")
    d.add_argument("--val-images", metavar="DIR", help="validation image root")
    d.add_argument("--val-folds", metavar="SPEC", help="FDDB folds for validation, e.g. 8")
    d.add_argument("--val-size", type=int, metavar="PX", help="validation short side (default: original size)")
    d.add_argument("--val-every", type=int, metavar="EPOCHS", help="validate every this many epochs (default 1)")

    m = p.add_argument_group("model")
    m.add_argument("--preset", metavar="NAME", help="architecture preset (required unless --resume)")
    m.add_argument("--attention-stage", choices=("res3", "res4", "res5"), help="override the preset's block stage")
    m.add_argument("--weights", metavar="CKPT", help="start from this checkpoint (ours or Pytorch_Retinaface's); "
                   "a Poly-NL block it lacks is inserted as an identity")
    m.add_argument("--backbone-weights", metavar="FILE", help="ImageNet state dict for the backbone (from scratch)")
    m.add_argument("--resume", metavar="CKPT|auto", help="continue a run (auto: OUTPUT/last.pth when present)")
    m.add_argument("--freeze-epochs", type=int, metavar="N", help="train only the attention block and heads first")

    o = p.add_argument_group("optimisation")
    o.add_argument("--epochs", type=int)
    o.add_argument("--max-iters", type=int, help="stop after this many iterations (overrides --epochs)")
    o.add_argument("--batch-size", type=int, help="images per process and step")
    o.add_argument("--image-size", type=int, help="square training resolution in pixels")
    o.add_argument("--lr", type=float, help="base learning rate (SGD)")
    o.add_argument("--momentum", type=float)
    o.add_argument("--weight-decay", type=float)
    o.add_argument("--schedule", choices=("step", "cosine"))
    o.add_argument("--milestones", type=_floats, metavar="E1,E2", help="step schedule: epochs where lr *= gamma")
    o.add_argument("--gamma", type=float)
    o.add_argument("--warmup-epochs", type=float)
    o.add_argument("--warmup-iters", type=int)
    o.add_argument("--grad-clip", type=float, metavar="NORM", help="clip the gradient norm")
    o.add_argument("--no-amp", action="store_true", help="no mixed precision on CUDA")
    o.add_argument("--sync-bn", action="store_true", help="synchronised BatchNorm across processes")
    o.add_argument("--freeze-bn", action="store_true", help="BatchNorm uses running statistics (eval mode)")
    o.add_argument("--box-weight", type=float, help="box loss weight (RetinaFace: 2.0)")
    o.add_argument("--landmark-weight", type=float)
    o.add_argument("--crop-scales", type=_floats, metavar="S1,S2", help="random-crop scales of the short side")
    o.add_argument("--mirror-prob", type=float)
    o.add_argument("--expand-prob", type=float, help="probability of zooming out before the crop (default 0)")
    o.add_argument("--expand-ratio", type=float, help="largest zoom-out factor (default 2)")
    o.add_argument("--no-distort", action="store_true", help="no photometric distortion")
    o.add_argument("--distill", metavar="TEACHER", help="also pull the face scores towards this detector's (ours "
                   "or Pytorch_Retinaface's, same anchors), run on the same batches (knowledge distillation)")
    o.add_argument("--distill-weight", type=float, metavar="W", help="weight of the distillation loss (default 1)")
    o.add_argument("--distill-temperature", type=float, metavar="T", help="softmax temperature (default 1)")

    r = p.add_argument_group("run")
    r.add_argument("--output", required=True, metavar="DIR", help="checkpoints, log.jsonl and config.json")
    r.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    r.add_argument("--workers", type=int, help="data-loading worker processes")
    r.add_argument("--seed", type=int)
    r.add_argument("--deterministic", action="store_true", help="deterministic kernels (slower)")
    r.add_argument("--save-every", type=int, metavar="ITERS", help="also checkpoint every ITERS iterations")
    r.add_argument("--keep", type=int, metavar="N", help="numbered checkpoints kept (default 3)")
    r.add_argument("--log-every", type=int, metavar="ITERS")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def build_config(args: argparse.Namespace, saved: dict | None = None):
    """The run's TrainConfig: preset defaults (or the resumed checkpoint's), then the given flags."""
    from ..train.config import TrainConfig, default_train_config

    if saved is not None:
        config = TrainConfig.from_dict(saved)
        if args.preset and args.preset != config.preset:
            raise ValueError(f"--preset {args.preset} differs from the resumed run's preset {config.preset}")
    elif args.preset:
        config = default_train_config(args.preset)
    else:
        raise ValueError("--preset is required (unless resuming)")
    overrides = {field: getattr(args, flag) for flag, field in _OVERRIDES.items() if getattr(args, flag) is not None}
    overrides.update({field: value for flag, (field, value) in _SWITCHES.items() if getattr(args, flag)})
    if overrides.get("distill_teacher"):  # the run's config.json and checkpoints must work from any folder
        overrides["distill_teacher"] = os.path.abspath(overrides["distill_teacher"])
    return config.replace(**overrides) if overrides else config


def run(args: argparse.Namespace) -> int:
    from ..data import load_annotations
    from ..train.distributed import cleanup
    from ..train.loop import Trainer
    from ..train.state import read_training_state, resolve_resume

    resume = resolve_resume(args.resume, args.output)
    saved = read_training_state(resume)["train_config"] if resume else None
    config = build_config(args, saved)
    records = load_annotations(args.labels, args.images, folds=args.folds)
    val_records = None
    if args.val_labels:
        val_records = load_annotations(args.val_labels, args.val_images, folds=args.val_folds)
    try:
        trainer = Trainer(config, records, args.output, weights=args.weights, resume=resume, device=args.device,
                          val_records=val_records, backbone_weights=args.backbone_weights,
                          progress=not args.no_progress)
        result = trainer.fit()
        if trainer.info.is_main:
            best = f", best {result.best}" if result.best else ""
            print(f"trained {result.iterations} iterations; last checkpoint {result.last}{best}")
    finally:
        cleanup()
    return 0
