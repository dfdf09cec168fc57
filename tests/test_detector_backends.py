"""Detector on exported models: the backend is chosen from the file, results match PyTorch."""
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from retinaface_polynl import Detector
from retinaface_polynl.checkpoints import load_model
from retinaface_polynl.export import export_onnx

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def mnet_onnx(mnet_checkpoint, tmp_path_factory):
    loaded = load_model(mnet_checkpoint)
    path = tmp_path_factory.mktemp("onnx") / "mnet.onnx"
    export_onnx(loaded.model, path, loaded.config)
    return path


def test_onnx_file_picks_onnxruntime_and_finds_the_same_faces(mnet_onnx, mnet_checkpoint, dlib_faces_dir):
    torch_det = Detector(weights=mnet_checkpoint)
    ort_det = Detector(weights=mnet_onnx, intra_op_threads=1)
    assert ort_det.backend.name == "onnxruntime" and ort_det.model is None
    assert ort_det.config == torch_det.config
    image = cv2.imread(str(dlib_faces_dir / "2008_004176.jpg"))
    a, b = torch_det.detect(image), ort_det.detect(image)
    assert len(a) == len(b) == 7
    np.testing.assert_allclose(a.boxes, b.boxes, atol=0.05)
    np.testing.assert_allclose(a.landmarks, b.landmarks, atol=0.05)
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-4)
    # TTA and batches run on the exported file too
    assert len(ort_det.detect(image, tta="flip")) == 7
    assert [len(d) for d in ort_det.detect_batch([image, image[:200, :300]])] == [7, len(ort_det.detect(image[:200, :300]))]


def test_exported_file_refuses_a_preset(mnet_onnx):
    with pytest.raises(ValueError, match="carries its own preset"):
        Detector(weights=mnet_onnx, preset="r18x025")


def test_unknown_backend_is_refused(mnet_checkpoint):
    with pytest.raises(ValueError, match="unknown backend"):
        Detector(weights=mnet_checkpoint, backend="openvino")


def test_cli_detect_with_an_onnx_file(mnet_onnx, dlib_faces_dir, tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "retinaface_polynl", "detect", str(dlib_faces_dir / "2008_002506.jpg"),
         "--weights", str(mnet_onnx), "--threads", "1", "--json", str(tmp_path / "f.jsonl")],
        cwd=REPO, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    assert out.returncode == 0, out.stderr
    record = json.loads((tmp_path / "f.jsonl").read_text().splitlines()[0])
    assert len(record["boxes"]) == 3


def test_attention_maps_need_the_pytorch_model(mnet_onnx):
    from retinaface_polynl.visualize import NoAttentionError, attention_maps

    with pytest.raises(NoAttentionError, match="PyTorch checkpoint"):
        attention_maps(Detector(weights=mnet_onnx), np.zeros((64, 64, 3), np.uint8))
