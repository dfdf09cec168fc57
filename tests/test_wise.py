"""Weight-space mixing (WiSE-FT) of a fine-tuned checkpoint with its starting point."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from retinaface_polynl import get_preset
from retinaface_polynl.checkpoints import CheckpointError, load_model, save_checkpoint
from retinaface_polynl.models import RetinaFace
from retinaface_polynl.train.wise import mix_checkpoints, mix_state_dicts

ROOT = Path(__file__).resolve().parents[1]


def _two_checkpoints(tmp_path, preset="r18x025_polynl"):
    config = get_preset(preset)
    torch.manual_seed(0)
    start = RetinaFace(config)
    torch.manual_seed(1)
    tuned = RetinaFace(config)
    with torch.no_grad():  # BN statistics that differ, and a step counter only the fine-tuned one advanced
        for m in tuned.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
                m.num_batches_tracked.fill_(7)
    a = save_checkpoint(tmp_path / "tuned.pth", tuned, config, inference={"min_size": 480, "max_size": 1024})
    b = save_checkpoint(tmp_path / "start.pth", start, config)
    return a, b, tuned.state_dict(), start.state_dict()


def test_mix_is_the_straight_line_between_the_two_models(tmp_path):
    a, b, tuned, start = _two_checkpoints(tmp_path)
    for alpha in (0.0, 0.9, 1.0):
        mixed = mix_checkpoints(a, b, alpha).model.state_dict()
        for k, v in mixed.items():
            if v.is_floating_point():
                torch.testing.assert_close(v, alpha * tuned[k] + (1 - alpha) * start[k])
            else:  # batch-norm step counters: the fine-tuned model's
                assert torch.equal(v, tuned[k])
    # the ends are the two models themselves
    assert all(torch.equal(v, tuned[k]) for k, v in mix_checkpoints(a, b, 1.0).model.state_dict().items())
    end = mix_checkpoints(a, b, 0.0).model.state_dict()
    assert all(torch.equal(v, start[k]) for k, v in end.items() if v.is_floating_point())


def test_different_networks_or_a_bad_alpha_are_refused(tmp_path):
    a, _, tuned, _ = _two_checkpoints(tmp_path)
    other = get_preset("r18x025")
    plain = save_checkpoint(tmp_path / "plain.pth", RetinaFace(other), other)
    with pytest.raises(CheckpointError, match="plain.pth"):
        mix_checkpoints(a, plain, 0.9)
    with pytest.raises(ValueError, match="alpha"):
        mix_state_dicts(tuned, tuned, 1.5)
    with pytest.raises(ValueError, match="differ in"):
        mix_state_dicts(tuned, {k: v for k, v in tuned.items() if not k.startswith("attention.")}, 0.5)


def test_mix_weights_script_keeps_the_inference_hints_and_names_a_missing_file(tmp_path):
    a, b, tuned, start = _two_checkpoints(tmp_path)
    out = tmp_path / "mixed.pth"
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "mix_weights.py"), str(a), str(b), "--alpha", "0.9",
                          "--out", str(out)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    loaded = load_model(out)
    assert loaded.extra["inference"] == {"min_size": 480, "max_size": 1024}
    assert loaded.extra["mixed_from"]["alpha"] == 0.9
    k = "class_head.convs.0.weight"
    torch.testing.assert_close(loaded.model.state_dict()[k], 0.9 * tuned[k] + 0.1 * start[k])
    missing = subprocess.run([sys.executable, str(ROOT / "scripts" / "mix_weights.py"), str(a),
                              str(tmp_path / "nope.pth"), "--alpha", "0.9", "--out", str(tmp_path / "x.pth")],
                             capture_output=True, text=True)
    assert missing.returncode == 2 and "nope.pth" in missing.stderr and not (tmp_path / "x.pth").exists()


def test_crowd_recipe_refuses_to_start_from_its_own_output(tmp_path, shared_data):
    """weights/default.pth is the crowd recipe's output: fine-tuning it again and mixing it back
    towards itself would be another recipe, so the script stops at once and says what to give."""
    env = {"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin", "PYTHON": sys.executable,
           "RETINAFACE_POLYNL_SHARED_DATA": str(shared_data), "OMP_NUM_THREADS": "1"}
    run = subprocess.run(["bash", str(ROOT / "scripts" / "train_crowd.sh"), str(tmp_path / "runs")], env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    assert "already the crowd recipe's output" in run.stderr and "START=" in run.stderr
    assert not (tmp_path / "runs" / "labels").exists()


def test_ship_weights_keeps_the_model_and_records_how_it_runs(tmp_path):
    """scripts/ship_weights.py (step 5 of the crowd recipe): the mixed checkpoint's weights and
    architecture, no training state, the recipe and the input rule with the zoom recorded."""
    from retinaface_polynl.zoom import ZoomRule

    a, b, tuned, start = _two_checkpoints(tmp_path)
    mixed = tmp_path / "mixed.pth"
    script = [sys.executable, str(ROOT / "scripts" / "ship_weights.py")]
    assert subprocess.run(script[:1] + [str(ROOT / "scripts" / "mix_weights.py"), str(a), str(b), "--alpha", "0.9",
                          "--out", str(mixed)], capture_output=True).returncode == 0
    out = tmp_path / "baseline" / "r18x025.pth"
    run = subprocess.run(script + [str(mixed), str(out), "--min-size", "512"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    shipped = load_model(out)
    assert shipped.extra == {"recipe": "scripts/train_crowd.sh",
                             "inference": {"min_size": 512, "max_size": 1024, "zoom": ZoomRule().to_dict()}}
    assert set(torch.load(out, map_location="cpu", weights_only=True)) == {"format", "version", "config", "model",
                                                                          "recipe", "inference"}
    want = load_model(mixed).model.state_dict()
    for k, v in shipped.model.state_dict().items():
        assert torch.equal(v, want[k]), k
    missing = subprocess.run(script + [str(tmp_path / "nope.pth"), str(tmp_path / "x.pth")], capture_output=True, text=True)
    assert missing.returncode == 2 and "nope.pth" in missing.stderr and not (tmp_path / "x.pth").exists()
    bad = subprocess.run(script + [str(mixed), str(tmp_path / "y.pth"), "--min-size", "2000"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--min-size" in bad.stderr and not (tmp_path / "y.pth").exists()
    # a zoom factor chosen for this model (scripts/zoom_sweep.py) is recorded with the rest of the default rule
    gentler = tmp_path / "x15.pth"
    run = subprocess.run(script + [str(mixed), str(gentler), "--zoom-factor", "1.5"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert load_model(gentler).extra["inference"]["zoom"] == dict(ZoomRule().to_dict(), factor=1.5)
    assert "zoom x1.5" in run.stdout
    for flags in (["--zoom-factor", "1"], ["--zoom-factor", "1.5", "--no-zoom"]):
        bad = subprocess.run(script + [str(mixed), str(tmp_path / "z.pth")] + flags, capture_output=True, text=True)
        assert bad.returncode == 2 and "--zoom-factor" in bad.stderr and not (tmp_path / "z.pth").exists()
