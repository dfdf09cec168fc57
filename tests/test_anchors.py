"""Anchors and coders: literal tables and exact round trips."""
import math

import pytest
import torch
from torch.testing import assert_close

from retinaface_polynl.anchors import AnchorGenerator, BoxCoder, LandmarkCoder, feature_map_sizes


def test_feature_map_sizes_are_ceil_of_stride():
    assert feature_map_sizes(481, 643, (8, 16, 32)) == [(61, 81), (31, 41), (16, 21)]
    assert feature_map_sizes(5, 7, (8, 16, 32)) == [(1, 1), (1, 1), (1, 1)]


def test_two_by_two_grid_literal_table():
    gen = AnchorGenerator(min_sizes=[[16, 32]], steps=[8])
    anchors = gen.grid_anchors([(2, 2)])
    expected = torch.tensor(
        [
            [4, 4, 16, 16], [4, 4, 32, 32],
            [12, 4, 16, 16], [12, 4, 32, 32],
            [4, 12, 16, 16], [4, 12, 32, 32],
            [12, 12, 16, 16], [12, 12, 32, 32],
        ],
        dtype=torch.float32,
    )
    assert torch.equal(anchors, expected)


def test_anchor_count_and_level_order():
    gen = AnchorGenerator()
    anchors = gen.for_image(64, 96)
    # (8*12 + 4*6 + 2*3) locations x 2 anchors
    assert anchors.shape == (2 * (96 + 24 + 6), 4)
    sizes = anchors[:, 2]
    assert torch.equal(sizes[:192].unique(), torch.tensor([16.0, 32.0]))
    assert torch.equal(sizes[-12:].unique(), torch.tensor([256.0, 512.0]))


def test_matches_pytorch_retinaface_priorbox_in_pixels():
    """The community PriorBox: normalised (cx, cy, s_kx, s_ky) with cx=(j+.5)*step/W, row-major, then sizes."""
    h, w = 70, 90
    gen = AnchorGenerator()
    ours = gen.for_image(h, w)
    ref = []
    for step, sizes in zip((8, 16, 32), ((16, 32), (64, 128), (256, 512))):
        fh, fw = math.ceil(h / step), math.ceil(w / step)
        for i in range(fh):
            for j in range(fw):
                for s in sizes:
                    ref.append([(j + 0.5) * step / w, (i + 0.5) * step / h, s / w, s / h])
    ref = torch.tensor(ref) * torch.tensor([w, h, w, h])
    assert_close(ours, ref)


def test_mismatched_config_raises():
    with pytest.raises(ValueError):
        AnchorGenerator(min_sizes=[[16]], steps=[8, 16])
    with pytest.raises(ValueError):
        AnchorGenerator().grid_anchors([(2, 2)])


def test_box_coder_literal_and_round_trip():
    coder = BoxCoder((0.1, 0.2))
    anchors = torch.tensor([[10.0, 10.0, 20.0, 20.0]])
    box = torch.tensor([[2.0, 4.0, 22.0, 24.0]])  # centre (12, 14), size 20x20
    deltas = coder.encode(anchors, box)
    assert_close(deltas, torch.tensor([[2 / (0.1 * 20), 4 / (0.1 * 20), 0.0, 0.0]]))
    assert_close(coder.decode(anchors, deltas), box)
    g = torch.Generator().manual_seed(0)
    anchors = torch.rand(100, 4, generator=g) * torch.tensor([600, 400, 200, 200]) + torch.tensor([0, 0, 8, 8])
    xy = torch.rand(100, 2, generator=g) * 500
    boxes = torch.cat([xy, xy + 1 + torch.rand(100, 2, generator=g) * 300], 1)
    assert_close(coder.decode(anchors, coder.encode(anchors, boxes)), boxes, rtol=1e-5, atol=1e-3)


def test_box_decode_clamps_huge_sizes():
    coder = BoxCoder()
    out = coder.decode(torch.tensor([[0.0, 0.0, 16.0, 16.0]]), torch.tensor([[0.0, 0.0, 1e4, 1e4]]))
    assert torch.isfinite(out).all()


def test_landmark_coder_round_trip_and_batched_equals_single():
    coder = LandmarkCoder((0.1, 0.2))
    anchors = torch.tensor([[50.0, 60.0, 32.0, 32.0], [10.0, 10.0, 16.0, 16.0]])
    marks = torch.tensor([[[40.0, 50], [60, 50], [50, 60], [42, 70], [58, 70]]]).repeat(2, 1, 1)
    d = coder.encode(anchors, marks)
    assert d.shape == (2, 10)
    assert_close(d[0, :2], torch.tensor([(40 - 50) / 3.2, (50 - 60) / 3.2]))
    assert_close(coder.decode(anchors, d), marks)
    batched = coder.decode(anchors.expand(3, 2, 4), d.expand(3, 2, 10))
    assert_close(batched[1], coder.decode(anchors, d))
