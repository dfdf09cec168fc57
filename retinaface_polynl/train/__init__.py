"""Training: anchor matching, the multi-task loss, the (DDP-aware) loop, checkpoints.

    TrainConfig / default_train_config(preset)       how a detector is trained
    match_anchors(anchors, boxes, ...)               anchor -> face assignment
    MultiBoxLoss(box_coder, landmark_coder, ...)     the RetinaFace loss
    distillation_loss(student, teacher, n)           score distillation from a teacher (--distill)
    Trainer(config, records, output, ...).fit()      the loop (single process or torchrun)
"""
from .config import TrainConfig, default_train_config
from .distill import distillation_loss, load_teacher
from .loss import AssignedTargets, LossParts, MultiBoxLoss
from .matcher import IGNORED, NEGATIVE, anchors_to_xyxy, match_anchors
from .schedule import build_scheduler, lr_factor

__all__ = [
    "TrainConfig", "default_train_config", "AssignedTargets", "LossParts", "MultiBoxLoss", "distillation_loss",
    "load_teacher", "IGNORED", "NEGATIVE",
    "anchors_to_xyxy", "match_anchors", "build_scheduler", "lr_factor", "Trainer", "TrainResult",
]


def __getattr__(name):  # the loop pulls in the data pipeline: import it on demand
    if name in ("Trainer", "TrainResult"):
        from . import loop

        return getattr(loop, name)
    raise AttributeError(name)
