"""The crowd training data: VOC (faces_mask) and Caltech Web Faces readers on their real
files, ignore regions through augmentation and loss, the multi-set sampler and the
small-face sampler."""
from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from retinaface_polynl.data import load_annotations
from retinaface_polynl.data.augment import FaceSample, TrainAugment, crop, face_sizes, mirror, resize, small_face_crop
from retinaface_polynl.data.dataset import FaceDataset, MixtureSampler
from retinaface_polynl.data.layouts import detect_layout
from retinaface_polynl.data.records import ImageRecord
from retinaface_polynl.data.voc import MASK_RULE, read_voc, voc_to_face_box
from retinaface_polynl.data.webfaces import face_boxes_from_points, five_landmarks_from_points, read_webfaces_points
from retinaface_polynl.train.loss import BACKGROUND, IGNORE, MultiBoxLoss
from retinaface_polynl.anchors import AnchorGenerator


def _shared_set(shared_data: Path, name: str) -> Path:
    path = shared_data / name
    if not path.is_dir():
        pytest.skip(f"real data not available: {path} is absent")
    return path


@pytest.fixture(scope="module")
def mask_dir(shared_data: Path) -> Path:
    return _shared_set(shared_data, "faces_mask")


@pytest.fixture(scope="module")
def webfaces_dir(shared_data: Path) -> Path:
    return _shared_set(shared_data, "faces_webfaces")


# -- readers on the real files ---------------------------------------------------------

def test_mask_set_counts_as_its_readme_states(mask_dir):
    everything = load_annotations(mask_dir / "annotations")
    train = load_annotations(mask_dir / "train.txt")
    val = load_annotations(mask_dir / "val.txt")
    assert detect_layout(mask_dir / "train.txt") == "voc"
    assert detect_layout(mask_dir / "annotations" / "maksssksksss0.xml") == "voc"
    assert (len(everything), sum(len(r) for r in everything)) == (853, 4072)
    assert (len(train), len(val)) == (682, 171)
    assert not {r.path.name for r in train} & {r.path.name for r in val}
    assert all(r.path.is_file() for r in everything)
    # val.txt: every image whose number is a multiple of 5
    assert all(int(r.path.stem.replace("maksssksksss", "")) % 5 == 0 for r in val)


def test_mask_box_rule_on_a_hand_checked_face(mask_dir):
    """maksssksksss0.xml's first face is <79 105 109 142> as drawn (mask and chin); the rule moves
    it up and widens it a little, by the measured factors."""
    raw = read_voc(mask_dir / "annotations" / "maksssksksss0.xml", box_rule=None)[0]
    np.testing.assert_allclose(raw.boxes[0], [79, 105, 109, 142])
    converted = read_voc(mask_dir / "annotations" / "maksssksksss0.xml")[0]
    w_scale, h_scale, shift = MASK_RULE
    expected = [94 - 15 * w_scale, 123.5 - shift * 37 - 18.5 * h_scale, 94 + 15 * w_scale, 123.5 - shift * 37 + 18.5 * h_scale]
    np.testing.assert_allclose(converted.boxes[0], expected, atol=1e-4)
    assert converted.boxes[0, 1] < raw.boxes[0, 1] and converted.boxes[0, 3] < raw.boxes[0, 3]  # moved up
    assert converted.path.name == "maksssksksss0.jpg" and not converted.has_landmarks.any()


def test_voc_difficult_objects_become_ignore_regions(tmp_path):
    xml = tmp_path / "annotations" / "a.xml"
    xml.parent.mkdir()
    obj = "<object><name>face</name><difficult>{d}</difficult><bndbox><xmin>{x}</xmin><ymin>10</ymin><xmax>{x2}</xmax>" \
          "<ymax>40</ymax></bndbox></object>"
    xml.write_text(f"<annotation><filename>a.jpg</filename>{obj.format(d=0, x=10, x2=40)}"
                   f"{obj.format(d=1, x=50, x2=80)}</annotation>")
    (tmp_path / "list.txt").write_text("a\n")
    for labels in (xml, tmp_path / "annotations", tmp_path / "list.txt"):
        assert detect_layout(labels) == "voc"
    (r,) = read_voc(xml, box_rule=None)
    np.testing.assert_allclose(r.boxes, [[10, 10, 40, 40]])
    np.testing.assert_allclose(r.ignore, [[50, 10, 80, 40]])
    bad = tmp_path / "annotations" / "b.xml"
    bad.write_text("<annotation><filename>b.jpg</filename><object><bndbox><xmin>x</xmin></bndbox></object></annotation>")
    with pytest.raises(ValueError, match="b.xml"):
        read_voc(bad)


def test_webfaces_counts_and_rule(webfaces_dir):
    records = load_annotations(webfaces_dir / "landmarks.txt")
    assert detect_layout(webfaces_dir / "landmarks.txt") == "webfaces"
    assert (len(records), sum(len(r) for r in records)) == (2778, 6210)
    assert all(r.has_landmarks.all() for r in records)
    points = read_webfaces_points(webfaces_dir / "landmarks.txt")
    p = points["pic00001.jpg"][:1]  # eyes (237.9, 201.0) and (273.2, 205.3), nose (253.5, 230.0), mouth (253.2, 242.2)
    box = face_boxes_from_points(p)[0]
    lm = five_landmarks_from_points(p)[0]
    # the box holds all four points, eyes in its upper half and the mouth in its lower half
    assert box[0] < p[0, 0, 0] < p[0, 1, 0] < box[2] and box[1] < p[0, 0, 1] < (box[1] + box[3]) / 2 < p[0, 3, 1] < box[3]
    np.testing.assert_allclose(lm[:3], p[0, :3])  # eyes and nose as annotated
    np.testing.assert_allclose((lm[3] + lm[4]) / 2, p[0, 3], atol=1e-4)  # corners either side of the mouth centre
    assert lm[3, 0] < p[0, 3, 0] < lm[4, 0]
    r = next(r for r in records if r.path.name == "pic00001.jpg")
    np.testing.assert_allclose(r.boxes[0], box)


def test_a_corrupt_image_is_skipped_with_its_name(mask_dir, tmp_path, caplog):
    """A training set whose image cannot be decoded: the dataset names it and goes on."""
    records = load_annotations(mask_dir / "annotations" / "maksssksksss0.xml")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8not a jpeg")
    good = shutil.copy(records[0].path, tmp_path / "good.jpg")
    data = FaceDataset([ImageRecord.from_boxes(broken, records[0].boxes), ImageRecord.from_boxes(good, records[0].boxes)],
                       TrainAugment(image_size=64, crop_scales=(), distort=False, mirror_prob=0))
    image, target = data[0]
    assert image.shape == (3, 64, 64) and len(target["boxes"]) == 3
    assert "broken.jpg" in caplog.text


def test_a_repeat_drawn_in_the_same_epoch_reads_the_same_image_with_another_augmentation(mask_dir):
    """Index ``i + len`` (MixtureSampler's second round of a used-up set): the same image and
    faces, another crop; the same index twice: the same crop (the seed stays reproducible)."""
    records = load_annotations(mask_dir / "annotations" / "maksssksksss0.xml")
    data = FaceDataset(records, TrainAugment(image_size=96, distort=False), seed=5)
    first, again, repeat = data[0], data[0], data[len(records)]
    assert torch.equal(first[0], again[0]) and torch.equal(first[1]["boxes"], again[1]["boxes"])
    assert not torch.equal(first[0], repeat[0])
    plain = FaceDataset(records, TrainAugment(image_size=96, crop_scales=(), distort=False, mirror_prob=0), seed=5)
    assert torch.equal(plain[0][1]["boxes"], plain[len(records)][1]["boxes"])  # the same image's faces


def test_webfaces_reader_names_the_bad_line(tmp_path):
    f = tmp_path / "landmarks.txt"
    f.write_text("a.jpg 1 2 3 4 5 6 7 8\nb.jpg 1 2 3 x 5 6 7 8\n")
    with pytest.raises(ValueError, match=r"landmarks.txt:2"):
        read_webfaces_points(f)


# -- ignore regions ---------------------------------------------------------------------

def _sample_with_ignore() -> FaceSample:
    image = np.zeros((200, 300, 3), np.uint8)
    return FaceSample(image, np.array([[10, 10, 50, 60]], np.float32), np.zeros((1, 5, 2), np.float32),
                      np.zeros(1, bool), np.array([[200, 100, 260, 170]], np.float32))


def test_ignore_regions_follow_crop_mirror_resize():
    s = _sample_with_ignore()
    np.testing.assert_allclose(mirror(s).ignore, [[40, 100, 100, 170]])
    np.testing.assert_allclose(resize(s, 150, 100).ignore, [[100, 50, 130, 85]])
    c = crop(s, 0, 0, 230, 150)  # the region is clipped to the window
    np.testing.assert_allclose(c.ignore, [[200, 100, 230, 150]])
    tiny = crop(s, 0, 0, 230, 150, min_face_size=100)  # a face too small to learn becomes an ignore region
    assert len(tiny.boxes) == 0 and len(tiny.ignore) == 2


def test_anchors_in_ignore_regions_are_neither_face_nor_background():
    anchors = AnchorGenerator(min_sizes=((16, 32), (64, 128), (256, 512)), steps=(8, 16, 32)).for_image(320, 320)
    loss = MultiBoxLoss()
    face = torch.tensor([[20.0, 20.0, 60.0, 70.0]])
    region = torch.tensor([[200.0, 200.0, 260.0, 270.0]])
    target = {"boxes": face, "landmarks": torch.zeros(1, 5, 2), "has_landmarks": torch.zeros(1, dtype=torch.bool)}
    plain = loss.assign(anchors, [target]).labels[0]
    with_ignore = loss.assign(anchors, [{**target, "ignore": region}]).labels[0]
    lo, hi = anchors[:, :2] - anchors[:, 2:] / 2, anchors[:, :2] + anchors[:, 2:] / 2
    inside = (lo >= 200).all(1) & (hi[:, 0] <= 260) & (hi[:, 1] <= 270)  # anchors wholly inside the region
    assert inside.sum() > 10
    assert (plain[inside] == BACKGROUND).all() and (with_ignore[inside] == IGNORE).all()
    assert torch.equal(plain[~inside & (with_ignore != IGNORE)], with_ignore[~inside & (with_ignore != IGNORE)])
    assert (with_ignore == 1).sum() == (plain == 1).sum() > 0


# -- samplers -----------------------------------------------------------------------------

def test_mixture_sampler_draws_each_set_in_its_proportion():
    sizes, weights = [100, 1000, 50], [0.5, 0.2, 0.3]
    sampler = MixtureSampler(sizes, weights, epoch_size=20000, seed=3)
    sampler.set_epoch(0)
    raw = np.fromiter(iter(sampler), np.int64)
    drawn = raw % sum(sizes)  # the image each draw reads
    share = np.array([(drawn < 100).mean(), ((drawn >= 100) & (drawn < 1100)).mean(), (drawn >= 1100).mean()])
    np.testing.assert_allclose(share, weights, atol=0.015)
    assert drawn.min() >= 0
    # a small set is used up before any of its images repeats
    first = drawn[drawn >= 1100][:50]
    assert len(set(first.tolist())) == 50
    # a repeat comes as another index (its round times the total), so no two draws of an
    # epoch share an augmentation seed; the first round's indices are the images' own
    assert len(set(raw.tolist())) == len(raw)
    assert np.array_equal(raw[raw < sum(sizes)], drawn[raw < sum(sizes)])
    assert (raw >= sum(sizes)).any()
    # seeded: same epoch same draws, another epoch others; ranks split the draws; skip resumes
    again = MixtureSampler(sizes, weights, epoch_size=20000, seed=3)
    again.set_epoch(0)
    assert np.array_equal(np.fromiter(iter(again), np.int64), raw)
    again.set_epoch(1)
    assert not np.array_equal(np.fromiter(iter(again), np.int64), raw)
    ranks = [MixtureSampler(sizes, weights, 20000, num_replicas=2, rank=r, seed=3) for r in (0, 1)]
    for r in ranks:
        r.set_epoch(0)
    a, b = (np.fromiter(iter(r), np.int64) for r in ranks)
    assert np.array_equal(np.stack([a, b], 1).reshape(-1), raw)
    ranks[0].set_epoch(0, skip=7)
    assert np.array_equal(np.fromiter(iter(ranks[0]), np.int64), a[7:]) and len(ranks[0]) == len(a) - 7
    with pytest.raises(ValueError, match="weights"):
        MixtureSampler([1, 2], [1.0])


def test_small_face_sampler_shows_faces_in_its_range(mask_dir):
    records = load_annotations(mask_dir / "train.txt")[:40]
    rng = np.random.default_rng(0)
    out_size, lo, hi = 320, 6.0, 40.0
    drawn_sizes = []
    for r in records:
        sample = FaceSample(cv2.imread(str(r.path)), r.boxes, r.landmarks, r.has_landmarks)
        for _ in range(3):
            result = small_face_crop(sample, rng, out_size, (lo, hi))
            window, index = result
            assert window.image.shape == (out_size, out_size, 3)
            assert index >= 0  # the drawn face is always inside its window
            size = face_sizes(window.boxes[index : index + 1])[0]
            drawn_sizes.append(size)
    drawn_sizes = np.array(drawn_sizes)
    # the drawn face is whole in its window, so its size is the drawn one (up to rounding of the window side)
    # whatever the scale: also when the picture is made many times smaller
    big = FaceSample(np.full((600, 800, 3), 90, np.uint8), np.array([[100, 100, 500, 580]], np.float32),
                     np.zeros((1, 5, 2), np.float32), np.zeros(1, bool))
    tiny, k = small_face_crop(big, rng, out_size, (6.0, 6.0))
    assert tiny.image.shape == (out_size, out_size, 3) and abs(face_sizes(tiny.boxes[k : k + 1])[0] - 6) < 0.5
    assert (drawn_sizes >= lo * 0.95).all() and (drawn_sizes <= hi * 1.05).all()
    assert np.median(drawn_sizes) < 25  # log-uniform in [6, 40]: median ~15.5
    aug = TrainAugment(image_size=out_size, small_face_prob=1.0, small_face_range=(lo, hi))
    out = aug(FaceSample(cv2.imread(str(records[0].path)), records[0].boxes, records[0].landmarks,
                         records[0].has_landmarks), np.random.default_rng(1))
    assert out.image.shape == (out_size, out_size, 3) and len(out.boxes) >= 1
    assert small_face_crop(FaceSample(np.zeros((50, 50, 3), np.uint8)), rng, out_size) is None


def test_small_face_and_mixture_settings_are_validated():
    from retinaface_polynl.train.config import TrainConfig

    TrainConfig(image_size=32)  # the default range does not matter while small-face sampling is off
    with pytest.raises(ValueError, match="small_face_range"):
        TrainConfig(image_size=32, small_face_prob=0.5)
    with pytest.raises(ValueError, match="small_face_prob"):
        TrainConfig(small_face_prob=1.5)
    with pytest.raises(ValueError, match="mix"):
        TrainConfig(mix=(0.0, 0.0))
    assert TrainConfig.from_dict(TrainConfig(mix=(1, 2), small_face_prob=0.5).to_dict()).mix == (1.0, 2.0)


# -- the label files of make_crowd_labels.py, and ShanghaiTech --------------------------

def _scripts():
    import sys

    scripts = str(Path(__file__).resolve().parents[1] / "scripts")
    if scripts not in sys.path:
        sys.path.insert(0, scripts)
    import make_crowd_labels

    return make_crowd_labels


def test_teacher_labels_train_in_a_short_real_run(shared_data, tmp_path):
    """Two dlib photos labelled by the four teachers (make_crowd_labels' own code: their caches, fusion
    and the {made_by, images} file), their annotation without landmarks, so that the faces get the
    teachers' points where one finds them and none elsewhere; the file records who made it; training
    reads it (ignore regions, landmarks present and absent) and runs 4 real iterations with finite losses."""
    mcl = _scripts()
    for rel in (mcl.MNET, mcl.YUNET, mcl.SCRFD.replace(".param", ".bin"), mcl.CENTERFACE):
        if not (shared_data / rel).exists():
            pytest.skip(f"teacher file not available: {shared_data / rel} is absent")
    pytest.importorskip("onnx", reason="the onnx package is not installed: the CenterFace teacher needs it")
    from retinaface_polynl.cli import main

    dlib = _shared_set(shared_data, "faces_dlib")
    records = [r for r in load_annotations(dlib / "training.xml")][:2]
    for r in records:  # as a set without points: the teachers must give them
        r.landmarks[:] = 0
        r.has_landmarks[:] = False
    teachers = mcl.TEACHER_NAMES
    cache = mcl.run_teachers("dlib", records, tmp_path, lambda: mcl.Teachers(shared_data, teachers), names=teachers)
    assert all(mcl.CACHE_KEYS["scrfd"][0] in d and mcl.CACHE_KEYS["centerface"][0] in d for d in cache.values())
    entries = [mcl.merge_record(r, cache[str(r.path)], 0.6, 0.15, teachers) for r in records]
    entries[0]["ignore"].append([0, 0, 30, 30])  # one ignore region at least, whatever the teachers say
    labels = tmp_path / "dlib.json"
    mcl.write_labels(labels, entries, {"teachers": {t: {"box_rule": list(mcl.RULES[t])} for t in teachers}})
    made = __import__("json").loads(labels.read_text())
    assert set(made["made_by"]["teachers"]) == set(teachers) and len(made["images"]) == 2
    assert labels.read_text().count("\n") == 2 + 2 + 1  # one image a line
    read = load_annotations(labels)
    assert sum(int(r.has_landmarks.sum()) for r in read) >= sum(len(r) for r in records) - 1  # teachers' points
    assert any(len(r.ignore) for r in read)
    out = tmp_path / "run"
    args = ["train", "--preset", "r18x025", "--labels", str(labels), "--output", str(out), "--image-size", "128",
            "--batch-size", "2", "--max-iters", "4", "--workers", "0", "--no-progress", "--log-every", "1"]
    assert main(args) == 0
    logged = [__import__("json").loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    losses = [x["loss"] for x in logged if x.get("type") == "train"]
    assert len(losses) == 4 and np.isfinite(losses).all()


def _fake_shanghaitech(root: Path, held_out: Path) -> None:
    """Part A train IMG_1..2 and part B train IMG_1..3 (noise pictures, head points), and a held-out
    folder whose train_IMG_2.jpg names part B's IMG_2 and whose test_IMG_9.jpg is part A's IMG_1 re-encoded."""
    from scipy.io import savemat

    rng = np.random.default_rng(0)
    for part, count in (("part_A", 2), ("part_B", 3)):
        images, gt = root / part / "train_data" / "images", root / part / "train_data" / "ground-truth"
        images.mkdir(parents=True), gt.mkdir(parents=True)
        for n in range(1, count + 1):
            cv2.imwrite(str(images / f"IMG_{n}.jpg"), cv2.GaussianBlur(rng.integers(0, 255, (96, 128, 3), np.uint8), (9, 9), 3))
            points = np.array([[20.0, 20.0], [30.0, 20.0], [20.0, 30.0], [30.0, 30.0], [120.0, 90.0]])
            info = np.empty((1, 1), dtype=object)
            info[0, 0] = np.array([[(points, np.array([[len(points)]]))]], dtype=[("location", "O"), ("number", "O")])
            savemat(str(gt / f"GT_IMG_{n}.mat"), {"image_info": info})
    (root / "part_A" / "train_data" / "images" / "000.png").write_bytes(b"not a counted photo")
    held_out.mkdir()
    cv2.imwrite(str(held_out / "train_IMG_2.jpg"), np.zeros((10, 10, 3), np.uint8))
    again = cv2.imread(str(root / "part_A" / "train_data" / "images" / "IMG_1.jpg"))
    cv2.imwrite(str(held_out / "test_IMG_9.jpg"), again, [cv2.IMWRITE_JPEG_QUALITY, 80])


def test_shanghaitech_builder_leaves_out_the_held_out_photos_by_name_and_content(tmp_path):
    from retinaface_polynl.data.shanghaitech import head_boxes, read_head_points, shanghaitech_records

    root, held = tmp_path / "sht", tmp_path / "crowds_shanghaitech"
    _fake_shanghaitech(root, held)
    records, excluded = shanghaitech_records(root, held)
    names = {(p.parts[-4], p.name): why for p, why in excluded.items()}
    assert set(names) == {("part_B", "IMG_2.jpg"), ("part_A", "IMG_1.jpg")}
    assert "name" in names[("part_B", "IMG_2.jpg")] and "picture" in names[("part_A", "IMG_1.jpg")]
    assert sorted((r.path.parts[-4], r.path.name) for r in records) == [
        ("part_A", "IMG_2.jpg"), ("part_B", "IMG_1.jpg"), ("part_B", "IMG_3.jpg")]
    r = records[0]
    assert len(r) == 0 and r.ignore.shape == (5, 4)  # no faces: every head an ignore region
    pts = read_head_points(root / "part_A" / "train_data" / "ground-truth" / "GT_IMG_2.mat")
    assert pts.shape == (5, 2)
    boxes = head_boxes(pts)
    # the four close heads: mean distance to 3 nearest = (10 + 10 + 14.14) / 3; the far one is capped at 96
    np.testing.assert_allclose(boxes[0], [20 - 5.69, 20 - 5.69, 20 + 5.69, 20 + 5.69], atol=0.01)
    assert boxes[4, 2] - boxes[4, 0] == pytest.approx(96.0)


def test_shanghaitech_heads_from_a_size_on_are_background_not_ignored(tmp_path):
    """--head-ignore-below: the four close heads (11.4 px boxes) stay ignore regions, the lone one (96 px)
    is dropped, so what no teacher calls a face there is taught as background; a bad size is refused."""
    from retinaface_polynl.data.shanghaitech import head_ignore_regions, read_head_points, shanghaitech_records

    root, held = tmp_path / "sht", tmp_path / "crowds_shanghaitech"
    _fake_shanghaitech(root, held)
    pts = read_head_points(root / "part_A" / "train_data" / "ground-truth" / "GT_IMG_2.mat")
    np.testing.assert_array_equal(head_ignore_regions(pts), head_ignore_regions(pts, None))
    assert len(head_ignore_regions(pts)) == 5
    kept = head_ignore_regions(pts, 32)
    assert len(kept) == 4 and (kept[:, 2] - kept[:, 0] < 12).all()
    assert len(head_ignore_regions(pts, 11)) == 0  # every head at least 11.4 px: none ignored
    records, _ = shanghaitech_records(root, held, ignore_below=32)
    assert [r.ignore.shape for r in records] == [(4, 4)] * 3
    with pytest.raises(ValueError, match="positive"):
        shanghaitech_records(root, held, ignore_below=0)


def test_shanghaitech_fetched_photos(shared_data):
    """The fetched repository, where a session extracted it (/tmp/shanghaitech): 1,198 photos with points,
    none of them a picture of crowds_shanghaitech/ (which is not ShanghaiTech: its 38 photos match none)."""
    from retinaface_polynl.data.shanghaitech import held_out_matches, shanghaitech_photos

    root = Path("/tmp/shanghaitech")
    if not (root / "part_B").is_dir():
        pytest.skip("fetched ShanghaiTech photos not available: extract MonsterVivy/shanghaitech (commit ba0c576) "
                    "to /tmp/shanghaitech (docs/data_sources.md)")
    photos = shanghaitech_photos(root)
    assert len(photos) == 1198
    matches = held_out_matches(photos, _shared_set(shared_data, "crowds_shanghaitech"))
    assert len(matches) == 38 and all(why.startswith("name of") for why in matches.values())


def test_make_crowd_labels_command_samples_and_records_its_teachers(shared_data, tmp_path):
    """The command on 2 of the 38 street photos with the December pair: a {made_by, images} file naming
    the teachers, their views and rules and the thresholds; a second run with a teacher added runs only it."""
    mcl = _scripts()
    for rel in (mcl.MNET, mcl.YUNET, mcl.CENTERFACE):
        if not (shared_data / rel).exists():
            pytest.skip(f"teacher file not available: {shared_data / rel} is absent")
    pytest.importorskip("onnx", reason="the onnx package is not installed: the CenterFace teacher needs it")
    _shared_set(shared_data, "crowds_shanghaitech")
    import json

    args = ["--data", str(shared_data), "--out", str(tmp_path), "--sets", "shanghai", "--sample", "2"]
    assert mcl.main(args + ["--teachers", "mobilenet,yunet", "--add-score", "0.6"]) == 0
    made = json.loads((tmp_path / "shanghai.json").read_text())
    assert len(made["images"]) == 2 and made["made_by"]["add_score"] == 0.6 and made["made_by"]["sample"] == 2
    assert set(made["made_by"]["teachers"]) == {"mobilenet", "yunet"}
    assert made["made_by"]["teachers"]["yunet"]["box_rule"] == list(mcl.RULES["yunet"])
    assert all(len(e["boxes"]) > 0 for e in made["images"])  # street photos: the teachers add faces
    with np.load(tmp_path / "teacher_shanghai.npz", allow_pickle=True) as z:
        before = z["dets"].item()
    assert mcl.main(args + ["--teachers", "mobilenet,yunet,centerface"]) == 0
    with np.load(tmp_path / "teacher_shanghai.npz", allow_pickle=True) as z:
        after = z["dets"].item()
    for key, d in after.items():  # the pair's detections kept as they were, CenterFace's added
        np.testing.assert_array_equal(d["mb"], before[key]["mb"])
        assert "cb" in d
    made = json.loads((tmp_path / "shanghai.json").read_text())
    assert set(made["made_by"]["teachers"]) == {"mobilenet", "yunet", "centerface"} and made["made_by"]["add_score"] == 0.5
