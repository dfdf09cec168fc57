"""ONNX export: one file for every size and batch, equal to PyTorch, self-describing, clear failures.

Tolerances.  Raw outputs (every anchor's decoded box, score and landmarks, before
NMS): ``|onnx - torch| <= 1e-4 * |torch| + atol`` with ``atol`` = 1e-4 x the
image's long side for boxes/landmarks (a corner is ``centre - size / 2``: its
float32 rounding is relative to the image's scale, not to the corner's value
near 0) and 1e-5 for probabilities; only summation order differs.  After NMS, on real
photos with the real checkpoint: the same number of faces, each matched with
IoU >= 0.99, score within 1e-3 and landmarks within 0.5 % of the face's size
(``export.verify.TOLERANCES["fp32"]``, the table ``export --check`` uses).
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from retinaface_polynl.anchors import AnchorGenerator
from retinaface_polynl.cli import main as cli_main
from retinaface_polynl.detector import Detector, pad_batch, preprocess, resize_scale
from retinaface_polynl.export import (
    DEFAULT_OPSET,
    PREPROCESSING,
    ExportError,
    NmsOptions,
    TOLERANCES,
    OnnxRuntimeBackend,
    compare_faces,
    detect_format,
    export_onnx,
    load_backend,
    read_metadata,
)
from retinaface_polynl.models.attention import ATTENTION_BLOCKS
from retinaface_polynl.models.retinaface import RetinaFace
from retinaface_polynl.presets import get_preset

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

REPO = Path(__file__).resolve().parents[1]
TEST_PHOTOS = ("2008_001322.jpg", "2008_007676.jpg", "2007_007763.jpg")


def activate(
    module: torch.nn.Module, model: RetinaFace, seed: int = 0, scale: float = 1.0, data: np.ndarray | None = None
) -> torch.nn.Module:
    """Make every layer of ``module`` (part of ``model``) contribute, with realistic magnitudes.

    Attention blocks start as exact identities (zero last norm/projection), which would make an
    equivalence test vacuous: zero parameters get small random values, BatchNorm affines random
    ones (times ``scale``), and the BatchNorm statistics are measured on image-like input so
    activations (and the box deltas fed to ``exp``) stay in the range of a trained network.
    """
    g = torch.Generator().manual_seed(seed)
    norms = [m for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        for m in norms:
            m.weight.copy_((torch.rand(m.num_features, generator=g) + 0.5) * scale)
            m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1 * scale)
        for p in module.parameters():
            if not p.any():
                p.copy_(torch.randn(p.shape, generator=g) * 0.05 * scale)
        if norms:
            x = torch.from_numpy(image_batch(np.random.default_rng(seed), 2, 128, 160) if data is None else data)
            for m in norms:
                m.reset_running_stats()
                m.momentum = None  # cumulative average over the calibration passes
            model.eval()
            for m in norms:
                m.train()
            model.features(x)
            model.eval()
    return module


def random_model(preset: str, seed: int = 0) -> RetinaFace:
    torch.manual_seed(seed)
    model = RetinaFace(get_preset(preset)).eval()
    return activate(model, model, seed).eval()


def torch_raw(model: RetinaFace, x: np.ndarray):
    with torch.inference_mode():
        p = model.predict(torch.from_numpy(x))
    return p.boxes.numpy(), p.scores.numpy(), p.landmarks.numpy()


def assert_raw_close(got, want, where: str, image_size: int | None = None) -> None:
    """rtol 1e-4; atol 1e-5 for probabilities and 1e-4 x the image's long side for pixel coordinates
    (``x1 = cx - w / 2`` subtracts two numbers of image size: its rounding is relative to those)."""
    px = 1e-4 * max(image_size or 0, 10)
    for name, g, w, atol in zip(("boxes", "scores", "landmarks"), got, want, (px, 1e-5, px)):
        assert g.shape == w.shape, f"{where} {name}: shape {g.shape} vs {w.shape}"
        torch.testing.assert_close(
            torch.from_numpy(np.asarray(g)), torch.from_numpy(w), rtol=1e-4, atol=atol, msg=lambda m: f"{where} {name}: {m}"
        )


def image_batch(rng: np.random.Generator, batch: int, height: int, width: int) -> np.ndarray:
    """Smooth random "photos" (BGR uint8) preprocessed as Detector does, without padding."""
    small = rng.integers(0, 256, size=(batch, (height + 7) // 8, (width + 7) // 8, 3), dtype=np.uint8)
    images = [np.kron(s, np.ones((8, 8, 1), np.uint8))[:height, :width] for s in small]
    return np.stack([preprocess(im) for im in images])


@pytest.fixture(scope="module")
def r18_polynl(tmp_path_factory):
    model = random_model("r18x025_polynl")
    path = export_onnx(model, tmp_path_factory.mktemp("onnx") / "r18x025_polynl.onnx")
    return model, path


@pytest.fixture(scope="module")
def mnet(mnet_checkpoint, tmp_path_factory):
    detector = Detector(weights=mnet_checkpoint)
    path = export_onnx(detector.model, tmp_path_factory.mktemp("onnx") / "mnet025.onnx", detector.config)
    return detector, path


# -- one file, every size and batch ------------------------------------------------------------
@pytest.mark.parametrize(
    "batch,height,width",
    [(1, 240, 320), (1, 480, 640), (1, 481, 643), (4, 240, 320), (4, 97, 131), (1, 720, 1280)],
)
def test_one_file_serves_every_size_and_batch(r18_polynl, batch, height, width):
    model, path = r18_polynl
    backend = OnnxRuntimeBackend(path, intra_op_threads=2)
    x = image_batch(np.random.default_rng(height * width + batch), batch, height, width)
    got = backend.run_numpy(x)
    want = torch_raw(model, x)
    assert_raw_close(got, want, f"{batch}x{height}x{width}", max(height, width))
    expected_anchors = AnchorGenerator().for_image(height, width).shape[0]
    assert got[1].shape == (batch, expected_anchors)
    # and the Detector-facing call returns float32 numpy arrays in the TorchBackend layout
    boxes, scores, landmarks = backend(x)
    assert all(isinstance(a, np.ndarray) for a in (boxes, scores, landmarks))
    assert boxes.dtype == scores.dtype == landmarks.dtype == np.float32
    assert landmarks.shape == (batch, expected_anchors, 5, 2)


def test_graph_has_symbolic_batch_height_width(r18_polynl):
    _, path = r18_polynl
    proto = onnx.load(str(path))
    (inp,) = proto.graph.input
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims[1] == 3 and all(isinstance(d, str) and d for d in (dims[0], dims[2], dims[3])), dims
    assert [o.name for o in proto.graph.output] == ["boxes", "scores", "landmarks"]
    assert next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= DEFAULT_OPSET >= 17
    ops = {n.op_type for n in proto.graph.node}
    assert "NonMaxSuppression" not in ops  # NMS stays outside by default
    assert "Range" in ops  # anchors come from the feature-map sizes, not a baked-in table


# -- every attention block, both ResNets ----------------------------------------------------------
@pytest.mark.parametrize("block", [None, *ATTENTION_BLOCKS])
def test_every_attention_block_exports_and_matches(block, tmp_path):
    preset = "r18x025" if block is None else f"r18x025_{block}"
    model = random_model(preset, seed=3)
    path = export_onnx(model, tmp_path / f"{preset}.onnx")
    backend = OnnxRuntimeBackend(path, intra_op_threads=2)
    rng = np.random.default_rng(1)
    for batch, h, w in ((1, 161, 227), (2, 96, 128)):
        x = image_batch(rng, batch, h, w)
        assert_raw_close(backend.run_numpy(x), torch_raw(model, x), f"{preset} {batch}x{h}x{w}", max(h, w))


def test_resnet50_polynl_matches(tmp_path):
    model = random_model("r50_polynl", seed=5)
    path = export_onnx(model, tmp_path / "r50_polynl.onnx")
    x = image_batch(np.random.default_rng(2), 1, 161, 227)
    assert_raw_close(OnnxRuntimeBackend(path, intra_op_threads=2).run_numpy(x), torch_raw(model, x), "r50_polynl", 227)


def test_dynamo_exporter_gives_the_same_outputs(r18_polynl, tmp_path):
    model, _ = r18_polynl
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = export_onnx(model, tmp_path / "dynamo.onnx", dynamo=True)
    backend = OnnxRuntimeBackend(path, intra_op_threads=2)
    for batch, h, w in ((1, 481, 643), (2, 240, 320)):
        x = image_batch(np.random.default_rng(7), batch, h, w)
        assert_raw_close(backend.run_numpy(x), torch_raw(model, x), f"dynamo {batch}x{h}x{w}", max(h, w))


# -- metadata and backend selection ---------------------------------------------------------------
def test_metadata_describes_the_model(r18_polynl):
    model, path = r18_polynl
    meta = read_metadata(path)
    assert meta.config == model.config == get_preset("r18x025_polynl")
    assert meta.preprocessing == PREPROCESSING
    assert meta.preprocessing["color"] == "BGR" and meta.preprocessing["mean"] == [104.0, 117.0, 123.0]
    assert meta.preprocessing["scale"] == 1.0 and meta.preprocessing["stride"] == 32
    assert meta.precision == "fp32" and meta.nms is None
    backend, config = load_backend(path, intra_op_threads=1)
    assert isinstance(backend, OnnxRuntimeBackend) and backend.name == "onnxruntime"
    assert config == model.config
    assert detect_format(path) == "onnx"


def test_load_backend_passes_onnxruntime_settings_through(r18_polynl):
    import onnxruntime as ort

    _, path = r18_polynl
    backend, _ = load_backend(path, providers=["CPUExecutionProvider"], intra_op_threads=1)
    assert backend.providers == ["CPUExecutionProvider"]
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    backend2, _ = load_backend(path, session_options=so)
    assert backend2.providers == ["CPUExecutionProvider"]
    with pytest.raises(ExportError, match="not available"):
        load_backend(path, providers=["NoSuchExecutionProvider"])
    with pytest.raises(ExportError, match="CUDAExecutionProvider|onnxruntime-gpu"):
        if "CUDAExecutionProvider" in ort.get_available_providers():
            pytest.skip("this onnxruntime has CUDA")
        load_backend(path, device="cuda")


def test_foreign_onnx_file_is_refused_clearly(shared_data):
    peer = shared_data / "weights_thirdparty" / "ultra_light" / "version-RFB-320.onnx"
    if not peer.is_file():
        pytest.skip(f"{peer} absent")
    with pytest.raises(ExportError, match="not exported by 'retinaface-polynl export'"):
        load_backend(peer)


# -- real photos, real checkpoint: the same faces after NMS --------------------------------------
@pytest.mark.parametrize("max_size", [None, 643, 481, 320])
def test_same_faces_as_pytorch_on_real_photos(mnet, dlib_faces_dir, max_size):
    detector, path = mnet
    ort_backend = OnnxRuntimeBackend(path, intra_op_threads=2)
    torch_backend = detector.backend
    total = 0
    for name in TEST_PHOTOS:
        image = dlib_faces_dir / name
        want = detector.detect(image, max_size=max_size)
        detector.backend = ort_backend
        try:
            got = detector.detect(image, max_size=max_size)
        finally:
            detector.backend = torch_backend
        c = compare_faces(want, got, detector.threshold, TOLERANCES["fp32"], image=name, size=max_size)
        assert c.ok and c.faces[0] == c.faces[1], c
        total += len(want)
    assert total >= 10  # real faces were found: the comparison is not between empty sets


def test_all_25_annotated_faces_found_through_onnx(mnet, dlib_faces_dir, dlib_testing):
    from torchvision.ops import box_iou

    detector, path = mnet
    backend, _ = load_backend(path, intra_op_threads=2)
    detector.backend, torch_backend = backend, detector.backend
    try:
        found = 0
        for name, boxes in dlib_testing.items():
            det = detector.detect(dlib_faces_dir / name)
            if len(det) and boxes:
                found += int((box_iou(torch.tensor(boxes), torch.from_numpy(det.boxes)).max(1).values > 0.3).sum())
    finally:
        detector.backend = torch_backend
    assert found == sum(len(b) for b in dlib_testing.values()) == 25


@pytest.mark.parametrize("block", ["polynl", "nonlocal", "gc", "se", "efficientnl", "latentgnn", "polynl2"])
def test_attention_block_on_real_checkpoint_same_faces(block, mnet_checkpoint, dlib_faces_dir, tmp_path):
    """The real MobileNet checkpoint with each attention block after res4 (its weights small and
    random so that it changes the features without drowning the faces): ONNX finds PyTorch's faces."""
    torch.manual_seed(0)
    detector = Detector(weights=mnet_checkpoint, preset=get_preset("mnet025").replace(name=f"mnet025_{block}", attention=block))
    bgr = detector.prepare(dlib_faces_dir / "2008_007676.jpg")
    x = pad_batch([preprocess(bgr, resize_scale(*bgr.shape[:2], None, 481))])
    activate(detector.model.attention, detector.model, seed=11, scale=0.02, data=x)
    with_block = torch_raw(detector.model, x)[1]
    module, detector.model.attention = detector.model.attention, None
    without = torch_raw(detector.model, x)[1]
    detector.model.attention = module
    assert np.abs(with_block - without).max() > 1e-3, "the block is still an identity: the test would be vacuous"
    path = export_onnx(detector.model, tmp_path / f"{block}.onnx", detector.config)
    image = dlib_faces_dir / "2008_007676.jpg"
    want = detector.detect(image, max_size=481)
    detector.backend = OnnxRuntimeBackend(path, intra_op_threads=2)
    got = detector.detect(image, max_size=481)
    c = compare_faces(want, got, detector.threshold, TOLERANCES["fp32"], image=block)
    assert len(want) >= 3, "the block drowned the faces; the comparison would be vacuous"
    assert c.ok and c.faces[0] == c.faces[1], c


def test_in_graph_nms_gives_the_same_faces(mnet, dlib_faces_dir, tmp_path):
    detector, plain = mnet
    path = export_onnx(detector.model, tmp_path / "nms.onnx", detector.config, nms=NmsOptions(0.4, 0.5, 750))
    proto = onnx.load(str(path))
    assert "NonMaxSuppression" in {n.op_type for n in proto.graph.node}
    assert read_metadata(path).nms == NmsOptions(0.4, 0.5, 750)
    with_nms = OnnxRuntimeBackend(path, intra_op_threads=2)
    assert with_nms.has_nms
    torch_backend = detector.backend
    try:
        for name in TEST_PHOTOS[:2]:
            image = dlib_faces_dir / name
            detector.backend = OnnxRuntimeBackend(plain, intra_op_threads=2)
            want = detector.detect(image)
            detector.backend = with_nms
            got = detector.detect(image)
            c = compare_faces(want, got, detector.threshold, TOLERANCES["fp32"], image=name)
            assert c.ok and c.faces[0] == c.faces[1] > 0 and c.min_iou >= 0.999, c
            # the in-graph selection alone: exactly the anchors whose score survived
            x = pad_batch([preprocess(detector.prepare(image))])
            selected = with_nms.run_numpy(x)[3]
            assert selected.shape == (len(want), 3)
    finally:
        detector.backend = torch_backend


def _numpy_nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS as the README states it: a box goes when its IoU with a better one exceeds the threshold."""
    order = np.argsort(-scores, kind="stable")
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        wh = np.clip(np.minimum(boxes[i, 2:], boxes[rest, 2:]) - np.maximum(boxes[i, :2], boxes[rest, :2]), 0, None)
        inter = wh[:, 0] * wh[:, 1]
        order = rest[inter / (area[i] + area[rest] - inter) <= iou_threshold]
    return np.array(keep, dtype=np.int64)


def test_plain_onnxruntime_follows_the_readme(dlib_faces_dir, tmp_path):
    """docs/export.md "Without this package": the shipped model, exported by the CLI and run with numpy,
    OpenCV and onnxruntime alone (nothing of this package touches the input or the outputs),
    finds Detector()'s faces: an enlarged photo (the demo), a shrunk one (bald_guys.jpg,
    1986x1545, a crowd), padded ones, and a batch of two photos of one padded size."""
    import json

    import cv2
    import onnxruntime as ort

    from retinaface_polynl.detector import Detections, default_weights_path

    if default_weights_path() is None:
        pytest.skip("no default weights shipped in weights/default.pth")
    path = tmp_path / "shipped.onnx"
    assert cli_main(["export", "--output", str(path)]) == 0

    # -- the user's side: only what the README and the file's metadata say -------------------
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert inp.name == "input" and inp.type == "tensor(float)" and inp.shape[1] == 3
    assert all(isinstance(d, str) for d in (inp.shape[0], inp.shape[2], inp.shape[3])), inp.shape
    assert [o.name for o in session.get_outputs()] == ["boxes", "scores", "landmarks"]
    meta = session.get_modelmeta().custom_metadata_map
    pre = json.loads(meta["retinaface_polynl.preprocessing"])
    size = json.loads(meta["retinaface_polynl.inference"])
    assert pre["color"] == "BGR" and pre["layout"] == "NCHW"
    assert size["min_size"] == 480 and size["max_size"] == 1024
    assert size["zoom"] == {"below": 48.0, "score": 0.4, "factor": 1.5, "max_size": 2048, "keep_above": 128.0,
                            "margin": 4.0, "region_max": 0.5}
    mean, stride = np.array(pre["mean"], np.float32), pre["stride"]

    def first_scale(bgr):
        h, w = bgr.shape[:2]
        scale = max(size["min_size"] / min(h, w), 1.0)  # a floor: small photos enlarged, none shrunk
        if max(h, w) * scale > size["max_size"]:
            scale = size["max_size"] / max(h, w)
        return scale

    def prepare(bgr, scale):
        h, w = bgr.shape[:2]
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        resized = cv2.resize(bgr, (round(w * scale), round(h * scale)), interpolation=interp)
        return ((resized.astype(np.float32) - mean) * pre["scale"]).transpose(2, 0, 1)

    def nms_faces(boxes, scores, landmarks):
        top = np.argsort(-scores, kind="stable")[:5000]
        keep = top[_numpy_nms(boxes[top], scores[top], 0.4)][:750]
        return boxes[keep], scores[keep], landmarks[keep]

    def one_pass(images, scales, threshold):
        xs = [prepare(im, s) for im, s in zip(images, scales)]
        h = -(-max(x.shape[1] for x in xs) // stride) * stride
        w = -(-max(x.shape[2] for x in xs) // stride) * stride
        batch = np.zeros((len(xs), 3, h, w), np.float32)  # zeros: the mean colour, bottom and right
        for i, x in enumerate(xs):
            batch[i, :, : x.shape[1], : x.shape[2]] = x
        out = session.run(["boxes", "scores", "landmarks"], {"input": batch})
        found = []
        for boxes, scores, landmarks, scale, im in zip(*out, scales, images):
            keep = scores > threshold
            boxes, scores, landmarks = nms_faces(boxes[keep], scores[keep], landmarks[keep])
            boxes, landmarks = boxes / scale, landmarks / scale
            boxes[:, 0::2] = boxes[:, 0::2].clip(0, im.shape[1])
            boxes[:, 1::2] = boxes[:, 1::2].clip(0, im.shape[0])
            found.append((boxes, scores, landmarks))
        return found

    zoom = size["zoom"]

    def zoom_region(im, boxes, small):
        h, w = im.shape[:2]
        if zoom["margin"] is None:
            return 0, 0, w, h
        grow = zoom["margin"] * (boxes[small, 3] - boxes[small, 1]).max()
        x0, y0 = max(0, int(np.floor(boxes[small, 0].min() - grow))), max(0, int(np.floor(boxes[small, 1].min() - grow)))
        x1, y1 = min(w, int(np.ceil(boxes[small, 2].max() + grow))), min(h, int(np.ceil(boxes[small, 3].max() + grow)))
        if (x1 - x0) * (y1 - y0) > zoom["region_max"] * h * w:
            return 0, 0, w, h
        return x0, y0, x1, y1

    def detect(images):
        scales = [first_scale(im) for im in images]
        found = []
        for im, scale, (boxes, scores, landmarks) in zip(images, scales, one_pass(images, scales, 0.5)):
            # small-face zoom: a face scoring >= zoom["score"] under zoom["below"] input px -> a second
            # pass on the region around the small faces (or the whole picture)
            h, w = im.shape[:2]
            heights = (boxes[:, 3] - boxes[:, 1]) * scale
            small = (scores >= zoom["score"]) & (heights < zoom["below"])
            if small.any():
                x0, y0, x1, y1 = zoom_region(im, boxes, small)
                crop = im[y0:y1, x0:x1]
                second = min(scale * zoom["factor"], zoom["max_size"] / max(crop.shape[:2]))
                if second >= 1.1 * scale:
                    b2, s2, l2 = one_pass([crop], [second], 0.5)[0]
                    b2, l2 = b2 + np.array([x0, y0, x0, y0], np.float32), l2 + np.array([x0, y0], np.float32)
                    whole = (x0, y0, x1, y1) == (0, 0, w, h)
                    keep1 = heights >= zoom["keep_above"]  # the first pass's large faces stay
                    if not whole:  # faces the crop cut at an inner edge come from the first pass
                        cut = (((b2[:, 0] <= x0 + 2) & (x0 > 0)) | ((b2[:, 1] <= y0 + 2) & (y0 > 0))
                               | ((b2[:, 2] >= x1 - 2) & (x1 < w)) | ((b2[:, 3] >= y1 - 2) & (y1 < h)))
                        b2, s2, l2 = b2[~cut], s2[~cut], l2[~cut]
                        keep1 |= ~((boxes[:, 0] >= x0) & (boxes[:, 1] >= y0) & (boxes[:, 2] <= x1) & (boxes[:, 3] <= y1))
                    boxes, scores, landmarks = nms_faces(np.concatenate([b2, boxes[keep1]]),
                                                         np.concatenate([s2, scores[keep1]]),
                                                         np.concatenate([l2, landmarks[keep1]]))
            found.append(Detections(boxes, scores, landmarks))
        return found

    # -- against the package --------------------------------------------------------------------
    detector = Detector()
    cases = [
        [REPO / "demo" / "astronaut.jpg"],
        [dlib_faces_dir / "bald_guys.jpg"],
        [dlib_faces_dir / "2007_007763.jpg", dlib_faces_dir / "2008_001322.jpg"],  # both 500x375: one padded size
    ]
    total = 0
    for names in cases:
        images = [cv2.imread(str(n)) for n in names]
        for name, image, got in zip(names, images, detect(images)):
            want = detector.detect(image)
            c = compare_faces(want, got, 0.5, TOLERANCES["fp32"], image=name.name)
            assert c.ok and c.faces[0] == c.faces[1], c
            total += len(want)
    assert total >= 20  # bald_guys.jpg alone holds a crowd: the comparison is not between empty sets
    assert detector.timings.zoomed >= 1  # and one of the photos took the small-face zoom


def test_exported_file_is_readable_like_any_new_file(r18_polynl, tmp_path):
    """tempfile.mkstemp creates 0600 files; a model written through it was unreadable to anyone
    but its writer (a service account, a container's non-root user after COPY).  A new file gets
    0666 minus the umask, as a plain write would; an overwritten one keeps its mode."""
    import os
    import stat

    from retinaface_polynl.export.onnx import save_model_atomic

    proto = onnx.load(str(r18_polynl[1]))
    umask = os.umask(0o022)
    try:
        new = save_model_atomic(proto, tmp_path / "new.onnx")
        assert stat.S_IMODE(new.stat().st_mode) == 0o644
        existing = tmp_path / "existing.onnx"
        existing.write_bytes(b"old")
        existing.chmod(0o640)
        save_model_atomic(proto, existing)
        assert stat.S_IMODE(existing.stat().st_mode) == 0o640 and existing.stat().st_size > 3
    finally:
        os.umask(umask)


# -- failures are clear ---------------------------------------------------------------------------
def test_mismatched_checkpoint_fails_with_one_line(mnet_checkpoint, tmp_path, capsys):
    rc = cli_main(["export", "--weights", str(mnet_checkpoint), "--preset", "r18x025", "--output", str(tmp_path / "x.onnx")])
    err = capsys.readouterr().err.strip()
    assert rc != 0
    assert err.startswith("error: ") and "\n" not in err and "does not fit the model" in err
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.parametrize("where", ["dir", "missing-parent", "read-only"])
def test_unwritable_destination_fails_clearly(where, tmp_path, capsys):
    import os

    if where == "dir":
        target = tmp_path
    elif where == "missing-parent":
        target = tmp_path / "file.txt" / "model.onnx"
        (tmp_path / "file.txt").write_text("a file, not a folder")
    else:
        if os.geteuid() == 0:
            target = "/proc/model.onnx"  # root ignores permission bits; /proc refuses anyone
        else:
            ro = tmp_path / "ro"
            ro.mkdir()
            ro.chmod(0o500)
            target = ro / "model.onnx"
    model = random_model("r18x025")
    with pytest.raises(ExportError, match="cannot write"):
        export_onnx(model, target)
    rc = cli_main(["export", "--preset", "r18x025", "--output", str(target)])
    err = capsys.readouterr().err.strip()
    assert rc != 0 and err.startswith("error: cannot write") and "\n" not in err


def test_cli_writes_a_file_detector_metadata_can_run(tmp_path, capsys):
    out = tmp_path / "cli.onnx"
    assert cli_main(["export", "--preset", "r18x025_polynl", "--format", "onnx", "--output", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    backend, config = load_backend(out, intra_op_threads=1)
    assert config == get_preset("r18x025_polynl")
    assert backend(image_batch(np.random.default_rng(0), 1, 64, 96))[1].shape == (1, 252)


def test_help_shows_real_defaults_in_the_units_it_asks_for():
    """Sizes are asked as WxH and their defaults shown so; no '(default: None)' after a help
    that explains the default, nor a default for a flag (it read as if --no-reduce-range were on)."""
    from retinaface_polynl.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    text = " ".join(sub.choices["export"].format_help().split())
    assert "(default: None)" not in text and "(default: True)" not in text and "(default: False)" not in text
    assert "(default: 320x256)" in text and "(default: 640x480)" in text and "(default: 1920x1088)" in text
    assert "--calibration-method {minmax,entropy,percentile} how activation ranges" in text
    args = parser.parse_args(["export", "--output", "x.onnx"])
    assert (args.sample_size, args.opt_size, args.max_size) == ((256, 320), (480, 640), (1088, 1920))
