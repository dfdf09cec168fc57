"""scripts/gpu_check.sh and scripts/pack_training_set.py, proved on the CPU.

No GPU here or in CI: ``DEVICE=cpu`` runs the same script through the same code (float16
autocast on the CPU, gloo instead of NCCL, two torchrun processes exchanging gradients), so
what is left to a GPU is CUDA itself, not our paths to it.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from retinaface_polynl.data import load_annotations

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.torch


def run_gpu_check(out: Path, shared: Path, **env) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RETINAFACE_POLYNL_SHARED_DATA": str(shared), "DEVICE": "cpu",
           "PYTHON": sys.executable, **env}
    return subprocess.run(["bash", str(REPO / "scripts" / "gpu_check.sh"), str(out)], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=600)


def test_gpu_check_passes_on_the_cpu_with_two_torchrun_processes(tmp_path, fddb_dir, dlib_faces_dir):
    shared = fddb_dir.parent
    done = run_gpu_check(tmp_path / "out", shared, NPROC="2", STEPS="20", CHECK_ARGS="--no-timing",
                         DDP_ITERS="4", DDP_BATCH="2")
    assert done.returncode == 0, done.stdout + done.stderr
    checks = json.loads((tmp_path / "out" / "checks.json").read_text())
    assert checks["fp16_detection"]["ok"] and checks["fp16_detection"]["photos"] == 13
    assert checks["fp16_detection"]["faces"] >= 25  # dlib's 25 faces at least, at fp32
    losses = checks["amp_training"]["losses"]
    assert len(losses) == 20 and np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])
    assert checks["collective"] == {"ok": True, "backend": "gloo", "detail": checks["collective"]["detail"]}
    table = (tmp_path / "out" / "checks.md").read_text()
    assert "| torchrun, 2 process(es) | ok | 4 steps" in table
    config = json.loads((tmp_path / "out" / "ddp" / "config.json").read_text())
    assert config["world_size"] == 2


def test_gpu_check_fails_when_the_loss_does_not_fall_enough(tmp_path, fddb_dir, dlib_faces_dir):
    done = run_gpu_check(tmp_path / "out", fddb_dir.parent, STEPS="10", CHECK_ARGS="--no-timing --min-drop 0.95")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "| AMP training steps | **FAILED** |" in done.stdout
    assert not (tmp_path / "out" / "ddp").exists()  # nothing after a failed check


def test_pack_keeps_faces_on_the_shrunk_photos_and_stays_under_budget(tmp_path, fddb_dir):
    pack = tmp_path / "pack"
    fold = tmp_path / "fold1.json"  # one FDDB fold in the generic layout, as a second named set
    records = load_annotations(fddb_dir, folds="1")
    fold.write_text(json.dumps([{"image": str(r.path), "boxes": r.boxes.tolist()} for r in records[:30]]))
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "pack_training_set.py"), "--labels", str(fddb_dir),
                           "--folds", "1", "--labels", str(fold), "--share", "3,1", "--budget-mib", "0.4",
                           "--long-side", "200", "--output", str(pack)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    size = sum(f.stat().st_size for f in pack.rglob("*") if f.is_file())
    assert 0.3 * (1 << 20) < size <= 0.4 * (1 << 20)
    packed = load_annotations(pack / f"{fddb_dir.name}.json")
    by_path = {str(r.path): r for r in records}
    entries = json.loads((pack / f"{fddb_dir.name}.json").read_text())["images"]
    assert len(packed) == len(entries) < len(records)  # the budget stopped it
    for record, e in zip(packed, entries):
        original = by_path[e["from"]]
        image = cv2.imread(str(record.path))
        assert max(image.shape[:2]) == 200  # FDDB photos are larger: all shrunk
        scale = max(image.shape[:2]) / max(cv2.imread(e["from"]).shape[:2])
        np.testing.assert_allclose(record.boxes, original.boxes * scale, atol=0.051)
    small = load_annotations(pack / "fold1.json")
    assert 0 < len(small) < len(packed)  # a quarter of the budget
    again = subprocess.run([sys.executable, str(REPO / "scripts" / "pack_training_set.py"), "--labels", str(fold),
                            "--output", str(pack)], capture_output=True, text=True)
    assert again.returncode == 2 and "not empty" in again.stderr  # never over an earlier pack
