"""Checkpoints: ours (configuration inside), Pytorch_Retinaface's layout, and clear errors."""
import logging

import pytest
import torch
from torch.testing import assert_close

from retinaface_polynl import Detector, get_preset
from retinaface_polynl.checkpoints import (
    CheckpointError,
    CheckpointMismatchError,
    checkpoint_config,
    convert_pytorch_retinaface,
    load_model,
    save_checkpoint,
)
from retinaface_polynl.models import RetinaFace


def test_pytorch_retinaface_mnet_loads_with_no_missing_or_unexpected_keys(mnet_checkpoint):
    raw = torch.load(mnet_checkpoint, map_location="cpu", weights_only=True)
    converted = convert_pytorch_retinaface(raw)
    own = RetinaFace(get_preset("mnet025")).state_dict()
    assert set(converted) == set(own)
    assert all(converted[k].shape == own[k].shape for k in own)
    loaded = load_model(mnet_checkpoint)
    assert loaded.source_format == "pytorch_retinaface"
    assert loaded.config.backbone == "mobilenet0.25" and loaded.config.fpn_channels == 64
    assert loaded.initialised == []


def test_module_prefix_is_stripped(mnet_checkpoint, tmp_path):
    raw = torch.load(mnet_checkpoint, map_location="cpu", weights_only=True)
    prefixed = tmp_path / "ddp.pth"
    torch.save({f"module.{k}": v for k, v in raw.items()}, prefixed)
    a, b = load_model(mnet_checkpoint).model, load_model(prefixed).model
    x = torch.randn(1, 3, 64, 80)
    with torch.no_grad():
        for u, v in zip(a(x), b(x)):
            assert_close(u, v)


def test_polynl_added_to_third_party_checkpoint_starts_as_identity(mnet_checkpoint, caplog):
    with caplog.at_level(logging.WARNING):
        with_block = load_model(mnet_checkpoint, config=get_preset("mnet025_polynl"))
    assert with_block.initialised == ["attention"]
    assert "polynl block is not in the checkpoint" in caplog.text and "identity" in caplog.text
    plain = load_model(mnet_checkpoint).model
    x = torch.randn(1, 3, 120, 160)
    with torch.no_grad():
        for u, v in zip(plain(x), with_block.model(x)):
            assert_close(u, v)


def test_own_checkpoint_round_trip_rebuilds_the_model(tmp_path):
    torch.manual_seed(0)
    config = get_preset("r18x025_polynl", attention_stage="res3")
    model = RetinaFace(config).eval()
    path = save_checkpoint(tmp_path / "sub" / "model.pth", model, config, epoch=3)
    assert not list(path.parent.glob("*.tmp"))
    loaded = load_model(path)
    assert loaded.config == config and loaded.extra["epoch"] == 3
    x = torch.randn(1, 3, 50, 70)
    with torch.no_grad():
        for u, v in zip(model(x), loaded.model(x)):
            assert_close(u, v)
    det = Detector(weights=path)
    assert det.config == config


def test_checkpoint_config_reads_the_configuration_without_a_model(mnet_checkpoint, tmp_path):
    config = get_preset("r18x025_polynl", attention_stage="res5")
    path = save_checkpoint(tmp_path / "m.pth", RetinaFace(config), config)
    assert checkpoint_config(path) == config
    assert checkpoint_config(mnet_checkpoint) == get_preset("mnet025")  # recognised from its keys
    plain_with_block = tmp_path / "plain.pth"
    torch.save(RetinaFace(config).state_dict(), plain_with_block)
    with pytest.raises(CheckpointError, match="attention block but no configuration"):
        checkpoint_config(plain_with_block)


def test_checkpoints_get_the_permissions_of_a_plain_write(tmp_path):
    """Written through tempfile.mkstemp they came out 0600: unreadable to a service user or a
    container's non-root user.  New files get 0666 minus the umask; a rewrite keeps the mode."""
    import os
    import stat

    config = get_preset("r18x025")
    model = RetinaFace(config)
    umask = os.umask(0o022)
    try:
        path = save_checkpoint(tmp_path / "model.pth", model, config)
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
        path.chmod(0o600)
        save_checkpoint(path, model, config)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    finally:
        os.umask(umask)


def test_mismatched_checkpoint_names_keys_and_backbone(tmp_path):
    config = get_preset("r18x025")
    path = save_checkpoint(tmp_path / "r18.pth", RetinaFace(config), config)
    with pytest.raises(CheckpointMismatchError) as info:
        load_model(path, config=get_preset("r50"))
    message = str(info.value)
    assert str(path) in message
    assert "resnet18_x0.25" in message
    assert "Missing keys" in message and "body.layer1.0.conv3.weight" in message
    assert "Shape mismatches" in message


def test_incomplete_state_dict_lists_missing_keys(mnet_checkpoint, tmp_path):
    raw = torch.load(mnet_checkpoint, map_location="cpu", weights_only=True)
    broken = {k: v for k, v in raw.items() if not k.startswith("LandmarkHead")}
    broken["extra.weight"] = torch.zeros(1)
    path = tmp_path / "broken.pth"
    torch.save(broken, path)
    with pytest.raises(CheckpointMismatchError) as info:
        Detector(weights=path)
    message = str(info.value)
    assert "landmark_head.convs.0.weight" in message and "extra.weight" in message
    assert "mobilenet0.25" in message


def test_unreadable_and_missing_checkpoints(tmp_path):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match="garbage.pth"):
        load_model(garbage)
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        load_model(tmp_path / "nowhere.pth")
    unknown = tmp_path / "unknown.pth"
    torch.save({"conv.weight": torch.zeros(3, 3)}, unknown)
    with pytest.raises(CheckpointError, match="cannot recognise the backbone"):
        load_model(unknown)
