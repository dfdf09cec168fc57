"""``retinaface-polynl export``: ONNX (fp32 / fp16 / INT8 / Q/DQ) files and TensorRT engines."""
from __future__ import annotations

import argparse
import logging
import os
import tempfile
from pathlib import Path

FORMATS = ("onnx", "onnx-fp16", "onnx-int8", "onnx-qdq", "tensorrt")

log = logging.getLogger(__name__)


def _size(text: str) -> tuple[int, int]:
    """'640x480' (W x H) -> (H, W)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 640x480, got {text!r}") from None
    if w < 1 or h < 1:
        raise argparse.ArgumentTypeError(f"sizes must be positive, got {text!r}")
    return h, w


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a default only where there is one to show: not for flags, nor for ``None``
    (those options say in their help what happens without them)."""

    def _get_help_string(self, action):
        if action.default is None or isinstance(action.default, bool):
            return action.help
        return super()._get_help_string(action)


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "export",
        help="export to ONNX (fp32/fp16/INT8/Q-DQ) or a TensorRT engine",
        description="Export a detector for deployment. Every ONNX file takes any batch size and input size "
        "(BGR minus (104,117,123), NCHW float32), decodes anchors inside the graph (outputs: boxes, scores, "
        "landmarks in input pixels) and records its preset and preprocessing in its metadata, so "
        "'Detector(weights=FILE)' and 'retinaface-polynl detect --weights FILE' run it with no other option. "
        "Formats: onnx (fp32, onnxruntime or TensorRT), onnx-fp16 (float16 network, float32 decoding; "
        "TensorRT or GPU onnxruntime), onnx-int8 (onnxruntime CPU: QDQ U8S8, per-channel, reduce_range), "
        "onnx-qdq (TensorRT INT8: symmetric Q/DQ, zero points 0), tensorrt (an engine file for this GPU; "
        "needs TensorRT and an NVIDIA GPU).",
        formatter_class=_HelpFormatter,
    )
    g = p.add_argument_group("model")
    g.add_argument("--weights", metavar="CKPT", help="checkpoint (ours or Pytorch_Retinaface's)")
    g.add_argument(
        "--preset",
        metavar="NAME",
        help="preset; alone: an untrained model of that architecture (for benchmarks); with --weights: "
        "overrides the checkpoint's configuration",
    )
    p.add_argument("--format", "-f", choices=FORMATS, default="onnx", help="what to write")
    p.add_argument("--output", "-o", metavar="FILE", required=True, help="file to write (.onnx or .engine)")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default: 17)")
    p.add_argument("--dynamo", action="store_true", help="use the torch.export-based exporter (slower, same graph)")
    p.add_argument(
        "--sample-size",
        type=_size,
        default="320x256",
        metavar="WxH",
        help="tracing input size (the file serves every size)",
    )
    n = p.add_argument_group("in-graph NMS (optional; by default NMS stays outside the file)")
    n.add_argument("--nms", action="store_true", help="append ONNX NonMaxSuppression (extra output 'selected')")
    n.add_argument("--nms-threshold", type=float, default=0.4, help="NMS IoU threshold")
    n.add_argument("--score-threshold", type=float, default=0.5, help="scores below are dropped before NMS")
    n.add_argument("--max-detections", type=int, default=750, help="boxes kept per image")
    q = p.add_argument_group("calibration (onnx-int8, onnx-qdq, tensorrt --precision int8)")
    q.add_argument(
        "--calibration",
        metavar="DIR",
        nargs="+",
        help="folders or files of real photos (default: the demo photo shipped with the package, demo/astronaut.jpg; "
        "a few dozen varied photos with faces calibrate better)",
    )
    q.add_argument(
        "--calibration-method",
        choices=("minmax", "entropy", "percentile"),
        default="minmax",
        help="how activation ranges are chosen from the calibration photos (onnxruntime's calibrators)",
    )
    q.add_argument(
        "--no-reduce-range",
        dest="reduce_range",
        action="store_false",
        help="onnx-int8: full 8-bit weights (for CPUs with VNNI or ARM; without it weights keep 7 bits, "
        "onnxruntime's advice for x86 without VNNI)",
    )
    c = p.add_argument_group("checking the exported file")
    c.add_argument(
        "--check",
        metavar="IMAGE",
        nargs="*",
        help="after writing, run the file and the PyTorch model on these photos (files or folders; none given: "
        "the demo photo shipped with the package) and compare every face at --check-threshold: box IoU, score and "
        "landmarks, within the tolerances of the file's precision (retinaface_polynl.export.verify); "
        "exit status 1 if they disagree (the file is kept)",
    )
    c.add_argument("--check-threshold", type=float, default=0.5, metavar="SCORE", help="faces compared from this score")
    t = p.add_argument_group("tensorrt")
    t.add_argument(
        "--precision",
        choices=("fp32", "fp16", "int8"),
        default="fp16",
        help="engine precision: which ONNX file it is built from (fp16 file, or the Q/DQ INT8 file)",
    )
    t.add_argument("--onnx", metavar="FILE", help="build the engine from this exported ONNX file instead")
    t.add_argument("--opt-size", type=_size, default="640x480", metavar="WxH", help="size kernels are tuned for")
    t.add_argument("--max-size", type=_size, default="1920x1088", metavar="WxH", help="largest input size")
    t.add_argument("--max-batch", type=int, default=8, help="largest batch")
    t.add_argument("--workspace-gb", type=float, default=2.0, help="builder workspace limit")
    t.add_argument("--engine-cache", metavar="DIR", help="engine cache folder (default ~/.cache/retinaface_polynl/tensorrt)")
    return p


def _load_model(args: argparse.Namespace):
    """(model, config, metadata to record in the file: the checkpoint's inference advice, e.g.
    the shipped weights' 640 px short side, so the exported file behaves as the checkpoint does)."""
    from ..checkpoints import load_model
    from ..detector import default_weights_path
    from ..models.retinaface import RetinaFace
    from ..presets import get_preset

    config = get_preset(args.preset) if args.preset else None
    weights = args.weights
    if weights is None and config is None:
        weights = default_weights_path()
        if weights is None:
            raise ValueError("give --weights CKPT or --preset NAME (no default weights are installed)")
    if weights is not None:
        from ..export.auto import SOURCE_KEY, file_sha256

        loaded = load_model(weights, config=config)
        inference = loaded.extra.get("inference")
        extra = {SOURCE_KEY: file_sha256(weights)}  # which checkpoint the file came from
        if inference:
            extra["inference"] = inference
        return loaded.model, loaded.config, extra
    log.warning("--preset %s without --weights: exporting an untrained network (fine for benchmarks only)", config.name)
    return RetinaFace(config).eval(), config, None


def run(args: argparse.Namespace) -> int:
    from ..export.onnx import DEFAULT_OPSET, NmsOptions, check_writable, export_onnx, read_metadata

    output = check_writable(args.output)  # fail before any work
    fmt = args.format
    if args.check is not None and fmt == "tensorrt" and args.onnx and not (args.weights or args.preset):
        raise ValueError("--check compares against the PyTorch model: give --weights CKPT (or --preset) with --onnx")
    if fmt == "tensorrt":
        from ..export.tensorrt import import_tensorrt

        import_tensorrt()  # TensorRTUnavailable (one line) without TensorRT or a GPU
    nms = (
        NmsOptions(args.nms_threshold, args.score_threshold, args.max_detections) if args.nms else None
    )
    opset = args.opset or DEFAULT_OPSET
    common = dict(nms=nms, opset=opset, dynamo=args.dynamo, sample_size=args.sample_size)

    def calibration(extra_metadata):  # at the input size the checkpoint records, as the file will run
        from ..export.quantize import DEFAULT_CALIBRATION, calibration_batches, calibration_images
        from ..pipeline import hint_rule

        images = calibration_images(args.calibration)
        print(f"calibrating on {len(images)} image(s) from {', '.join(args.calibration) if args.calibration else DEFAULT_CALIBRATION}")
        inference = (extra_metadata or {}).get("inference")
        if inference:
            size, max_size, upscale_only = hint_rule(inference)
            return calibration_batches(images, size, max_size, upscale_only=upscale_only)
        return calibration_batches(images)

    model = None
    with tempfile.TemporaryDirectory(prefix=".export-", dir=output.parent) as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        if fmt == "tensorrt" and args.onnx:
            source = Path(args.onnx)
            read_metadata(source)  # one of ours?
            if args.check is not None:
                model = _load_model(args)[0]
        else:
            model, config, extra_metadata = _load_model(args)
            common["extra_metadata"] = extra_metadata
            if fmt in ("onnx", "onnx-fp16"):
                export_onnx(model, output, config, half=fmt == "onnx-fp16", **common)
                _report(output)
                return _check(args, output, model)
            if fmt == "tensorrt" and args.precision in ("fp32", "fp16"):
                source = Path(tmp) / f"{args.precision}.onnx"
                export_onnx(model, source, config, half=args.precision == "fp16", **common)
            else:
                export_onnx(model, fp32, config, **common)
                from ..export.quantize import quantize_int8, quantize_qdq

                if fmt == "onnx-int8":
                    quantize_int8(fp32, output, calibration(extra_metadata), reduce_range=args.reduce_range, method=args.calibration_method)
                    _report(output)
                    return _check(args, output, model)
                target = output if fmt == "onnx-qdq" else Path(tmp) / "qdq.onnx"
                quantize_qdq(fp32, target, calibration(extra_metadata), method=args.calibration_method)
                if fmt == "onnx-qdq":
                    _report(output)
                    return _check(args, output, model)
                source = target
        from ..export.tensorrt import ShapeProfile, build_engine

        profile = ShapeProfile(
            min_batch=1, opt_batch=1, max_batch=args.max_batch, min_hw=(32, 32), opt_hw=args.opt_size, max_hw=args.max_size
        )
        build_engine(
            source,
            profile,
            cache_dir=args.engine_cache,
            workspace_bytes=int(args.workspace_gb * (1 << 30)),
            output=output,
        )
        print(f"wrote {output}: TensorRT engine from {source.name if args.onnx else args.precision} ONNX, "
              f"batch 1..{args.max_batch}, up to {args.max_size[1]}x{args.max_size[0]} ({os.path.getsize(output) / 1e6:.1f} MB)")
    return _check(args, output, model)


def _check(args: argparse.Namespace, output: Path, model) -> int:
    """--check: the written file against the PyTorch model on real photos (0: they agree)."""
    if args.check is None:
        return 0
    from ..detector import Detector
    from ..export.quantize import calibration_images
    from ..export.verify import format_checks, tolerance_for, verify_export

    images = calibration_images(args.check, what="check images")
    device = "cuda" if args.format == "tensorrt" else "cpu"
    reference = Detector(model=model, device=device, threshold=args.check_threshold, precision="fp32")
    exported = Detector(weights=output, device=device, threshold=args.check_threshold)
    tolerance = tolerance_for(exported.backend.precision)
    checks = verify_export(reference, exported, images, tolerance)
    print(f"checking {output.name} against PyTorch on {len(images)} photo(s):")
    print(format_checks(checks, tolerance))
    if all(c.ok for c in checks):
        return 0
    print(f"{output}: the exported file does not find the same faces as PyTorch (file kept for inspection)")
    return 1


def _report(path: Path) -> None:
    import onnx

    from ..export.onnx import graph_opset, read_metadata

    meta = read_metadata(path)
    proto = onnx.load(str(path), load_external_data=False)
    nms = " + NMS" if meta.nms else ""
    print(
        f"wrote {path}: {meta.config.name} ({meta.config.backbone}, attention={meta.config.attention}), "
        f"{meta.precision}{nms}, opset {graph_opset(proto)}, {path.stat().st_size / 1e6:.1f} MB; "
        f"run it with Detector(weights={str(path)!r})"
    )
