"""Every command line the README shows, and its Python example, run as written.

The README's ``bash`` blocks are read, and each ``retinaface-polynl ...`` line is run through
the program's own ``main`` in a folder that holds what the lines name: ``photos/`` (the
bundled demo photo), ``clip.mp4`` / ``dashcam.mp4`` (a short video with a sound track made
from it), ``crowd.jpg``, ``WIDER_val/images/<event>/`` and the official ground truth under
``../shared/data``.  ``submit --tta paper`` runs with ``--tta-max-size 640`` added, so that its
40 views of the photo fit a CPU test.  A README edit whose command no longer works fails here.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import cv2
import pytest

from retinaface_polynl.cli import main
from test_media import write_test_video

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DEMO = REPO / "demo" / "astronaut.jpg"


def readme_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def readme_commands() -> list[str]:
    """The ``retinaface-polynl`` command lines of the README (those inside ``&&`` chains too),
    comments dropped."""
    commands = []
    for block in readme_blocks("bash"):
        for line in block.splitlines():
            for part in line.split("&&"):
                part = part.split("#")[0].strip()
                if part.startswith("retinaface-polynl "):
                    commands.append(part)
    return commands


@pytest.fixture
def workdir(tmp_path, monkeypatch, widerface_gt_dir):
    """A folder holding every input the README's commands name."""
    (tmp_path / "photos").mkdir()
    shutil.copy(DEMO, tmp_path / "photos" / "astronaut.jpg")
    shutil.copy(DEMO, tmp_path / "crowd.jpg")
    small = cv2.resize(cv2.imread(str(DEMO)), (160, 160), interpolation=cv2.INTER_AREA)
    write_test_video(tmp_path / "clip.mp4", [small] * 3, fps=5)
    shutil.copy(tmp_path / "clip.mp4", tmp_path / "dashcam.mp4")
    wider = tmp_path / "WIDER_val" / "images" / "0--Parade"
    wider.mkdir(parents=True)
    shutil.copy(DEMO, wider / "0_Parade_marchingband_1_20.jpg")
    (tmp_path / "demo").mkdir()
    shutil.copy(DEMO, tmp_path / "demo" / "astronaut.jpg")
    shared = tmp_path.parent / "shared"  # the README's ../shared/data, seen from the work folder
    (shared / "data").mkdir(parents=True, exist_ok=True)
    link = shared / "data" / "widerface_val_gt"
    if not link.exists():
        link.symlink_to(widerface_gt_dir, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_readme_shows_the_commands_users_need():
    commands = readme_commands()
    verbs = {c.split()[1] for c in commands}
    assert {"detect", "anonymize", "submit", "evaluate"} <= verbs, commands


def test_every_readme_command_runs(workdir, capsys):
    for command in readme_commands():
        args = command.split()[1:]
        if args[0] == "submit" and "--tta" in args:  # the paper's 40 views: run at a size a CPU test affords
            args += ["--tta-max-size", "640"]
        status = main(args)
        err = capsys.readouterr().err
        assert status == 0, f"README command failed ({status}): {command}\n{err[-2000:]}"
    assert (workdir / "out" / "astronaut.jpg").is_file() and (workdir / "faces.jsonl").is_file()
    assert (workdir / "public" / "astronaut.jpg").is_file() and any((workdir / "crops").iterdir())
    assert (workdir / "preds" / "0--Parade" / "0_Parade_marchingband_1_20.txt").is_file()


def test_the_readme_python_example_runs(workdir):
    (code,) = [b for b in readme_blocks("python") if "Detector()" in b]
    shutil.copy(DEMO, workdir / "photo.jpg")
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)  # as written, the paper's TTA included (~20 s)
    assert len(namespace["faces"]) == 1 and namespace["crops"].shape == (1, 112, 112, 3)
    assert namespace["private"].shape == cv2.imread(str(DEMO)).shape
