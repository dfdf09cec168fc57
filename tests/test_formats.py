"""Picture formats a phone or a scanner writes: HEIC read (pillow-heif) or refused with the reason,
multi-page TIFF and animated GIF refused loudly (never their first page alone), JPEG truncation
decided from the JPEG's structure (bytes after the end marker are fine)."""
from __future__ import annotations

import io
import json
import sys

import cv2
import numpy as np
import pytest

from retinaface_polynl import Detections
from retinaface_polynl.cli import main
from retinaface_polynl.media import ImageReadError, expand_inputs, iter_media, read_image


def gradient(h=120, w=160) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 3 % 256, y * 5 % 256, (x + y) % 256], axis=-1).astype(np.uint8)


class NoFaces:
    """A stand-in detector: finds nothing (these tests are about files, not faces)."""

    def detect(self, image, threshold=None, tta=None, **_):  # one picture, as anonymize's search asks
        return self.detect_batch([image])[0]

    def input_scale(self, height, width, size=None, max_size=None):  # pictures enter at their own size
        return 1.0

    def detect_batch(self, images, batch_size=1, tta=None):
        return [Detections.empty() for _ in images]


@pytest.fixture()
def no_faces(monkeypatch):
    import retinaface_polynl.commands.common as common

    monkeypatch.setattr(common, "build_detector", lambda args, **kw: NoFaces())


def run(capsys, *argv):
    rc = main(list(map(str, argv)))
    captured = capsys.readouterr()
    return rc, [line for line in captured.err.splitlines() if line.startswith("error:")]


# -- JPEG truncation from the structure --------------------------------------------------------------
def jpeg(image, **params) -> bytes:
    flags = []
    if params.get("progressive"):
        flags += [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]
    if params.get("restart"):
        flags += [cv2.IMWRITE_JPEG_RST_INTERVAL, 4]
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90, *flags])
    assert ok
    return data.tobytes()


def test_jpeg_with_bytes_after_its_end_marker_is_read(tmp_path):
    """A small JPEG (under 70 KB) followed by other data (a motion photo's video, a second
    picture): whole, so it is read, the same pixels as without the trailer."""
    image = gradient()
    data = jpeg(image)
    assert len(data) < 70_000
    path = tmp_path / "motion.jpg"
    path.write_bytes(data + b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)
    np.testing.assert_array_equal(read_image(path), cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR))


@pytest.mark.parametrize("kind", [{}, {"progressive": True}, {"restart": True}])
def test_jpeg_cut_anywhere_is_truncated_and_whole_is_not(tmp_path, kind):
    rng = np.random.default_rng(1)
    image = cv2.resize(rng.integers(0, 256, (30, 40, 3), np.uint8), (320, 240), interpolation=cv2.INTER_LINEAR)
    data = jpeg(image, **kind)
    path = tmp_path / "x.jpg"
    path.write_bytes(data)
    assert read_image(path).shape == (240, 320, 3)
    for cut in (40, len(data) // 3, len(data) // 2, len(data) - 10, len(data) - 2):
        path.write_bytes(data[:cut])
        with pytest.raises(ImageReadError, match="truncated JPEG"):
            read_image(path)


def test_jpeg_cut_after_an_exif_thumbnail_is_truncated(tmp_path):
    """An EXIF thumbnail carries its own end marker inside the APP1 segment: the walk skips it."""
    thumb = jpeg(gradient(24, 32))
    payload = b"Exif\x00\x00" + b"II*\x00" + (8).to_bytes(4, "little") + b"\x00\x00" + thumb
    app1 = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    main_jpeg = jpeg(gradient(240, 320))
    data = main_jpeg[:2] + app1 + main_jpeg[2:]
    path = tmp_path / "exif.jpg"
    path.write_bytes(data)
    assert read_image(path).shape == (240, 320, 3)
    path.write_bytes(data[: len(app1) + len(main_jpeg) // 2])
    with pytest.raises(ImageReadError, match="truncated JPEG"):
        read_image(path)


# -- multi-page TIFF, animated GIF -------------------------------------------------------------------
def pil_frames(count):
    from PIL import Image

    return [Image.fromarray(np.full((48, 64, 3), 40 * (i + 1), np.uint8)) for i in range(count)]


def multi(path, count, fmt):
    frames = pil_frames(count)
    frames[0].save(path, format=fmt, save_all=True, append_images=frames[1:])
    return path


@pytest.mark.parametrize("name, fmt, words", [("scan.tif", "TIFF", "holds 3 pages"),
                                              ("clip.gif", "GIF", "holds 3 frames"),
                                              ("anim.webp", "WEBP", "holds 3 frames")])
def test_multi_page_and_animated_pictures_are_refused_loudly(tmp_path, capsys, no_faces, name, fmt, words):
    folder = tmp_path / "in"
    folder.mkdir()
    bad = multi(folder / name, 3, fmt)
    cv2.imwrite(str(folder / "single.png"), gradient())
    with pytest.raises(ImageReadError, match=words):
        read_image(bad)
    jsonl = tmp_path / "out.jsonl"
    rc, errors = run(capsys, "anonymize", folder, "--output", tmp_path / "out", "--json", jsonl, "--quiet")
    assert rc == 1 and len(errors) == 1 and str(bad) in errors[0] and words in errors[0], errors
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["single.png"]  # nothing of the refused file
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert {r["path"] for r in records if "error" in r} == {str(bad)}


def test_single_page_tiff_and_gif_still_read(tmp_path):
    for name, fmt in (("one.tif", "TIFF"), ("one.gif", "GIF")):
        pil_frames(1)[0].save(tmp_path / name, format=fmt)
        image = read_image(tmp_path / name)
        assert image.shape == (48, 64, 3) and abs(int(image.mean()) - 40) <= 1


# -- HEIC --------------------------------------------------------------------------------------------
def heic_bytes(image_bgr) -> bytes:
    pillow_heif = pytest.importorskip("pillow_heif")
    rgb = np.ascontiguousarray(image_bgr[:, :, ::-1])
    heif = pillow_heif.from_bytes(mode="RGB", size=(rgb.shape[1], rgb.shape[0]), data=rgb.tobytes())
    out = io.BytesIO()
    heif.save(out, quality=95)
    return out.getvalue()


def test_heic_photo_is_read_and_anonymised_into_png(tmp_path, capsys, no_faces):
    image = cv2.resize(gradient(60, 80), (320, 240), interpolation=cv2.INTER_LINEAR)
    folder = tmp_path / "phone"
    folder.mkdir()
    (folder / "IMG_0001.HEIC").write_bytes(heic_bytes(image))
    read = read_image(folder / "IMG_0001.HEIC")
    assert read.shape == image.shape and np.abs(read.astype(int) - image.astype(int)).mean() < 4
    rc, errors = run(capsys, "anonymize", folder, "--output", tmp_path / "out", "--quiet")
    assert rc == 0 and not errors
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["IMG_0001.png"]
    assert cv2.imread(str(tmp_path / "out" / "IMG_0001.png")).shape == image.shape


@pytest.mark.parametrize("alone", [True, False])
def test_heic_without_pillow_heif_is_refused_with_the_reason(tmp_path, capsys, monkeypatch, no_faces, alone):
    """Named alone it must not become a one-frame video; in a folder it must not be skipped silently."""
    folder = tmp_path / "phone"
    folder.mkdir()
    heic = folder / "IMG_0002.heic"
    heic.write_bytes(b"\x00\x00\x00\x1cftypheic\x00\x00\x00\x00mif1heicmiaf" + bytes(400))
    cv2.imwrite(str(folder / "other.png"), gradient())
    monkeypatch.setitem(sys.modules, "pillow_heif", None)  # import fails as when it is not installed
    assert [s.path for s in expand_inputs([folder])] == [heic, folder / "other.png"]
    rc, errors = run(capsys, "anonymize", heic if alone else folder, "--output", tmp_path / "out", "--quiet")
    assert rc == 1 and len(errors) == 1, errors
    assert str(heic) in errors[0] and "HEIC" in errors[0] and "pip install pillow-heif" in errors[0]
    written = sorted(p.name for p in (tmp_path / "out").iterdir()) if (tmp_path / "out").exists() else []
    assert written == ([] if alone else ["other.png"])
    items = list(iter_media(expand_inputs([heic])))
    assert len(items) == 1 and items[0].error and not items[0].is_video


def tiff_with_thumbnail(path, image_rgb, thumb_rgb):
    """A baseline TIFF written by hand: a full page, then a reduced-resolution page (NewSubfileType 1),
    as cameras store a preview."""
    import struct

    pages = [(image_rgb, 0), (thumb_rgb, 1)]
    out = bytearray(b"II*\x00\x00\x00\x00\x00")
    offsets = []
    for pixels, _ in pages:  # the strips first
        offsets.append(len(out))
        out += np.ascontiguousarray(pixels).tobytes()
    ifd_at = []
    for i, (pixels, subfile) in enumerate(pages):
        h, w = pixels.shape[:2]
        bps_at = len(out)
        out += struct.pack("<3H", 8, 8, 8)
        tags = [(254, 4, 1, subfile), (256, 4, 1, w), (257, 4, 1, h), (258, 3, 3, bps_at), (259, 3, 1, 1),
                (262, 3, 1, 2), (273, 4, 1, offsets[i]), (277, 3, 1, 3), (278, 4, 1, h), (279, 4, 1, pixels.size)]
        if len(out) % 2:
            out += b"\x00"
        ifd_at.append(len(out))
        out += struct.pack("<H", len(tags))
        for tag, kind, count, value in tags:
            out += struct.pack("<HHI", tag, kind, count) + (struct.pack("<HH", value, 0) if kind == 3 and count == 1
                                                           else struct.pack("<I", value))
        out += b"\x00\x00\x00\x00"  # next IFD: patched below
    struct.pack_into("<I", out, 4, ifd_at[0])
    struct.pack_into("<I", out, ifd_at[0] + 2 + 10 * 12, ifd_at[1])
    path.write_bytes(bytes(out))
    return path


def test_a_tiff_with_a_thumbnail_page_is_one_picture(tmp_path):
    image = gradient(48, 64)[:, :, ::-1]
    path = tiff_with_thumbnail(tmp_path / "camera.tif", image, image[::4, ::4])
    from PIL import Image

    with Image.open(path) as im:
        assert im.n_frames == 2  # two pages in the file
    np.testing.assert_array_equal(read_image(path), image[:, :, ::-1])
