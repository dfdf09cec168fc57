"""Anchors (prior boxes) and the box / landmark coders, in one place.

Used by the detector, the training loss and the ONNX export alike.

Conventions:
    * anchors are ``(cx, cy, w, h)`` in input-image pixels;
    * boxes are ``(x1, y1, x2, y2)`` in input-image pixels;
    * landmarks are ``(..., 5, 2)`` pixel coordinates, in RetinaFace order
      (left eye, right eye, nose, left mouth corner, right mouth corner, "left"
      meaning the image's left);
    * coders always take ``anchors`` first.

The anchor layout is RetinaFace's: level by level (strides 8, 16, 32), then
row-major over the feature map, then one anchor per ``min_size`` of that level,
which is also the order in which the heads' outputs are flattened.  The encoding
is RetinaFace's (SSD's) with variances ``(0.1, 0.2)``: because offsets are
relative to the anchor's size, pixel anchors give exactly the deltas of the
original normalised-coordinate implementation.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor


def feature_map_sizes(height: int, width: int, steps: Sequence[int]) -> list[tuple[int, int]]:
    """Feature-map sizes the backbones produce for an input of ``height x width``.

    Every downsampling in the backbones is a stride-2 convolution/pooling with
    "same" padding, so each level has ``ceil(size / step)`` cells.
    """
    return [(math.ceil(height / s), math.ceil(width / s)) for s in steps]


class AnchorGenerator:
    """RetinaFace prior boxes for a list of feature-map sizes.

    Args:
        min_sizes: anchor side lengths in pixels, one sequence per level.
        steps: stride of each level in pixels.
    """

    def __init__(
        self,
        min_sizes: Sequence[Sequence[int]] = ((16, 32), (64, 128), (256, 512)),
        steps: Sequence[int] = (8, 16, 32),
    ) -> None:
        if len(min_sizes) != len(steps):
            raise ValueError(f"{len(min_sizes)} levels of min_sizes but {len(steps)} steps")
        self.min_sizes = [tuple(float(s) for s in level) for level in min_sizes]
        self.steps = [int(s) for s in steps]

    @property
    def num_anchors_per_location(self) -> int:
        return len(self.min_sizes[0])

    def grid_anchors(
        self,
        feature_sizes: Sequence[tuple[int, int]] | Sequence[tuple[Tensor, Tensor]],
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> Tensor:
        """Anchors ``(A, 4)`` as ``(cx, cy, w, h)`` pixels for the given feature-map sizes.

        Written with tensor ops only (``arange``/``meshgrid``) so that it traces
        into an ONNX graph whose anchors follow the input's dynamic size.
        """
        if len(feature_sizes) != len(self.steps):
            raise ValueError(f"expected {len(self.steps)} feature maps, got {len(feature_sizes)}")
        per_level = []
        for (fh, fw), step, sizes in zip(feature_sizes, self.steps, self.min_sizes):
            ys = (torch.arange(fh, dtype=dtype, device=device) + 0.5) * step
            xs = (torch.arange(fw, dtype=dtype, device=device) + 0.5) * step
            cy, cx = torch.meshgrid(ys, xs, indexing="ij")
            centres = torch.stack([cx, cy], dim=-1).reshape(-1, 1, 2)  # (H*W, 1, 2)
            wh = torch.tensor([[s, s] for s in sizes], dtype=dtype, device=device).unsqueeze(0)  # (1, k, 2)
            k = len(sizes)
            level = torch.cat([centres.expand(-1, k, 2), wh.expand(centres.shape[0], k, 2)], dim=-1)
            per_level.append(level.reshape(-1, 4))
        return torch.cat(per_level, dim=0)

    def for_image(
        self, height: int, width: int, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"
    ) -> Tensor:
        """Anchors for an input image of ``height x width`` pixels."""
        return self.grid_anchors(feature_map_sizes(height, width, self.steps), dtype=dtype, device=device)


class BoxCoder:
    """SSD/RetinaFace box encoding with variances.

    ``encode(anchors, boxes)`` gives ``((c_box - c_anchor) / (v0 * wh_anchor),
    log(wh_box / wh_anchor) / v1)``; ``decode`` is its exact inverse.  The
    exponent is clamped before ``exp`` only, so huge deltas cannot overflow.
    """

    def __init__(self, variances: Sequence[float] = (0.1, 0.2), clip: float = math.log(1000.0 / 16)) -> None:
        self.variances = (float(variances[0]), float(variances[1]))
        self.clip = clip

    def encode(self, anchors: Tensor, boxes: Tensor) -> Tensor:
        """``anchors`` (..., 4) cx cy w h and ``boxes`` (..., 4) x1 y1 x2 y2 -> deltas (..., 4)."""
        v0, v1 = self.variances
        centre = (boxes[..., :2] + boxes[..., 2:]) / 2
        size = (boxes[..., 2:] - boxes[..., :2]).clamp(min=1e-6)
        d_centre = (centre - anchors[..., :2]) / (v0 * anchors[..., 2:])
        d_size = torch.log(size / anchors[..., 2:]) / v1
        return torch.cat([d_centre, d_size], dim=-1)

    def decode(self, anchors: Tensor, deltas: Tensor) -> Tensor:
        """``anchors`` (..., 4) cx cy w h and ``deltas`` (..., 4) -> boxes (..., 4) x1 y1 x2 y2."""
        v0, v1 = self.variances
        centre = anchors[..., :2] + deltas[..., :2] * v0 * anchors[..., 2:]
        size = anchors[..., 2:] * torch.exp((deltas[..., 2:] * v1).clamp(max=self.clip))
        return torch.cat([centre - size / 2, centre + size / 2], dim=-1)


class LandmarkCoder:
    """RetinaFace landmark encoding: each point as an offset from the anchor centre
    in units of ``v0 * anchor size``; ``decode`` inverts ``encode`` exactly."""

    def __init__(self, variances: Sequence[float] = (0.1, 0.2), num_points: int = 5) -> None:
        self.v0 = float(variances[0])
        self.num_points = num_points

    def encode(self, anchors: Tensor, landmarks: Tensor) -> Tensor:
        """``anchors`` (..., 4) and ``landmarks`` (..., P, 2) -> deltas (..., 2P)."""
        d = (landmarks - anchors[..., None, :2]) / (self.v0 * anchors[..., None, 2:])
        return d.flatten(-2)

    def decode(self, anchors: Tensor, deltas: Tensor) -> Tensor:
        """``anchors`` (..., 4) and ``deltas`` (..., 2P) -> landmarks (..., P, 2).

        The anchor centres and scales are laid out as ``(..., 2P)`` rows (x, y, x, y, ...)
        by a product with a 0/1 matrix, which is exact, so that the arithmetic is element by
        element on the deltas' own layout: broadcasting ``(A, 1, 2)`` against ``(N, A, P, 2)``
        costs onnxruntime 2 ms per VGA picture, more than the rest of the decoding.
        """
        repeat = torch.eye(2, dtype=anchors.dtype, device=anchors.device).repeat(1, self.num_points)  # (2, 2P)
        centres = anchors[..., :2] @ repeat
        scales = anchors[..., 2:] @ (repeat * self.v0)
        return (centres + deltas * scales).unflatten(-1, (self.num_points, 2))
