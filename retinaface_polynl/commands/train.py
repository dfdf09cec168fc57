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
    "distill_features": "distill_features", "distill_raise_min": "distill_raise_min",
    "small_face_prob": "small_face_prob", "small_face_range": "small_face_range", "mix": "mix",
    "epoch_size": "epoch_size", "degrade_prob": "degrade_prob", "degrade_max": "degrade_max",
    "rotate_prob": "rotate_prob", "rotate_max": "rotate_max", "motion_blur_prob": "motion_blur_prob",
    "motion_blur_max": "motion_blur_max", "occlude_prob": "occlude_prob", "min_face_size": "min_face_size",
    "neg_pos_ratio": "neg_pos_ratio", "cls_loss": "cls_loss", "negative_weight": "negative_weight",
}
_SWITCHES = {"deterministic": ("deterministic", True), "sync_bn": ("sync_bn", True), "freeze_bn": ("freeze_bn", True),
             "no_amp": ("amp", False), "no_distort": ("distort", False),
             "distill_skip_faces": ("distill_skip_faces", True),
             "distill_raise_faces": ("distill_raise_faces", True)}


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
        "or FDDB-folds files, with --folds), dlib imglab XML, PASCAL VOC XML, Caltech Web Faces landmarks.txt, a "
        "folder of YOLO / yolov5-face .txt labels, or a generic JSON/CSV. Runs on CPU, one GPU, or "
        "many GPUs and machines under torchrun. Options left out take the preset's training defaults (with "
        "--resume: the resumed run's values).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Example: retinaface-polynl train --preset r18x025_polynl --labels ../shared/data/faces_fddb "
        "--folds 1-7 --val-labels ../shared/data/faces_fddb --val-folds 8 --output runs/fddb",
    )
    d = p.add_argument_group("data")
    d.add_argument("--labels", required=True, metavar="FILE", action="append",
                   help="training annotations (any supported layout); give it several times to train on several "
                   "sets at once, drawn in the --mix proportions")
    d.add_argument("--images", metavar="DIR", action="append",
                   help="image root (default depends on the layout); once for all sets, or once per --labels")
    d.add_argument("--folds", metavar="SPEC", help="FDDB folds, e.g. 1-7 or 1,3,5, for the FDDB sets (default: all)")
    d.add_argument("--mix", type=_floats, metavar="W1,W2", help="with several --labels: the share of each set in "
                   "the draws, e.g. 0.3,0.4,0.3 (default: in proportion to their numbers of images)")
    d.add_argument("--epoch-size", type=int, metavar="N", help="images drawn per epoch (default: all training "
                   "images, summed over the sets)")
    d.add_argument("--val-labels", metavar="FILE", help="validation annotations (AP@0.5 every --val-every "
                   "epochs and at the end; the best is kept as OUTPUT/best.pth; default: no validation)")
    d.add_argument("--val-images", metavar="DIR", help="validation image root (default depends on the layout)")
    d.add_argument("--val-folds", metavar="SPEC", help="FDDB folds for validation, e.g. 8 (default: all)")
    d.add_argument("--val-size", type=int, metavar="PX", help="validation short side in pixels (default: original "
                   "size, long side capped at 1024)")
    d.add_argument("--val-every", type=int, metavar="EPOCHS", help="validate every this many epochs (default: 1)")

    m = p.add_argument_group("model")
    m.add_argument("--preset", metavar="NAME", help="architecture preset, see 'retinaface-polynl presets' (default: "
                   "the --weights checkpoint's own, or the resumed run's; required when training from scratch)")
    m.add_argument("--attention-stage", choices=("res3", "res4", "res5"),
                   help="override the preset's block stage (default: the preset's, res4)")
    m.add_argument("--weights", metavar="CKPT", help="start from this checkpoint (ours or Pytorch_Retinaface's); "
                   "a Poly-NL block it lacks is inserted as an identity (default: from scratch)")
    m.add_argument("--backbone-weights", metavar="FILE", help="ImageNet state dict for the backbone (from scratch; "
                   "default: random initialisation)")
    m.add_argument("--resume", metavar="CKPT|auto", help="continue a run: its options are the saved ones unless "
                   "given again (auto: OUTPUT/last.pth when present, else a new run)")
    m.add_argument("--freeze-epochs", type=int, metavar="N", help="train only the attention block and heads for "
                   "the first N epochs (default: 0)")

    o = p.add_argument_group("optimisation", "Defaults marked 'preset' are the preset's training recipe: "
                             "r50*: 100 epochs, batch 24, 840 px, steps at epochs 70,90; the others: 250 epochs, "
                             "batch 32, 640 px, steps at 190,220.")
    o.add_argument("--epochs", type=int, metavar="N", help="passes over the training set (default: preset, 250 or 100)")
    o.add_argument("--max-iters", type=int, metavar="N", help="stop after N iterations (SGD steps) instead; the "
                   "schedule then spans N iterations (default: epochs x iterations per epoch)")
    o.add_argument("--batch-size", type=int, metavar="N", help="images per process and step (default: preset, 32 "
                   "or 24); the global batch is N x processes")
    o.add_argument("--image-size", type=int, metavar="PX", help="square training crop side in pixels (default: "
                   "preset, 640 or 840)")
    o.add_argument("--lr", type=float, help="base learning rate of SGD, not scaled with the batch size "
                   "(default: 0.001)")
    o.add_argument("--momentum", type=float, help="SGD momentum (default: 0.9)")
    o.add_argument("--weight-decay", type=float, metavar="WD", help="SGD weight decay (L2) (default: 0.0005)")
    o.add_argument("--schedule", choices=("step", "cosine"), help="lr decay after the warm-up: step (lr *= gamma "
                   "at each milestone) or cosine (to 0 at the last iteration) (default: step)")
    o.add_argument("--milestones", type=_floats, metavar="E1,E2", help="step schedule: epochs where lr *= gamma, "
                   "fractions allowed (default: preset, 190,220 or 70,90)")
    o.add_argument("--gamma", type=float, help="step schedule: lr factor at each milestone (default: 0.1)")
    o.add_argument("--warmup-epochs", type=float, metavar="EPOCHS", help="linear lr warm-up from lr/1000, in epochs "
                   "(default: 1)")
    o.add_argument("--warmup-iters", type=int, metavar="ITERS", help="the warm-up in iterations instead "
                   "(overrides --warmup-epochs; 0: none)")
    o.add_argument("--grad-clip", type=float, metavar="NORM", help="clip the gradient's L2 norm to NORM (default: "
                   "no clipping)")
    o.add_argument("--no-amp", action="store_true", help="no mixed precision on CUDA (default: float16 autocast on "
                   "CUDA; CPU always float32)")
    o.add_argument("--sync-bn", action="store_true", help="synchronised BatchNorm across processes (CUDA only)")
    o.add_argument("--freeze-bn", action="store_true", help="BatchNorm uses running statistics (eval mode)")
    o.add_argument("--box-weight", type=float, metavar="W", help="box regression loss weight (default: 2, "
                   "RetinaFace's)")
    o.add_argument("--landmark-weight", type=float, metavar="W", help="landmark loss weight (default: 1; faces "
                   "without landmarks add none)")
    o.add_argument("--crop-scales", type=_floats, metavar="S1,S2", help="random square crop side as a fraction of "
                   "the image's short side, one drawn at random per image (default: 0.3,0.45,0.6,0.8,1.0)")
    o.add_argument("--mirror-prob", type=float, metavar="P", help="probability of a horizontal flip (default: 0.5)")
    o.add_argument("--expand-prob", type=float, metavar="P", help="probability of zooming out before the crop, for "
                   "small faces (default: 0)")
    o.add_argument("--expand-ratio", type=float, metavar="R", help="largest zoom-out factor (default: 2)")
    o.add_argument("--small-face-prob", type=float, metavar="P", help="probability of data-anchor sampling aimed "
                   "at small faces: one face drawn at random is shown at a size from --small-face-range, its "
                   "neighbours scaled with it (default: 0)")
    o.add_argument("--small-face-range", type=_floats, metavar="LO,HI", help="longer side in pixels, at the "
                   "training size, of the face drawn by --small-face-prob (default: 6,40)")
    o.add_argument("--min-face-size", type=float, metavar="PX", help="faces narrower or shorter than this, in "
                   "pixels at the training size after the crop, become ignore regions instead of faces (neither "
                   "face nor background; default: 2)")
    o.add_argument("--neg-pos-ratio", type=float, metavar="R", help="hard negatives kept per positive anchor in "
                   "each image, the background anchors the model is surest are faces (online hard example mining; "
                   "default: 3). Measured on the shipped recipe, 7 cut the low-score boxes but not the hands the "
                   "student calls faces (docs/training.md)")
    o.add_argument("--cls-loss", choices=("ohem", "focal"),  # train.config.CLS_LOSSES (not imported: no torch here)
                   help="the face/background loss: ohem, RetinaFace's "
                   "cross-entropy over the positives and --neg-pos-ratio hard negatives; focal, RetinaNet's focal "
                   "loss (alpha 0.25, gamma 2) over every anchor not ignored, no quota (default: ohem)")
    o.add_argument("--negative-weight", type=float, metavar="W", help="weight of the background anchors' terms in "
                   "the face/background loss, the positives' being 1 (default: 1). The positives, many of them "
                   "tiny WIDER faces, make about three quarters of the shipped student's loss; measured at 3, FDDB's "
                   "tail held and WIDER Easy fell (docs/training.md)")
    o.add_argument("--degrade-prob", type=float, metavar="P", help="probability of a lower-quality copy: the "
                   "crop shrunk by up to --degrade-max along x and y independently and enlarged back, then maybe "
                   "JPEG-compressed (blurred, upscaled and stretched photos; default: 0)")
    o.add_argument("--degrade-max", type=float, metavar="F", help="largest shrink factor of --degrade-prob "
                   "(default: 3)")
    o.add_argument("--rotate-prob", type=float, metavar="P", help="probability of turning the crop about its "
                   "centre by up to --rotate-max degrees either way (tilted heads; a face box becomes the box of "
                   "its turned inscribed ellipse, landmarks move exactly; default: 0)")
    o.add_argument("--rotate-max", type=float, metavar="DEG", help="largest turn of --rotate-prob (default: 30)")
    o.add_argument("--motion-blur-prob", type=float, metavar="P", help="probability of smearing the crop along "
                   "a line of 3 to --motion-blur-max pixels in a random direction (moving people, a shaking "
                   "camera; default: 0)")
    o.add_argument("--motion-blur-max", type=float, metavar="PX", help="longest smear of --motion-blur-prob, in "
                   "pixels at the training size (default: 9)")
    o.add_argument("--occlude-prob", type=float, metavar="P", help="probability that part of each face of 16 px "
                   "or more is hidden, as sunglasses, a hand or scarf, a hat or hair, or another head hide it: a "
                   "patch of the same crop or a flat colour over a random part; the box stays whole (default: 0)")
    o.add_argument("--no-distort", action="store_true", help="no photometric distortion (default: random "
                   "brightness, contrast, saturation and hue)")
    o.add_argument("--distill", metavar="TEACHER", help="also pull the face scores towards this detector's (ours "
                   "or Pytorch_Retinaface's, same anchors), run on the same batches (knowledge distillation; "
                   "default: off)")
    o.add_argument("--distill-weight", type=float, metavar="W", help="weight of the distillation loss (default: 1)")
    o.add_argument("--distill-temperature", type=float, metavar="T", help="softmax temperature (default: 1)")
    o.add_argument("--distill-skip-faces", action="store_true", help="no distillation on the anchors matched to an "
                   "annotated face: there the label stands. Otherwise, at weight W, a face the teacher scores t "
                   "settles near (1 + W t) / (1 + W) (masked faces at t = 0.2 and W = 4: 0.36, under a 0.5 "
                   "threshold); elsewhere the teacher still teaches. Measured on the crowd recipe: no gain (docs/training.md) "
                   "(default: distil everywhere)")
    o.add_argument("--distill-features", type=float, metavar="W", help="also pull the student's SSH features, "
                   "through a 1x1 adapter used in training only, towards the teacher's where there is a face or the "
                   "teacher thinks there may be one (fine-grained feature imitation, Wang et al. 2019), at weight "
                   "W (needs --distill; measured on the crowd recipe at W = 1: no gain, docs/training.md; default: 0, off)")
    o.add_argument("--distill-raise-faces", action="store_true", help="on the anchors matched to an annotated "
                   "face, distil only where the teacher scores the face higher than the student: the teacher "
                   "can raise a labelled face's score, never hold it down (the push of --distill-skip-faces's "
                   "faces kept, the pull dropped; excludes --distill-skip-faces; measured on the crowd recipe: every face "
                   "size found more often, WIDER Easy a point lower, docs/training.md; default: distil everywhere)")
    o.add_argument("--distill-raise-min", type=float, metavar="P", help="on the anchors not matched to an "
                   "annotated face, the teacher may lower the student's face score anywhere but raise it only "
                   "where the teacher's own is at least P: an unsure teacher (a hand it scores 0.2) no longer holds "
                   "the student there, where the hard negatives would push it down (default: 0, raise everywhere)")

    r = p.add_argument_group("run")
    r.add_argument("--output", required=True, metavar="DIR", help="folder for the checkpoints (last.pth, numbered "
                   "ones), log.jsonl and config.json; created if needed")
    r.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu; under torchrun each "
                   "process takes cuda:LOCAL_RANK)")
    r.add_argument("--workers", type=int, metavar="N", help="data-loading worker processes per training process "
                   "(default: 4; 0: load in the training process)")
    r.add_argument("--seed", type=int, help="seed of the initialisation, data order and augmentation (default: 0)")
    r.add_argument("--deterministic", action="store_true", help="deterministic kernels (slower)")
    r.add_argument("--save-every", type=int, metavar="ITERS", help="also checkpoint every ITERS iterations "
                   "(default: 0, only at each epoch's end and the run's end)")
    r.add_argument("--keep", type=int, metavar="N", help="numbered checkpoints kept besides last.pth and best.pth "
                   "(default: 3)")
    r.add_argument("--log-every", type=int, metavar="ITERS", help="average the losses over ITERS iterations per "
                   "log.jsonl line (default: 10, and at each epoch's end)")
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
        raise ValueError("--preset is required (unless resuming, or starting from --weights)")
    overrides = {field: getattr(args, flag) for flag, field in _OVERRIDES.items() if getattr(args, flag) is not None}
    overrides.update({field: value for flag, (field, value) in _SWITCHES.items() if getattr(args, flag)})
    if overrides.get("distill_teacher"):  # the run's config.json and checkpoints must work from any folder
        overrides["distill_teacher"] = os.path.abspath(overrides["distill_teacher"])
    return config.replace(**overrides) if overrides else config


def check_output(output: str) -> None:
    """``--output`` must be a folder or creatable as one (checked before anything is loaded)."""
    path = os.path.abspath(output)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    if not os.path.isdir(path):
        raise ValueError(f"--output {output}: {path} is a file, not a folder")


def check_images(records, labels: str, flag: str) -> None:
    """Every annotated image exists: a wrong image root fails here, not an epoch into the run.  (A file
    that exists but cannot be decoded is skipped with a warning while training.)"""
    missing = [r.path for r in records if not r.path.is_file()]
    if missing:
        raise FileNotFoundError(f"{labels}: {len(missing)} of {len(records)} annotated images not found, e.g. "
                                f"{missing[0]} (wrong {flag} folder, or files moved?)")


def run(args: argparse.Namespace) -> int:
    from ..data import load_annotations
    from ..train.distributed import cleanup
    from ..train.loop import Trainer
    from ..train.state import read_training_state, resolve_resume

    check_output(args.output)
    resume = resolve_resume(args.resume, args.output)
    saved = read_training_state(resume)["train_config"] if resume else None
    if args.weights and not args.preset and not resume:
        from ..train.loop import weights_preset

        args.preset = weights_preset(args.weights)
        log.info("--preset %s (the --weights checkpoint's)", args.preset)
    config = build_config(args, saved)
    labels = args.labels
    images = args.images or [None]
    if len(images) not in (1, len(labels)):
        raise ValueError(f"{len(images)} --images for {len(labels)} --labels: give one for all, or one per --labels")
    images = images * len(labels) if len(images) == 1 else images
    sets = []
    for lab, img in zip(labels, images):
        sets.append(load_annotations(lab, img, folds=args.folds))
        check_images(sets[-1], lab, "--images")
    records = [r for s in sets for r in s]
    set_sizes = [len(s) for s in sets] if len(sets) > 1 else None
    val_records = None
    if args.val_labels:
        val_records = load_annotations(args.val_labels, args.val_images, folds=args.val_folds)
        check_images(val_records, args.val_labels, "--val-images")
    try:
        trainer = Trainer(config, records, args.output, weights=args.weights, resume=resume, device=args.device,
                          val_records=val_records, backbone_weights=args.backbone_weights,
                          progress=not args.no_progress, set_sizes=set_sizes)
        result = trainer.fit()
        if trainer.info.is_main:
            best = f", best {result.best}" if result.best else ""
            print(f"trained {result.iterations} iterations; last checkpoint {result.last}{best}")
    finally:
        cleanup()
    return 0
