"""The r18x025 baseline kept beside the shipped weights: the same crowd recipe without Poly-NL.

``weights/baseline/r18x025.pth`` is what the tables' "what Poly-NL adds" rows measure against
(``scripts/train_crowd.sh`` from the baseline's own FDDB phases, mixed 0.9 / 0.1 back towards
them, then ``scripts/train_teachers4.sh`` from that, mixed 0.5 / 0.5 back, as the shipped weights). It lives in the repository, not in the installed package, so
these tests read it from the source tree. They check that it is the comparison it claims to be:
the shipped network minus the block and nothing else, the same recorded way of running it, the
checksum weights/README.md states, and a working detector on the bundled photo.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import cv2
import pytest

from retinaface_polynl import Detector
from retinaface_polynl.checkpoints import load_model

REPO = Path(__file__).resolve().parents[1]
BASELINE = REPO / "weights" / "baseline" / "r18x025.pth"
DEFAULT = REPO / "weights" / "default.pth"

pytestmark = pytest.mark.skipif(not BASELINE.is_file(), reason=f"{BASELINE} is absent (not in this checkout)")


def test_baseline_is_the_shipped_network_without_the_polynl_block():
    base, shipped = load_model(BASELINE), load_model(DEFAULT)
    assert base.config.attention is None and shipped.config.attention == "polynl"
    assert base.config.backbone == shipped.config.backbone == "resnet18_x0.25"
    # the same recipe, run the same way: the recorded input rule and zoom are the default's
    assert base.extra["recipe"] == shipped.extra["recipe"] == "scripts/train_teachers4.sh"
    assert base.extra["inference"] == shipped.extra["inference"]
    b, s = base.model.state_dict(), shipped.model.state_dict()
    extra = sorted(k for k in s if k not in b)
    assert extra and all(k.startswith("attention.") for k in extra), extra
    assert set(b) <= set(s)
    assert all(b[k].shape == s[k].shape for k in b)
    # trained, not a copy of the shipped weights with the block dropped
    assert any(not b[k].equal(s[k]) for k in b if b[k].is_floating_point())


def test_baseline_checksum_matches_the_weights_readme():
    readme = (REPO / "weights" / "README.md").read_text(encoding="utf-8")
    stated = re.search(r"`baseline/r18x025\.pth` \([^)]*SHA-256 `([0-9a-f]{64})`", readme)
    assert stated, "weights/README.md states no SHA-256 for baseline/r18x025.pth"
    assert hashlib.sha256(BASELINE.read_bytes()).hexdigest() == stated.group(1)


def test_baseline_finds_the_astronaut_and_nothing_else():
    det = Detector(weights=BASELINE, backend="torch", intra_op_threads=1)
    faces = det.detect(cv2.imread(str(REPO / "demo" / "astronaut.jpg")))
    assert len(faces) == 1 and faces.scores[0] > 0.9, faces.to_dict()
    x1, y1, x2, y2 = faces.boxes[0]
    assert 150 < (x1 + x2) / 2 < 260 and 40 < (y1 + y2) / 2 < 160  # her face, in the 512 x 512 photo
