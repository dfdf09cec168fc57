#!/usr/bin/env python
"""The comparison users ask for, in one run: our default path, each engine and precision, and the
peer detectors, end to end on one real photo at VGA, sequential and interleaved, with ratios to YuNet.

    python scripts/bench_backends.py                         # CPU (GPU rows too when CUDA is there)
    python scripts/bench_backends.py --runs 100 --threads 2 --json bench.json
    python scripts/bench_backends.py --note "training paused"   # printed in the header

The photo: ``faces_dlib/2008_002506.jpg`` (500x375, three faces) resized to 640x480 (a VGA
camera frame), BGR uint8 in memory (no JPEG decoding timed).  Each row is one call of a
detector on it, end to end: what its user waits for (pre-processing, network, decoding,
threshold 0.5, NMS, boxes in the photo's pixels).

Ours (the shipped weights, ``weights/default.pth``), at two network inputs:

* ``default size``: the input size the weights record (``inference`` hint: for the current
  weights a short side of at least 480, never shrunk, so a VGA photo enters as it is, 640x480);
* ``VGA``: the photo's own 640x480 (``size=480``), when the default differs from it;
* ``640 px short side``: ``size=640`` (853x640; ``--min-size 640`` does this to a VGA photo),
  the most accurate setting on small crowd photos;

through each engine: ``Detector()`` as installed (the default path: what ``Detector()`` picks),
PyTorch fp32, onnxruntime fp32 (the shipped ``weights/default.onnx``), onnxruntime INT8 (made
here as ``retinaface-polynl export --format onnx-int8`` makes it, calibrated on the demo photo
and dlib's photos at the recorded size), and on a GPU PyTorch fp16 and TensorRT fp16.

Peers, at the photo's own size (where their files are in ``../shared/data/weights_thirdparty``):
YuNet (``cv2.FaceDetectorYN``), Ultra-Light-Fast RFB-640 and RFB-320 (onnxruntime, same thread
count; RFB-320 sees the photo at 320x240), the third-party Pytorch_Retinaface MobileNet-0.25 in
PyTorch (original size, as its project runs it) and through our ONNX export.

``sequential``: each detector alone, ``--warmup`` untimed calls then ``--runs`` timed ones;
``interleaved``: one call of each detector per round, ``--runs`` rounds, so that load from
other processes (and caches, turbo) hits all of them alike: on a shared machine trust the
ratios of the interleaved table over the sequential numbers.  Both tables are measured
``--repeats`` times in turn (sequential pass, interleaved pass, sequential pass, ...): a row's
milliseconds are the median of its pass medians, its ratio to YuNet the median of the ratios
measured in each pass, with their range, so that a claim such as "at most 1.3x YuNet" is read
off several minutes of the machine and not one.  The 90th percentile is over every timed
call.  Every engine gets ``--threads`` intra-op threads (default: the cores available).
"""
from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from retinaface_polynl.detector import Detector  # noqa: E402

sys.path.insert(0, str(REPO / "scripts"))
from markdown_report import cpu_description  # noqa: E402

SHARED = Path(os.environ.get("RETINAFACE_POLYNL_SHARED_DATA", REPO.parent / "shared" / "data"))
MNET = SHARED / "weights_thirdparty" / "pytorch_retinaface" / "mobilenet0.25_Final.pth"
ULTRA = SHARED / "weights_thirdparty" / "ultra_light"
YUNET = SHARED / "weights_thirdparty" / "yunet" / "face_detection_yunet_2026may.onnx"
DLIB = SHARED / "faces_dlib"
PHOTO = DLIB / "2008_002506.jpg"
THRESHOLD = 0.5


@dataclass
class Contender:
    name: str
    engine: str
    precision: str
    network_input: str
    fn: Callable[[], object]
    faces: int = 0
    seq_ms: float | None = None
    seq_p90: float | None = None
    seq_runs: int = 0
    int_ms: float | None = None
    int_p90: float | None = None
    int_runs: int = 0
    # one median per pass (--repeats): the ratios to YuNet are taken pass by pass
    seq_passes: list[float] = field(default_factory=list)
    int_passes: list[float] = field(default_factory=list)
    seq_times: list[float] = field(default_factory=list, repr=False)
    int_times: list[float] = field(default_factory=list, repr=False)

    def row(self) -> dict:
        d = asdict(self)
        for key in ("fn", "seq_times", "int_times"):
            d.pop(key)
        return d

    def finish(self, which: str) -> None:
        """Median of the pass medians, 90th percentile and count over every timed call."""
        times, passes = getattr(self, f"{which}_times"), getattr(self, f"{which}_passes")
        setattr(self, f"{which}_ms", statistics.median(passes))
        setattr(self, f"{which}_p90", percentile(times, 90))
        setattr(self, f"{which}_runs", len(times))


def vga_photo() -> np.ndarray:
    path = PHOTO if PHOTO.is_file() else REPO / "demo" / "astronaut.jpg"
    return cv2.resize(cv2.imread(str(path)), (640, 480), interpolation=cv2.INTER_AREA)


def count(result) -> int:
    if isinstance(result, tuple):  # cv2.FaceDetectorYN.detect -> (retval, faces or None)
        return 0 if result[1] is None else len(result[1])
    return len(result)


# -- ours -------------------------------------------------------------------------------------------
def our_contenders(args, image, tmp: Path) -> list[Contender]:
    from retinaface_polynl.export import calibration_batches, calibration_images, quantize_int8

    out: list[Contender] = []
    default = Detector(threads=args.threads, threshold=THRESHOLD)
    h, w = image.shape[:2]
    s = default.input_scale(h, w)
    default_input = f"{round(w * s)}x{round(h * s)}"
    out.append(Contender("ours: Detector() as installed", default.backend_name, default.precision, default_input,
                         lambda: default.detect(image)))
    torch_det = Detector(backend="torch", threads=args.threads, threshold=THRESHOLD)
    # the default (what Detector() does to this photo), the photo's own size when that differs,
    # and a 640 px short side (--min-size 640: the most accurate setting on small crowd photos)
    sizes = [("default size", None, default_input)]
    if default_input != f"{w}x{h}":
        sizes.append(("VGA", min(h, w), f"{w}x{h}"))
    s640 = 640 / min(h, w)
    sizes.append(("640 px short side", 640, f"{round(w * s640)}x{round(h * s640)}"))
    engines = [("PyTorch", torch_det)]
    if default.backend_name == "onnxruntime":
        from retinaface_polynl.export.runtime import OnnxRuntimeBackend

        fp32 = Detector(weights=default.backend.path, threads=args.threads, threshold=THRESHOLD)
        engines.append(("onnxruntime fp32", fp32))
        size, cap, upscale_only = default.input_rule()
        calibration = calibration_batches(calibration_images([REPO / "demo"] + ([DLIB] if DLIB.is_dir() else [])),
                                          size, cap, upscale_only=upscale_only)
        int8_path = quantize_int8(default.backend.path, tmp / "default.int8.onnx", calibration)
        engines.append(("onnxruntime INT8", Detector(weights=int8_path, threads=args.threads, threshold=THRESHOLD)))
        if args.spinning:
            spin = Detector(weights=default.backend.path, threads=args.threads, threshold=THRESHOLD)
            spin.backend = OnnxRuntimeBackend(default.backend.path, intra_op_threads=args.threads, spinning=True)
            engines.append(("onnxruntime (threads spinning)", spin))
    else:
        print("# onnxruntime is not installed: no onnxruntime rows", file=sys.stderr)
    if torch.cuda.is_available() and not args.cpu_only:
        engines.append(("PyTorch (cuda)", Detector(backend="torch", device="cuda", threshold=THRESHOLD)))
        try:
            trt = Detector(device="cuda", threshold=THRESHOLD)
            if trt.backend_name == "tensorrt":
                engines.append(("TensorRT (cuda)", trt))
            else:
                print("# TensorRT rows skipped: tensorrt is not importable", file=sys.stderr)
        except ValueError as exc:
            print(f"# TensorRT rows skipped: {exc}", file=sys.stderr)
    for label, det in engines:
        for size_label, size, shape in sizes:
            out.append(Contender(f"ours: {label}, {size_label}", det.backend_name, det.precision, shape,
                                 (lambda d=det, sz=size: d.detect(image, size=sz))))
    return out


# -- peers ------------------------------------------------------------------------------------------
def peer_contenders(args, image, tmp: Path) -> list[Contender]:
    out: list[Contender] = []
    if YUNET.is_file():
        try:
            yunet = cv2.FaceDetectorYN.create(str(YUNET), "", (image.shape[1], image.shape[0]), THRESHOLD, 0.3, 5000)
            out.append(Contender("YuNet", f"OpenCV {cv2.__version__}", "fp32", "640x480", lambda: yunet.detect(image)))
        except (cv2.error, AttributeError) as exc:
            print(f"# YuNet skipped: cv2.FaceDetectorYN cannot load it ({exc})", file=sys.stderr)
    else:
        print(f"# {YUNET} absent: YuNet skipped", file=sys.stderr)
    try:
        import onnxruntime as ort
    except ImportError:
        ort = None
    if ort is not None:
        from retinaface_polynl.boxes import nms

        for variant, (w, h) in (("RFB-640", (640, 480)), ("RFB-320", (320, 240))):
            path = ULTRA / f"version-{variant}.onnx"
            if not path.is_file():
                print(f"# {path} absent: Ultra-Light {variant} skipped", file=sys.stderr)
                continue
            so = ort.SessionOptions()
            so.intra_op_num_threads = args.threads
            so.log_severity_level = 3  # its initializers-as-inputs warnings
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as ours: a fair comparison
            sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])

            def ultra(sess=sess, w=w, h=h):
                ih, iw = image.shape[:2]
                rgb = cv2.cvtColor(cv2.resize(image, (w, h)), cv2.COLOR_BGR2RGB).astype(np.float32)
                x = ((rgb - 127.0) / 128.0).transpose(2, 0, 1)[None].copy()
                scores, boxes = sess.run(["scores", "boxes"], {"input": x})
                keep = scores[0, :, 1] > THRESHOLD
                b = boxes[0][keep] * np.array([iw, ih, iw, ih], np.float32)
                return b[nms(b, scores[0, :, 1][keep], 0.3)]

            out.append(Contender(f"Ultra-Light {variant}", "onnxruntime", "fp32", f"{w}x{h}", ultra))
    if MNET.is_file():
        mnet = Detector(weights=MNET, threads=args.threads, threshold=THRESHOLD)
        out.append(Contender("RetinaFace-MobileNet-0.25 (third-party)", "torch", "fp32", "640x480",
                             lambda: mnet.detect(image)))
        if ort is not None:
            mnet_onnx = Detector(weights=MNET, backend="onnxruntime", threads=args.threads, threshold=THRESHOLD)
            out.append(Contender("RetinaFace-MobileNet-0.25 (third-party), our ONNX export", "onnxruntime", "fp32",
                                 "640x480", lambda: mnet_onnx.detect(image)))
    else:
        print(f"# {MNET} absent: the third-party RetinaFace skipped", file=sys.stderr)
    return out


# -- timing -----------------------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def sequential(contenders: list[Contender], warmup: int, runs: int, budget_s: float, label: str = "") -> None:
    """One pass: each alone; one that takes more than ``budget_s`` stops early (after at least 5 runs)."""
    for c in contenders:
        print(f"# sequential{label}: {c.name}", file=sys.stderr)
        for _ in range(warmup):
            c.faces = count(c.fn())
        times = []
        start = time.perf_counter()
        for _ in range(runs):
            t = time.perf_counter()
            c.fn()
            times.append(1e3 * (time.perf_counter() - t))
            if time.perf_counter() - start > budget_s and len(times) >= 5:
                break
        c.seq_passes.append(statistics.median(times))
        c.seq_times += times


def interleaved(contenders: list[Contender], warmup: int, runs: int, budget_s: float, label: str = "") -> None:
    """One pass, round robin; stops after ``runs`` rounds or ``budget_s`` seconds (at least 5 rounds)."""
    print(f"# interleaved{label}: {len(contenders)} detectors, up to {runs} rounds", file=sys.stderr)
    times: dict[int, list[float]] = {i: [] for i in range(len(contenders))}
    for _ in range(warmup):
        for c in contenders:
            c.fn()
    start = time.perf_counter()
    for r in range(runs):
        for i, c in enumerate(contenders):
            t = time.perf_counter()
            c.fn()
            times[i].append(1e3 * (time.perf_counter() - t))
        if time.perf_counter() - start > budget_s and r + 1 >= 5:
            break
    for i, c in enumerate(contenders):
        c.int_passes.append(statistics.median(times[i]))
        c.int_times += times[i]


def ratios(c: Contender, ref: Contender, which: str) -> list[float]:
    """``c``'s median over ``ref``'s in each pass (both measured in the same pass)."""
    return [a / b for a, b in zip(getattr(c, f"{which}_passes"), getattr(ref, f"{which}_passes"))]


def table(contenders: list[Contender], which: str) -> str:
    """Milliseconds: the median of the pass medians; ``x YuNet``: the median of the passes' ratios,
    with their lowest and highest when there were several passes."""
    yunet = next((c for c in contenders if c.name == "YuNet"), None)
    passes = len(getattr(contenders[0], f"{which}_passes")) if contenders else 0
    spread = passes > 1
    lines = [
        "| detector | engine | precision | network input | faces | runs | ms (median) | p90 ms | x YuNet |"
        + (" x YuNet, range over passes |" if spread else ""),
        "|---|---|---|---|---:|---:|---:|---:|---:|" + ("---:|" if spread else ""),
    ]
    for c in contenders:
        ms, p90 = getattr(c, f"{which}_ms"), getattr(c, f"{which}_p90")
        r = ratios(c, yunet, which) if yunet else []
        ratio = f"{statistics.median(r):.2f}" if r else "-"
        line = (f"| {c.name} | {c.engine} | {c.precision} | {c.network_input} | {c.faces} | "
                f"{getattr(c, f'{which}_runs')} | {ms:.1f} | {p90:.1f} | {ratio} |")
        if spread:
            line += f" {min(r):.2f}-{max(r):.2f} |" if r else " - |"
        lines.append(line)
    return "\n".join(lines)


def machine() -> str:
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu_description()}, {gpu}"


def versions() -> str:
    parts = [f"torch {torch.__version__}", f"OpenCV {cv2.__version__}"]
    try:
        import onnxruntime as ort

        parts.append(f"onnxruntime {ort.__version__}")
    except ImportError:
        pass
    return ", ".join(parts)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    p.add_argument("--runs", type=int, default=50, help="timed calls per detector, and interleaved rounds (default: 50)")
    p.add_argument("--warmup", type=int, default=5, help="untimed calls first (default: 5)")
    p.add_argument("--repeats", type=int, default=3, metavar="K",
                   help="passes of each table, sequential and interleaved in turn; each row gives the median of "
                   "its pass medians and the range of its per-pass ratio to YuNet, since this machine's speed "
                   "drifts by ~20 %% between minutes (default: 3)")
    p.add_argument("--budget", type=float, default=20.0, metavar="S",
                   help="seconds per detector alone, and x the detector count for the interleaved rounds; a slower "
                   "one stops early, after at least 5 runs (default: 20)")
    p.add_argument("--threads", type=int, default=cores, help=f"intra-op threads of every engine (default: {cores})")
    p.add_argument("--no-peers", action="store_true", help="only our detectors")
    p.add_argument("--cpu-only", action="store_true", help="no GPU rows even where CUDA is available")
    p.add_argument("--spinning", action="store_true",
                   help="also time onnxruntime with spinning threads (off in the package: see docs/benchmarks.md)")
    p.add_argument("--note", default="", help="a line for the header (e.g. what else ran on the machine)")
    p.add_argument("--json", help="also write every row as JSON here")
    p.add_argument("--markdown", help="also write the report (header and both tables) as Markdown here, for the "
                   "pages that quote it (scripts/sync_docs.py)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    image = vga_photo()
    with tempfile.TemporaryDirectory(prefix="bench-backends-") as tmp:
        os.environ.setdefault("RETINAFACE_POLYNL_CACHE", str(Path(tmp) / "cache"))  # exports of the third-party .pth
        contenders = [] if args.no_peers else peer_contenders(args, image, Path(tmp))
        contenders += our_contenders(args, image, Path(tmp))
        load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
        for k in range(max(1, args.repeats)):
            label = f" (pass {k + 1} of {args.repeats})" if args.repeats > 1 else ""
            sequential(contenders, args.warmup, args.runs, args.budget, label)
            interleaved(contenders, args.warmup, args.runs, args.budget * len(contenders), label)
        for c in contenders:
            c.finish("seq")
            c.finish("int")
        load_after = os.getloadavg() if hasattr(os, "getloadavg") else None
    stamp = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    report = "\n".join([
        f"bench_backends, {stamp}: {machine()}; {args.threads} intra-op threads for every engine; "
        f"{versions()}; {max(1, args.repeats)} pass(es) of {args.runs} runs after {args.warmup} warm-up calls; load average "
        f"{tuple(round(v, 2) for v in load_before) if load_before else '?'} before, "
        f"{tuple(round(v, 2) for v in load_after) if load_after else '?'} after"
        + (f"; {args.note}" if args.note else "") + ".",
        "",
        f"One real photo ({PHOTO.name if PHOTO.is_file() else 'astronaut.jpg'} resized to 640x480), end to end, "
        f"threshold {THRESHOLD}.",
        "",
        "**Sequential** (each detector alone):",
        "",
        table(contenders, "seq"),
        "",
        "**Interleaved** (one call of each per round):",
        "",
        table(contenders, "int"),
    ]) + "\n"
    print("\n## " + report)
    if args.markdown:
        Path(args.markdown).write_text(report, encoding="utf-8")
    if args.json:
        Path(args.json).write_text(json.dumps({"when": stamp, "machine": machine(), "threads": args.threads,
                                               "note": args.note, "rows": [c.row() for c in contenders]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
