#!/usr/bin/env python
"""Latency and throughput of every backbone x backend x precision, with peer detectors side by side.

    python scripts/bench_backends.py                       # CPU (and GPU rows when CUDA is there)
    python scripts/bench_backends.py --presets r18x025_polynl --runs 50
    python scripts/bench_backends.py --haar-python /path/to/opencv4-env/bin/python

For each detector, at VGA (640x480, a real photo resized):
  * ``e2e ms``: end to end, BGR uint8 image in, detections out (pre-processing,
    network, decoding, threshold 0.5, NMS, boxes back in image pixels): what a
    caller of ``Detector.detect`` waits;
  * ``net ms``: the network alone on a ready input tensor (for our ONNX files this
    includes the in-graph anchor decoding; for torch, ``model.predict``), so that
    ``e2e - net`` is the pre/post-processing cost;
  * ``b8 img/s``: throughput at batch 8 (eight VGA images per call; end to end
    via ``Detector.detect_batch``); peers that only take batch 1 run 8 calls.

Medians over ``--runs`` timed runs after ``--warmup`` untimed ones.  Our presets
other than mnet025 run with random weights: the network's latency does not
depend on the weights (same graph; INT8 kernels are data-independent), but the
post-processing does: an untrained head may put hundreds of anchors above 0.5
(the ``faces`` column shows it: r18x025_polynl 0, plain r18x025 ~90, r50 750), which
inflates ``e2e`` through NMS for those rows.

The target comparison at the end (r18x025_polynl INT8 against Ultra-Light
RFB-640, the third-party RetinaFace-mnet0.25 and YuNet, all end to end at VGA) is
measured *interleaved*: one call of each detector per round, ``--runs`` rounds,
so that load from other processes on a shared machine hits all of them alike.
INT8 files are calibrated on the dlib photos and demo/astronaut.jpg.

Peers (where their files are there): Ultra-Light-Fast-Generic RFB-320/640
(onnxruntime, same thread count), YuNet (cv2.FaceDetectorYN), the third-party
Pytorch_Retinaface MobileNet-0.25 checkpoint (through our Detector, torch and
exported), and OpenCV's Haar cascade, which needs OpenCV 4 (5.x wheels ship no
cascades): in-process if this OpenCV has ``cv2.data``, else through
``--haar-python`` (a Python with opencv<5), else skipped with a message.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from retinaface_polynl.detector import Detector, pad_batch, preprocess  # noqa: E402

SHARED = Path(os.environ.get("RETINAFACE_POLYNL_SHARED_DATA", REPO.parent / "shared" / "data"))
MNET = SHARED / "weights_thirdparty" / "pytorch_retinaface" / "mobilenet0.25_Final.pth"
ULTRA = SHARED / "weights_thirdparty" / "ultra_light"
YUNET = SHARED / "weights_thirdparty" / "yunet" / "face_detection_yunet_2026may.onnx"
DLIB = SHARED / "faces_dlib"
THRESHOLD = 0.5


@dataclass
class Row:
    detector: str
    backend: str
    precision: str
    weights: str
    e2e_ms: float | None = None
    net_ms: float | None = None
    b8_ips: float | None = None
    faces: int | None = None
    note: str = ""
    extra: dict = field(default_factory=dict)


def median_ms(fn: Callable[[], object], warmup: int, runs: int, budget_s: float = 60.0) -> float:
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
        if time.perf_counter() - start > budget_s and len(times) >= 5:
            break  # slow configurations (ResNet-50 on 2 cores) stop early, still a median of >= 5
    return statistics.median(times) * 1e3


def vga_images() -> list[np.ndarray]:
    paths = [REPO / "demo" / "astronaut.jpg"] + sorted(DLIB.glob("*.jpg"))[:7]
    images = [cv2.resize(cv2.imread(str(p)), (640, 480), interpolation=cv2.INTER_AREA) for p in paths if p.is_file()]
    while len(images) < 8:
        images.append(images[len(images) % max(1, len(images))].copy())
    return images[:8]


# -- our detector ---------------------------------------------------------------------------------
def bench_ours(
    name: str, detector: Detector, backend, precision: str, weights: str, images, args, device: str = "cpu"
) -> Row:
    detector.backend = backend
    image = images[0]
    x1 = pad_batch([preprocess(image)])
    faces = len(detector.detect(image, threshold=THRESHOLD))
    e2e = median_ms(lambda: detector.detect(image, threshold=THRESHOLD), args.warmup, args.runs)
    if hasattr(backend, "run_numpy"):
        net = median_ms(lambda: backend.run_numpy(x1), args.warmup, args.runs)
    elif backend.name == "torch":
        model = backend.model
        xt = torch.from_numpy(x1).to(device)

        def net_fn():
            with torch.inference_mode():
                p = model.predict(xt)
            if device != "cpu":
                torch.cuda.synchronize()
            return p

        net = median_ms(net_fn, args.warmup, args.runs)
    else:  # tensorrt
        xt = torch.from_numpy(x1).to(device)
        net = median_ms(lambda: backend.run_torch(xt), args.warmup, args.runs)
    b8 = median_ms(lambda: detector.detect_batch(images, threshold=THRESHOLD, batch_size=8), 1, max(3, args.runs // 5))
    return Row(name, backend.name + ("" if device == "cpu" else f" ({device})"), precision, weights, e2e, net, 8e3 / b8, faces)


def our_rows(args, images, tmp: Path) -> list[Row]:
    from retinaface_polynl.export import (
        OnnxRuntimeBackend,
        calibration_batches,
        calibration_images,
        export_onnx,
        quantize_int8,
    )

    rows: list[Row] = []
    calib = None
    for preset in args.presets:
        real = preset == "mnet025" and MNET.is_file()
        if preset == "mnet025" and not real:
            print(f"# {MNET} absent: mnet025 runs with random weights", file=sys.stderr)
        torch.manual_seed(0)
        detector = Detector(weights=MNET if real else None, preset=None if real else preset, threshold=THRESHOLD)
        weights = "third-party Pytorch_Retinaface" if real else "random"
        label = "RetinaFace-mnet0.25" if real else preset
        torch_backend = detector.backend
        print(f"# {label}: torch", file=sys.stderr)
        rows.append(bench_ours(label, detector, torch_backend, "fp32", weights, images, args))
        fp32 = export_onnx(detector.model, tmp / f"{preset}.onnx", detector.config)
        print(f"# {label}: onnxruntime fp32", file=sys.stderr)
        ort32 = OnnxRuntimeBackend(fp32, intra_op_threads=args.threads)
        rows.append(bench_ours(label, detector, ort32, "fp32", weights, images, args))
        if calib is None:
            sources = [REPO / "demo"] + ([DLIB] if DLIB.is_dir() else [])
            calib = calibration_batches(calibration_images(sources))
        int8 = quantize_int8(fp32, tmp / f"{preset}.int8.onnx", calib, reduce_range=True)
        print(f"# {label}: onnxruntime int8", file=sys.stderr)
        ort8 = OnnxRuntimeBackend(int8, intra_op_threads=args.threads)
        rows.append(bench_ours(label, detector, ort8, "int8 (U8S8, reduce_range)", weights, images, args))
        if args.no_reduce_range:
            int8nr = quantize_int8(fp32, tmp / f"{preset}.int8nr.onnx", calib, reduce_range=False)
            ort8nr = OnnxRuntimeBackend(int8nr, intra_op_threads=args.threads)
            rows.append(bench_ours(label, detector, ort8nr, "int8 (U8S8, 8-bit)", weights, images, args))
        if torch.cuda.is_available() and not args.cpu_only:
            rows.extend(gpu_rows(label, preset, detector, fp32, weights, images, args, tmp, calib))
        detector.backend = torch_backend
    return rows


def gpu_rows(label, preset, detector, fp32, weights, images, args, tmp, calib) -> list[Row]:
    from retinaface_polynl.detector import TorchBackend
    from retinaface_polynl.export import export_onnx, quantize_qdq, tensorrt_status
    from retinaface_polynl.export.tensorrt import ShapeProfile, TensorRTBackend

    rows = []
    dev = torch.device("cuda")
    model = detector.model
    rows.append(bench_ours(label, detector, TorchBackend(model, dev), "fp32", weights, images, args, "cuda"))
    model.to("cpu")
    ok, why = tensorrt_status()
    if not ok:
        print(f"# TensorRT rows skipped: {why}", file=sys.stderr)
        return rows
    fp16 = export_onnx(model, tmp / f"{preset}.fp16.onnx", detector.config, half=True)
    qdq = quantize_qdq(fp32, tmp / f"{preset}.qdq.onnx", calib)
    profile = ShapeProfile(max_batch=8, opt_hw=(480, 640), max_hw=(736, 1280))
    for precision, path in (("fp32 (TF32)", fp32), ("fp16", fp16), ("int8 Q/DQ", qdq)):
        backend = TensorRTBackend.from_onnx(path, device=dev, cache_dir=tmp / "engines", profile=profile)
        rows.append(bench_ours(label, detector, backend, precision, weights, images, args, "cuda"))
    return rows


# -- peers ----------------------------------------------------------------------------------------
def ultra_light_rows(args, images) -> list[Row]:
    import onnxruntime as ort
    from torchvision.ops import nms

    rows = []
    for variant, (w, h) in (("RFB-320", (320, 240)), ("RFB-640", (640, 480))):
        path = ULTRA / f"version-{variant}.onnx"
        if not path.is_file():
            print(f"# {path} absent: Ultra-Light {variant} skipped", file=sys.stderr)
            continue
        so = ort.SessionOptions()
        so.intra_op_num_threads = args.threads
        so.log_severity_level = 3  # its initializers-as-inputs warnings
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])

        def prep(image):
            rgb = cv2.cvtColor(cv2.resize(image, (w, h)), cv2.COLOR_BGR2RGB).astype(np.float32)
            return ((rgb - 127.0) / 128.0).transpose(2, 0, 1)[None].copy()

        def detect(image):
            ih, iw = image.shape[:2]
            scores, boxes = sess.run(["scores", "boxes"], {"input": prep(image)})
            s = scores[0, :, 1]
            keep = s > THRESHOLD
            b = torch.from_numpy(boxes[0][keep] * np.array([iw, ih, iw, ih], np.float32))
            k = nms(b, torch.from_numpy(s[keep]), 0.3)
            return b[k].numpy()

        x = prep(images[0])
        e2e = median_ms(lambda: detect(images[0]), args.warmup, args.runs)
        net = median_ms(lambda: sess.run(None, {"input": x}), args.warmup, args.runs)
        b8 = median_ms(lambda: [detect(im) for im in images], 1, max(3, args.runs // 5))
        rows.append(Row(f"Ultra-Light {variant}", "onnxruntime", "fp32", "official", e2e, net, 8e3 / b8,
                        len(detect(images[0])), note=f"network input {w}x{h}; batch 1 only"))
    return rows


def yunet_row(args, images) -> list[Row]:
    if not YUNET.is_file():
        print(f"# {YUNET} absent: YuNet skipped", file=sys.stderr)
        return []
    try:
        det = cv2.FaceDetectorYN.create(str(YUNET), "", (640, 480), THRESHOLD, 0.3, 5000)
    except (cv2.error, AttributeError) as exc:
        print(f"# YuNet skipped: cv2.FaceDetectorYN cannot load it ({exc})", file=sys.stderr)
        return []
    image = images[0]
    faces = det.detect(image)[1]
    e2e = median_ms(lambda: det.detect(image), args.warmup, args.runs)
    b8 = median_ms(lambda: [det.detect(im) for im in images], 1, max(3, args.runs // 5))
    return [Row("YuNet", f"cv2.FaceDetectorYN (OpenCV {cv2.__version__})", "fp32", "2026may", e2e, None, 8e3 / b8,
                0 if faces is None else len(faces), note="network time not separable")]


HAAR_SNIPPET = r"""
import sys, time, statistics, cv2
img = cv2.resize(cv2.imread(sys.argv[1]), (640, 480)); gray_needed = True
cv2.setNumThreads(int(sys.argv[4]))
c = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
def run():
    g = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    return c.detectMultiScale(g, 1.1, 5, minSize=(20, 20))
for _ in range(int(sys.argv[2])): run()
t = []
for _ in range(int(sys.argv[3])):
    s = time.perf_counter(); run(); t.append(time.perf_counter() - s)
print(statistics.median(t) * 1e3, len(run()), cv2.__version__)
"""


def haar_row(args, images, tmp: Path) -> list[Row]:
    photo = tmp / "vga.jpg"
    cv2.imwrite(str(photo), images[0])
    python = None
    data = getattr(cv2, "data", None)
    if data is not None and os.path.isfile(os.path.join(getattr(data, "haarcascades", ""), "haarcascade_frontalface_default.xml")):
        python = sys.executable
    elif args.haar_python:
        python = args.haar_python
    if python is None:
        print(
            f"# OpenCV Haar cascade skipped: OpenCV {cv2.__version__} ships no cascades (cv2.data is gone in 5.x); "
            "pass --haar-python /path/to/python of an environment with opencv-python<5",
            file=sys.stderr,
        )
        return []
    try:
        out = subprocess.run(
            [python, "-c", HAAR_SNIPPET, str(photo), str(args.warmup), str(args.runs), str(args.threads)],
            capture_output=True, text=True, timeout=300, check=True,
        ).stdout.split()
        ms, faces, version = float(out[0]), int(out[1]), out[2]
    except (subprocess.SubprocessError, OSError, ValueError, IndexError) as exc:
        print(f"# OpenCV Haar cascade skipped: {python} could not run it ({exc})", file=sys.stderr)
        return []
    return [Row("OpenCV Haar (frontalface_default)", f"OpenCV {version}", "-", "OpenCV", ms, None, 1e3 / ms, faces,
                note="scale 1.1, 5 neighbours; b8 = 1/e2e")]


# -- interleaved target comparison -----------------------------------------------------------------
def interleaved_target(args, images, tmp: Path) -> list[tuple[str, float, int]]:
    """End-to-end VGA latency of the target set, round-robin (one call each per round)."""
    import onnxruntime as ort
    from torchvision.ops import nms

    from retinaface_polynl.export import OnnxRuntimeBackend, calibration_batches, calibration_images, export_onnx, quantize_int8

    image = images[0]
    contenders: list[tuple[str, Callable[[], object]]] = []
    torch.manual_seed(0)
    ours = Detector(preset="r18x025_polynl", threshold=THRESHOLD)
    fp32 = export_onnx(ours.model, tmp / "target.onnx", ours.config)
    sources = [REPO / "demo"] + ([DLIB] if DLIB.is_dir() else [])
    int8 = quantize_int8(fp32, tmp / "target.int8.onnx", calibration_batches(calibration_images(sources)))
    ours.backend = OnnxRuntimeBackend(int8, intra_op_threads=args.threads)
    contenders.append(("r18x025_polynl onnxruntime INT8 (random weights)", lambda: ours.detect(image)))
    rfb = ULTRA / "version-RFB-640.onnx"
    if rfb.is_file():
        so = ort.SessionOptions()
        so.intra_op_num_threads = args.threads
        so.log_severity_level = 3
        sess = ort.InferenceSession(str(rfb), so, providers=["CPUExecutionProvider"])

        def ultra():
            ih, iw = image.shape[:2]
            rgb = cv2.cvtColor(cv2.resize(image, (640, 480)), cv2.COLOR_BGR2RGB).astype(np.float32)
            x = ((rgb - 127.0) / 128.0).transpose(2, 0, 1)[None].copy()
            scores, boxes = sess.run(["scores", "boxes"], {"input": x})
            keep = scores[0, :, 1] > THRESHOLD
            b = torch.from_numpy(boxes[0][keep] * np.array([iw, ih, iw, ih], np.float32))
            return b[nms(b, torch.from_numpy(scores[0, :, 1][keep]), 0.3)]

        contenders.append(("Ultra-Light RFB-640 (onnxruntime)", ultra))
    if MNET.is_file():
        mnet_torch = Detector(weights=MNET, threshold=THRESHOLD)
        contenders.append(("RetinaFace-mnet0.25 third-party (PyTorch)", lambda: mnet_torch.detect(image)))
        mnet_onnx = Detector(weights=MNET, threshold=THRESHOLD)
        mnet_onnx.backend = OnnxRuntimeBackend(
            export_onnx(mnet_onnx.model, tmp / "mnet.onnx", mnet_onnx.config), intra_op_threads=args.threads
        )
        contenders.append(("RetinaFace-mnet0.25 third-party (onnxruntime fp32)", lambda: mnet_onnx.detect(image)))
    if YUNET.is_file():
        try:
            yunet = cv2.FaceDetectorYN.create(str(YUNET), "", (640, 480), THRESHOLD, 0.3, 5000)
            contenders.append(("YuNet (cv2.FaceDetectorYN)", lambda: yunet.detect(image)))
        except (cv2.error, AttributeError) as exc:
            print(f"# YuNet left out of the target comparison: {exc}", file=sys.stderr)
    times: dict[str, list[float]] = {name: [] for name, _ in contenders}
    for _ in range(args.warmup):
        for _, fn in contenders:
            fn()
    for _ in range(max(args.runs, 20)):
        for name, fn in contenders:
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return [(name, statistics.median(v) * 1e3, len(v)) for name, v in times.items()]


def target_table(results: list[tuple[str, float, int]]) -> str:
    if not results:
        return ""
    ours_ms = results[0][1]
    lines = [
        "**Target** (end to end at 640x480, threshold 0.5, measured interleaved in one run):",
        "",
        "| detector | e2e ms (median) | runs | ours (r18x025_polynl INT8) vs it |",
        "|---|---|---|---|",
    ]
    for name, ms, n in results:
        rel = "-" if name == results[0][0] else (
            f"{'faster' if ours_ms < ms else 'SLOWER'}: {ms / ours_ms:.2f}x, gap {ours_ms - ms:+.1f} ms"
        )
        lines.append(f"| {name} | {ms:.1f} | {n} | {rel} |")
    return "\n".join(lines)


# -- report ---------------------------------------------------------------------------------------
def fmt(v: float | None, digits: int = 1) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def markdown(rows: list[Row]) -> str:
    head = "| detector | backend | precision | weights | e2e ms (VGA) | net ms (VGA) | post+pre ms | b8 img/s | faces | note |"
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        post = None if r.e2e_ms is None or r.net_ms is None else r.e2e_ms - r.net_ms
        lines.append(
            f"| {r.detector} | {r.backend} | {r.precision} | {r.weights} | {fmt(r.e2e_ms)} | {fmt(r.net_ms)} | "
            f"{fmt(post)} | {fmt(r.b8_ips)} | {'-' if r.faces is None else r.faces} | {r.note} |"
        )
    return "\n".join(lines)


def target_summary(rows: list[Row]) -> str:
    def find(det, backend=None, precision=None):
        for r in rows:
            if r.detector == det and (backend is None or r.backend == backend) and (precision is None or r.precision.startswith(precision)):
                return r
        return None

    ours = find("r18x025_polynl", "onnxruntime", "int8")
    if ours is None:
        return "target: r18x025_polynl onnxruntime int8 was not measured"
    lines = [f"**Target**: r18x025_polynl, onnxruntime INT8, 640x480 end to end: **{ours.e2e_ms:.1f} ms**"]
    for label, r in (
        ("Ultra-Light RFB-640", find("Ultra-Light RFB-640")),
        ("RetinaFace-mnet0.25 (third-party weights, PyTorch)", find("RetinaFace-mnet0.25", "torch")),
        ("RetinaFace-mnet0.25 (third-party weights, onnxruntime fp32)", find("RetinaFace-mnet0.25", "onnxruntime", "fp32")),
        ("YuNet", find("YuNet")),
    ):
        if r is None or r.e2e_ms is None:
            lines.append(f"- vs {label}: not measured")
            continue
        verdict = "faster" if ours.e2e_ms < r.e2e_ms else "SLOWER"
        lines.append(
            f"- vs {label}: {r.e2e_ms:.1f} ms -> ours is {verdict} "
            f"({r.e2e_ms / ours.e2e_ms:.2f}x; gap {ours.e2e_ms - r.e2e_ms:+.1f} ms)"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", nargs="+", default=["r18x025_polynl", "r18x025", "mnet025", "r50_polynl"])
    p.add_argument("--runs", type=int, default=30, help="timed runs per measurement (median)")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="CPU threads for every engine")
    p.add_argument("--no-peers", action="store_true", help="only our detectors")
    p.add_argument("--no-target", action="store_true", help="skip the interleaved target comparison")
    p.add_argument("--cpu-only", action="store_true", help="skip GPU rows even when CUDA is available")
    p.add_argument("--no-reduce-range", action="store_true", help="also time INT8 with full 8-bit weights")
    p.add_argument("--haar-python", help="a Python with opencv-python<5 for the Haar cascade row")
    p.add_argument("--json", help="also write the rows as JSON here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("retinaface_polynl").setLevel(logging.ERROR)
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    images = vga_images()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-backends-") as tmp:
        tmp = Path(tmp)
        # peers first, then ours (on a shared machine load drifts: compare rows of one run only)
        if not args.no_peers:
            rows += ultra_light_rows(args, images) + yunet_row(args, images)
        rows += our_rows(args, images, tmp)
        if not args.no_peers:
            rows += haar_row(args, images, tmp)
        target = [] if args.no_peers or args.no_target else interleaved_target(args, images, tmp)
    cpu = platform.processor() or platform.machine()
    try:
        model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        model = cpu
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(f"\n## bench_backends: {model}, {args.threads} threads, torch {torch.__version__}, "
          f"{'CUDA ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() and not args.cpu_only else 'no GPU'}; "
          f"load average at the end {tuple(round(v, 1) for v in load) if load else '?'}\n")
    print(markdown(rows))
    print()
    print(target_summary(rows) + "  (rows above: sequential, see the interleaved table below)")
    print()
    print(target_table(target))
    if args.json:
        Path(args.json).write_text(json.dumps([r.__dict__ for r in rows], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
