"""The assembled detector: every backbone x attention block, odd sizes, forward and backward."""
import math

import pytest
import torch
from torch.testing import assert_close

from retinaface_polynl import ATTENTION_BLOCKS, ModelConfig, get_preset, presets
from retinaface_polynl.models import RetinaFace

BACKBONES = {"resnet18_x0.25": "r18x025", "mobilenet0.25": "mnet025", "resnet50": "r50"}


def expected_anchors(h: int, w: int) -> int:
    return sum(2 * math.ceil(h / s) * math.ceil(w / s) for s in (8, 16, 32))


def _config(backbone: str, attention: str | None, stage: str = "res4") -> ModelConfig:
    return get_preset(BACKBONES[backbone]).replace(attention=attention, attention_stage=stage)


@pytest.mark.parametrize("attention", [None, *ATTENTION_BLOCKS])
@pytest.mark.parametrize("backbone", list(BACKBONES))
def test_forward_backward_odd_sizes(backbone, attention):
    torch.manual_seed(0)
    model = RetinaFace(_config(backbone, attention)).train()
    sizes = [(33, 47), (97, 129)]
    if backbone != "resnet50" or attention in (None, "polynl"):
        sizes.append((481, 643))
    for h, w in sizes:
        x = torch.randn(2 if h < 100 else 1, 3, h, w)
        out = model(x)
        a = expected_anchors(h, w)
        assert out.box_deltas.shape == (x.shape[0], a, 4)
        assert out.class_logits.shape == (x.shape[0], a, 2)
        assert out.landmark_deltas.shape == (x.shape[0], a, 10)
        loss = sum(t.float().pow(2).mean() for t in out)
        loss.backward()
        grads = [p.grad for p in model.parameters() if p.requires_grad]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        model.zero_grad()


@pytest.mark.parametrize("stage", ["res3", "res4", "res5"])
def test_attention_placement(stage):
    config = get_preset("r18x025_polynl", attention_stage=stage)
    model = RetinaFace(config)
    channels = {"res3": 32, "res4": 64, "res5": 128}[stage]
    seen = []
    model.attention.register_forward_hook(lambda m, i, o: seen.append(o.shape[1]))
    model(torch.randn(1, 3, 64, 64))
    assert seen == [channels]


def test_polynl_inserted_into_trained_network_changes_nothing():
    """A zero-initialised Poly-NL block added to a network leaves the detector's outputs unchanged."""
    torch.manual_seed(0)
    plain = RetinaFace(get_preset("r18x025")).eval()
    with_block = RetinaFace(get_preset("r18x025_polynl")).eval()
    missing, unexpected = with_block.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("attention.") for k in missing)
    x = torch.randn(1, 3, 95, 131)
    with torch.no_grad():
        for a, b in zip(plain(x), with_block(x)):
            assert_close(a, b)


def _hand_anchors(height: int, width: int) -> list[tuple[float, float, float]]:
    """(cx, cy, side) of every anchor, level by level, row by row, column by column, then side:
    RetinaFace's priors written out for the preset's strides 8 / 16 / 32."""
    anchors = []
    for step, sides in ((8, (16, 32)), (16, (64, 128)), (32, (256, 512))):
        for row in range(math.ceil(height / step)):
            for col in range(math.ceil(width / step)):
                anchors += [((col + 0.5) * step, (row + 0.5) * step, side) for side in sides]
    return anchors


def _set_heads(model, box=(0.0, 0.0, 0.0, 0.0), landmarks=(0.0,) * 10, face_logit=0.0):
    """Every head a constant: zero weights, each anchor's outputs the given biases."""
    with torch.no_grad():
        for heads, values in ((model.box_head, box), (model.landmark_head, landmarks),
                              (model.class_head, (0.0, face_logit))):
            for conv in heads.convs:
                conv.weight.zero_()
                conv.bias.copy_(torch.tensor(values).repeat(conv.bias.numel() // len(values)))


def test_predict_decodes_in_input_pixels():
    """Zero head outputs decode to the anchors themselves (boxes the anchors' squares, every landmark
    at the anchor's centre, score 1/2), whatever the picture; known deltas move them by known amounts.
    61x97 input: each level has ceil(side / stride) cells."""
    torch.manual_seed(0)
    model = RetinaFace(get_preset("r18x025")).eval()
    image = torch.rand(1, 3, 61, 97) * 255 - 128
    hand = torch.tensor(_hand_anchors(61, 97))
    cx, cy, side = hand[:, 0], hand[:, 1], hand[:, 2]
    assert len(hand) == expected_anchors(61, 97)

    _set_heads(model)
    with torch.no_grad():
        p = model.predict(image)
    squares = torch.stack([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], dim=1)
    assert torch.equal(p.boxes[0], squares)
    assert torch.equal(p.landmarks[0], torch.stack([cx, cy], dim=1)[:, None, :].expand(-1, 5, 2))
    assert torch.equal(p.scores[0], torch.full((len(hand),), 0.5))

    # centre moved by (+1, -1) x 0.1 x side, height doubled (log 2 / 0.2), width kept; landmark k moved
    # by (k, -k) x 0.1 x side; face logit log 3 over background 0: probability 3/4
    _set_heads(model, box=(1.0, -1.0, 0.0, math.log(2) / 0.2),
               landmarks=tuple(v for k in range(5) for v in (float(k), -float(k))), face_logit=math.log(3))
    with torch.no_grad():
        p = model.predict(image)
    x, y = cx + 0.1 * side, cy - 0.1 * side
    moved = torch.stack([x - side / 2, y - side, x + side / 2, y + side], dim=1)
    assert_close(p.boxes[0], moved, rtol=0, atol=1e-4)
    k = torch.arange(5.0)
    points = torch.stack([cx[:, None] + 0.1 * side[:, None] * k, cy[:, None] - 0.1 * side[:, None] * k], dim=2)
    assert_close(p.landmarks[0], points, rtol=0, atol=1e-4)
    assert_close(p.scores[0], torch.full((len(hand),), 0.75))


def test_untrained_heads_say_background():
    """The face-logit prior (0.01) makes an untrained network say "background" almost everywhere."""
    torch.manual_seed(0)
    model = RetinaFace(get_preset("r18x025")).eval()
    with torch.no_grad():
        p = model.predict(torch.zeros(1, 3, 64, 96))
    assert p.boxes.shape == (1, expected_anchors(64, 96), 4)
    assert p.landmarks.shape == (1, expected_anchors(64, 96), 5, 2)
    assert p.scores.max() < 0.05


def test_resnet18_x025_widths():
    model = RetinaFace(get_preset("r18x025"))
    assert model.body.out_channels == {"res2": 16, "res3": 32, "res4": 64, "res5": 128}


def test_every_preset_builds_and_validates():
    for name, config in presets().items():
        assert config.name == name
        assert ModelConfig.from_dict(config.to_dict()) == config
    for name in ("r50", "r50_polynl", "r18x025", "r18x025_polynl", "mnet025"):
        assert name in presets()


@pytest.mark.parametrize(
    "override",
    [
        {"backbone": "vgg16"},
        {"attention": "transformer"},
        {"attention_stage": "res2"},
        {"fpn_channels": 30},
        {"min_sizes": ((16,), (64,))},
    ],
)
def test_bad_configuration_is_refused(override):
    with pytest.raises(ValueError):
        get_preset("r18x025", **override)


def test_unknown_preset_names_the_choices():
    with pytest.raises(ValueError, match="r18x025_polynl"):
        get_preset("r19")
