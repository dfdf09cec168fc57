"""Training-state checkpoints: model + optimiser + scheduler + scaler + position + RNG.

Written with :func:`retinaface_polynl.checkpoints.save_checkpoint` (atomic:
temporary file then rename), so every training checkpoint is also a model
checkpoint that ``Detector(weights=...)`` loads.  Checkpoints are read with
``torch.load(weights_only=True)``, so every extra value is a tensor, a number,
a string, a list/tuple/dict of those, or None; RNG states are stored as tensors.
"""
from __future__ import annotations

import logging
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoints import read_checkpoint, save_checkpoint

log = logging.getLogger(__name__)

CHECKPOINT_PATTERN = re.compile(r"^(epoch|iter)_(\d+)\.pth$")


def capture_rng_state() -> dict[str, Any]:
    """The Python, NumPy, torch CPU and CUDA generators' states, as tensors."""
    py_version, py_state, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = {
        "python": {"version": py_version, "state": torch.tensor(py_state, dtype=torch.int64), "gauss": py_gauss},
        "numpy": {"name": np_name, "keys": torch.from_numpy(np_keys.astype(np.int64)), "pos": int(np_pos),
                  "has_gauss": int(np_has_gauss), "gauss": float(np_gauss)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    py = state["python"]
    random.setstate((int(py["version"]), tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_name(epoch: int, iteration: int, at_epoch_end: bool) -> str:
    return f"epoch_{epoch:04d}.pth" if at_epoch_end else f"iter_{iteration:08d}.pth"


def list_checkpoints(folder: str | Path) -> list[Path]:
    """Numbered training checkpoints of ``folder``, oldest first (by iteration stored in order of writing)."""
    folder = Path(folder)
    found = [p for p in folder.glob("*.pth") if CHECKPOINT_PATTERN.match(p.name)]
    return sorted(found, key=lambda p: p.stat().st_mtime_ns)


def save_training_checkpoint(
    folder: str | Path,
    name: str,
    model: torch.nn.Module,
    model_config,
    keep: int = 3,
    **state: Any,
) -> Path:
    """Write ``folder/name`` and ``folder/last.pth``; keep only the ``keep`` newest numbered ones."""
    folder = Path(folder)
    path = save_checkpoint(folder / name, model, model_config, **state)
    save_checkpoint(folder / "last.pth", model, model_config, **state)
    for old in list_checkpoints(folder)[:-keep]:
        if old != path:
            old.unlink(missing_ok=True)
    return path


def resolve_resume(resume: str | Path | None, output: str | Path) -> Path | None:
    """``--resume``: a path, ``auto`` (``output/last.pth`` when it exists), or None."""
    if resume is None:
        return None
    if str(resume) == "auto":
        last = Path(output) / "last.pth"
        if last.is_file():
            return last
        log.info("--resume auto: no %s yet; starting a new run", last)
        return None
    path = Path(resume)
    if not path.is_file():
        raise FileNotFoundError(f"--resume: checkpoint not found: {path}")
    return path


def read_training_state(path: str | Path) -> dict[str, Any]:
    """A training checkpoint's dict; raises ValueError when it holds no training state."""
    obj = read_checkpoint(path)
    if "optimizer" not in obj or "iteration" not in obj:
        raise ValueError(f"{path}: not a training checkpoint (no optimiser state); use --weights to start from it")
    return obj
