"""The PyTorch backend: the in-memory model behind the same call as the exported-file backends
(:class:`~retinaface_polynl.export.runtime.OnnxRuntimeBackend`,
:class:`~retinaface_polynl.export.tensorrt.TensorRTBackend`): a float32 batch (B, 3, H, W) in,
decoded ``boxes``, ``scores``, ``landmarks`` numpy arrays out (torch stays inside this module).  Knows nothing of ``Detector``,
which composes whichever backend runs with :mod:`retinaface_polynl.pipeline`.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager

import numpy as np
import torch

__all__ = ["TorchBackend", "torch_threads"]


# torch's intra-op thread count is one number for the whole process: a call that changes it holds
# this lock until it has put the count back, so two threads calling detectors at once (or two
# detectors with different ``threads``) can never leave it wrong or run with each other's count.
_THREAD_COUNT_LOCK = threading.RLock()


@contextmanager
def torch_threads(threads: int | None):
    """Run a block with ``threads`` torch intra-op threads, then restore the caller's count
    (``None``: leave torch's setting alone).  Per call rather than process-wide, so two
    detectors with different settings, or the caller's own torch code, do not change each
    other; calls that set a count are serialised (``_THREAD_COUNT_LOCK``), since the count is
    the process's."""
    if threads is None:
        yield
        return
    with _THREAD_COUNT_LOCK:
        before = torch.get_num_threads()
        if threads != before:
            torch.set_num_threads(threads)
        try:
            yield
        finally:
            if threads != before:
                torch.set_num_threads(before)


class TorchBackend:
    """Runs the PyTorch model; returns decoded boxes, scores and landmarks for every anchor.

    ``threads``: torch intra-op threads during each call (``None``: torch's own setting).
    ``precision="fp16"``: the network (backbone to heads) runs under float16 autocast and
    the anchors are decoded in float32, as the fp16 ONNX export does; the model's own
    weights stay float32 (so the first BatchNorm's variance, above float16's range, is
    never stored in float16), and ``model`` stays the one the caller may fine-tune.
    """

    name = "torch"

    def __init__(
        self, model: torch.nn.Module, device: torch.device, threads: int | None = None, precision: str = "fp32"
    ) -> None:
        if precision not in ("fp32", "fp16"):
            raise ValueError(f"the torch backend runs fp32 or fp16, got precision={precision!r}")
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.threads = threads
        self.precision = precision

    @torch.inference_mode()
    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        with torch_threads(self.threads):
            x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
            if self.precision == "fp16":
                p = self._predict_half(x)
            else:
                p = self.model.predict(x)
            return p.boxes.float().cpu().numpy(), p.scores.float().cpu().numpy(), p.landmarks.float().cpu().numpy()

    def _predict_half(self, x: torch.Tensor):
        m = self.model
        with torch.autocast(self.device.type, dtype=torch.float16):
            features = m.features(x)
            out = m.heads(features)
        out = type(out)(*(t.float() for t in out))
        anchors = m.anchor_generator.grid_anchors([f.shape[-2:] for f in features], dtype=torch.float32, device=x.device)
        return m.decode(out, anchors)
