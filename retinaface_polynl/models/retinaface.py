"""RetinaFace with an optional attention block (Poly-NL by default in the paper).

    image -> backbone stages (res2..res5), attention block after one of them
          -> C3, C4, C5 -> FPN -> SSH per level -> class / box / landmark heads

``forward`` returns the raw head outputs (what the loss needs, and what is
compared across export backends); :meth:`RetinaFace.predict` also decodes them
against anchors generated from the actual feature-map sizes into boxes, face
scores and landmarks in input pixels.  Nothing here depends on ``self.training``
except BatchNorm.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from ..anchors import AnchorGenerator, BoxCoder, LandmarkCoder
from ..presets import ModelConfig
from .attention import build_attention
from .backbones import build_backbone
from .heads import ClassHeads, LevelHeads
from .neck import FPN, SSH

PYRAMID_STAGES = ("res3", "res4", "res5")


class HeadOutputs(NamedTuple):
    box_deltas: Tensor  # (B, A, 4)
    class_logits: Tensor  # (B, A, 2) background, face
    landmark_deltas: Tensor  # (B, A, 10)


class Predictions(NamedTuple):
    boxes: Tensor  # (B, A, 4) x1 y1 x2 y2, input pixels
    scores: Tensor  # (B, A) face probability
    landmarks: Tensor  # (B, A, 5, 2) input pixels


class RetinaFace(nn.Module):
    def __init__(self, config: ModelConfig, pretrained_backbone: str | None = None) -> None:
        super().__init__()
        self.config = config
        self.body = build_backbone(config.backbone, pretrained_backbone)
        if config.attention is not None:
            channels = self.body.out_channels[config.attention_stage]
            self.attention: nn.Module | None = build_attention(config.attention, channels, **config.attention_kwargs)
        else:
            self.attention = None
        in_channels = [self.body.out_channels[s] for s in PYRAMID_STAGES]
        width = config.fpn_channels
        self.fpn = FPN(in_channels, width)
        self.ssh = nn.ModuleList(SSH(width, width) for _ in PYRAMID_STAGES)
        a = config.anchors_per_location
        n = len(PYRAMID_STAGES)
        self.class_head = ClassHeads(width, n, a)
        self.box_head = LevelHeads(width, n, a, 4)
        self.landmark_head = LevelHeads(width, n, a, 10)
        self.anchor_generator = AnchorGenerator(config.min_sizes, config.steps)
        self.box_coder = BoxCoder(config.variances)
        self.landmark_coder = LandmarkCoder(config.variances)

    def pyramid_inputs(self, images: Tensor) -> list[Tensor]:
        """C3, C4, C5: the backbone's stride-8/16/32 features, attention applied."""
        x = self.body.stem(images)
        taken = []
        for name, stage in self.body.stages():
            x = stage(x)
            if self.attention is not None and name == self.config.attention_stage:
                x = self.attention(x)
            if name in PYRAMID_STAGES:
                taken.append(x)
        return taken

    def features(self, images: Tensor) -> list[Tensor]:
        """The three SSH outputs the heads read."""
        return [ssh(f) for ssh, f in zip(self.ssh, self.fpn(self.pyramid_inputs(images)))]

    def heads(self, features: list[Tensor]) -> HeadOutputs:
        return HeadOutputs(self.box_head(features), self.class_head(features), self.landmark_head(features))

    def forward(self, images: Tensor) -> HeadOutputs:
        """``images`` (B, 3, H, W), BGR minus the mean -> raw head outputs."""
        return self.heads(self.features(images))

    def predict(self, images: Tensor) -> Predictions:
        """Decoded predictions for every anchor (before any threshold or NMS)."""
        features = self.features(images)
        out = self.heads(features)
        sizes = [f.shape[-2:] for f in features]
        anchors = self.anchor_generator.grid_anchors(sizes, dtype=out.box_deltas.dtype, device=images.device)
        return self.decode(out, anchors)

    def decode(self, out: HeadOutputs, anchors: Tensor) -> Predictions:
        boxes = self.box_coder.decode(anchors, out.box_deltas)
        # the face probability of the two-way softmax, as sigmoid(face - background): the same
        # number, without a softmax over (N, A, 2) and a gather (0.3 ms of a VGA picture in onnxruntime)
        scores = torch.sigmoid(out.class_logits[..., 1] - out.class_logits[..., 0])
        landmarks = self.landmark_coder.decode(anchors, out.landmark_deltas)
        return Predictions(boxes, scores, landmarks)
