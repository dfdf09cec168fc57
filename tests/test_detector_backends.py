"""Detector on exported models: the backend is chosen from the file, results match PyTorch."""
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

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


# -- the default engine: onnxruntime on the shipped ONNX file, PyTorch one flag away -----------------
def _shipped_or_skip():
    from retinaface_polynl.detector import default_weights_path

    if default_weights_path() is None:
        pytest.skip("no default weights shipped in weights/default.pth")
    pytest.importorskip("onnxruntime")


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    """Exports made on first use go to a fresh folder (never the user's ~/.cache)."""
    monkeypatch.setenv("RETINAFACE_POLYNL_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_default_detector_runs_the_shipped_onnx_file_and_torch_is_one_flag_away(dlib_faces_dir, private_cache):
    from retinaface_polynl.export.verify import TOLERANCES, compare_faces

    _shipped_or_skip()
    default = Detector(threads=1)
    assert default.backend_name == "onnxruntime" and default.precision == "fp32"
    assert default.backend.path.name == "default.onnx" and default.model is None
    assert not private_cache.exists()  # the shipped file was used: nothing exported on first use
    torch_det = Detector(backend="torch", threads=1)
    assert torch_det.backend_name == "torch" and torch_det.model is not None
    assert "onnxruntime" in repr(default) and "fp32" in repr(default) and "'torch'" in repr(torch_det)
    assert default.describe().startswith("r18x025_polynl on onnxruntime fp32, 1 thread")
    # the same resize rule (the checkpoint's recorded input size travels in the file's metadata)
    assert default.input_rule() == torch_det.input_rule() == (480, 1024, True)
    total = 0
    for name in ("2008_002506.jpg", "2008_004176.jpg", "bald_guys.jpg"):
        image = cv2.imread(str(dlib_faces_dir / name))
        want, got = torch_det.detect(image), default.detect(image)
        c = compare_faces(want, got, 0.5, TOLERANCES["fp32"], image=name)
        assert c.ok and c.faces[0] == c.faces[1], c
        total += len(want)
    assert total >= 15


def test_without_onnxruntime_the_default_detector_runs_pytorch(monkeypatch, private_cache):
    from retinaface_polynl.detector import default_weights_path

    if default_weights_path() is None:
        pytest.skip("no default weights shipped in weights/default.pth")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # 'import onnxruntime' now raises ImportError
    det = Detector(threads=1)
    assert det.backend_name == "torch" and det.model is not None and det.precision == "fp32"
    assert len(det.detect(cv2.imread(str(REPO / "demo" / "astronaut.jpg")))) == 1


def test_other_checkpoints_run_pytorch_unless_asked_and_are_then_exported_once(
    mnet_checkpoint, dlib_faces_dir, private_cache
):
    from retinaface_polynl.export.verify import TOLERANCES, compare_faces

    pytest.importorskip("onnxruntime")
    assert Detector(weights=mnet_checkpoint, threads=1).backend_name == "torch"
    ort_det = Detector(weights=mnet_checkpoint, backend="onnxruntime", threads=1)
    assert ort_det.backend_name == "onnxruntime"
    cached = ort_det.backend.path
    assert cached.parent == private_cache / "onnx" and cached.is_file()
    stamp = cached.stat().st_mtime_ns
    again = Detector(weights=mnet_checkpoint, backend="onnxruntime", threads=1)
    assert again.backend.path == cached and cached.stat().st_mtime_ns == stamp  # reused, not exported again
    image = cv2.imread(str(dlib_faces_dir / "2008_004176.jpg"))
    c = compare_faces(Detector(weights=mnet_checkpoint, threads=1).detect(image), ort_det.detect(image), 0.5,
                      TOLERANCES["fp32"])
    assert c.ok and c.faces == (7, 7), c


def test_a_stale_shipped_onnx_file_is_not_used(tmp_path, monkeypatch, mnet_onnx, private_cache, caplog):
    """New weights shipped without re-running scripts/ship_default_onnx.py: the old ONNX file
    (here another model's) must not run in their place."""
    import shutil

    import retinaface_polynl.detector as detector_module

    _shipped_or_skip()
    folder = tmp_path / "weights"
    folder.mkdir()
    shutil.copy(detector_module.default_weights_path(), folder / "default.pth")
    shutil.copy(mnet_onnx, folder / "default.onnx")
    monkeypatch.setattr(detector_module, "default_weights_path", lambda: folder / "default.pth")
    with caplog.at_level("WARNING"):
        det = Detector(threads=1)
    assert "ship_default_onnx.py" in caplog.text
    assert det.backend_name == "onnxruntime" and det.backend.path.parent == private_cache / "onnx"
    assert det.config.name == "r18x025_polynl"


def test_threads_are_used_by_either_engine(mnet_checkpoint):
    pytest.importorskip("onnxruntime")
    _shipped_or_skip()
    ort_det = Detector(threads=2)
    options = ort_det.backend.session.get_session_options()
    assert options.intra_op_num_threads == 2 and ort_det.intra_op_threads == 2
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert Detector(intra_op_threads=1).backend.session.get_session_options().intra_op_num_threads == 1
    # by default onnxruntime sizes its pool like torch (OMP_NUM_THREADS=1 in the tests), not by core count
    assert Detector().backend.session.get_session_options().intra_op_num_threads == torch.get_num_threads()

    torch_det = Detector(weights=mnet_checkpoint, threads=2)
    seen = []
    before = torch.get_num_threads()
    handle = torch_det.model.box_head.register_forward_pre_hook(lambda *_: seen.append(torch.get_num_threads()))
    torch_det.detect(np.zeros((64, 64, 3), np.uint8))
    handle.remove()
    assert seen == [2] and torch.get_num_threads() == before  # set for the call, then the caller's again
    assert torch_det.intra_op_threads == 2
    with pytest.raises(ValueError, match="threads must be a positive integer"):
        Detector(weights=mnet_checkpoint, threads=0)
    with pytest.raises(ValueError, match="disagree"):
        Detector(weights=mnet_checkpoint, threads=2, intra_op_threads=1)


def test_cli_threads_reach_both_engines(mnet_checkpoint, monkeypatch):
    from retinaface_polynl.cli import build_parser
    from retinaface_polynl.commands.common import build_detector

    _shipped_or_skip()
    parser = build_parser()
    args = parser.parse_args(["detect", "x.jpg", "--threads", "2"])
    det = build_detector(args)
    assert det.backend_name == "onnxruntime" and det.backend.session.get_session_options().intra_op_num_threads == 2
    args = parser.parse_args(["detect", "x.jpg", "--threads", "2", "--backend", "torch"])
    det = build_detector(args)
    assert det.backend_name == "torch" and det.backend.threads == 2
    # commands without --backend need the PyTorch model itself (attention maps)
    args = parser.parse_args(["attention", "x.jpg"])
    assert build_detector(args).backend_name == "torch"


def test_float16_torch_backend_finds_the_same_faces(mnet_checkpoint, dlib_faces_dir):
    """The CUDA default (PyTorch, network in float16, decoding in float32), run here on the CPU's
    float16 autocast: the same code path, checked against float32 within the fp16 tolerances."""
    from retinaface_polynl.export.verify import TOLERANCES, compare_faces

    fp32 = Detector(weights=mnet_checkpoint, threads=1)
    fp16 = Detector(weights=mnet_checkpoint, threads=1, precision="fp16")
    assert fp16.precision == "fp16" and next(fp16.model.parameters()).dtype == torch.float32
    image = cv2.imread(str(dlib_faces_dir / "2008_004176.jpg"))
    c = compare_faces(fp32.detect(image), fp16.detect(image), 0.5, TOLERANCES["fp16"])
    assert c.ok and c.faces == (7, 7), c
