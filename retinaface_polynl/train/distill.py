"""Dense knowledge distillation of the face/background scores from a teacher detector.

A teacher with the same anchors as the student (same ``min_sizes`` and
``steps``: every RetinaFace here, and Pytorch_Retinaface's checkpoints) sees the
same augmented batch; the student's class scores are pulled towards the
teacher's, anchor by anchor:

    L_distill = T^2 * sum_{a in S} KL( softmax(z_t[a] / T) || softmax(z_s[a] / T) ) / N_pos

over the *informative* anchors ``S``: those where the teacher or the student gives
the face class a probability of at least ``min_score`` (0.05).  The ~10^5 anchors
of a batch that both call background with certainty carry no knowledge and would
otherwise drown the rest; what is left is the teacher's view of the confusable
regions (textures the student fires on, faces the annotation misses, faces too
small to be sure of).  ``N_pos`` is the normaliser of the RetinaFace loss (the
batch's positive anchors), so ``distill_weight`` reads like the other task weights.
Only the scores are distilled: boxes and landmarks keep their own targets (the
student learns the annotation's box convention, not the teacher's).

On an anchor matched to an annotated face the two losses disagree wherever the
teacher is unsure: cross-entropy pulls the face probability to 1, distillation to
the teacher's ``t``, and with weight ``W`` (and ``T = 1``) their gradients cancel
at ``p = (1 + W t) / (1 + W)``.  A masked face that the teacher scores 0.2 is then
held at 0.36 by ``W = 4``, below the 0.5 threshold, however often it is seen.
``exclude`` (``--distill-skip-faces``: the positive anchors) takes such anchors
out of ``S``, so that the annotation decides there and the teacher everywhere else.
On the crowd recipe that measured no better (docs/training.md), so the shipped
weights distil everywhere.  ``raise_only`` (``--distill-raise-faces``: the positive
anchors) keeps the teacher's push where it agrees with the label and drops only its
pull: such an anchor stays in ``S`` while the teacher gives the face class more than
the student does, so the teacher can raise an annotated face's score but never hold
it down.  On the crowd recipe that raised the recall of every face size but cost about
a point of WIDER Easy and Medium (docs/training.md): not shipped either.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..presets import ModelConfig

log = logging.getLogger(__name__)


def load_teacher(path: str | Path, student: ModelConfig, device: torch.device | str = "cpu") -> nn.Module:
    """The teacher in ``path`` (ours or Pytorch_Retinaface's), frozen, in eval mode.

    Raises ``ValueError`` when its anchors differ from the student's: the scores
    would then describe different boxes.
    """
    from ..checkpoints import load_model

    loaded = load_model(path, device=device)
    teacher = loaded.config
    if (teacher.min_sizes, teacher.steps) != (student.min_sizes, student.steps):
        raise ValueError(
            f"{path}: the teacher's anchors (min_sizes {teacher.min_sizes}, steps {teacher.steps}) differ from the "
            f"student's ({student.min_sizes}, {student.steps}); distillation needs the same anchors"
        )
    model = loaded.model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    log.info("distilling from %s (%s)", path, teacher.name or teacher.backbone)
    return model


def distillation_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    normaliser: float | Tensor,
    temperature: float = 1.0,
    min_score: float = 0.05,
    exclude: Tensor | None = None,
    raise_only: Tensor | None = None,
) -> Tensor:
    """``T^2 * sum KL(teacher || student) / normaliser`` over the anchors where either
    gives the face class (index 1) at least ``min_score``, less those where ``exclude``
    (B, A) is True and those where ``raise_only`` (B, A) is True but the teacher's face
    probability is not above the student's.  Logits are (B, A, 2)."""
    s = student_logits.float()
    t = teacher_logits.float().detach()
    with torch.no_grad():
        face_t, face_s = t.softmax(-1)[..., 1], s.softmax(-1)[..., 1]
        informative = (face_t >= min_score) | (face_s >= min_score)
        if exclude is not None:
            informative &= ~exclude.to(informative.device)
        if raise_only is not None:
            informative &= ~(raise_only.to(informative.device) & (face_t <= face_s))
    if not informative.any():
        return s.sum() * 0.0  # keeps the graph (DDP expects every output to receive a gradient)
    log_p_s = F.log_softmax(s[informative] / temperature, dim=-1)
    log_p_t = F.log_softmax(t[informative] / temperature, dim=-1)
    kl = F.kl_div(log_p_s, log_p_t, log_target=True, reduction="sum")
    n = torch.as_tensor(normaliser, dtype=torch.float32, device=s.device).clamp(min=1)
    return kl * temperature**2 / n
