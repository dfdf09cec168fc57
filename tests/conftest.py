"""Shared fixtures: where the real data lives, and skips that say why.

The project's real data (``../shared/data`` beside the repository) is read in
place and never committed.  ``RETINAFACE_POLYNL_SHARED_DATA`` overrides the
location.  Tests that need it are skipped with the reason when it is absent.

Tests that need PyTorch carry the ``torch`` marker, set here from what each test file imports
(read with :mod:`ast`, nothing imported): a file that imports ``torch``, ``torchvision``, one of
the package's PyTorch modules (:data:`TORCH_MODULES`) or a test file or script that does, outside
its ``test_*`` functions, is marked as a whole; a ``test_*`` function that imports one itself is
marked alone; so is a test using a fixture of :data:`TORCH_FIXTURES` (a ``.pth`` to run,
training), and those :data:`TORCH_TESTS` names; ``@pytest.mark.torch`` marks others.  Where torch cannot be imported (the light
install, ``pip install .``) marked tests are skipped with the reason (files that import torch at
the top are then never imported), and so is any other test, or test file, that stops on the
``ModuleNotFoundError`` of a missing torch (a fixture that builds a PyTorch model, a ``.pth``):
``python -m pytest`` there runs the tests that need no torch and names the others.  That the
default path itself needs no torch is not left to these skips: tests/test_light_install.py runs
it in interpreters without torch, and tests/test_import_graph.py checks its imports.
"""
from __future__ import annotations

import ast
import functools
import importlib
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


TESTS = Path(__file__).resolve().parent
# Imports that mean "needs PyTorch": the libraries, and the package's modules that are PyTorch by
# design (the network, training, .pth checkpoints, FLOP counting); a prefix covers its submodules.
TORCH_MODULES = ("torch", "torchvision", "retinaface_polynl.models", "retinaface_polynl.train",
                 "retinaface_polynl.checkpoints", "retinaface_polynl.complexity")
# where a plain ``import name`` of a test finds another test file or a script (tests put scripts/ on sys.path)
LOCAL_MODULES = (TESTS, REPO_ROOT / "scripts")
# fixtures whose users need PyTorch: a Pytorch_Retinaface .pth runs on it; training is PyTorch
TORCH_FIXTURES = {"mnet_checkpoint", "training_killed_at"}
# tests that need PyTorch where nothing above shows it: they run a command that needs it in a
# subprocess or through the CLI, which turns the missing torch into its one-line message
TORCH_TESTS = {
    "test_bad_inputs.py::test_train_labels_missing_or_garbage": "runs 'train'",
    "test_submit.py::test_missing_image_folder_is_a_clear_error": "'--preset' builds an untrained PyTorch model",
}


@functools.cache
def torch_importable() -> bool:
    try:
        importlib.import_module("torch")
    except ImportError:
        return False
    return True


def _torch_import(node: ast.AST) -> bool:
    """Whether ``node`` imports a torch module (or a test file that needs one at import)."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        names = [node.module]
    elif (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "importorskip"
          and node.args and isinstance(node.args[0], ast.Constant)):
        names = [node.args[0].value]
    else:
        return False
    for name in names:
        if any(name == m or name.startswith(m + ".") for m in TORCH_MODULES):
            return True
        local = [folder / f"{name}.py" for folder in LOCAL_MODULES if (folder / f"{name}.py").is_file()]
        if local and torch_needs(local[0])[0]:
            return True  # e.g. 'from test_detector_core import match', 'import eval_crowd'
    return False


@functools.cache
def torch_needs(path: Path) -> tuple[bool, frozenset[str]]:
    """(whether the test file as a whole needs torch, the ``test_*`` functions that import it themselves)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    whole, tests = False, set()
    for stmt in tree.body:
        uses = any(_torch_import(node) for node in ast.walk(stmt))
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and stmt.name.startswith("test"):
            if uses:
                tests.add(stmt.name)
        elif uses:  # a top-level import, a fixture, a helper or a class: the whole file
            whole = True
    return whole, frozenset(tests)


def missing_torch(exc: BaseException | None) -> ModuleNotFoundError | None:
    """The ``ModuleNotFoundError`` of an absent torch / torchvision behind ``exc`` (itself, or what
    it was raised from), or ``None``."""
    while exc is not None:
        if isinstance(exc, ModuleNotFoundError) and (exc.name or "").partition(".")[0] in ("torch", "torchvision"):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


class _SkippedFile(pytest.File):
    """A test file that imports torch where torch is not importable: skipped, never imported."""

    def collect(self):
        pytest.skip(f"needs PyTorch ({self.path.name} imports it; install the train extra)")


class _TorchlessModule(pytest.Module):
    """A test file collected where torch is not importable: skipped if importing it needs torch."""

    def collect(self):
        try:
            return super().collect()
        except self.CollectError as exc:
            if missing_torch(exc) is None:
                raise
            pytest.skip(f"needs PyTorch (importing {self.path.name} imports it; install the train extra)")


def pytest_pycollect_makemodule(module_path: Path, parent):
    if module_path.parent != TESTS or torch_importable():
        return None
    if torch_needs(module_path)[0]:
        return _SkippedFile.from_parent(parent, path=module_path)
    return _TorchlessModule.from_parent(parent, path=module_path)


def _skip_if_torch_missing(item):
    try:
        return (yield)
    except Exception as exc:
        missing = missing_torch(exc) if not torch_importable() else None
        if missing is None:
            raise
        pytest.skip(f"needs PyTorch (stopped on: {missing}; install the train extra)")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    return (yield from _skip_if_torch_missing(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    return (yield from _skip_if_torch_missing(item))


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason="needs PyTorch, which cannot be imported here (install the train extra)")
    for item in items:
        if item.path.parent == TESTS and item.path.suffix == ".py":
            whole, tests = torch_needs(item.path)
            name = getattr(item, "originalname", item.name)
            if (whole or name in tests or TORCH_FIXTURES & set(getattr(item, "fixturenames", ()))
                    or f"{item.path.name}::{name}" in TORCH_TESTS):
                item.add_marker(pytest.mark.torch)
        if item.get_closest_marker("torch") and not torch_importable():
            item.add_marker(skip)


def pytest_report_header(config):
    if torch_importable():
        return None
    return "torch: not importable: tests marked 'torch' are skipped"


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
    """One intra-op torch thread for the whole suite (where torch is installed): the tests'
    tensors are small, and on a 2-core machine shared with anything else, more threads spin
    against each other (measured here: a photo took 4 s with 2 threads and 25 ms with 1).
    Subprocesses get OMP_NUM_THREADS=1."""
    torch = importlib.import_module("torch") if torch_importable() else None
    before = torch.get_num_threads() if torch else None
    env_before = os.environ.get("OMP_NUM_THREADS")
    if torch:
        torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"
    yield
    if torch:
        torch.set_num_threads(before)
    if env_before is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    else:
        os.environ["OMP_NUM_THREADS"] = env_before
