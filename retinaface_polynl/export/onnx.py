"""ONNX export: one self-describing file that serves every batch and input size.

    input (B, 3, H, W) float32, BGR minus (104, 117, 123), H and W any size
      -> network (backbone, attention, FPN, SSH, heads)      -> box_deltas, class_logits, landmark_deltas
      -> anchors from the feature-map sizes (Shape/Range)    \\
      -> decoding (face probability, exp, offsets), always in float32  -> boxes (B, A, 4) x1 y1 x2 y2 input pixels
                                                                 scores (B, A) face probability
                                                                 landmarks (B, A, 5, 2) input pixels
      [-> NonMaxSuppression (option)                          -> selected (K, 3) int64: batch, 0, anchor]

Batch, height and width are dynamic axes; the anchors are generated inside the
graph from the actual feature-map sizes (``AnchorGenerator.grid_anchors`` traces
to ``Range``/``Expand``), so the anchor count ``A`` follows the input.  NMS
normally stays outside (``Detector`` does it); ``nms=NmsOptions(...)`` appends
ONNX ``NonMaxSuppression`` whose output lists the kept anchors.

The file records what a runtime needs in ``metadata_props`` (see
:func:`read_metadata`): the preset (``ModelConfig.to_dict()`` as JSON), the
preprocessing (BGR, mean, no scaling, stride), the precision, and the names of
the raw head tensors inside the graph (``box_deltas``, ``class_logits``,
``landmark_deltas``), which is where quantisation stops: everything downstream
(decoding) and beside them (anchor generation) stays in float32.

Exporters: the TorchScript-based exporter (``dynamo=False``, default: about 1 s
for the small presets on a 2-core CPU) or ``torch.export`` (``dynamo=True``: the
same graph up to 1e-4, about 13 s).  Both give the same outputs.
"""
from __future__ import annotations

import copy
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..fileio import atomic_path, scratch_path
from ..pipeline import BGR_MEAN, STRIDE  # the pre-processing the file records is the package's own
from ..presets import ModelConfig
# What a file records and a runtime reads lives in a module without torch (the light install reads it);
# re-exported here, where it was first defined.
from .format import (  # noqa: F401
    FORMAT_VERSION,
    HEAD_NAMES,
    INPUT_NAME,
    META_PREFIX,
    NMS_OUTPUT,
    OUTPUT_NAMES,
    PRECISIONS,
    PREPROCESSING,
    ExportError,
    NmsOptions,
    OnnxMetadata,
    keep_selected,
    metadata_for,
    parse_metadata,
    read_metadata,
    set_metadata,
)

log = logging.getLogger(__name__)

DEFAULT_OPSET = 17
"""Opset of exported files: 17 has every op used (LayerNormalization is not
needed: the GC block's LayerNorm exports as primitives) and TensorRT 10/11 read it."""

def fold_batchnorm(model: nn.Module) -> int:
    """Fold every eval-mode ``BatchNorm2d`` that directly follows a ``Conv2d`` into it, in place.

    Pairs are consecutive children of an ``nn.Sequential`` or attributes ``convN``/``bnN``
    of one module (torchvision's ResNet blocks and stem).  Needed before casting to
    float16: RetinaFace sees raw pixels minus the mean, so the first BatchNorm's running
    variance exceeds float16's range (6.5e4) while the folded convolution's weights do
    not.  Returns the number of folded pairs.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    folded = 0
    for parent in list(model.modules()):
        if isinstance(parent, nn.Sequential):
            names = list(parent._modules)
            for a, b in zip(names, names[1:]):
                conv, bn = parent._modules[a], parent._modules[b]
                if isinstance(conv, nn.Conv2d) and type(bn) is nn.BatchNorm2d:
                    parent._modules[a] = fuse_conv_bn_eval(conv, bn)
                    parent._modules[b] = nn.Identity()
                    folded += 1
        for name, child in list(parent._modules.items()):
            if name.startswith("conv") and isinstance(child, nn.Conv2d):
                bn_name = "bn" + name[len("conv"):]
                bn = parent._modules.get(bn_name)
                if type(bn) is nn.BatchNorm2d:
                    parent._modules[name] = fuse_conv_bn_eval(child, bn)
                    parent._modules[bn_name] = nn.Identity()
                    folded += 1
    return folded


def half_copy(model: nn.Module) -> nn.Module:
    """A float16 copy of ``model`` with BatchNorm folded first (checked against the original in float32)."""
    fused = copy.deepcopy(model).eval()
    fold_batchnorm(fused)
    x = torch.randn(1, 3, 64, 96, device=next(model.parameters()).device) * 60
    with torch.no_grad():
        want, got = model.eval()(x), fused(x)
    for a, b in zip(want, got):
        if not torch.allclose(a, b, rtol=1e-3, atol=1e-3):
            raise ExportError("folding BatchNorm into the convolutions changed the outputs; cannot make a float16 copy")
    return fused.half()


class ExportWrapper(nn.Module):
    """What is exported: ``RetinaFace.predict`` with float32 input and outputs.

    ``half=True`` runs the network (backbone to heads) in float16 between two
    casts and decodes in float32 (an explicitly typed graph, as a strongly typed
    TensorRT network wants it).  The raw head outputs are returned too so that the
    exporter names them (``HEAD_NAMES``); :func:`export_onnx` then drops them from
    the graph outputs, leaving them as named internal tensors.
    """

    def __init__(self, model: nn.Module, half: bool = False) -> None:
        super().__init__()
        self.model = model
        self.half = half

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        m = self.model
        x = images.half() if self.half else images
        features = m.features(x)
        out = m.heads(features)
        if self.half:
            out = type(out)(*(t.float() for t in out))
        sizes = [f.shape[-2:] for f in features]
        anchors = m.anchor_generator.grid_anchors(sizes, dtype=torch.float32, device=images.device)
        pred = m.decode(out, anchors)
        return (pred.boxes, pred.scores, pred.landmarks, out.box_deltas, out.class_logits, out.landmark_deltas)


def check_writable(output: str | Path) -> Path:
    """``output`` resolved, or :class:`ExportError` saying why it cannot be written."""
    path = Path(output)
    if path.exists() and path.is_dir():
        raise ExportError(f"cannot write {path}: it is a folder; give a file name, e.g. {path / 'model.onnx'}")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ExportError(f"cannot write {path}: cannot create folder {parent} ({exc.strerror or exc})") from None
    if not parent.is_dir():
        raise ExportError(f"cannot write {path}: {parent} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ExportError(f"cannot write {path}: folder {parent} is not writable ({exc.strerror or exc})") from None
    if path.exists() and not os.access(path, os.W_OK):
        raise ExportError(f"cannot write {path}: the existing file is read-only")
    return path


def save_model_atomic(model_proto: Any, output: str | Path) -> Path:
    """Write an ``onnx.ModelProto`` via a temporary file in the same folder, then rename."""
    import onnx

    path = check_writable(output)
    with atomic_path(path) as tmp:
        onnx.save(model_proto, tmp)
    return path


def _torch_export(wrapper: nn.Module, sample: Tensor, path: str, opset: int, dynamo: bool) -> None:
    names = list(OUTPUT_NAMES) + list(HEAD_NAMES)
    if dynamo:
        batch, height, width = torch.export.Dim("batch", min=1, max=1024), torch.export.Dim("height"), torch.export.Dim("width")
        torch.onnx.export(
            wrapper,
            (sample,),
            path,
            dynamo=True,
            opset_version=max(opset, 18),
            input_names=[INPUT_NAME],
            output_names=names,
            dynamic_shapes={"images": {0: batch, 2: height, 3: width}},
            verbose=False,
        )
        return
    dyn = {INPUT_NAME: {0: "batch", 2: "height", 3: "width"}}
    for n in names:
        dyn[n] = {0: "batch", 1: "anchors"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings and the exporter's deprecation notice
        torch.onnx.export(
            wrapper,
            (sample,),
            path,
            dynamo=False,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=names,
            dynamic_axes=dyn,
            do_constant_folding=True,
        )


def inline_initializer_identities(model_proto: Any) -> int:
    """Replace ``Identity(initializer)`` nodes by their own copy of the initializer.

    The TorchScript exporter deduplicates equal initializers (e.g. the all-zero
    biases of freshly folded BatchNorms) and feeds the duplicates through
    ``Identity`` nodes; a bias that is not an initializer cannot be quantised, and
    onnxruntime then cannot fuse ``DQ -> Conv -> Q`` into ``QLinearConv``.
    Returns the number of nodes removed.
    """
    from onnx import numpy_helper

    g = model_proto.graph
    inits = {t.name: t for t in g.initializer}
    graph_outputs = {o.name for o in g.output}
    keep, removed = [], 0
    for node in g.node:
        if node.op_type == "Identity" and node.input[0] in inits and node.output[0] not in graph_outputs:
            copy_ = numpy_helper.from_array(numpy_helper.to_array(inits[node.input[0]]), node.output[0])
            g.initializer.append(copy_)
            removed += 1
        else:
            keep.append(node)
    if removed:
        del g.node[:]
        g.node.extend(keep)
    return removed


def _drop_head_outputs(model_proto: Any) -> None:
    keep = [o for o in model_proto.graph.output if o.name not in HEAD_NAMES]
    missing = set(OUTPUT_NAMES) - {o.name for o in keep}
    if missing:
        raise ExportError(f"exported graph lacks outputs {sorted(missing)}")
    del model_proto.graph.output[:]
    model_proto.graph.output.extend(keep)


def add_nms(model_proto: Any, options: NmsOptions) -> None:
    """Append ONNX ``NonMaxSuppression`` on ``boxes``/``scores``; output ``selected`` (K, 3) int64.

    Each row is ``(batch index, 0, anchor index)``, highest score first within an
    image.  ``boxes`` are x1 y1 x2 y2; ``NonMaxSuppression`` with
    ``center_point_box=0`` reads (y1, x1, y2, x2) corners, and IoU does not change
    when x and y swap roles, so the boxes go in unchanged.
    """
    from onnx import TensorProto, helper

    g = model_proto.graph
    consts = {
        "nms/max_out": helper.make_tensor("nms/max_out", TensorProto.INT64, [1], [options.max_detections]),
        "nms/iou": helper.make_tensor("nms/iou", TensorProto.FLOAT, [1], [options.iou_threshold]),
        "nms/score": helper.make_tensor("nms/score", TensorProto.FLOAT, [1], [options.score_threshold]),
        "nms/axes": helper.make_tensor("nms/axes", TensorProto.INT64, [1], [1]),
    }
    g.initializer.extend(consts.values())
    g.node.extend(
        [
            helper.make_node("Unsqueeze", ["scores", "nms/axes"], ["nms/scores_bcn"], name="nms/Unsqueeze"),
            helper.make_node(
                "NonMaxSuppression",
                ["boxes", "nms/scores_bcn", "nms/max_out", "nms/iou", "nms/score"],
                [NMS_OUTPUT],
                name="nms/NonMaxSuppression",
                center_point_box=0,
            ),
        ]
    )
    g.output.append(helper.make_tensor_value_info(NMS_OUTPUT, TensorProto.INT64, ["selected", 3]))


def export_onnx(
    model: nn.Module,
    output: str | Path,
    config: ModelConfig | None = None,
    *,
    half: bool = False,
    nms: NmsOptions | None = None,
    opset: int = DEFAULT_OPSET,
    dynamo: bool = False,
    sample_size: tuple[int, int] = (256, 320),
    extra_metadata: dict[str, Any] | None = None,
) -> Path:
    """Export a :class:`~retinaface_polynl.models.retinaface.RetinaFace` to ``output``.

    Args:
        model: the model (its weights are read; it is not modified).
        output: destination ``.onnx`` file, written atomically.
        config: its :class:`ModelConfig` (default ``model.config``), recorded in the file.
        half: float16 network between float32 input/decoding (``onnx-fp16``).
        nms: append in-graph NMS with these settings (default: NMS stays outside).
        opset: ONNX opset (>= 17; the dynamo exporter uses >= 18).
        dynamo: use ``torch.export`` instead of the TorchScript-based exporter.
        sample_size: (H, W) of the tracing input; the exported graph serves any size.
        extra_metadata: more ``retinaface_polynl.*`` metadata entries.

    Raises:
        ExportError: unwritable destination, opset below 17, or a failed export.
    """
    import onnx

    config = config or getattr(model, "config", None)
    if config is None:
        raise ExportError("export_onnx needs the model's ModelConfig (model.config or config=)")
    if opset < 17:
        raise ExportError(f"opset {opset} is too old: use 17 or later")
    path = check_writable(output)
    source = next(model.parameters())
    if half:  # a float16 copy (BatchNorm folded in float32 first); the caller's model is untouched
        model = half_copy(model)
    wrapper = ExportWrapper(model, half=half).eval()
    was_training = model.training
    model.eval()
    sample = torch.randn(1, 3, *sample_size, device=source.device)
    try:
        with scratch_path(path.parent, f".{path.name}.", ".export.onnx") as tmp, torch.no_grad():
            _torch_export(wrapper, sample, tmp, opset, dynamo)
            proto = onnx.load(tmp)
    except ExportError:
        raise
    except Exception as exc:
        raise ExportError(f"ONNX export of {config.name} failed: {type(exc).__name__}: {exc}") from exc
    finally:
        model.train(was_training)
    _drop_head_outputs(proto)
    inline_initializer_identities(proto)
    if nms is not None:
        add_nms(proto, nms)
    proto.producer_name = "retinaface_polynl"
    proto.doc_string = (
        f"RetinaFace {config.name} ({config.backbone}, attention={config.attention}); input BGR minus "
        f"{BGR_MEAN}, NCHW float32, any batch/size; outputs boxes x1y1x2y2, scores, landmarks in input pixels"
    )
    set_metadata(proto, metadata_for(config, "fp16" if half else "fp32", nms, **(extra_metadata or {})))
    onnx.checker.check_model(proto)
    save_model_atomic(proto, path)
    log.debug("wrote %s (%s, opset %d, %.1f MB)", path, "fp16" if half else "fp32", opset, path.stat().st_size / 1e6)
    return path


def graph_opset(model_proto: Any) -> int:
    """The default-domain opset of a ``ModelProto``."""
    return next(o.version for o in model_proto.opset_import if o.domain in ("", "ai.onnx"))


def network_nodes(model_proto: Any, head_outputs: Sequence[str] = HEAD_NAMES) -> list[str]:
    """Names of the nodes that compute the raw head tensors (the network proper).

    Everything else (anchor generation, face probabilities, decoding, NMS) is left out, which is
    what quantisation uses to keep the decoding in float32.
    """
    producer = {}
    for node in model_proto.graph.node:
        for out in node.output:
            producer[out] = node
    missing = [h for h in head_outputs if h not in producer]
    if missing:
        raise ExportError(f"graph has no tensors named {missing}: was it exported by retinaface_polynl?")
    seen: set[int] = set()
    stack = list(head_outputs)
    names: list[str] = []
    while stack:
        node = producer.get(stack.pop())
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if node.name:
            names.append(node.name)
        stack.extend(node.input)
    return names
