"""Shared fixtures: where the real data lives, and skips that say why.

The project's real data (``../shared/data`` beside the repository) is read in
place and never committed.  ``RETINAFACE_POLYNL_SHARED_DATA`` overrides the
location.  Tests that need it are skipped with the reason when it is absent.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(
    os.environ.get("RETINAFACE_POLYNL_SHARED_DATA", REPO_ROOT.parent / "shared" / "data")
)


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real data not available: {path} is absent (set RETINAFACE_POLYNL_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return _require(SHARED_DATA)


@pytest.fixture(scope="session")
def dlib_faces_dir() -> Path:
    return _require(SHARED_DATA / "faces_dlib")


@pytest.fixture(scope="session")
def mnet_checkpoint() -> Path:
    return _require(SHARED_DATA / "weights_thirdparty" / "pytorch_retinaface" / "mobilenet0.25_Final.pth")


@pytest.fixture(scope="session")
def widerface_gt_dir() -> Path:
    return _require(SHARED_DATA / "widerface_val_gt")


@pytest.fixture(scope="session")
def fddb_dir() -> Path:
    return _require(SHARED_DATA / "faces_fddb")


def read_dlib_xml(xml_path: Path) -> dict[str, list[list[float]]]:
    """dlib's imglab XML -> {file name: [[x1, y1, x2, y2], ...]} (ignored boxes skipped)."""
    from retinaface_polynl.data.dlib_xml import read_dlib_xml as read_records

    return {r.path.name: r.boxes.tolist() for r in read_records(xml_path)}


@pytest.fixture(scope="session")
def dlib_testing(dlib_faces_dir: Path) -> dict[str, list[list[float]]]:
    return read_dlib_xml(dlib_faces_dir / "testing.xml")


@pytest.fixture(scope="session")
def dlib_training(dlib_faces_dir: Path) -> dict[str, list[list[float]]]:
    return read_dlib_xml(dlib_faces_dir / "training.xml")


@pytest.fixture
def training_killed_at(monkeypatch):
    """``with training_killed_at(n): main(train_args)``: the run stops as Ctrl-C stops it when it
    reaches iteration ``n``, after the checkpoints written before it (the CLI then returns 130)."""
    from contextlib import contextmanager

    from retinaface_polynl.train.loop import Trainer

    original = Trainer.train_step

    @contextmanager
    def killed_at(iteration: int):
        def dying(self, images, targets):
            if self.iteration == iteration:
                raise KeyboardInterrupt
            return original(self, images, targets)

        monkeypatch.setattr(Trainer, "train_step", dying)
        try:
            yield
        finally:
            monkeypatch.setattr(Trainer, "train_step", original)

    return killed_at


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """One intra-op torch thread for the whole suite: the tests' tensors are small, and on a
    2-core machine shared with anything else, more threads spin against each other (measured
    here: a photo took 4 s with 2 threads and 25 ms with 1).  Subprocesses get OMP_NUM_THREADS=1."""
    import torch

    before = torch.get_num_threads()
    env_before = os.environ.get("OMP_NUM_THREADS")
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"
    yield
    torch.set_num_threads(before)
    if env_before is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    else:
        os.environ["OMP_NUM_THREADS"] = env_before
