"""Knowledge distillation from a teacher detector: dense score distillation, and feature
imitation (``FeatureImitation``, ``--distill-features``, at the end of this module).

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

The teacher may also be SCRFD-2.5G (``--distill`` naming its ncnn ``.param`` file or its
640x640 ONNX file: :class:`ScrfdScoreTeacher`), the strongest of the crowd recipe's label makers
that can run on every batch.  Its anchors have our sizes (16 and 32 px at stride 8, 64 and 128
at 16, 256 and 512 at 32) but sit on the cells' corners, ours on their centres; each of our
anchors takes the mean of the four SCRFD anchors of its size around its centre.  It gives scores
only: feature imitation needs a RetinaFace teacher.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..presets import ModelConfig

log = logging.getLogger(__name__)


SCRFD_ANCHORS = (((16, 32), (64, 128), (256, 512)), (8, 16, 32))
BGR_MEAN = (104.0, 117.0, 123.0)  # what preprocess() subtracts


class _Scores:
    """What the training loop reads from a teacher's forward pass."""

    def __init__(self, class_logits: Tensor) -> None:
        self.class_logits = class_logits


class ScrfdScoreTeacher(nn.Module):
    """SCRFD-2.5G's face scores on our anchors, for dense score distillation.

    ``forward`` takes the training batch as the student sees it (``preprocess``: BGR minus the
    mean, (B, 3, H, W)), runs SCRFD on each picture (its own input: RGB, (x - 127.5) / 128) and
    returns ``class_logits`` (B, A, 2) in the student's anchor order: background 0, face the
    log-odds of SCRFD's probability, resampled from its corner-anchored cells to our centred
    anchors (the mean of the four around each centre, edges repeated).  Through ncnn any input
    size that is a multiple of 32 works; the ONNX file takes up to 640x640 (training crops of 640).
    """

    def __init__(self, path: str | Path, student: ModelConfig, threads: int = 1) -> None:
        super().__init__()
        if (tuple(student.min_sizes), tuple(student.steps)) != SCRFD_ANCHORS:
            raise ValueError(f"{path}: SCRFD's anchors (min_sizes {SCRFD_ANCHORS[0]}, steps {SCRFD_ANCHORS[1]}) differ "
                             f"from the student's ({student.min_sizes}, {student.steps}); distillation needs the same anchors")
        from .teachers import ScrfdTeacher

        path = Path(path)
        self.scrfd = ScrfdTeacher(path, backend="onnx" if path.suffix == ".onnx" else "ncnn", threads=threads)
        self.path = path

    @property
    def config(self):
        raise ValueError("feature imitation (--distill-features) needs a RetinaFace teacher: SCRFD gives scores only")

    @property
    def ssh(self):
        raise ValueError("feature imitation (--distill-features) needs a RetinaFace teacher: SCRFD gives scores only")

    @staticmethod
    def centred(scores: np.ndarray, rows: int, cols: int) -> np.ndarray:
        """(2, h, w) corner-anchored probabilities -> (rows, cols, 2) at the cells' centres."""
        p = np.pad(scores, ((0, 0), (0, 1), (0, 1)), mode="edge")
        mid = (p[:, :-1, :-1] + p[:, 1:, :-1] + p[:, :-1, 1:] + p[:, 1:, 1:]) / 4
        return mid[:, :rows, :cols].transpose(1, 2, 0)

    def forward(self, images: Tensor) -> _Scores:
        from ..anchors import feature_map_sizes

        b, _, h, w = images.shape
        mean = torch.tensor(BGR_MEAN, dtype=torch.float32, device=images.device).view(1, 3, 1, 1)
        bgr = (images.float() + mean).clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        sizes = feature_map_sizes(h, w, SCRFD_ANCHORS[1])
        out = []
        for k in range(b):
            maps = self.scrfd.raw(np.ascontiguousarray(bgr[k]))
            probs = [self.centred(maps[f"score_{s}"], rows, cols).reshape(-1)
                     for s, (rows, cols) in zip(SCRFD_ANCHORS[1], sizes)]
            out.append(np.concatenate(probs))
        p = torch.from_numpy(np.clip(np.stack(out), 1e-6, 1 - 1e-6)).to(images.device)
        return _Scores(torch.stack([torch.zeros_like(p), torch.log(p) - torch.log1p(-p)], -1))


def load_teacher(path: str | Path, student: ModelConfig, device: torch.device | str = "cpu") -> nn.Module:
    """The teacher in ``path`` (ours or Pytorch_Retinaface's; or SCRFD's ``.param`` / ``.onnx`` file:
    :class:`ScrfdScoreTeacher`), frozen, in eval mode.

    Raises ``ValueError`` when its anchors differ from the student's: the scores
    would then describe different boxes.
    """
    from ..checkpoints import load_model

    if Path(path).suffix in (".param", ".onnx"):
        log.info("distilling from %s (SCRFD-2.5G, scores only)", path)
        return ScrfdScoreTeacher(path, student).eval()

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
    background: Tensor | None = None,
    raise_min: float = 0.0,
) -> Tensor:
    """``T^2 * sum KL(teacher || student) / normaliser`` over the anchors where either
    gives the face class (index 1) at least ``min_score``, less those where ``exclude``
    (B, A) is True, those where ``raise_only`` (B, A) is True but the teacher's face
    probability is not above the student's, and those where ``background`` (B, A) is True
    and the teacher would raise the student's face probability to less than ``raise_min``
    (an unsure teacher may lower a background anchor's score, never lift it: a hand it
    scores 0.2 is not held at 0.2).  Logits are (B, A, 2)."""
    s = student_logits.float()
    t = teacher_logits.float().detach()
    with torch.no_grad():
        face_t, face_s = t.softmax(-1)[..., 1], s.softmax(-1)[..., 1]
        informative = (face_t >= min_score) | (face_s >= min_score)
        if exclude is not None:
            informative &= ~exclude.to(informative.device)
        if raise_only is not None:
            informative &= ~(raise_only.to(informative.device) & (face_t <= face_s))
        if background is not None and raise_min > 0:
            informative &= ~(background.to(informative.device) & (face_t > face_s) & (face_t < raise_min))
    if not informative.any():
        return s.sum() * 0.0  # keeps the graph (DDP expects every output to receive a gradient)
    log_p_s = F.log_softmax(s[informative] / temperature, dim=-1)
    log_p_t = F.log_softmax(t[informative] / temperature, dim=-1)
    kl = F.kl_div(log_p_s, log_p_t, log_target=True, reduction="sum")
    n = torch.as_tensor(normaliser, dtype=torch.float32, device=s.device).clamp(min=1)
    return kl * temperature**2 / n


def excluded_anchors(faces: Tensor, negatives: Tensor | None, skip_faces: bool) -> Tensor | None:
    """(B, A) bool: the anchors the teacher's scores must not reach, or ``None`` for none: the known
    negatives (``AssignedTargets.negatives``: a hand the teacher half believes is a face is never
    pulled up by it), and the positive anchors ``faces`` when ``skip_faces`` (``--distill-skip-faces``)."""
    out = faces if skip_faces else None
    if negatives is not None and negatives.any():
        out = negatives if out is None else out | negatives
    return out


# -- feature imitation --------------------------------------------------------------------


@contextmanager
def captured_features(model: nn.Module) -> Iterator[list[Tensor]]:
    """The SSH outputs (one per pyramid level, the features the heads read) of every forward
    pass of ``model`` inside the block, appended to the list it yields.  Works through a
    ``DistributedDataParallel`` wrapper (the hooks sit on the modules themselves)."""
    captured: list[Tensor] = []
    handles = [m.register_forward_hook(lambda _m, _inputs, out: captured.append(out)) for m in model.ssh]
    try:
        yield captured
    finally:
        for h in handles:
            h.remove()


def imitation_mask(teacher_logits: Tensor, faces: Tensor, level_shapes: Sequence[tuple[int, int]],
                   min_score: float = 0.05) -> list[Tensor]:
    """Where feature imitation applies, one (B, H, W) float mask per level: the positions
    with an anchor matched to an annotated face (``faces``, (B, A)) or one the teacher
    gives the face class at least ``min_score``, i.e. the faces and what the teacher thinks
    may be one (Wang et al.'s "near object" regions, widened to the faces the labels miss).
    Anchors are in the heads' order: level by level, then row, column, anchor."""
    with torch.no_grad():
        near = faces.to(teacher_logits.device) | (teacher_logits.float().softmax(-1)[..., 1] >= min_score)
        b = near.shape[0]
        positions = sum(h * w for h, w in level_shapes)
        per_location = near.shape[1] // positions
        if per_location * positions != near.shape[1]:
            raise ValueError(f"{near.shape[1]} anchors do not tile the levels {list(level_shapes)}")
        masks, start = [], 0
        for h, w in level_shapes:
            n = h * w * per_location
            masks.append(near[:, start:start + n].reshape(b, h, w, per_location).any(-1).float())
            start += n
        return masks


class FeatureImitation(nn.Module):
    """Fine-grained feature imitation (Wang et al., "Distilling Object Detectors with
    Fine-grained Feature Imitation", CVPR 2019) of the teacher's SSH features.

    The student's features at each level pass through an adapter (a 1x1 convolution from
    its width to the teacher's, used in training only and never part of the detector) and
    are pulled towards the teacher's at the positions of ``imitation_mask``:

        L_feat = sum_l sum_{(h, w) in M_l} mean_c (adapter_l(f_s) - f_t)^2 / |M|

    Score distillation tells the student *what* the teacher concludes at each anchor; this
    tells it what the teacher *sees* there, which is what a student trained on a few
    thousand photos lacks on poses, occlusions and blur that the teacher learnt from
    WIDER FACE's 12,880.  On the crowd recipe (six epochs at weight 1) it measured no
    better than score distillation alone (docs/training.md).
    """

    def __init__(self, student_width: int, teacher_width: int, num_levels: int) -> None:
        super().__init__()
        self.adapters = nn.ModuleList(nn.Conv2d(student_width, teacher_width, kernel_size=1)
                                      for _ in range(num_levels))

    def forward(self, student: Sequence[Tensor], teacher: Sequence[Tensor], masks: Sequence[Tensor],
                normaliser: float | Tensor | None = None) -> Tensor:
        """The loss above; ``normaliser`` replaces ``|M|`` (the trainer gives the mean over
        its processes, as for the other losses)."""
        if not len(student) == len(teacher) == len(masks) == len(self.adapters):
            raise ValueError(f"{len(student)} student levels, {len(teacher)} teacher levels, {len(masks)} masks "
                             f"and {len(self.adapters)} adapters")
        total = student[0].new_zeros((), dtype=torch.float32)
        count = total.new_zeros(())
        for adapter, fs, ft, m in zip(self.adapters, student, teacher, masks):
            if fs.shape[-2:] != ft.shape[-2:]:
                raise ValueError(f"student features {tuple(fs.shape)} and teacher's {tuple(ft.shape)} differ in size")
            diff = (adapter(fs.float()) - ft.detach().float()).pow(2).mean(1)  # (B, H, W)
            total = total + (diff * m).sum()
            count = count + m.sum()
        if normaliser is not None:
            count = torch.as_tensor(normaliser, dtype=torch.float32, device=total.device).reshape(())
        return total / count.clamp(min=1)
