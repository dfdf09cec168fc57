"""The light install (``pip install .``: numpy, OpenCV, onnxruntime, PyAV, tqdm) and its extras.

Each check runs in a fresh interpreter in which the optional libraries cannot be imported: a
``sitecustomize`` put first on ``PYTHONPATH`` makes ``import torch`` (and the others named)
raise ``ModuleNotFoundError`` exactly as in a virtual environment without them, while the
package itself is the installed one.  ``.ci/run`` does the same in a real light virtual
environment.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "demo" / "astronaut.jpg"
# what `pip install .` leaves out: the extras' libraries
EXTRAS_ONLY = ("torch", "torchvision", "onnx", "onnxscript", "scipy", "matplotlib")
BLOCKER = '''import sys


class _NotInstalled:
    """Imports of these top-level modules fail as they do where the module is not installed."""

    blocked = {blocked!r}

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.partition(".")[0] in cls.blocked:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None


sys.meta_path.insert(0, _NotInstalled)
'''


def pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11's tomllib")
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def run_without(tmp_path: Path, blocked: tuple[str, ...], *args: str, cwd: Path | None = None):
    """``python *args`` where the ``blocked`` modules cannot be imported."""
    site = tmp_path / ("site_without_" + "_".join(blocked))
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(BLOCKER.format(blocked=tuple(blocked)))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(site), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, *args], cwd=cwd or tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)


def test_the_blocker_makes_torch_unimportable(tmp_path):
    """The shim itself: without it torch imports here, with it ``import torch`` fails as when absent."""
    out = run_without(tmp_path, ("torch",), "-c", "import torch")
    assert out.returncode == 1 and "ModuleNotFoundError: No module named 'torch'" in out.stderr


# --------------------------------------------------------------- the package and its command line
def test_importing_the_package_loads_no_torch(tmp_path):
    """In the full environment too: ``import retinaface_polynl`` and the CLI's parser leave torch
    (and torchvision, scipy, matplotlib) unimported, so --help and --version cost no PyTorch start."""
    code = (
        "import sys, retinaface_polynl\n"
        "from retinaface_polynl.cli import build_parser\n"
        "build_parser()\n"
        "print(retinaface_polynl.__version__)\n"
        "print(sorted(m for m in ('torch', 'torchvision', 'matplotlib') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert out.returncode == 0, out.stderr
    version, loaded = out.stdout.splitlines()
    assert loaded == "[]"
    from importlib.metadata import version as installed_version

    assert version == installed_version("retinaface-polynl")
    assert version == pyproject()["project"]["version"]


def test_package_imports_without_torch_and_lazy_names_resolve(tmp_path):
    """Without torch: the package imports, its names load on first use, and ``presets`` /
    ``anonymize`` stay the functions even after their modules were imported by name."""
    code = (
        "import types, retinaface_polynl.presets, retinaface_polynl.anonymize\n"
        "from retinaface_polynl import presets, anonymize, get_preset, ATTENTION_BLOCKS, TTAConfig\n"
        "assert not isinstance(presets, types.ModuleType) and not isinstance(anonymize, types.ModuleType)\n"
        "assert 'r18x025_polynl' in presets() and get_preset('r18x025').backbone\n"
        "import retinaface_polynl\n"
        "assert 'Detector' in dir(retinaface_polynl)\n"
        "try:\n"
        "    retinaface_polynl.no_such_name\n"
        "except AttributeError as e:\n"
        "    print(e)\n"
    )
    out = run_without(tmp_path, ("torch", "torchvision"), "-c", code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "module 'retinaface_polynl' has no attribute 'no_such_name'"


def test_help_of_every_command_without_torch(tmp_path):
    from retinaface_polynl.cli import command_names

    out = run_without(tmp_path, ("torch", "torchvision"), "-m", "retinaface_polynl", "--help")
    assert out.returncode == 0, out.stderr
    for name in command_names():
        assert name in out.stdout
        sub = run_without(tmp_path, ("torch", "torchvision"), "-m", "retinaface_polynl", name, "--help")
        assert sub.returncode == 0 and "usage: retinaface-polynl " + name in sub.stdout, (name, sub.stderr)


@pytest.mark.parametrize(
    "command, extra",
    [
        (["train", "--preset", "r18x025", "--labels", "labels.txt", "--output", "run"], "train"),
        (["export", "--output", "model.onnx"], "export"),
        (["attention", str(DEMO), "--output", "maps.png"], "train"),
        (["presets"], "train"),
        (["detect", str(DEMO), "--backend", "torch", "--output", "run"], "train"),
    ],
    ids=lambda v: v[0] if isinstance(v, list) else v,
)
def test_a_command_that_needs_torch_says_which_extra_in_one_line(tmp_path, command, extra):
    out = run_without(tmp_path, ("torch", "torchvision"), "-m", "retinaface_polynl", *command)
    assert out.returncode == 2, out.stderr
    (line,) = out.stderr.splitlines()
    # the command line's own words, or those of the package's check that stopped it (e.g. 'running
    # default.pth on PyTorch needs PyTorch, ...'): one line either way, naming the extra
    assert line.startswith("error: ") and "needs PyTorch" in line, line
    assert line.endswith(f"pip install 'retinaface-polynl[{extra}]'"), line
    assert not (tmp_path / "run").exists() and not (tmp_path / "maps.png").exists()


def test_evaluate_on_the_official_files_without_scipy_says_which_extra(tmp_path, widerface_gt_dir):
    """The text ground truth needs no SciPy; the official .mat files do, and the one line says so."""
    pred = tmp_path / "pred" / "0--Parade"
    pred.mkdir(parents=True)
    (pred / "0_Parade_marchingband_1_20.txt").write_text("0_Parade_marchingband_1_20\n1\n10 10 20 20 0.9\n")
    args = ["-m", "retinaface_polynl", "evaluate", "--pred", str(tmp_path / "pred"), "--no-progress", "--gt"]
    text = run_without(tmp_path, EXTRAS_ONLY, *args, str(widerface_gt_dir / "wider_face_val_bbx_gt.txt"))
    assert text.returncode == 0 and "approximate" in text.stderr + text.stdout, text.stderr
    official = run_without(tmp_path, EXTRAS_ONLY, *args, str(widerface_gt_dir))
    assert official.returncode == 2
    (line,) = official.stderr.splitlines()
    assert line.startswith("error: ") and "SciPy" in line and "pip install 'retinaface-polynl[eval]'" in line, line


def test_each_named_extra_lists_its_library():
    """cli.OPTIONAL's extras are pyproject.toml's: the extra a message names installs the library."""
    from retinaface_polynl.cli import COMMAND_EXTRA, OPTIONAL

    project = pyproject()["project"]
    extras = project["optional-dependencies"]

    def names(requirements):
        return {r.split(";")[0].split("[")[0].split(">")[0].split("=")[0].split("<")[0].strip() for r in requirements}

    for module, (_library, extra) in OPTIONAL.items():
        assert module in names(extras[extra]), (module, extra)
    for extra in COMMAND_EXTRA.values():
        assert {"torch", "torchvision"} <= names(extras[extra])
    assert names(project["dependencies"]) == {"numpy", "opencv-python-headless", "onnxruntime", "av", "tqdm"}
    assert extras["all"] == ["retinaface-polynl[train,export,eval,heif]"]
    assert names(extras["heif"]) == {"pillow-heif"}  # media.py names this extra for HEIC photos
    assert not names(project["dependencies"]) & set(EXTRAS_ONLY)


def test_missing_extra_is_only_for_a_missing_optional_library():
    from retinaface_polynl.cli import missing_extra

    # the package's own check: its message, as it is
    own = ModuleNotFoundError("running x.pth on PyTorch needs PyTorch: pip install 'retinaface-polynl[train]'")
    assert missing_extra("detect", own) == f"error: {own}"

    assert missing_extra("export", ModuleNotFoundError("No module named 'onnx'", name="onnx")) == (
        "error: 'retinaface-polynl export' needs onnx: pip install 'retinaface-polynl[export]'")
    assert missing_extra("evaluate", ModuleNotFoundError("No module named 'scipy'", name="scipy")) == (
        "error: 'retinaface-polynl evaluate' needs SciPy: pip install 'retinaface-polynl[eval]'")
    # a part of an installed library missing, or any other module: a real error, left to propagate
    assert missing_extra("train", ModuleNotFoundError("No module named 'torch._dynamo'", name="torch._dynamo")) is None
    assert missing_extra("detect", ModuleNotFoundError("No module named 'yaml'", name="yaml")) is None


# --------------------------------------------------------------- what the light install runs
def test_the_light_install_detects_the_demo_face(tmp_path):
    """``pip install .`` and nothing else: the CLI and the Python API find her face (score > 0.99,
    about (181, 47)-(271, 173)) with none of the extras' libraries importable, and load none."""
    out = run_without(tmp_path, EXTRAS_ONLY, "-m", "retinaface_polynl", "detect", str(DEMO), "--json", "faces.jsonl",
                      "--quiet")
    assert out.returncode == 0, out.stderr[-3000:]
    (record,) = [json.loads(line) for line in (tmp_path / "faces.jsonl").read_text().splitlines()]
    assert len(record["boxes"]) == 1 and record["scores"][0] > 0.99
    box = record["boxes"][0]
    assert max(abs(a - b) for a, b in zip(box, (181, 47, 271, 173))) < 15, box

    code = (
        "import sys, cv2\n"
        "from retinaface_polynl import Detector, anonymize\n"
        f"image = cv2.imread({str(DEMO)!r})\n"
        "faces = Detector().detect(image)\n"
        "masked = anonymize(image, faces)\n"
        "print(len(faces), int((masked != image).any(axis=2).sum()))\n"
        "print(sorted(m for m in sys.modules if m.partition('.')[0] in ('torch', 'torchvision', 'scipy', 'onnx')))\n"
    )
    out = run_without(tmp_path, EXTRAS_ONLY, "-c", code)
    assert out.returncode == 0, out.stderr[-3000:]
    counts, loaded = out.stdout.splitlines()
    faces, changed = (int(v) for v in counts.split())
    assert faces == 1 and changed > 1000 and loaded == "[]"


def test_the_light_install_anonymizes_a_photo(tmp_path):
    out = run_without(tmp_path, EXTRAS_ONLY, "-m", "retinaface_polynl", "anonymize", str(DEMO), "--output", "public",
                      "--quiet")
    assert out.returncode == 0, out.stderr[-3000:]
    import cv2

    before, after = cv2.imread(str(DEMO)), cv2.imread(str(tmp_path / "public" / "astronaut.jpg"))
    assert after.shape == before.shape
    diff = cv2.absdiff(before, after).max(axis=2)
    # her face (about (181, 47)-(271, 173)) is blurred: most of its pixels move by more than 20 levels
    assert (diff[47:173, 181:271] > 20).mean() > 0.6
    # the upper right corner keeps its pixels (JPEG rewriting aside), but for the one small unsure
    # box the anonymiser masks there on purpose (16 x 19 px at (386, 84), score 0.06: a small false box
    # blurs little, a missed face costs more), whose 1.5x region ends by x 410, y 110
    assert diff[0:170, 420:512].max() < 20 and diff[115:170, 330:512].max() < 20
