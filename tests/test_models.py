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


def test_predict_decodes_in_input_pixels():
    torch.manual_seed(0)
    model = RetinaFace(get_preset("r18x025")).eval()
    with torch.no_grad():
        p = model.predict(torch.zeros(1, 3, 64, 96))
    assert p.boxes.shape == (1, expected_anchors(64, 96), 4)
    assert p.landmarks.shape == (1, expected_anchors(64, 96), 5, 2)
    assert ((p.scores >= 0) & (p.scores <= 1)).all()
    # the face-logit prior makes an untrained head say "background" almost everywhere
    assert p.scores.mean() < 0.05


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
