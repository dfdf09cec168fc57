"""FP16 and INT8 (onnxruntime CPU and TensorRT Q/DQ) files find the faces the fp32 file finds.

Real checkpoint (Pytorch_Retinaface MobileNet-0.25), real photos.  Calibration
uses the dlib photos that are *not* in testing.xml (training.xml's four plus the
three unannotated ones) and demo/astronaut.jpg; the comparisons run on the five
testing.xml photos, at their own size and at a 643-pixel long side.

Tolerances are ``retinaface_polynl.export.verify.TOLERANCES`` (the ones
``retinaface-polynl export --check`` applies), per face of either result matched to
the other's best-IoU box, with landmarks measured as a fraction of the face's size:
  * fp16: IoU >= 0.99, score within 5e-3, landmarks within 1 %.  float16 keeps 11
    significant bits (relative step 4.9e-4); with BatchNorm folded in float32 and
    decoding in float32, errors of a few 1e-4 on logits and deltas move a box by a
    small fraction of a pixel (measured: IoU >= 0.999, score change < 1e-3,
    landmarks < 0.05 %).
  * INT8 (both files): IoU >= 0.75, score within 0.1, landmarks within 10 %, and all
    25 annotated faces still found (IoU > 0.3 against dlib's tight boxes).  One
    activation step is 1/255 of a tensor's calibrated range, so box deltas move by
    about 1% of the anchor size: 1-3 pixels on the smallest faces here (~25 px),
    i.e. IoU ~0.8 at worst (measured 0.83-0.94; landmarks 2.7-7.2 % of the face).
Besides, the fp16 file must give the same number of faces at the threshold.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from retinaface_polynl.detector import Detector
from retinaface_polynl.export import (
    OnnxRuntimeBackend,
    calibration_batches,
    export_onnx,
    quantize_int8,
    quantize_qdq,
    read_metadata,
)
from retinaface_polynl.export.onnx import network_nodes
from retinaface_polynl.export.quantize import qdq_summary
from retinaface_polynl.export.verify import format_checks, tolerance_for, verify_export

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def files(mnet_checkpoint, dlib_faces_dir, dlib_testing, tmp_path_factory):
    folder = tmp_path_factory.mktemp("quant")
    detector = Detector(weights=mnet_checkpoint)
    fp32 = export_onnx(detector.model, folder / "fp32.onnx", detector.config)
    fp16 = export_onnx(detector.model, folder / "fp16.onnx", detector.config, half=True)
    calib_images = [p for p in sorted(dlib_faces_dir.glob("*.jpg")) if p.name not in dlib_testing]
    assert len(calib_images) >= 5
    batches = calibration_batches(calib_images + [REPO / "demo" / "astronaut.jpg"])
    int8 = quantize_int8(fp32, folder / "int8.onnx", batches)
    qdq = quantize_qdq(fp32, folder / "qdq.onnx", batches)
    return {"detector": detector, "fp32": fp32, "fp16": fp16, "int8": int8, "qdq": qdq}


def _detections(detector, backend, images, sizes=(None, 643)):
    saved = detector.backend
    detector.backend = backend
    try:
        return {(p.name, s): detector.detect(p, max_size=s) for p in images for s in sizes}
    finally:
        detector.backend = saved


@pytest.fixture(scope="module")
def reference(files, dlib_faces_dir, dlib_testing):
    images = [dlib_faces_dir / n for n in dlib_testing]
    return images, Detector(weights=files["fp32"], intra_op_threads=2)


def _assert_same_faces(files, reference, kind, same_count=False):
    images, fp32 = reference
    exported = Detector(weights=files[kind], intra_op_threads=2)
    tolerance = tolerance_for(exported.backend.precision)
    checks = verify_export(fp32, exported, images, tolerance, max_sizes=(None, 643))
    assert all(c.ok for c in checks), format_checks(checks, tolerance)
    assert sum(c.faces[0] for c in checks) >= 40  # real faces compared, not empty sets
    if same_count:
        assert all(c.faces[0] == c.faces[1] for c in checks), format_checks(checks, tolerance)
    return _detections(files["detector"], exported.backend, images, sizes=(None,))


def _found(detections, dlib_testing):
    from torchvision.ops import box_iou

    found = 0
    for name, boxes in dlib_testing.items():
        det = detections[(name, None)]
        if len(det) and boxes:
            found += int((box_iou(torch.tensor(boxes), torch.from_numpy(det.boxes)).max(1).values > 0.3).sum())
    return found


def test_fp16_finds_the_same_faces(files, reference):
    _assert_same_faces(files, reference, "fp16", same_count=True)


def test_fp16_file_is_half_inside_float_outside(files):
    proto = onnx.load(str(files["fp16"]))
    conv_weights = {n.input[1] for n in proto.graph.node if n.op_type == "Conv"}
    types = {t.data_type for t in proto.graph.initializer if t.name in conv_weights}
    assert types == {onnx.TensorProto.FLOAT16}
    io = [*proto.graph.input, *proto.graph.output]
    assert {v.type.tensor_type.elem_type for v in io} == {onnx.TensorProto.FLOAT}
    assert read_metadata(files["fp16"]).precision == "fp16"
    # decoding in float32: the Exp of the box sizes reads float32
    inferred = onnx.shape_inference.infer_shapes(proto)
    vtypes = {v.name: v.type.tensor_type.elem_type for v in inferred.graph.value_info}
    exps = [n for n in proto.graph.node if n.op_type == "Exp"]
    assert exps and all(vtypes.get(n.input[0], onnx.TensorProto.FLOAT) == onnx.TensorProto.FLOAT for n in exps)


def test_cpu_int8_finds_the_same_faces(files, reference, dlib_testing):
    got = _assert_same_faces(files, reference, "int8")
    assert _found(got, dlib_testing) == 25


def test_qdq_int8_finds_the_same_faces(files, reference, dlib_testing):
    got = _assert_same_faces(files, reference, "qdq")
    assert _found(got, dlib_testing) == 25


def test_qdq_zero_points_are_zero_and_opset_is_tensorrt_readable(files):
    s = qdq_summary(files["qdq"])
    assert s["counts"]["QuantizeLinear"] > 20 and s["counts"]["DequantizeLinear"] > 20
    assert s["zero_points"].size and not s["zero_points"].any(), "TensorRT needs every zero point to be 0"
    assert s["zero_point_dtypes"] == ["int8"]
    assert 13 <= s["opset"] == 17
    proto = onnx.load(str(files["qdq"]))
    per_channel = [
        n for n in proto.graph.node if n.op_type == "DequantizeLinear" and any(a.name == "axis" for a in n.attribute)
    ]
    assert per_channel, "weights should be quantised per output channel"
    assert read_metadata(files["qdq"]).precision == "int8-qdq"


def test_cpu_int8_is_u8s8_per_channel_reduce_range(files):
    import json

    meta = read_metadata(files["int8"])
    assert meta.precision == "int8" and meta.config == files["detector"].config
    q = json.loads(meta.raw["retinaface_polynl.quantization"])
    assert q == {**q, "format": "QDQ", "activations": "uint8", "weights": "int8", "per_channel": True, "reduce_range": True}
    s = qdq_summary(files["int8"])
    assert "uint8" in s["zero_point_dtypes"] and "int8" in s["zero_point_dtypes"]


@pytest.mark.parametrize("kind", ["int8", "qdq"])
def test_decoding_stays_float(files, kind):
    """Anchor generation, the face probability and box/landmark decoding are not quantised."""
    fp32 = onnx.load(str(files["fp32"]))
    network = set(network_nodes(fp32))
    decode = {n.name: n.op_type for n in fp32.graph.node if n.name not in network}
    assert "Exp" in decode.values() and "Sigmoid" in decode.values() and "Range" in decode.values()
    q = onnx.load(str(files[kind]))
    qnodes = {n.name: n for n in q.graph.node}
    for name, op in decode.items():
        assert name in qnodes and qnodes[name].op_type == op, f"{name} ({op}) changed by quantisation"
    decode_outputs = {o for n in q.graph.node if n.name in decode for o in n.output}
    for n in q.graph.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear"):
            assert n.input[0] not in decode_outputs, f"{n.name} quantises a decoding tensor"


def test_cli_qdq_with_default_calibration(tmp_path, capsys, mnet_checkpoint):
    from retinaface_polynl.cli import main

    out = tmp_path / "cli.qdq.onnx"
    assert main(["export", "--weights", str(mnet_checkpoint), "--format", "onnx-qdq", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "astronaut.jpg" in printed and "int8-qdq" in printed
    assert not qdq_summary(out)["zero_points"].any()
    assert [p.name for p in tmp_path.iterdir()] == ["cli.qdq.onnx"]  # no temporary files left behind
    backend = OnnxRuntimeBackend(out, intra_op_threads=2)
    assert backend(np.zeros((1, 3, 64, 64), np.float32))[0].shape == (1, 168, 4)


def test_calibration_runs_at_the_input_size_the_model_records():
    """A checkpoint that records a 640 px short side (long side <= 1365) runs every picture at
    that scale, so INT8 ranges are calibrated on activations there, not at the photo's own
    size; one that records a floor (the shipped weights: at least 480) shrinks nothing."""
    photo = REPO / "demo" / "astronaut.jpg"  # 512 x 512
    recorded = calibration_batches([photo], 640, 1365, mirror=False)
    assert [b.shape for b in recorded] == [(1, 3, 640, 640)]
    wide = np.zeros((100, 400, 3), np.uint8)  # 640 px short side would make it 2560 wide: capped at 1365
    assert calibration_batches([wide], 640, 1365, mirror=False)[0].shape == (1, 3, 352, 1376)
    big = np.zeros((600, 800, 3), np.uint8)
    floor = calibration_batches([photo, wide, big], 480, 1365, mirror=False, upscale_only=True)
    # 512 -> 480 would shrink: kept; 100 x 400 enlarged, then capped at 1365; 600 x 800 kept
    assert [b.shape for b in floor] == [(1, 3, 512, 512), (1, 3, 352, 1376), (1, 3, 608, 800)]
    # without a recorded size: the original size, long side capped at 640 (then padded to 32)
    assert [b.shape for b in calibration_batches([photo, wide])] == [(1, 3, 512, 512)] * 2 + [(1, 3, 128, 416)] * 2
