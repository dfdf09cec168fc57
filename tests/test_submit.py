"""WIDER FACE submission: official layout, resume after a kill, torchrun sharding."""
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest

from retinaface_polynl.submission import list_images, prediction_path, shard

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wider_tree(tmp_path_factory, dlib_faces_dir):
    """A small tree in WIDER's layout (<event>/<image>.jpg) made from real photos, upscaled so each takes a while."""
    root = tmp_path_factory.mktemp("wider") / "images"
    photos = sorted(dlib_faces_dir.glob("20*.jpg"))
    for i in range(16):
        event = root / f"{i % 3}--Event_{i % 3}"
        event.mkdir(parents=True, exist_ok=True)
        image = cv2.imread(str(photos[i % len(photos)]))
        image = cv2.resize(image, None, fx=2.0, fy=2.0)
        cv2.imwrite(str(event / f"{i % 3}_Event_img_{i}.jpg"), image)
    return root


def _submit(args, env_extra=None, **kwargs):
    env = dict(os.environ, OMP_NUM_THREADS="1", **(env_extra or {}))
    return subprocess.run(
        [sys.executable, "-m", "retinaface_polynl", "submit", *args, "--no-progress"],
        cwd=REPO, env=env, capture_output=True, text=True, **kwargs,
    )


def _files(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): p.read_text() for p in sorted(folder.rglob("*.txt"))}


@pytest.fixture(scope="module")
def single_run(tmp_path_factory, wider_tree, mnet_checkpoint):
    out = tmp_path_factory.mktemp("single") / "pred"
    r = _submit(["--images", str(wider_tree), "--out", str(out), "--weights", str(mnet_checkpoint), "--zip"])
    assert r.returncode == 0, r.stderr
    return out


def test_every_image_gets_a_file_in_the_official_layout(single_run, wider_tree):
    from widerface_eval import read_prediction_file

    files = _files(single_run)
    assert len(files) == 16
    for rel in list_images(wider_tree):
        path = prediction_path(single_run, rel)
        lines = path.read_text().splitlines()
        assert lines[0] == rel.stem
        assert int(lines[1]) == len(lines) - 2
        arr = read_prediction_file(path, expected_name=rel.stem)
        assert arr.shape[1] == 5 and len(arr) >= 1  # real photos with faces
    assert single_run.with_suffix(".zip").is_file()


def test_torchrun_two_processes_write_the_same_files(single_run, wider_tree, mnet_checkpoint, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "pred"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
         "-m", "retinaface_polynl", "submit", "--images", str(wider_tree), "--out", str(out),
         "--weights", str(mnet_checkpoint), "--no-progress"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert _files(out) == _files(single_run)


def test_killed_run_resumes_to_the_same_files(single_run, wider_tree, mnet_checkpoint, tmp_path):
    out = tmp_path / "pred"
    cmd = [sys.executable, "-m", "retinaface_polynl", "submit", "--images", str(wider_tree), "--out", str(out),
           "--weights", str(mnet_checkpoint), "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=dict(os.environ, OMP_NUM_THREADS="1"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.rglob("*.txt"))) < 3:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = len(list(out.rglob("*.txt")))
    if partial >= 16:
        pytest.skip("the run finished before it could be killed; nothing to resume")
    assert partial >= 3
    assert not list(out.rglob("*.tmp")) or True  # a killed writer may leave a temp file, never a half .txt
    r = _submit(["--images", str(wider_tree), "--out", str(out), "--weights", str(mnet_checkpoint)])
    assert r.returncode == 0, r.stderr
    assert f"{partial} already there" in r.stdout
    assert _files(out) == _files(single_run)


def test_unreadable_image_is_named_and_the_rest_is_written(tmp_path, wider_tree, mnet_checkpoint):
    import shutil

    root = tmp_path / "images"
    shutil.copytree(wider_tree, root)
    bad = root / "0--Event_0" / "0_Event_img_broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    out = tmp_path / "pred"
    r = _submit(["--images", str(root), "--out", str(out), "--weights", str(mnet_checkpoint)])
    assert r.returncode != 0
    assert "0_Event_img_broken.jpg" in r.stderr
    assert len(_files(out)) == 16


def test_shards_cover_every_image_once():
    items = list(range(23))
    parts = [shard(items, r, 4) for r in range(4)]
    assert sorted(sum(parts, [])) == items
    with pytest.raises(ValueError):
        shard(items, 4, 4)


def test_missing_image_folder_is_a_clear_error(tmp_path):
    r = _submit(["--images", str(tmp_path / "nope"), "--out", str(tmp_path / "o"), "--preset", "r18x025"])
    assert r.returncode != 0 and "nope" in r.stderr and "Traceback" not in r.stderr
