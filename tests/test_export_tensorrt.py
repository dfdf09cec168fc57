"""TensorRT: engines built from our fp32 / fp16 / Q/DQ files find PyTorch's faces.

The engine tests need TensorRT and an NVIDIA GPU and are skipped, with the
reason, where either is missing.  The file format, cache key, shape profile and
the clear failure without TensorRT are tested everywhere.

Tolerances on GPU (same matching as the ONNX tests): fp32 engine IoU >= 0.99,
score within 2e-3 (TF32 convolutions on Ampere and later keep 10 mantissa bits);
fp16 engine IoU >= 0.98, score within 1e-2; INT8 Q/DQ engine IoU >= 0.75, score
within 0.1, as for the onnxruntime INT8 files (see test_export_quantize.py).
"""
from __future__ import annotations

import numpy as np
import pytest

from retinaface_polynl.detector import Detector
from retinaface_polynl.export import TOLERANCES, ExportError, Tolerance, detect_format, tensorrt_status
from retinaface_polynl.export.tensorrt import (
    ENGINE_MAGIC,
    ShapeProfile,
    TensorRTUnavailable,
    engine_cache_key,
    import_tensorrt,
    read_engine_file,
    write_engine_file,
)

TRT_OK, TRT_WHY = tensorrt_status()
needs_trt = pytest.mark.skipif(not TRT_OK, reason=f"TensorRT engine tests need TensorRT and a GPU: {TRT_WHY}")


# -- everywhere -----------------------------------------------------------------------------------
def test_engine_file_round_trip_and_format_detection(tmp_path):
    header = {"metadata": {"retinaface_polynl.config": "{}"}, "tensorrt_version": "10.x", "profile": {}}
    path = write_engine_file(tmp_path / "m.engine", b"\x00serialized-engine\xff", header)
    assert path.read_bytes().startswith(ENGINE_MAGIC)
    got_header, engine = read_engine_file(path)
    assert engine == b"\x00serialized-engine\xff"
    assert got_header["tensorrt_version"] == "10.x" and got_header["header_version"] == 1
    assert detect_format(path) == "tensorrt"
    foreign = tmp_path / "foreign.engine"
    foreign.write_bytes(b"not ours")
    with pytest.raises(ExportError, match="without retinaface_polynl metadata"):
        detect_format(foreign)


def test_engine_file_gets_the_permissions_of_a_plain_write(tmp_path):
    """Written through tempfile.mkstemp, engines came out 0600 (unreadable to a service user)."""
    import os
    import stat

    umask = os.umask(0o022)
    try:
        path = write_engine_file(tmp_path / "m.engine", b"x", {"metadata": {}, "profile": {}})
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
    finally:
        os.umask(umask)


def test_cache_key_covers_onnx_version_gpu_and_profile():
    base = engine_cache_key(b"onnx", "10.8", "NVIDIA H100 sm_90", ShapeProfile(), 1 << 30)
    assert base == engine_cache_key(b"onnx", "10.8", "NVIDIA H100 sm_90", ShapeProfile(), 1 << 30)
    others = [
        engine_cache_key(b"onnx2", "10.8", "NVIDIA H100 sm_90", ShapeProfile(), 1 << 30),
        engine_cache_key(b"onnx", "11.0", "NVIDIA H100 sm_90", ShapeProfile(), 1 << 30),
        engine_cache_key(b"onnx", "10.8", "NVIDIA L4 sm_89", ShapeProfile(), 1 << 30),
        engine_cache_key(b"onnx", "10.8", "NVIDIA H100 sm_90", ShapeProfile(max_batch=16), 1 << 30),
    ]
    assert len({base, *others}) == 5


def test_shape_profile_bounds():
    p = ShapeProfile(max_batch=4, opt_hw=(480, 640), max_hw=(736, 1280))
    assert p.shapes() == ((1, 3, 32, 32), (1, 3, 480, 640), (4, 3, 736, 1280))
    p.check((4, 3, 480, 640))
    with pytest.raises(ValueError, match="outside the engine's optimisation profile"):
        p.check((1, 3, 1088, 1920))
    with pytest.raises(ValueError):
        ShapeProfile(min_batch=2, opt_batch=1)


@pytest.mark.skipif(TRT_OK, reason="TensorRT and a GPU are present: the unavailable path cannot be exercised")
def test_without_tensorrt_the_command_says_so(tmp_path, capsys):
    from retinaface_polynl.cli import main

    with pytest.raises(TensorRTUnavailable):
        import_tensorrt()
    rc = main(["export", "--preset", "r18x025", "--format", "tensorrt", "--output", str(tmp_path / "m.engine")])
    err = capsys.readouterr().err.strip()
    assert rc != 0 and err.startswith("error: ") and "\n" not in err
    assert "TensorRT" in err and ("not installed" in err or "no CUDA GPU" in err)
    assert not (tmp_path / "m.engine").exists()


def test_tensorrt_backend_refuses_cpu(tmp_path):
    from retinaface_polynl.export import load_backend

    path = write_engine_file(tmp_path / "m.engine", b"x", {"metadata": {}, "profile": {}})
    with pytest.raises(TensorRTUnavailable, match="GPU"):
        load_backend(path, device="cpu")


# -- with TensorRT and a GPU ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def trt_setup(mnet_checkpoint, dlib_faces_dir, dlib_testing, tmp_path_factory):
    from retinaface_polynl.export import calibration_batches, export_onnx, quantize_qdq

    folder = tmp_path_factory.mktemp("trt")
    detector = Detector(weights=mnet_checkpoint, device="cuda", precision="fp32")  # the float32 reference
    fp32 = export_onnx(detector.model, folder / "fp32.onnx", detector.config)
    fp16 = export_onnx(detector.model, folder / "fp16.onnx", detector.config, half=True)
    calib = [p for p in sorted(dlib_faces_dir.glob("*.jpg")) if p.name not in dlib_testing]
    qdq = quantize_qdq(fp32, folder / "qdq.onnx", calibration_batches(calib))
    images = [dlib_faces_dir / n for n in dlib_testing]
    return detector, {"fp32": fp32, "fp16": fp16, "qdq": qdq}, images, folder


@needs_trt
@pytest.mark.parametrize(
    "kind,tolerance",
    [  # fp32 engines may use TF32 kernels (10-bit mantissa) on Ampere and later: fp16-like limits
        ("fp32", Tolerance(min_iou=0.99, max_score_diff=2e-3, max_landmark_error=0.01)),
        ("fp16", Tolerance(min_iou=0.98, max_score_diff=1e-2, max_landmark_error=0.01)),
        ("qdq", TOLERANCES["int8-qdq"]),
    ],
)
def test_engine_finds_pytorchs_faces(trt_setup, kind, tolerance):
    from retinaface_polynl.export import build_engine, format_checks, load_backend, verify_export

    detector, files, images, folder = trt_setup
    engine = build_engine(files[kind], ShapeProfile(max_batch=4), cache_dir=folder / "cache", output=folder / f"{kind}.engine")
    backend, config = load_backend(engine, device="cuda")
    assert backend.name == "tensorrt" and config == detector.config
    exported = Detector(weights=engine, device="cuda")
    checks = verify_export(detector, exported, images, tolerance, max_sizes=(None, 643))
    assert all(c.ok for c in checks), format_checks(checks, tolerance)
    assert sum(c.faces[0] for c in checks) >= 40


@needs_trt
def test_engine_serves_dynamic_batch_and_size_and_caches(trt_setup):
    import torch

    from retinaface_polynl.export import TensorRTBackend, build_engine

    detector, files, _, folder = trt_setup
    cache = folder / "cache2"
    first = build_engine(files["fp32"], ShapeProfile(max_batch=4), cache_dir=cache)
    stamp = first.stat().st_mtime_ns
    again = build_engine(files["fp32"], ShapeProfile(max_batch=4), cache_dir=cache)
    assert again == first and again.stat().st_mtime_ns == stamp  # cache hit, no rebuild
    backend = TensorRTBackend.from_engine_file(first, device="cuda")
    rng = np.random.default_rng(0)
    for batch, h, w in ((1, 480, 640), (4, 224, 320), (2, 481, 643)):
        x = (rng.standard_normal((batch, 3, h, w)) * 50).astype(np.float32)
        boxes, scores, landmarks = backend(x)
        with torch.inference_mode():
            p = detector.model.predict(torch.from_numpy(x).cuda())
        torch.testing.assert_close(torch.from_numpy(scores), p.scores.float().cpu(), rtol=1e-2, atol=2e-3)
        assert boxes.shape == p.boxes.shape and landmarks.shape == p.landmarks.shape
    with pytest.raises(ValueError, match="optimisation profile"):
        backend(np.zeros((8, 3, 64, 64), np.float32))
