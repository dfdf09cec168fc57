"""The training loop: one process, or one of many under ``torchrun`` (DDP).

    records -> FaceDataset(TrainAugment) -> DataLoader (workers, distributed sampler)
    -> RetinaFace (DDP) -> MultiBoxLoss -> SGD (+ AMP on CUDA, optional clipping)
    -> per-iteration LR schedule -> checkpoints (atomic, last few kept, last.pth)
    -> JSON-lines log + tqdm bar; optional validation AP each epoch (best.pth)

Positions are counted in iterations; the epoch is ``iteration // iters_per_epoch``.
A checkpoint written after iteration ``k`` holds everything needed to continue
at ``k`` (model, optimiser, scheduler, scaler, RNG, best AP), and the data
order and augmentation are functions of ``(seed, epoch, index)``, so a resumed
run reproduces an uninterrupted one.

In a distributed run the loss is normalised by the *global* number of positive
anchors (averaged over processes), so the gradients that DDP averages equal
the gradients of a single process on the concatenated batch (exactly so when
BatchNorm does not use batch statistics: ``freeze_bn`` or SyncBN).
"""
from __future__ import annotations

import json
import logging
import os
import random
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..data.augment import TrainAugment
from ..data.dataset import FaceDataset, MixtureSampler, build_loader
from ..data.records import ImageRecord, summarize
from .config import TrainConfig
from .distill import (FeatureImitation, captured_features, distillation_loss, excluded_anchors, imitation_mask,
                      load_teacher)
from .distributed import DistInfo, all_reduce_mean, barrier, setup
from .loss import LOG_NAMES, POSITIVE, LossParts, MultiBoxLoss
from .schedule import build_scheduler
from .state import capture_rng_state, checkpoint_name, read_training_state, restore_rng_state, save_training_checkpoint

log = logging.getLogger(__name__)

# Parameters that train during the first ``freeze_epochs`` epochs (the fine-tuning route of the paper).
TRAINABLE_WHEN_FROZEN = ("attention.", "class_head.", "box_head.", "landmark_head.")


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch; with ``deterministic``, ask torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    else:
        torch.backends.cudnn.benchmark = True


def build_model(config: TrainConfig, weights: str | Path | None = None, backbone_weights: str | Path | None = None):
    """(model, its configuration, input-size hint): the preset from scratch (optionally an
    ImageNet backbone; no hint), or started from ``weights`` (ours or Pytorch_Retinaface's;
    a Poly-NL block the checkpoint lacks is inserted as an identity), keeping the
    ``inference`` input size that checkpoint records, if any."""
    from ..checkpoints import CheckpointMismatchError, load_model
    from ..models.retinaface import RetinaFace

    model_config = config.model_config()
    if weights is not None:
        try:
            loaded = load_model(weights, config=model_config)
        except CheckpointMismatchError:
            try:
                own = weights_preset(weights)
            except ValueError:  # no preset's model: the mismatch's own message says more
                own = None
            if own is None or own == config.preset:
                raise
            raise ValueError(f"{weights} holds a model of preset {own}, which preset {config.preset} cannot start "
                             f"from: leave --preset out to fine-tune {own}, or pick a preset of the same backbone (a "
                             "Poly-NL block can be added, not removed)") from None
        if loaded.initialised:
            log.info("started %s from %s; new: %s", model_config.name, weights, ", ".join(loaded.initialised))
        inference = loaded.extra.get("inference")
        if inference:
            log.info("the checkpoints keep the input size %s records, inference = %s (detect resizes pictures "
                     "to it; --size there overrides it)", weights, inference)
        return loaded.model, model_config, inference
    return RetinaFace(model_config, pretrained_backbone=backbone_weights), model_config, None


def weights_preset(weights: str | Path) -> str:
    """The preset whose model the checkpoint ``weights`` holds (ours: its saved configuration;
    Pytorch_Retinaface's: recognised from its keys); ValueError when it is no preset's."""
    from ..checkpoints import checkpoint_config
    from ..presets import presets

    config = checkpoint_config(weights)
    if presets().get(config.name) != config:
        raise ValueError(f"{weights}: its model ({config.name}, modified) is no preset's; pass --preset "
                         "(and --attention-stage)")
    return config.name


@dataclass
class TrainResult:
    last: Path | None
    best: Path | None
    iterations: int
    history: list[dict[str, Any]] = field(default_factory=list)


class Trainer:
    """Trains one detector; :meth:`fit` runs to ``config.max_iters`` / ``config.epochs``.

    Args:
        config: the training configuration.
        records: training images and faces.
        output: folder for checkpoints, ``log.jsonl`` and ``config.json``.
        weights: checkpoint to start from (fine-tuning); ignored when resuming.
        resume: training checkpoint to continue from.
        device: ``cpu``, ``cuda`` or ``cuda:N`` (under torchrun each process takes ``cuda:LOCAL_RANK``).
        val_records: optional validation set (AP at IoU 0.5 each ``val_every`` epochs).
        set_sizes: ``records`` is several training sets one after another, of these sizes:
            batches draw from them in the proportions ``config.mix`` (default: their sizes).
        backbone_weights: optional ImageNet state dict for the backbone (from scratch only).
        progress: show a tqdm bar (main process only).
    """

    def __init__(
        self,
        config: TrainConfig,
        records: list[ImageRecord],
        output: str | Path,
        weights: str | Path | None = None,
        resume: str | Path | None = None,
        device: str = "cpu",
        val_records: list[ImageRecord] | None = None,
        backbone_weights: str | Path | None = None,
        progress: bool = True,
        dist_info: DistInfo | None = None,
        set_sizes: list[int] | None = None,
    ) -> None:
        self.config = config
        self.output = Path(output)
        self.info = dist_info or setup(device)
        self.device = self.info.device
        self.val_records = val_records
        self.progress = progress
        seed_everything(config.seed, config.deterministic)
        if config.sync_bn and self.info.distributed and self.device.type != "cuda":
            raise ValueError("synchronised BatchNorm needs CUDA devices (PyTorch's SyncBatchNorm is GPU-only); "
                             "on CPU use --freeze-bn for exact multi-process equivalence")
        if resume is not None and weights is not None:
            log.warning("--weights %s ignored: resuming from %s", weights, resume)

        # input size the starting checkpoint records (a resumed run takes its own in load_state)
        model, self.model_config, self.inference = build_model(config, None if resume else weights, backbone_weights)
        if config.sync_bn and self.info.distributed:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.model = model.to(self.device)
        if self.info.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net: nn.Module = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        else:
            self.net = self.model
        self.loss = MultiBoxLoss(
            self.model.box_coder,
            self.model.landmark_coder,
            iou_threshold=config.iou_threshold,
            neg_pos_ratio=config.neg_pos_ratio,
            cls_loss=config.cls_loss,
            negative_weight=config.negative_weight,
            box_weight=config.box_weight,
            class_weight=config.class_weight,
            landmark_weight=config.landmark_weight,
        )
        self.teacher = None
        self.imitation: FeatureImitation | None = None
        if config.distill_teacher:
            self.teacher = load_teacher(config.distill_teacher, self.model_config, self.device)
            if config.distill_features:
                self.imitation = FeatureImitation(self.model_config.fpn_channels, self.teacher.config.fpn_channels,
                                                  len(self.model.ssh)).to(self.device)
        size = config.image_size
        self.anchors = self.model.anchor_generator.for_image(size, size, device=self.device)

        augment = TrainAugment(
            size, config.crop_scales, config.distort, config.mirror_prob, config.min_face_size,
            expand_prob=config.expand_prob, expand_ratio=config.expand_ratio,
            small_face_prob=config.small_face_prob, small_face_range=config.small_face_range,
            degrade_prob=config.degrade_prob, degrade_max=config.degrade_max,
            rotate_prob=config.rotate_prob, rotate_max=config.rotate_max,
            motion_blur_prob=config.motion_blur_prob, motion_blur_max=config.motion_blur_max,
            occlude_prob=config.occlude_prob,
        )
        self.dataset = FaceDataset(records, augment, seed=config.seed)
        sampler = None
        if set_sizes is not None or config.mix or config.epoch_size:
            sizes = list(set_sizes) if set_sizes is not None else [len(records)]
            if sum(sizes) != len(records):
                raise ValueError(f"set sizes {sizes} do not add up to the {len(records)} training records")
            weights = config.mix or sizes
            if len(weights) != len(sizes):
                raise ValueError(f"{len(weights)} --mix weights for {len(sizes)} training sets")
            sampler = MixtureSampler(sizes, weights, config.epoch_size, self.info.world_size, self.info.rank,
                                     config.seed)
        self.loader, self.sampler = build_loader(
            self.dataset, config.batch_size, config.workers, self.info.world_size, self.info.rank, config.seed,
            pin_memory=self.device.type == "cuda", sampler=sampler,
        )
        self.iters_per_epoch = len(self.sampler) // config.batch_size
        if self.iters_per_epoch == 0:
            raise ValueError(
                f"{len(records)} training images cannot fill one batch of {config.batch_size} per process "
                f"({self.info.world_size} process(es)); lower --batch-size"
            )
        self.total_iters = config.max_iters or config.epochs * self.iters_per_epoch

        # the detector's parameters, then the imitation adapters' (trained with it, never saved in it)
        self.trainable = list(self.model.parameters())
        self.adapter_params = list(self.imitation.parameters()) if self.imitation is not None else []
        self.optimizer = torch.optim.SGD(
            self.trainable + self.adapter_params, lr=config.lr, momentum=config.momentum,
            weight_decay=config.weight_decay,
        )
        self.scheduler = build_scheduler(self.optimizer, config, self.total_iters, self.iters_per_epoch)
        self.use_amp = config.amp and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.use_amp)
        self.frozen_params = [p for n, p in self.model.named_parameters() if not n.startswith(TRAINABLE_WHEN_FROZEN)]
        self.frozen = False
        self._saved_at = -1
        self.iteration = 0
        self.best_ap: float | None = None
        self.history: list[dict[str, Any]] = []
        if resume is not None:
            self.load_state(resume)

    # -- state ------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """The training state stored next to the model in every checkpoint (and the input-size
        hint ``inference`` when the starting checkpoint had one, so that fine-tuning the shipped
        weights does not silently change the size pictures are detected at)."""
        hint = {"inference": self.inference} if self.inference else {}
        return hint | {
            "train_config": self.config.to_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.use_amp else None,
            "epoch": self.iteration // self.iters_per_epoch,
            "iteration": self.iteration,
            "iters_per_epoch": self.iters_per_epoch,
            "world_size": self.info.world_size,
            "best_ap": self.best_ap,
            "rng": capture_rng_state(),
        } | ({"feature_adapters": self.imitation.state_dict()} if self.imitation is not None else {})

    def load_state(self, path: str | Path) -> None:
        obj = read_training_state(path)
        self.model.load_state_dict(obj["model"])
        if self.imitation is not None:
            if "feature_adapters" not in obj:
                raise ValueError(f"{path} was written without feature imitation: resume it without "
                                 "--distill-features, or start from it with --weights")
            self.imitation.load_state_dict(obj["feature_adapters"])
        self.optimizer.load_state_dict(obj["optimizer"])
        self.scheduler.load_state_dict(obj["scheduler"])
        if obj.get("scaler") and self.use_amp:
            self.scaler.load_state_dict(obj["scaler"])
        self.iteration = int(obj["iteration"])
        self.best_ap = obj.get("best_ap")
        self.inference = obj.get("inference")
        if obj.get("iters_per_epoch") not in (None, self.iters_per_epoch):
            log.warning("%s was written with %s iterations per epoch, this run has %d (batch size, data or "
                        "world size changed): epochs will not line up", path, obj["iters_per_epoch"],
                        self.iters_per_epoch)
        if "rng" in obj:
            restore_rng_state(obj["rng"])
        log.info("resumed from %s at iteration %d (epoch %d)", path, self.iteration,
                 self.iteration // self.iters_per_epoch)

    def save(self, at_epoch_end: bool) -> Path | None:
        """Checkpoint the current iteration (main process; the others wait)."""
        if self._saved_at == self.iteration:
            return None
        self._saved_at = self.iteration
        path = None
        if self.info.is_main:
            name = checkpoint_name(self.iteration // self.iters_per_epoch, self.iteration, at_epoch_end)
            path = save_training_checkpoint(self.output, name, self.model, self.model_config,
                                            keep=self.config.keep_checkpoints, **self.state())
        barrier(self.info)
        return path

    # -- one step ---------------------------------------------------------------------
    def set_train_mode(self, epoch: int) -> None:
        """Train mode, with BatchNorm layers frozen (eval) where the configuration says so."""
        self.net.train()
        self.frozen = epoch < self.config.freeze_epochs
        for name, m in self.model.named_modules():
            if isinstance(m, _BatchNorm):
                if self.config.freeze_bn or (self.frozen and not name.startswith(TRAINABLE_WHEN_FROZEN)):
                    m.eval()

    def compute_loss(self, images: torch.Tensor, targets: list[dict[str, torch.Tensor]]) -> LossParts:
        """Forward pass and loss, normalised by the global batch's positives."""
        images = images.to(self.device, non_blocking=True)
        imitate = self.imitation is not None
        with torch.autocast(device_type=self.device.type, dtype=torch.float16, enabled=self.use_amp), \
                (captured_features(self.model) if imitate else nullcontext([])) as student_features:
            outputs = self.net(images)
        if outputs.box_deltas.shape[1] != self.anchors.shape[0]:
            raise ValueError(f"model predicts {outputs.box_deltas.shape[1]} anchors, expected {self.anchors.shape[0]}")
        assigned = self.loss.assign(self.anchors, targets)
        counts = torch.tensor([assigned.num_positives, assigned.num_landmark_positives], dtype=torch.float32,
                              device=self.device)
        counts = all_reduce_mean(counts, self.info)
        parts = self.loss.compute(outputs, assigned, counts[0], counts[1])
        if self.teacher is not None:
            with torch.no_grad(), torch.autocast(device_type=self.device.type, dtype=torch.float16,
                                                 enabled=self.use_amp), \
                    (captured_features(self.teacher) if imitate else nullcontext([])) as teacher_features:
                teacher_logits = self.teacher(images).class_logits
            faces = assigned.labels == POSITIVE
            distill = distillation_loss(outputs.class_logits, teacher_logits, counts[0],
                                        self.config.distill_temperature,
                                        exclude=excluded_anchors(faces, assigned.negatives,
                                                                 self.config.distill_skip_faces),
                                        raise_only=faces if self.config.distill_raise_faces else None,
                                        background=~faces if self.config.distill_raise_min else None,
                                        raise_min=self.config.distill_raise_min)
            parts = parts.add_distillation(distill, self.config.distill_weight)
            if imitate:
                masks = imitation_mask(teacher_logits, faces, [tuple(f.shape[-2:]) for f in student_features])
                # normalised like the other losses by the global batch's mean count, so that a
                # run over N processes takes the steps of one process on the whole batch
                positions = all_reduce_mean(sum(m.sum() for m in masks).reshape(1), self.info)
                imitation = self.imitation(student_features, teacher_features, masks, normaliser=positions)
                parts = parts.add_feature_imitation(imitation, self.config.distill_features)
        return parts

    def backward(self, parts: LossParts) -> None:
        """Gradients of the total loss, averaged over the processes (DDP does the detector's,
        this the imitation adapters', which live outside it)."""
        self.scaler.scale(parts.total).backward()
        if self.info.distributed:
            for p in self.adapter_params:
                if p.grad is not None:
                    p.grad.copy_(all_reduce_mean(p.grad, self.info))

    def train_step(self, images: torch.Tensor, targets: list[dict[str, torch.Tensor]]) -> LossParts:
        """One SGD step (zero grad, forward, backward, freeze, clip, step, schedule)."""
        self.optimizer.zero_grad(set_to_none=True)
        parts = self.compute_loss(images, targets)
        if not torch.isfinite(parts.total):
            raise FloatingPointError(f"loss is {float(parts.total)} at iteration {self.iteration}: "
                                     "lower --lr, or check the annotations")
        self.backward(parts)
        if self.frozen:
            for p in self.frozen_params:
                p.grad = None
        if self.config.grad_clip:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.trainable + self.adapter_params, self.config.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return parts

    # -- the loop ---------------------------------------------------------------------
    def validate(self, epoch: int) -> dict[str, Any] | None:
        if not self.val_records or not self.info.is_main:
            return None
        from .validate import evaluate

        t = time.perf_counter()
        result = evaluate(self.model, self.val_records, self.device, self.config.val_size, self.config.val_max_size)
        record = {"type": "val", "epoch": epoch, "iter": self.iteration, "ap50": round(result["ap"], 5),
                  "recall50": round(result["recall"], 5), "seconds": round(time.perf_counter() - t, 2)}
        if self.best_ap is None or result["ap"] > self.best_ap:
            self.best_ap = result["ap"]
            record["best"] = True
        return record

    def fit(self) -> TrainResult:
        from tqdm import tqdm

        cfg, main = self.config, self.info.is_main
        if main:
            self.output.mkdir(parents=True, exist_ok=True)
            cfg.write_json(self.output / "config.json", model=self.model_config.to_dict(),
                           world_size=self.info.world_size, iters_per_epoch=self.iters_per_epoch,
                           total_iters=self.total_iters, train_set=summarize(self.dataset.records))
        log_file = open(self.output / "log.jsonl", "a", encoding="utf-8") if main else None
        bar = tqdm(total=self.total_iters, initial=self.iteration, disable=not (main and self.progress),
                   unit="it", dynamic_ncols=True, desc="train")
        best_path = None
        images_per_step = cfg.batch_size * self.info.world_size
        try:
            while self.iteration < self.total_iters:
                epoch = self.iteration // self.iters_per_epoch
                done = self.iteration % self.iters_per_epoch
                self.dataset.set_epoch(epoch)
                self.sampler.set_epoch(epoch, skip=done * cfg.batch_size)
                self.set_train_mode(epoch)
                sums, steps, t0, stepped = torch.zeros(len(LOG_NAMES)), 0, time.perf_counter(), False
                for images, targets in self.loader:
                    parts = self.train_step(images, targets)
                    self.iteration += 1
                    stepped = True
                    sums += torch.stack([p.detach().float().cpu() for p in parts])
                    steps += 1
                    if steps == cfg.log_every or self.iteration >= self.total_iters or \
                            self.iteration % self.iters_per_epoch == 0:
                        mean = all_reduce_mean((sums / steps).to(self.device), self.info).cpu()
                        rate = steps * images_per_step / max(time.perf_counter() - t0, 1e-9)
                        record = {"type": "train", "iter": self.iteration, "epoch": epoch,
                                  "lr": self.optimizer.param_groups[0]["lr"],
                                  **{k: round(float(v), 5) for k, v in zip(LOG_NAMES, mean)},
                                  "images_per_s": round(rate, 2), "time": round(time.time(), 3)}
                        self.history.append(record)
                        if log_file:
                            log_file.write(json.dumps(record) + "\n")
                            log_file.flush()
                        bar.set_postfix(loss=f"{record['loss']:.3f}", box=f"{record['box']:.3f}",
                                        cls=f"{record['cls']:.3f}", lm=f"{record['landmark']:.3f}",
                                        img_s=f"{rate:.1f}", refresh=False)
                        sums, steps, t0 = torch.zeros(len(LOG_NAMES)), 0, time.perf_counter()
                    bar.update(1)
                    epoch_end = self.iteration % self.iters_per_epoch == 0
                    if cfg.save_every and self.iteration % cfg.save_every == 0 and not epoch_end:
                        self.save(at_epoch_end=False)
                    if self.iteration >= self.total_iters or epoch_end:
                        break
                if not stepped:
                    raise RuntimeError(f"epoch {epoch} produced no batch; is the dataset empty?")
                epoch_end = self.iteration % self.iters_per_epoch == 0
                val = None
                finished = self.iteration >= self.total_iters
                if self.val_records and (finished or (epoch_end and (epoch + 1) % cfg.val_every == 0)):
                    val = self.validate(epoch)
                    barrier(self.info)
                if epoch_end or finished:
                    self.save(at_epoch_end=epoch_end)
                if val is not None:
                    self.history.append(val)
                    if log_file:
                        log_file.write(json.dumps(val) + "\n")
                        log_file.flush()
                    bar.write(f"epoch {epoch}: AP50 {val['ap50']:.4f} (recall {val['recall50']:.4f})")
                    if val.get("best") and main:
                        from ..checkpoints import save_checkpoint

                        best_path = save_checkpoint(self.output / "best.pth", self.model, self.model_config,
                                                    **self.state())
        finally:
            bar.close()
            if log_file:
                log_file.close()
        return TrainResult(self.output / "last.pth" if main else None, best_path, self.iteration, self.history)
