"""Five-point alignment onto the ArcFace template: the fit, the crops, and real faces."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import cv2
import numpy as np
import pytest

from retinaface_polynl.align import ARCFACE_TEMPLATE, align_face, align_faces, similarity_transform, template
from retinaface_polynl.detector import Detections


def least_squares_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Closed-form least-squares similarity (as complex numbers: dst = a * src + t)."""
    ms, md = src.mean(0), dst.mean(0)
    s = (src - ms) @ np.array([1, 1j])
    d = (dst - md) @ np.array([1, 1j])
    a = (np.conj(s) @ d) / (np.conj(s) @ s)
    m = np.array([[a.real, -a.imag, 0.0], [a.imag, a.real, 0.0]])
    m[:, 2] = md - m[:, :2] @ ms
    return m


def test_template_scales_with_the_crop_size():
    np.testing.assert_allclose(template(112), ARCFACE_TEMPLATE)
    np.testing.assert_allclose(template(224), 2 * ARCFACE_TEMPLATE, rtol=1e-6)
    np.testing.assert_allclose(template(56), ARCFACE_TEMPLATE / 2, rtol=1e-6)
    for bad in (0, 4, 112.5):
        with pytest.raises(ValueError, match="crop size"):
            template(bad)


def test_fit_is_the_least_squares_similarity():
    rng = np.random.default_rng(0)
    for _ in range(10):
        angle = rng.uniform(-0.8, 0.8)
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        points = (ARCFACE_TEMPLATE * rng.uniform(0.3, 4)) @ rot.T + rng.uniform(0, 500, 2) + rng.normal(0, 2, (5, 2))
        for size in (112, 224):
            m = similarity_transform(points, size)
            np.testing.assert_allclose(m, least_squares_similarity(points.astype(np.float64), template(size)), atol=1e-3)
            assert m[0, 0] == pytest.approx(m[1, 1], abs=1e-6) and m[0, 1] == pytest.approx(-m[1, 0], abs=1e-6)


def test_exact_points_map_exactly_and_crops_are_what_the_matrix_says():
    """A picture whose five marks are drawn at a rotated, scaled template: the crop puts them on the template."""
    angle, scale, shift = 0.4, 2.5, np.array([140.0, 90.0])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    points = (ARCFACE_TEMPLATE * scale) @ rot.T + shift
    image = np.zeros((480, 640, 3), np.uint8)
    for x, y in points:
        cv2.circle(image, (round(x), round(y)), 6, (255, 255, 255), -1)
    crop = align_face(image, points, 112)
    assert crop.shape == (112, 112, 3)
    for x, y in ARCFACE_TEMPLATE:  # each template point lies on its (white) mark
        assert crop[round(y), round(x)].min() > 200
    big = align_face(image, points, 224)
    for x, y in template(224):
        assert big[round(y), round(x)].min() > 200


def test_align_faces_shapes_and_errors():
    image = np.zeros((100, 100, 3), np.uint8)
    assert align_faces(image, np.zeros((0, 5, 2))).shape == (0, 112, 112, 3)
    det = Detections(np.zeros((2, 4), np.float32), np.ones(2, np.float32),
                     np.stack([ARCFACE_TEMPLATE * 0.5 + 10, ARCFACE_TEMPLATE * 0.7]).astype(np.float32))
    assert det.align(image).shape == (2, 112, 112, 3) and det.align(image, size=224).shape == (2, 224, 224, 3)
    with pytest.raises(ValueError, match="coincide"):
        align_face(image, np.full((5, 2), 30.0))
    with pytest.raises(ValueError, match="NaN"):
        align_face(image, np.full((5, 2), np.nan))


def dlib_eye_centres(xml_path):
    """{file: [(left-in-image eye centre, right eye centre, box)]} from dlib's 68-point annotations."""
    out = {}
    for im in ET.parse(xml_path).getroot().iter("image"):
        faces = []
        for box in im.iter("box"):
            pts = {int(p.get("name")): (float(p.get("x")), float(p.get("y"))) for p in box.iter("part")}
            if len(pts) < 48:
                continue
            t, l, w, h = (float(box.get(k)) for k in ("top", "left", "width", "height"))
            faces.append((np.mean([pts[i] for i in range(36, 42)], 0), np.mean([pts[i] for i in range(42, 48)], 0),
                          np.array([l, t, l + w, t + h])))
        out[im.get("file")] = faces
    return out


@pytest.fixture(scope="module")
def shipped_detector():
    from retinaface_polynl import Detector

    return Detector()


def test_real_faces_eyes_land_on_the_template(dlib_faces_dir, shipped_detector):
    """dlib's photos: the eye centres of dlib's own 68-point annotations (independent of our landmarks),
    carried through each face's alignment, land within a few pixels of the template's eyes; at
    --crop-size 224 every distance doubles."""
    errors = {112: [], 224: []}
    for name, faces in dlib_eye_centres(dlib_faces_dir / "testing_with_face_landmarks.xml").items():
        image = cv2.imread(str(dlib_faces_dir / name))
        det = shipped_detector.detect(image)
        centres = (det.boxes[:, :2] + det.boxes[:, 2:]) / 2
        for left, right, box in faces:
            d = np.linalg.norm(centres - (box[:2] + box[2:]) / 2, axis=1)
            assert d.min() < (box[2] - box[0]) / 2, f"{name}: a face was not found"
            i = int(d.argmin())
            for size in errors:
                m = similarity_transform(det.landmarks[i], size)
                eyes = np.array([left, right]) @ m[:2, :2].T + m[:, 2]
                errors[size].extend(np.linalg.norm(eyes - template(size)[:2], axis=1))
            crop = det.align(image, 112)[i]
            assert crop.shape == (112, 112, 3) and crop.std() > 10  # a picture, not the border colour
    e112, e224 = np.array(errors[112]), np.array(errors[224])
    assert len(e112) == 50  # 25 faces, two eyes each
    assert np.median(e112) < 4 and np.percentile(e112, 90) < 7, np.round(np.percentile(e112, [50, 90, 100]), 2)
    np.testing.assert_allclose(e224, 2 * e112, rtol=1e-3, atol=1e-3)
