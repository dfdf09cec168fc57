"""Attention blocks: registry, shapes / dtypes / odd sizes, identity at initialisation,
linear cost of Poly-NL (FLOPs and largest tensor, no timing) and ONNX round trips.

The supplementary's §1 polynomial equivalences are in test_polynomial_equivalence.py.
"""
from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn
from torch.testing import assert_close
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from retinaface_polynl.models.attention import (
    ATTENTION_BLOCKS,
    EfficientNL,
    GlobalContext,
    LatentGNN,
    NonLocal,
    PolyNL,
    PolyNL2,
    SqueezeExcite,
    build_attention,
)

C = 16
RESIDUAL = [name for name in ATTENTION_BLOCKS if name != "se"]
SIZES = [(33, 47), (1, 1), (7, 5)]
CLASSES = {
    "polynl": PolyNL,
    "polynl2": PolyNL2,
    "nonlocal": NonLocal,
    "gc": GlobalContext,
    "se": SqueezeExcite,
    "latentgnn": LatentGNN,
    "efficientnl": EfficientNL,
}




def _randomise(block: nn.Module, std: float = 0.3, seed: int = 0) -> nn.Module:
    """Non-zero everything (the zero-initialised last layers included), BN stats plausible."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in block.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)
        for m in block.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(1.0 + 0.2 * torch.randn(m.weight.shape, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
    return block


# --------------------------------------------------------------------------- registry


def test_registry_names_and_classes() -> None:
    assert set(ATTENTION_BLOCKS) == set(CLASSES)
    assert "none" not in ATTENTION_BLOCKS and "tesa" not in ATTENTION_BLOCKS
    for name, cls in CLASSES.items():
        block = build_attention(name, C)
        assert type(block) is cls
        assert block.channels == C
        assert callable(block.reset_parameters)
        assert cls.__doc__ and "O(" in cls.__doc__, f"{cls.__name__} docstring must state its complexity"
    assert isinstance(build_attention("PolyNL", C), PolyNL)  # case-insensitive


@pytest.mark.parametrize("name", [None, "none", "None"])
def test_none_is_identity(name: str | None) -> None:
    assert isinstance(build_attention(name, C), nn.Identity)


def test_unknown_name_raises_value_error_naming_choices() -> None:
    with pytest.raises(ValueError) as info:
        build_attention("tesa", C)
    message = str(info.value)
    assert "'tesa'" in message
    for name in ("none", *ATTENTION_BLOCKS):
        assert name in message


def test_kwargs_reach_the_block() -> None:
    block = build_attention("polynl", 32, inner_channels=8)
    assert block.inner_channels == 8 and block.w0 is not None
    assert build_attention("nonlocal", 32).inner_channels == 16
    assert build_attention("latentgnn", 32, latent_nodes=5).latent_nodes == 5
    assert build_attention("efficientnl", 32, heads=4).heads == 4
    assert build_attention("se", 64).hidden_channels == 8 and build_attention("se", 256).hidden_channels == 16
    with pytest.raises(ValueError):
        build_attention("efficientnl", 32, heads=3)
    with pytest.raises(ValueError):
        build_attention("polynl", 0)
    with pytest.raises(TypeError):
        build_attention("gc", 32, no_such_option=1)


# --------------------------------------------------------------------------- shapes / dtypes


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("name", ATTENTION_BLOCKS)
def test_any_size_forward_backward(name: str, dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    block = _randomise(build_attention(name, C)).to(dtype).train()
    for h, w in SIZES:
        x = torch.randn(2, C, h, w, dtype=dtype, requires_grad=True)
        z = block(x)
        assert z.shape == x.shape and z.dtype == dtype
        (z.float() ** 2).mean().backward()
        assert torch.isfinite(z.float()).all() and torch.isfinite(x.grad.float()).all()
        for pname, p in block.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad.float()).all(), pname
        block.zero_grad(set_to_none=True)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("name", ATTENTION_BLOCKS)
def test_low_precision_matches_float32(name: str, dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    block = _randomise(build_attention(name, C), std=0.2).eval()
    x = torch.randn(2, C, 7, 5)
    with torch.no_grad():
        ref = block(x)
        low = block.to(dtype)(x.to(dtype)).float()
    assert_close(low, ref, rtol=0.05, atol=0.1)


@pytest.mark.parametrize("name", ATTENTION_BLOCKS)
def test_forward_parts(name: str) -> None:
    block = _randomise(build_attention(name, C)).eval()
    x = torch.randn(2, C, 9, 6)
    with torch.no_grad():
        x_, y, z = block.forward_parts(x)
        assert x_ is x and y.shape == x.shape and z.shape == x.shape
        assert_close(z, block(x))
        assert_close(x_ + y, z)


def test_polynl_reduced_inner_width_by_hand() -> None:
    """C = 2, C' = 1 (reduction 2: the ``⊙ X`` term goes through W0), two positions, worked by hand:
    x_1 = (1, 2), x_2 = (3, 4); W1 = (1, 0), W2 = (0, 1), W0 = (1, 1), W3 = (1, 2)ᵀ.
    X W1 ⊙ X W2 = (1·2, 3·4) = (2, 12), Φ = their mean = 7; X W0 = (1+2, 3+4) = (3, 7);
    Φ ⊙ X W0 = (21, 49); times W3: channel 0 (21, 49), channel 1 (42, 98)."""
    block = PolyNL(2, reduction=2).eval()
    assert block.inner_channels == 1 and block.w0 is not None
    with torch.no_grad():
        block.w1.weight.copy_(torch.tensor([1.0, 0.0]).view(1, 2, 1, 1))
        block.w2.weight.copy_(torch.tensor([0.0, 1.0]).view(1, 2, 1, 1))
        block.w0.weight.copy_(torch.tensor([1.0, 1.0]).view(1, 2, 1, 1))
        block.w3.weight.copy_(torch.tensor([1.0, 2.0]).view(2, 1, 1, 1))
        x = torch.tensor([[1.0, 3.0], [2.0, 4.0]]).view(1, 2, 1, 2)  # (B, C, H, W): positions (1, 2), (3, 4)
        y = block.polynomial_term(x)
    assert y.tolist() == [[[[21.0, 49.0]], [[42.0, 98.0]]]]


def test_polynl_reduced_inner_width_is_the_third_order_sum() -> None:
    """C' = C / 4: ``y[n, b] = (1/N) Σ_m Σ_d w3(b,d) (x_m·w1_d) (x_m·w2_d) (x_n·w0_d)`` term by term in
    float64 numpy (the supplementary's third-order polynomial, written out), against the block."""
    import numpy as np

    block = _randomise(PolyNL(C, reduction=4)).eval()
    assert block.inner_channels == 4
    x = torch.randn(2, C, 5, 3)
    with torch.no_grad():
        got = block.polynomial_term(x).numpy()
    w1, w2, w0, w3 = (conv.weight.detach().double().numpy()[:, :, 0, 0] for conv in (block.w1, block.w2, block.w0, block.w3))
    for b in range(2):
        xs = x[b].double().numpy().reshape(C, -1).T  # (N, C): one row per position
        n = len(xs)
        want = np.einsum("kd,dh,mh,df,mf,da,na->nk", w3, w1, xs, w2, xs, w0, xs) / n  # (N, C)
        np.testing.assert_allclose(got[b].reshape(C, -1).T, want, rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- identity at init


class _SmallNet(nn.Module):
    def __init__(self, block: nn.Module | None):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, C, 3, padding=1), nn.BatchNorm2d(C), nn.ReLU())
        self.attention = block if block is not None else nn.Identity()
        self.head = nn.Conv2d(C, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.attention(self.stem(x)))


@pytest.mark.parametrize("name", RESIDUAL)
def test_residual_block_starts_as_identity_then_learns(name: str) -> None:
    torch.manual_seed(0)
    plain = _SmallNet(None)
    with_block = _SmallNet(build_attention(name, C))
    with_block.load_state_dict(plain.state_dict(), strict=False)  # same stem / head weights
    x = torch.randn(2, 3, 13, 11)
    for mode in ("train", "eval"):
        plain.train(mode == "train")
        with_block.train(mode == "train")
        with torch.no_grad():
            assert_close(with_block(x), plain(x), rtol=0, atol=0)

    # reset_parameters() brings the identity back after the block has been disturbed
    block = with_block.attention
    _randomise(block)
    block.reset_parameters()
    with torch.no_grad():
        assert torch.count_nonzero(block.forward_parts(torch.randn(2, C, 5, 5))[1]) == 0

    # one SGD step on a random loss moves the output branch away from zero
    with_block.train()
    optimiser = torch.optim.SGD(with_block.parameters(), lr=0.1)
    loss = (with_block(x) - torch.randn(2, 4, 13, 11)).pow(2).mean()
    loss.backward()
    optimiser.step()
    feats = with_block.stem(x).detach()
    with torch.no_grad():
        _, y, _ = block.forward_parts(feats)
    assert y.abs().max() > 0


def test_se_is_not_identity_at_init() -> None:
    """Documented: SE gates every channel by a sigmoid, so it changes the output at step 0."""
    block = SqueezeExcite(C)
    x = torch.randn(2, C, 4, 4)
    with torch.no_grad():
        gate = block.gate(x)
        assert (gate > 0).all() and (gate < 1).all()
        assert not torch.equal(block(x), x)


# --------------------------------------------------------------------------- linear cost


def _flops(block: nn.Module, h: int, w: int, channels: int) -> int:
    x = torch.randn(1, channels, h, w)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        block(x)
    return counter.get_total_flops()


@pytest.mark.parametrize("name", ["polynl", "polynl2", "gc", "latentgnn", "efficientnl"])
def test_linear_blocks_flops_double_with_positions(name: str) -> None:
    block = build_attention(name, 32).eval()
    f1, f2, f4 = (_flops(block, 32, 32 * k, 32) for k in (1, 2, 4))
    assert f1 > 0
    assert f2 / f1 == pytest.approx(2.0, rel=0.02)
    assert f4 / f1 == pytest.approx(4.0, rel=0.02)


def test_nonlocal_flops_grow_quadratically() -> None:
    block = build_attention("nonlocal", 32).eval()
    f1, f2 = _flops(block, 32, 32, 32), _flops(block, 32, 64, 32)
    assert f2 / f1 > 3.5  # -> 4 as N grows; the 1x1 convolutions add a linear part
    poly = build_attention("polynl", 32).eval()
    assert f2 / _flops(poly, 32, 64, 32) > 10  # at N = 2048 NL already costs > 10x Poly-NL


class _LargestTensor(TorchDispatchMode):
    """Records the largest number of elements of any tensor an op produces."""

    def __init__(self) -> None:
        super().__init__()
        self.max_numel = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.max_numel = max(self.max_numel, t.numel())
        return out


def _largest_tensor(block: nn.Module, x: torch.Tensor) -> int:
    x = x.clone().requires_grad_(True)
    with _LargestTensor() as mode:
        block(x).square().mean().backward()
    return mode.max_numel


@pytest.mark.parametrize("name", ["polynl", "polynl2"])
def test_polynl_never_forms_an_n_by_n_tensor(name: str) -> None:
    h, w, channels = 64, 48, 8  # N = 3072, N^2 ~ 9.4M
    n = h * w
    block = _randomise(build_attention(name, channels)).train()
    x = torch.randn(2, channels, h, w)
    largest = _largest_tensor(block, x)
    assert largest <= 2 * channels * n  # nothing bigger than the activation itself (forward and backward)
    assert largest < n * n // 100
    # the same probe does see NL's affinity
    assert _largest_tensor(_randomise(build_attention("nonlocal", channels)).train(), x) >= 2 * n * n


# --------------------------------------------------------------------------- ONNX


@pytest.mark.parametrize("name", ATTENTION_BLOCKS)
def test_onnx_round_trip_dynamic_shapes(name: str, tmp_path) -> None:
    """Legacy TorchScript exporter (dynamo=False), opset 17, dynamic batch / height / width."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    block = _randomise(build_attention(name, C), std=0.2).eval()
    path = tmp_path / f"{name}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            block,
            (torch.randn(2, C, 12, 10),),
            str(path),
            dynamo=False,
            opset_version=17,
            input_names=["x"],
            output_names=["z"],
            dynamic_axes={"x": {0: "batch", 2: "height", 3: "width"}, "z": {0: "batch", 2: "height", 3: "width"}},
        )
    onnx.checker.check_model(onnx.load(str(path)))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    for shape in ((1, C, 9, 13), (3, C, 33, 47)):
        x = torch.randn(*shape)
        with torch.no_grad():
            expected = block(x)
        (got,) = session.run(None, {"x": x.numpy()})
        assert_close(torch.from_numpy(got), expected, rtol=1e-4, atol=1e-4)
