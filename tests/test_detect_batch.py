"""``detect_batch`` / ``detect_iter`` give the detections of ``detect`` one image at a time."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose
from torchvision.ops import box_iou

from retinaface_polynl.detector import Detector

NAMES = ("2008_002470.jpg", "2008_002506.jpg", "2008_004176.jpg", "2008_007676.jpg", "2009_004587.jpg")




@pytest.fixture(scope="module")
def detector(mnet_checkpoint):
    return Detector(weights=mnet_checkpoint)


@pytest.fixture(scope="module")
def images(dlib_faces_dir):
    out = [cv2.imread(str(dlib_faces_dir / n)) for n in NAMES]
    # Two pictures of one padded size (375x500 -> 384x512) batch together; add a flipped
    # copy of one so that a batch of 3 shares a size, and a small odd-sized crop.
    out.append(np.ascontiguousarray(out[1][:, ::-1]))
    out.append(np.ascontiguousarray(out[2][50:217, 100:333]))
    return out


def _same(a, b):
    """Same faces, same order; coordinates equal up to float rounding (a batch of B runs
    other convolution kernels than a batch of 1: differences of ~1e-5..1e-3 px)."""
    assert len(a) == len(b)
    assert_allclose(a.boxes, b.boxes, atol=1e-2, rtol=0)
    assert_allclose(a.scores, b.scores, atol=1e-5, rtol=0)
    assert_allclose(a.landmarks, b.landmarks, atol=1e-2, rtol=0)


def test_detect_batch_equals_detect_one_at_a_time(detector, images):
    single = [detector.detect(im) for im in images]
    assert sum(len(d) for d in single) > 20
    detector.timings.reset()
    batched = detector.detect_batch(images, batch_size=4)
    passes = detector.timings.forward_passes
    assert passes < len(images)  # same-size pictures shared a forward pass
    for a, b in zip(single, batched):
        _same(a, b)
    for a, b in zip(single, detector.detect_batch(images, batch_size=16)):
        _same(a, b)


def test_detect_iter_streams_in_order(detector, images, dlib_faces_dir):
    expected = detector.detect_batch(images, batch_size=4)
    streamed = list(detector.detect_iter(iter(images), batch_size=2, window=3))
    assert len(streamed) == len(images)
    for a, b in zip(expected, streamed):
        _same(a, b)
    # Paths are decoded in the background thread; results still in order.
    paths = [dlib_faces_dir / n for n in NAMES]
    for a, b in zip(expected[: len(NAMES)], detector.detect_iter(paths, batch_size=2)):
        _same(a, b)


def test_single_image_or_list_accepted(detector, images):
    one = detector.detect(images[1])
    many = detector.detect([images[1], images[4]])
    assert isinstance(many, list) and len(many) == 2
    _same(one, many[0])
    stacked = np.stack([images[1], images[5]])  # a (B, H, W, 3) array is a batch
    _same(one, detector.detect_batch(stacked)[0])
    _same(one, detector.detect_batch(images[1])[0])
    _same(one, detector.detect(np.ascontiguousarray(images[1][:, :, ::-1]), rgb=True))
    assert one.to_dict()["boxes"][0] == pytest.approx(one.boxes[0].tolist(), abs=0.01)


def test_padding_to_the_largest_image_changes_results_slightly(detector, images):
    """Padding every image of a batch to the largest one: the zero (mean-colour) border
    shifts features near the bottom/right edges (and any global average, e.g. Poly-NL's),
    so scores and boxes move a little; the faces found stay the same here."""
    exact = detector.detect_batch(images, batch_size=16)
    largest = detector.detect_batch(images, batch_size=16, padding="largest")
    biggest = max(range(len(images)), key=lambda i: images[i].shape[0] * images[i].shape[1])
    _same(exact[biggest], largest[biggest])  # nothing was padded for the largest image
    max_shift = 0.0
    for a, b in zip(exact, largest):
        assert len(a) == len(b)
        if len(a):
            iou = box_iou(torch.from_numpy(a.boxes), torch.from_numpy(b.boxes)).diagonal()
            assert float(iou.min()) > 0.9
            max_shift = max(max_shift, float(np.abs(a.boxes - b.boxes).max()))
            assert_allclose(a.scores, b.scores, atol=0.05)
    assert max_shift > 0  # and it is not identical: that is why "exact" is the default


def test_size_and_max_size(detector, images):
    image = images[1]  # 375 x 500
    full = detector.detect(image)
    small = detector.detect(image, max_size=400)
    assert len(small) == len(full)
    iou = box_iou(torch.from_numpy(full.boxes), torch.from_numpy(small.boxes)).max(1).values
    assert float(iou.min()) > 0.7  # back in original pixels
    big = detector.detect_batch([image], size=600)[0]
    assert len(big) == len(full)
