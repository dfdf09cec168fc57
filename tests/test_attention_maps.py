"""The attention figure (supplementary §5): X, Y and Z norms per position over the picture."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from retinaface_polynl.cli import main
from retinaface_polynl.detector import Detector
from retinaface_polynl.visualize import NoAttentionError, attention_maps, render_attention_figure




@pytest.fixture(scope="module")
def polynl_detector(mnet_checkpoint):
    """The real checkpoint with a Poly-NL block inserted after res4, its output norm
    nudged away from the identity start so that Y is not zero."""
    det = Detector(weights=mnet_checkpoint, preset="mnet025_polynl")
    torch.manual_seed(0)
    with torch.no_grad():
        det.model.attention.norm.weight.normal_(0, 0.5)
    return det


@pytest.fixture(scope="module")
def photo(dlib_faces_dir):
    return cv2.imread(str(dlib_faces_dir / "2008_002506.jpg"))  # 500 x 375


def test_maps_are_norms_of_x_y_z(polynl_detector, photo):
    maps = attention_maps(polynl_detector, photo)
    assert maps["stride"] == 16
    for k in ("X", "Y", "Z"):
        assert maps[k].shape == (24, 32)  # ceil(375 / 16), ceil(500 / 16): padding cropped
        assert np.isfinite(maps[k]).all() and (maps[k] >= 0).all()
    assert maps["Y"].max() > 0
    # Z = X + Y: the triangle inequality holds position by position.
    assert (maps["Z"] <= maps["X"] + maps["Y"] + 1e-4).all()
    assert not np.allclose(maps["Z"], maps["X"])


def test_identity_block_has_zero_contribution(mnet_checkpoint, photo):
    det = Detector(weights=mnet_checkpoint, preset="mnet025_polynl")  # zero-initialised: Z == X
    maps = attention_maps(det, photo, max_size=256)
    assert maps["Y"].max() == 0
    np.testing.assert_allclose(maps["Z"], maps["X"])
    figure = render_attention_figure(photo, maps, panel_height=120)
    assert figure.shape[0] == 120 + 28 and figure.dtype == np.uint8


def test_figure_has_four_panels(polynl_detector, photo):
    maps = attention_maps(polynl_detector, photo)
    figure = render_attention_figure(photo, maps, panel_height=150)
    panel_w = round(500 * 150 / 375)
    assert figure.shape == (150 + 28, 4 * panel_w + 3 * 6, 3)


def test_no_attention_block_is_a_clear_error(mnet_checkpoint, photo):
    with pytest.raises(NoAttentionError, match="no attention block"):
        attention_maps(Detector(weights=mnet_checkpoint), photo)


def test_attention_command(tmp_path, dlib_faces_dir, mnet_checkpoint, capsys):
    out = tmp_path / "maps.png"
    image = str(dlib_faces_dir / "2008_002506.jpg")
    rc = main(["attention", image, "--weights", str(mnet_checkpoint), "--preset", "mnet025_polynl",
               "--output", str(out), "--height", "100"])
    assert rc == 0
    figure = cv2.imread(str(out))
    assert figure.shape[0] == 128 and figure.shape[1] > 4 * 100
    assert "stride 16" in capsys.readouterr().out
    rc = main(["attention", image, "--weights", str(mnet_checkpoint), "--output", str(tmp_path / "x.png")])
    assert rc == 2
    assert "no attention block" in capsys.readouterr().err
