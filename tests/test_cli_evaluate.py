"""``retinaface-polynl evaluate`` end to end on the official WIDER FACE val ground truth."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def test_ground_truth_of_some_events_written_back(widerface_gt_dir, tmp_path):
    from widerface_eval import load_ground_truth, write_prediction_file

    gt = load_ground_truth(widerface_gt_dir)
    events = sorted(set(gt.events))[:3]
    written_faces = 0
    for event, image, boxes in zip(gt.events, gt.images, gt.boxes):
        if event not in events:
            continue
        ok = boxes[:, 2:].min(axis=1) >= 0 if len(boxes) else np.zeros(0, bool)
        boxes = boxes[ok]
        scores = np.linspace(1.0, 0.5, len(boxes)) if len(boxes) else np.zeros(0)
        write_prediction_file(tmp_path / "pred" / event / f"{image}.txt", image, boxes, scores)
        written_faces += len(boxes)
    out = subprocess.run(
        [sys.executable, "-m", "retinaface_polynl", "evaluate", "--pred", str(tmp_path / "pred"),
         "--gt", str(widerface_gt_dir), "--json", str(tmp_path / "ap.json"), "--plot", str(tmp_path / "pr.png"),
         "--no-progress"],
        cwd=REPO, capture_output=True, text=True,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads((tmp_path / "ap.json").read_text())
    # every face of the chosen events is found exactly (precision 1 throughout, matches to faces outside a
    # setting are ignored), so each AP is those events' share of the setting's faces
    for setting in ("easy", "medium", "hard"):
        share = sum(len(k) for e, k in zip(gt.events, gt.keep[setting]) if e in events) / gt.num_faces(setting)
        assert abs(result[setting] - share) < 1e-3, (setting, result[setting], share)
    assert (tmp_path / "pr.png").stat().st_size > 10_000
    assert "easy" in out.stdout.lower()


def test_usage_errors_name_this_command(capsys):
    import pytest

    from retinaface_polynl.cli import main

    with pytest.raises(SystemExit) as info:
        main(["evaluate"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "retinaface-polynl evaluate: error: no prediction folder" in err
    assert "widerface_eval" not in err


def test_a_symlink_out_of_the_prediction_folder_is_named_and_never_shown(widerface_gt_dir, tmp_path):
    """Issue 38: the command followed a link out of --pred and printed the first line of /etc/passwd."""
    from widerface_eval import load_ground_truth

    gt = load_ground_truth(widerface_gt_dir)
    event, image = gt.events[0], gt.images[0]
    secret = tmp_path / "private" / "passwd"
    secret.parent.mkdir()
    secret.write_text("root:x:0:0:SECRET-LINE:/root:/bin/bash\n")
    link = tmp_path / "pred" / event / f"{image}.txt"
    link.parent.mkdir(parents=True)
    link.symlink_to(secret)
    out = subprocess.run(
        [sys.executable, "-m", "retinaface_polynl", "evaluate", "--pred", str(tmp_path / "pred"),
         "--gt", str(widerface_gt_dir), "--no-progress"],
        cwd=REPO, capture_output=True, text=True,
    )
    assert out.returncode != 0
    assert f"{image}.txt" in out.stderr and "leads out of the prediction folder" in out.stderr
    assert "SECRET" not in out.stdout + out.stderr and "root:x" not in out.stdout + out.stderr


def test_fddb_detections_linked_from_outside_are_refused_too(tmp_path):
    import pytest

    fddb = REPO.parent / "shared" / "data" / "faces_fddb"
    if not (fddb / "annotations.json").exists():
        pytest.skip(f"FDDB annotations not found in {fddb}")
    secret = tmp_path / "private.txt"
    secret.write_text("SECRET-LINE\n")
    (tmp_path / "pred").mkdir()
    (tmp_path / "pred" / "fold-01.txt").symlink_to(secret)
    out = subprocess.run(
        [sys.executable, "-m", "retinaface_polynl", "evaluate", "--pred", str(tmp_path / "pred"), "--gt", str(fddb),
         "--no-progress"],
        cwd=REPO, capture_output=True, text=True,
    )
    assert out.returncode != 0 and "fold-01.txt" in out.stderr and "leads out of the prediction folder" in out.stderr
    assert "SECRET" not in out.stdout + out.stderr
