"""scripts/stash_run.py: a two-phase run stopped in its second phase, stashed, restored on a
"new machine" (another folder) and continued there, ends where the same run uninterrupted ends."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from retinaface_polynl.cli import main
from retinaface_polynl.train.loop import Trainer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import stash_run  # noqa: E402


def _phase(labels, out, *extra):
    return ["train", "--preset", "r18x025", "--labels", str(labels), "--output", str(out), "--image-size", "128",
            "--batch-size", "1", "--max-iters", "6", "--save-every", "3", "--workers", "0", "--lr", "0.01",
            "--deterministic", "--seed", "5", "--no-progress", "--log-every", "1", "--resume", "auto", *extra]


def _state(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def test_a_stashed_run_continues_on_another_machine_as_if_never_stopped(dlib_faces_dir, tmp_path, monkeypatch,
                                                                        training_killed_at):
    labels = dlib_faces_dir / "training_with_face_landmarks.xml"
    run = tmp_path / "machine1" / "run"
    # phase 0 and phase 1 finish (the recipe scripts mark that with `done`); phase 2 starts from
    # phase 1's weights and is stopped after its iteration-3 checkpoint
    for name, start in (("phase0", None), ("phase1", "phase0")):
        assert main(_phase(labels, run / name, *(["--weights", str(run / start / "last.pth")] if start else []))) == 0
        (run / name / "done").touch()
    (run / "labels").mkdir()
    (run / "labels" / "train_label.txt").write_text("# 1.jpg\n")
    with training_killed_at(3):
        assert main(_phase(labels, run / "phase2", "--weights", str(run / "phase1" / "last.pth"))) == 130

    stash = tmp_path / "repo" / "stash"
    assert stash_run.main(["save", str(run), str(stash)]) == 0
    # only what the run needs to go on: the newest finished phase's weights (no optimiser), the
    # phase in progress whole, every phase's record, the labels
    assert not (stash / "phase0" / "last.pth").exists() and (stash / "phase0" / "done").is_file()
    assert (stash / "phase0" / "log.jsonl").is_file() and (stash / "phase0" / "config.json").is_file()
    slim = _state(stash / "phase1" / "last.pth")
    assert "optimizer" not in slim and "optimizer" in _state(run / "phase1" / "last.pth")
    for k, v in _state(run / "phase1" / "last.pth")["model"].items():
        assert torch.equal(v, slim["model"][k]), k
    assert (stash / "phase2" / "last.pth").read_bytes() == (run / "phase2" / "last.pth").read_bytes()
    assert not (stash / "phase2" / "done").exists()
    assert not list(stash.glob("*/epoch_*.pth")) and not list(stash.glob("*/iter_*.pth"))
    assert (stash / "labels" / "train_label.txt").read_text() == "# 1.jpg\n"

    # a second save after phase 0's weights were stashed once drops them again (nothing stale stays)
    (stash / "phase0" / "last.pth").write_bytes(b"stale")
    stash_run.main(["save", str(run), str(stash)])
    assert not (stash / "phase0" / "last.pth").exists()

    # the new machine: restore, continue phase 2 (as the recipe script does: the same command)
    new = tmp_path / "machine2" / "run"
    assert stash_run.main(["restore", str(stash), str(new)]) == 0
    assert _state(new / "phase2" / "last.pth")["iteration"] == 3
    steps = []

    def counting(self, images, targets):
        steps.append(self.iteration)
        return original(self, images, targets)

    original = Trainer.train_step
    monkeypatch.setattr(Trainer, "train_step", counting)
    assert main(_phase(labels, new / "phase2", "--weights", str(new / "phase1" / "last.pth"))) == 0
    monkeypatch.setattr(Trainer, "train_step", original)
    assert len(steps) == 3  # continued from iteration 3, not started again
    # the same phase 2 never stopped, from the original phase 1
    assert main(_phase(labels, tmp_path / "straight", "--weights", str(run / "phase1" / "last.pth"))) == 0
    resumed, straight = _state(new / "phase2" / "last.pth"), _state(tmp_path / "straight" / "last.pth")
    assert resumed["iteration"] == straight["iteration"] == 6
    for k, v in straight["model"].items():
        assert torch.equal(v, resumed["model"][k]), k


def test_missing_folders_are_refused_with_their_names(tmp_path):
    with pytest.raises(SystemExit, match="no such run folder"):
        stash_run.main(["save", str(tmp_path / "nope"), str(tmp_path / "stash")])
    with pytest.raises(SystemExit, match="nothing stashed"):
        stash_run.main(["restore", str(tmp_path / "nope"), str(tmp_path / "run")])
