"""``retinaface-polynl detect`` end to end: a folder of real photos, a short video made
from them, JSON lines, WIDER text files, batching and TTA flags."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from retinaface_polynl.cli import build_parser, main
from widerface_eval import read_prediction_file

NAMES = ("2008_002470.jpg", "2008_002506.jpg", "2008_004176.jpg", "2008_007676.jpg", "2009_004587.jpg")


@pytest.fixture()
def photo_folder(tmp_path, dlib_faces_dir, dlib_testing):
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    for i, name in enumerate(NAMES):
        shutil.copy(dlib_faces_dir / name, folder / ("sub" if i % 2 else "") / name)
    return folder


def make_video(path, dlib_faces_dir, frames=6, size=(320, 240), fps=8.0):
    """A short mp4 whose frames are real photos (resized), two frames per photo."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    assert writer.isOpened()
    for i in range(frames):
        image = cv2.imread(str(dlib_faces_dir / NAMES[(i // 2) % len(NAMES)]))
        writer.write(cv2.resize(image, size, interpolation=cv2.INTER_AREA))
    writer.release()
    return path


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_help_documents_size_colour_and_tta():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    text = sub.choices["detect"].format_help()
    for words in ("--size", "--max-size", "BGR", "original size", "--tta", "paper", "--batch-size", "--json",
                  "--wider-txt", "--output", "--weights", "--preset", "--device", "--threshold"):
        assert words in text, words


def test_detect_folder_of_photos(photo_folder, tmp_path, mnet_checkpoint, dlib_testing, capsys):
    out, jsonl, wider = tmp_path / "out", tmp_path / "faces.jsonl", tmp_path / "wider"
    rc = main(["detect", str(photo_folder), "--weights", str(mnet_checkpoint), "--output", str(out),
               "--json", str(jsonl), "--wider-txt", str(wider), "--batch-size", "4", "--show-scores"])
    assert rc == 0
    records = read_jsonl(jsonl)
    assert sorted(r["path"].split("/")[-1] for r in records) == sorted(NAMES)
    for r in records:
        name = r["path"].split("/")[-1]
        assert len(r["boxes"]) == len(r["scores"]) == len(r["landmarks"]) >= len(dlib_testing[name])
        assert all(len(b) == 4 for b in r["boxes"]) and all(np.shape(m) == (5, 2) for m in r["landmarks"])
        assert "frame" not in r
        assert (r["width"], r["height"]) == cv2.imread(r["path"]).shape[1::-1]
    # Annotated pictures mirror the folder layout; WIDER files: name, count, x y w h score.
    assert (out / "2008_002470.jpg").is_file() and (out / "sub" / "2008_002506.jpg").is_file()
    lines = (wider / "sub" / "2008_002506.txt").read_text().splitlines()
    assert lines[0] == "2008_002506" and int(lines[1]) == len(lines) - 2 >= 3
    x, y, w, h, s = map(float, lines[2].split())
    assert w > 0 and h > 0 and 0.5 < s <= 1
    # ... readable by the evaluator's reader, and the same faces as the JSON lines
    pred = read_prediction_file(wider / "sub" / "2008_002506.txt")
    rec = next(r for r in records if r["path"].endswith("2008_002506.jpg"))
    boxes = np.asarray(rec["boxes"])
    np.testing.assert_allclose(pred[:, 4], rec["scores"], atol=1e-5)
    np.testing.assert_allclose(pred[:, :2], boxes[:, :2], atol=0.01)
    np.testing.assert_allclose(pred[:, 2:4], boxes[:, 2:] - boxes[:, :2], atol=0.02)
    summary = capsys.readouterr().out
    assert "5 image(s)" in summary and "images/s" in summary and "0 failed" in summary
    assert re.search(r"images/s; \S+ on (onnxruntime|torch) fp(32|16)", summary), summary  # which engine ran
    assert "input original size" in summary  # Pytorch_Retinaface's checkpoint records no input size


def test_min_size_enlarges_small_photos_only_and_the_summary_says_so(photo_folder, tmp_path, mnet_checkpoint, capsys):
    """``--min-size PX`` is a floor on the short side: dlib's 500x375 photo is enlarged to 640 px
    (more and smaller faces found than at its own size), and the summary states the rule."""
    photo = photo_folder / NAMES[0]
    own, floor = tmp_path / "own.jsonl", tmp_path / "floor.jsonl"
    w = ["--weights", str(mnet_checkpoint)]
    assert main(["detect", str(photo), *w, "--json", str(own), "--min-size", "300"]) == 0  # already larger: as is
    assert "input short side at least 300" in capsys.readouterr().out
    assert main(["detect", str(photo), *w, "--json", str(floor), "--min-size", "640", "--max-size", "2000"]) == 0
    assert "input short side at least 640, long side <= 2000" in capsys.readouterr().out
    plain = tmp_path / "plain.jsonl"
    assert main(["detect", str(photo), *w, "--json", str(plain)]) == 0
    assert read_jsonl(own)[0]["boxes"] == read_jsonl(plain)[0]["boxes"]
    assert read_jsonl(floor)[0]["boxes"] != read_jsonl(plain)[0]["boxes"]
    with pytest.raises(SystemExit) as exit_:
        main(["detect", str(photo), *w, "--size", "480", "--min-size", "480"])
    assert exit_.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_batch_sizes_and_tta_give_consistent_json(photo_folder, tmp_path, mnet_checkpoint):
    one, four, flip = tmp_path / "1.jsonl", tmp_path / "4.jsonl", tmp_path / "flip.jsonl"
    files = [str(photo_folder / NAMES[0]), str(photo_folder / "sub" / NAMES[1])]
    w = ["--weights", str(mnet_checkpoint), "--quiet"]
    assert main(["detect", *files, *w, "--json", str(one)]) == 0
    assert main(["detect", *files, *w, "--json", str(four), "--batch-size", "4"]) == 0
    assert main(["detect", *files, *w, "--json", str(flip), "--tta", "flip"]) == 0
    a, b, c = read_jsonl(one), read_jsonl(four), read_jsonl(flip)
    for ra, rb, rc in zip(a, b, c):
        np.testing.assert_allclose(ra["boxes"], rb["boxes"], atol=0.02)
        assert len(rc["boxes"]) == len(ra["boxes"])


def test_detect_video(tmp_path, dlib_faces_dir, mnet_checkpoint, capsys):
    video = make_video(tmp_path / "clip.mp4", dlib_faces_dir)
    out, jsonl = tmp_path / "out", tmp_path / "frames.jsonl"
    rc = main(["detect", str(video), "--weights", str(mnet_checkpoint), "--output", str(out),
               "--json", str(jsonl), "--batch-size", "4"])
    assert rc == 0
    records = read_jsonl(jsonl)
    assert [r["frame"] for r in records] == list(range(6))
    assert all(r["path"] == str(video) and len(r["boxes"]) >= 1 for r in records)
    # Frames made from the same photo give the same faces.
    assert len(records[0]["boxes"]) == len(records[1]["boxes"])
    cap = cv2.VideoCapture(str(out / "clip.mp4"))
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(8.0)
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    assert len(frames) == 6 and frames[0].shape == (240, 320, 3)
    assert "1 video(s) / 6 frame(s)" in capsys.readouterr().out


def test_detect_mixed_inputs_glob_and_video_by_content(tmp_path, photo_folder, dlib_faces_dir, mnet_checkpoint):
    video = make_video(tmp_path / "clip.mp4", dlib_faces_dir, frames=2)
    disguised = tmp_path / "clip.bin"  # no known extension: recognised by its content
    shutil.copy(video, disguised)
    jsonl = tmp_path / "mixed.jsonl"
    rc = main(["detect", str(photo_folder / "sub" / "*.jpg"), str(disguised), "--weights", str(mnet_checkpoint),
               "--json", str(jsonl), "--quiet", "--max-frames", "1"])
    assert rc == 0
    records = read_jsonl(jsonl)
    assert len(records) == 3 and records[-1]["frame"] == 0 and records[-1]["path"] == str(disguised)


def test_help_states_the_exit_status():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    text = sub.choices["detect"].format_help()
    assert "exit status" in text and "1 some input failed" in text and "2 bad options" in text


def test_json_never_overwrites_a_picture(tmp_path, capsys):
    """'detect --json photos/*.jpg': the shell's first photo would become the JSON file."""
    first, second = tmp_path / "a.jpg", tmp_path / "b.jpg"
    for path in (first, second):
        cv2.imwrite(str(path), np.full((48, 64, 3), 120, np.uint8))
    before = first.read_bytes()
    rc = main(["detect", "--json", str(first), str(second), "--preset", "r18x025", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "--json" in err and str(first) in err
    assert first.read_bytes() == before


@pytest.mark.parametrize(
    "option",
    [["--size", "0"], ["--max-size", "-3"], ["--threshold", "2"], ["--nms-threshold", "1.5"], ["--max-frames", "0"],
     ["--tta-max-size", "0"], ["--device", "gpu"]],
)
def test_out_of_range_options_fail_in_one_line_before_running(option, tmp_path, capsys):
    """Each of these used to run and find no face at all (or raise a stack trace)."""
    image, jsonl = tmp_path / "a.png", tmp_path / "faces.jsonl"
    cv2.imwrite(str(image), np.full((48, 64, 3), 120, np.uint8))
    rc = main(["detect", str(image), "--preset", "r18x025", "--json", str(jsonl), "--quiet", *option])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error: ") and "\n" not in err, err
    assert not jsonl.exists()


def test_output_folder_that_is_a_file_is_named(tmp_path, capsys):
    image, taken = tmp_path / "a.png", tmp_path / "taken"
    cv2.imwrite(str(image), np.full((48, 64, 3), 120, np.uint8))
    taken.write_text("not a folder")
    assert main(["detect", str(image), "--preset", "r18x025", "--output", str(taken), "--quiet"]) == 2
    assert f"--output {taken}: exists and is not a folder" in capsys.readouterr().err


def test_rerun_with_output_inside_the_input_folder_skips_its_drawings(photo_folder, tmp_path, mnet_checkpoint):
    out = photo_folder / "annotated"
    runs = [tmp_path / "first.jsonl", tmp_path / "second.jsonl"]
    for jsonl in runs:
        assert main(["detect", str(photo_folder), "--weights", str(mnet_checkpoint), "--output", str(out),
                     "--json", str(jsonl), "--quiet"]) == 0
    assert (out / "2008_002470.jpg").is_file()  # the first run's drawings are there ...
    first, second = ([r["path"] for r in read_jsonl(j)] for j in runs)
    assert sorted(first) == sorted(second) and len(first) == len(NAMES)  # ... and not inputs of the second


def test_crops_aligned_and_named_after_the_json(photo_folder, tmp_path, mnet_checkpoint):
    """--crops: one aligned crop per face, <image>_<i>.png after the face's index in the JSON record,
    folders mirrored; the five landmarks land on the ArcFace template, scaled by --crop-size."""
    from retinaface_polynl.align import similarity_transform, template

    for size in (112, 224):
        crops, jsonl = tmp_path / f"crops{size}", tmp_path / f"faces{size}.jsonl"
        assert main(["detect", str(photo_folder), "--weights", str(mnet_checkpoint), "--crops", str(crops),
                     "--crop-size", str(size), "--json", str(jsonl), "--quiet"]) == 0
        records = read_jsonl(jsonl)
        written = sorted(p.relative_to(crops).as_posix() for p in crops.rglob("*.png"))
        expected = []
        for r in records:
            rel = Path(r["path"]).relative_to(photo_folder)
            names = [(rel.parent / f"{rel.stem}_{i}.png").as_posix() for i in range(len(r["boxes"]))]
            assert [Path(c).relative_to(crops).as_posix() for c in r["crops"]] == names
            expected += names
            image = cv2.imread(r["path"])
            for i, (marks, crop_path) in enumerate(zip(r["landmarks"], r["crops"])):
                crop = cv2.imread(crop_path)
                assert crop.shape == (size, size, 3)
                # the crop is the image warped by the similarity fitted to the (JSON-rounded) landmarks
                m = similarity_transform(np.asarray(marks), size)
                again = cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                assert np.abs(again.astype(int) - crop.astype(int)).mean() < 0.5
                mapped = np.asarray(marks) @ m[:, :2].T + m[:, 2]
                assert np.abs(mapped - template(size)).max() < 0.12 * size  # five points near the template
        assert written == sorted(expected) and len(expected) >= 15


def test_crop_size_too_small_fails_before_running(tmp_path, capsys):
    image = tmp_path / "a.png"
    cv2.imwrite(str(image), np.full((48, 64, 3), 120, np.uint8))
    rc = main(["detect", str(image), "--preset", "r18x025", "--crops", str(tmp_path / "c"), "--crop-size", "4"])
    assert rc == 2 and "--crop-size" in capsys.readouterr().err


def test_annotated_video_keeps_its_sound(tmp_path, dlib_faces_dir, mnet_checkpoint):
    from test_media import audio_seconds, write_test_video

    from retinaface_polynl.video import probe

    frames = [cv2.resize(cv2.imread(str(dlib_faces_dir / NAMES[i // 2])), (320, 240)) for i in range(4)]
    video = write_test_video(tmp_path / "talk.mov", frames, fps=8)
    out = tmp_path / "out"
    assert main(["detect", str(video), "--weights", str(mnet_checkpoint), "--output", str(out), "--quiet"]) == 0
    info = probe(out / "talk.mp4")
    assert (info.frames, info.fps, info.width, info.height, info.codec) == (4, 8, 320, 240, "h264")
    assert info.audio[0].codec == "aac" and audio_seconds(out / "talk.mp4") == pytest.approx(audio_seconds(video), abs=1e-3)
