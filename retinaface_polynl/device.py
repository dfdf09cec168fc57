"""Where the network runs and with how many threads, found without torch.

``Device`` parses ``cpu`` / ``cuda`` / ``cuda:N``; :func:`default_threads` is the intra-op
thread count engines get when none is asked for; :func:`require_torch` imports torch or says,
in one line, which extra brings it.  Below :mod:`retinaface_polynl.backends` and the export
runtimes, which all use them.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["Device", "available_cores", "default_threads", "require_torch"]


def require_torch(purpose: str):
    """``import torch``, or a one-line error naming the extra that brings it."""
    try:
        import torch
    except ImportError:
        raise ModuleNotFoundError(
            f"{purpose} needs PyTorch, which this install lacks: pip install 'retinaface-polynl[train]'"
        ) from None
    return torch


@dataclass(frozen=True)
class Device:
    """Where the network runs: ``cpu``, ``cuda`` or ``cuda:N``, parsed without torch (a
    ``torch.device`` is accepted too).  ``type`` and ``index`` as torch's."""

    type: str = "cpu"
    index: int | None = None

    @classmethod
    def parse(cls, device: "str | Device | Any") -> "Device":
        if isinstance(device, Device):
            return device
        text = str(device).strip().lower()
        match = re.fullmatch(r"(cpu|cuda)(?::(\d+))?", text)
        if match is None or (match.group(1) == "cpu" and match.group(2) not in (None, "0")):
            raise ValueError(f"unknown device {device!r}; use 'cpu', 'cuda' or 'cuda:N'")
        index = int(match.group(2)) if match.group(2) is not None and match.group(1) == "cuda" else None
        return cls(match.group(1), index)

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def torch(self):
        """This device as a ``torch.device`` (the PyTorch and TensorRT backends), after checking CUDA is there."""
        torch = require_torch(f"device {str(self)!r} on PyTorch")
        if self.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {str(self)!r} requested but CUDA is not available on this machine; use device='cpu'")
        return torch.device(str(self))


def default_threads() -> int:
    """Intra-op threads an engine gets when none are asked for: ``OMP_NUM_THREADS`` when set, else
    the cores this process may run on (what torch's own default comes to on a CPU, found without
    torch), so two engines never ask for more threads than the machine has."""
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return available_cores()


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores)
