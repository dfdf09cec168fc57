"""Poly-NL supplementary §1, literally: Non-local and Poly-NL as 3rd-order polynomials.

For a small input matrix X in R^{N x C} (rows = positions) the dense order-8
parameter tensor W^[3] in R^{N x C x N x C x N x C x N x C} is built under the
supplementary's assumptions and

    y_(a,b) = sum_{c,e,g}^N sum_{d,f,h}^C w(a,b,c,d,e,f,g,h) x(c,d) x(e,f) x(g,h)

is evaluated by brute force in float64 (torch.einsum over the dense tensor).  It
must equal the attention contribution Y (before the output BatchNorm) computed
the efficient way by the actual ``PolyNL`` / ``NonLocal`` modules, whose weights
are copied into the tensor.  The 2nd-order ablation is checked against an
order-6 tensor in the same way.
"""
from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from retinaface_polynl.models.attention import NonLocal, PolyNL, PolyNL2

SHAPES = [(2, 2, 3), (2, 3, 4), (1, 5, 2)]  # (H, W, C): N = 4, 6, 5




def _as_matrix(x: torch.Tensor) -> torch.Tensor:
    """(1, C, H, W) -> X in R^{N x C}, row n = position n (row-major over H, W)."""
    return x[0].flatten(1).T


def _matrix(conv: torch.nn.Conv2d) -> torch.Tensor:
    """A 1x1 convolution as the right-multiplied matrix of ``X W`` (C_in x C_out)."""
    return conv.weight[:, :, 0, 0].T.detach()


def _randomise(module: torch.nn.Module) -> torch.nn.Module:
    module = module.double().eval()
    with torch.no_grad():
        for p in module.parameters():
            p.normal_()
    return module


def _cubic_form(w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Eq. (2): y_(a,b) = sum w(a,b,c,d,e,f,g,h) x(c,d) x(e,f) x(g,h) over the dense tensor."""
    return torch.einsum("abcdefgh,cd,ef,gh->ab", w, x, x, x)


@pytest.mark.parametrize("h,w,c", SHAPES)
def test_polynl_is_a_third_order_polynomial(h: int, w: int, c: int) -> None:
    torch.manual_seed(0)
    n = h * w
    block = _randomise(PolyNL(c))
    x = torch.randn(1, c, h, w, dtype=torch.float64)
    X = _as_matrix(x)

    w1p = _matrix(block.w1) / n  # W1' = W1 / N: the 1/N of the average pooling merged in
    w2, w3 = _matrix(block.w2), _matrix(block.w3)
    eye = torch.eye(n, dtype=torch.float64)
    # null unless c == a and g == e; otherwise w1'(h,d) w2(f,d) w3(d,b)
    w_poly = torch.einsum("ac,eg,hd,fd,db->abcdefgh", eye, eye, w1p, w2, w3)
    assert w_poly.shape == (n, c, n, c, n, c, n, c)
    # the structural assumptions, checked on the tensor itself
    off = ~torch.einsum("ac,eg->aceg", eye, eye).bool()
    assert torch.count_nonzero(w_poly.permute(0, 2, 4, 6, 1, 3, 5, 7)[off]) == 0

    y_tensor = _cubic_form(w_poly, X)
    y_module = _as_matrix(block.polynomial_term(x))
    assert_close(y_module, y_tensor, rtol=1e-10, atol=1e-10)
    # and Y is what forward_parts reports once the (here random) norm is bypassed
    block.norm = None
    x_, y_, z_ = block.forward_parts(x)
    assert_close(_as_matrix(y_), y_tensor, rtol=1e-10, atol=1e-10)
    assert_close(z_, x + y_, rtol=0, atol=0)
    assert x_ is x


@pytest.mark.parametrize("h,w,c", SHAPES)
@pytest.mark.parametrize("inner", [None, 2])
def test_nonlocal_is_a_third_order_polynomial(h: int, w: int, c: int, inner: int | None) -> None:
    torch.manual_seed(1)
    n = h * w
    block = _randomise(NonLocal(c, inner_channels=inner if inner is not None else c))
    x = torch.randn(1, c, h, w, dtype=torch.float64)
    X = _as_matrix(x)

    # Eq. (3): Y = X Wf X^T X Wg with Wf = W_theta W_phi^T (and the module's 1/N folded in),
    # Wg = W_g W_z.
    wf = _matrix(block.theta) @ _matrix(block.phi).T / n
    wg = _matrix(block.g) @ _matrix(block.w_z)
    eye = torch.eye(n, dtype=torch.float64)
    # null unless c == a and g == e; otherwise wf(d,f) wg(h,b)
    w_nl = torch.einsum("ac,eg,df,hb->abcdefgh", eye, eye, wf, wg)

    y_tensor = _cubic_form(w_nl, X)
    y_direct = X @ wf @ X.T @ X @ wg  # Eq. (3) itself
    y_module = _as_matrix(block.polynomial_term(x))
    assert_close(y_tensor, y_direct, rtol=1e-10, atol=1e-10)
    assert_close(y_module, y_tensor, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("h,w,c", SHAPES)
def test_polynl2_is_a_second_order_polynomial(h: int, w: int, c: int) -> None:
    torch.manual_seed(2)
    n = h * w
    block = _randomise(PolyNL2(c))
    assert block.w2 is None
    x = torch.randn(1, c, h, w, dtype=torch.float64)
    X = _as_matrix(x)

    w1p, w3 = _matrix(block.w1) / n, _matrix(block.w3)
    eye = torch.eye(n, dtype=torch.float64)
    # order-6 tensor: null unless c == a; otherwise w1'(f,d) w3(d,b) (for every e)
    w_poly2 = torch.einsum("ac,e,fd,db->abcdef", eye, torch.ones(n, dtype=torch.float64), w1p, w3)
    assert w_poly2.shape == (n, c, n, c, n, c)
    y_tensor = torch.einsum("abcdef,cd,ef->ab", w_poly2, X, X)
    y_module = _as_matrix(block.polynomial_term(x))
    assert_close(y_module, y_tensor, rtol=1e-10, atol=1e-10)


def test_polynl_polynomial_is_exactly_cubic() -> None:
    """Homogeneity: Y(t X) = t^3 Y(X) for Poly-NL, t^2 for the 2nd-order ablation (no biases)."""
    torch.manual_seed(3)
    x = torch.randn(2, 5, 3, 4, dtype=torch.float64)
    for block, order in ((_randomise(PolyNL(5)), 3), (_randomise(PolyNL2(5)), 2), (_randomise(NonLocal(5)), 3)):
        assert_close(block.polynomial_term(2.0 * x), 2.0**order * block.polynomial_term(x), rtol=1e-12, atol=1e-12)
