"""Non-local / attention blocks, built by name.

Every block maps ``(B, C, H, W) -> (B, C, H, W)``, takes ``channels`` first, calls
``reset_parameters()`` at the end of ``__init__`` and works on any ``H x W``
(odd sizes, ``1 x 1``).  Notation follows the Poly-NL paper: the block input is
the matrix ``X`` in ``R^{N x C}`` with ``N = H * W`` positions (a row per
position), ``W_i`` are learnable ``C x C`` (or ``C x C'``) matrices implemented
as 1x1 convolutions, ``⊙`` is the Hadamard product and ``Φ`` the average over
the ``N`` positions.

Residual blocks (everything except ``se``) compute ``Z = X + Y`` where ``Y`` is
the attention contribution, and their last layer (the BatchNorm after the output
projection, or the output projection itself) starts at zero weight *and* zero
bias, so a newly inserted block is an exact identity: dropping it into a trained
network leaves that network's output unchanged until training moves it.
``forward_parts(x)`` returns ``(X, Y, Z)`` for the attention-map visualisation
(Poly-NL paper, supplementary §5: norm per position of ``X``, ``Y`` and ``Z``).

Blocks (``name``: class, source, cost in ``N = H * W`` for ``C`` channels):

* ``polynl``: :class:`PolyNL`, Poly-NL (Babiloni et al., ICCV 2021);
  ``O(N C^2)`` time, ``O(N C)`` memory.
* ``polynl2``: :class:`PolyNL2`, its 2nd-order ablation (supplementary §3);
  ``O(N C^2)`` time, ``O(N C)`` memory.
* ``nonlocal``: :class:`NonLocal`, Non-local block (Wang et al., CVPR 2018);
  ``O(N^2 C)`` time, ``O(N^2)`` memory.
* ``gc``: :class:`GlobalContext`, GCNet block (Cao et al., ICCVW 2019);
  ``O(N C + C^2 / r)`` time, ``O(N C)`` memory.
* ``se``: :class:`SqueezeExcite`, squeeze-and-excitation (Hu et al., CVPR 2018);
  ``O(N C + C^2 / r)`` time, ``O(N C)`` memory.
* ``latentgnn``: :class:`LatentGNN`, LatentGNN (Zhang et al., ICML 2019), ``d`` latent
  nodes; ``O(N C C' + N C' d + d^2 C')`` time, ``O(N (C + d))`` memory.
* ``efficientnl``: :class:`EfficientNL`, efficient attention (Shen et al., WACV 2021);
  ``O(N C (d_k + d_v) + N d_k d_v)`` time, ``O(N (C + d_k + d_v))`` memory.

``None`` or ``"none"`` gives ``nn.Identity()``.

Not implemented: TESA ("Tensor Element Self-Attention via Matricization",
Babiloni et al., CVPR 2020), the remaining row of the supplementary's Table 1b.
Its abstract says that self-attention is applied along every mode of the feature
tensor via matricization and that the R per-mode results are "fused", but the
published method text (the embeddings used per mode, the normalisation of each
mode's affinity and the fusion operator) could not be read from the sources
available here, so a faithful implementation is not possible; a guess would be
a different block under the same name.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..presets import ATTENTION_BLOCKS

__all__ = [
    "ATTENTION_BLOCKS",
    "EfficientNL",
    "GlobalContext",
    "LatentGNN",
    "NonLocal",
    "PolyNL",
    "PolyNL2",
    "ResidualAttention",
    "SqueezeExcite",
    "build_attention",
    "make_divisible",
]



_LOW_PRECISION = (torch.float16, torch.bfloat16)


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None, round_limit: float = 0.9) -> int:
    """``value`` rounded to the nearest multiple of ``divisor`` (at least ``min_value``,
    never below ``round_limit * value``), as for the hidden width of SE / GC blocks."""
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < round_limit * value:
        rounded += divisor
    return rounded


def _conv1x1(cin: int, cout: int, bias: bool) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=1, bias=bias)


def _positive(name: str, value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _spatial_mean(t: torch.Tensor) -> torch.Tensor:
    """Φ: the average over all H*W positions, kept as (B, C, 1, 1); accumulated in
    float32 for float16 / bfloat16 inputs."""
    if t.dtype in _LOW_PRECISION:
        return t.mean(dim=(2, 3), keepdim=True, dtype=torch.float32).to(t.dtype)
    return t.mean(dim=(2, 3), keepdim=True)


def _unflatten_like(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(B, C', N) -> (B, C', H, W) with H, W taken from ``x`` (ONNX-friendly: dynamic sizes)."""
    return t.reshape(x.shape[0], t.shape[1], x.shape[2], x.shape[3])


def _zero_output(norm: nn.Module | None, projection: nn.Conv2d) -> None:
    """Make ``Y`` exactly zero: the norm after the output projection gets zero weight and
    bias, or, without a norm, the (bias-free) projection gets zero weight."""
    if norm is not None:
        nn.init.zeros_(norm.weight)
        nn.init.zeros_(norm.bias)
    else:
        nn.init.zeros_(projection.weight)


class ResidualAttention(nn.Module):
    """Base class: ``Z = X + Y`` with ``Y = self.branch(X)``.

    Subclasses implement :meth:`branch` and :meth:`zero_init_last`, which makes
    ``Y`` exactly zero (the block an identity); :meth:`reset_parameters` ends with it.
    """

    def branch(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def zero_init_last(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.branch(x)

    def forward_parts(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(X, Y, Z)``: the block input, its attention contribution and its output, all (B, C, H, W)."""
        y = self.branch(x)
        return x, y, x + y


class PolyNL(ResidualAttention):
    """Poly-NL (Babiloni et al., ICCV 2021), the paper's block.

    ``Y = (Φ(X W1 ⊙ X W2) ⊙ X) W3``, ``Z = X + BN(Y)``.

    ``X`` in ``R^{N x C}``; ``W1, W2`` in ``R^{C x C'}`` (1x1 convolutions without
    bias, so that ``Y`` is a homogeneous 3rd-order polynomial of ``X``: supplementary
    §1 shows it equals ``((W^[3] • X) • X) • X`` for an order-8 tensor ``W^[3]`` that
    is non-zero only for ``c == a`` and ``g == e``, where it equals
    ``w1'(h,d) w2(f,d) w3(d,b)`` with ``W1' = W1 / N``); ``Φ`` averages over the ``N``
    positions, giving one ``C'``-vector per image that then rescales every position
    of ``X``; ``W3`` in ``R^{C' x C}``.  A BatchNorm after ``W3`` (``norm=True``)
    starts with zero weight and bias, so the block starts as an identity; with
    ``norm=False`` ``W3`` itself starts at zero.

    ``inner_channels`` (or ``reduction``) sets ``C'``; the paper uses ``C' = C``
    (the default).  When ``C' != C`` the ``⊙ X`` term uses ``X W0`` with one more
    1x1 projection ``W0`` in ``R^{C x C'}`` so that the shapes agree.

    Cost: ``O(N C C')`` time and ``O(N C')`` memory, linear in ``N``; no ``N x N``
    tensor is ever formed.
    """

    order = 3

    def __init__(self, channels: int, inner_channels: int | None = None, reduction: int = 1, norm: bool = True):
        super().__init__()
        self.channels = _positive("channels", channels)
        inner = inner_channels if inner_channels is not None else max(1, channels // _positive("reduction", reduction))
        self.inner_channels = _positive("inner_channels", inner)
        self.w1 = _conv1x1(channels, self.inner_channels, bias=False)
        self.w2 = _conv1x1(channels, self.inner_channels, bias=False) if self.order == 3 else None
        self.w0 = _conv1x1(channels, self.inner_channels, bias=False) if self.inner_channels != channels else None
        self.w3 = _conv1x1(self.inner_channels, channels, bias=False)
        self.norm = nn.BatchNorm2d(channels) if norm else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for conv in (self.w1, self.w2, self.w0, self.w3):
            if conv is not None:
                conv.reset_parameters()
        if self.norm is not None:
            self.norm.reset_parameters()
        self.zero_init_last()

    def zero_init_last(self) -> None:
        _zero_output(self.norm, self.w3)

    def context(self, x: torch.Tensor) -> torch.Tensor:
        """``Φ(X W1 ⊙ X W2)`` as (B, C', 1, 1)."""
        return _spatial_mean(self.w1(x) * self.w2(x))

    def polynomial_term(self, x: torch.Tensor) -> torch.Tensor:
        """``Y`` before the norm: ``(Φ(X W1 ⊙ X W2) ⊙ X) W3``, (B, C, H, W)."""
        v = x if self.w0 is None else self.w0(x)
        return self.w3(self.context(x) * v)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        y = self.polynomial_term(x)
        return y if self.norm is None else self.norm(y)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, inner_channels={self.inner_channels}, norm={self.norm is not None}"


class PolyNL2(PolyNL):
    """Poly-NL 2nd-order ablation (supplementary §3, Table 2 "Ours-2nd ord.").

    ``Y = (Φ(X W1) ⊙ X) W3``, ``Z = X + BN(Y)``: ``X W1 ⊙ X W2`` of :class:`PolyNL`
    replaced by ``X W1``, making ``Y`` a homogeneous 2nd-order polynomial
    ``(W^[2] • X) • X`` with an order-6 tensor non-zero only for ``c == a`` where it
    equals ``w1'(f,d) w3(d,b)``, ``W1' = W1 / N``.  Close to SE but without
    non-linearities and with a residual sum instead of a gate.  Same options and
    zero-initialisation as :class:`PolyNL`.

    Cost: ``O(N C C')`` time, ``O(N C')`` memory.
    """

    order = 2

    def context(self, x: torch.Tensor) -> torch.Tensor:
        """``Φ(X W1)`` as (B, C', 1, 1)."""
        return _spatial_mean(self.w1(x))


class NonLocal(ResidualAttention):
    """Non-local block (Wang, Girshick, Gupta, He, CVPR 2018), embedded form.

    ``Y = (1/N) (X Wθ)(X Wφ)ᵀ (X Wg) Wz``, ``Z = X + BN(Y)``  (``mode="dot"``, default),

    i.e. the paper's Eq. (3) ``Y = X Wf Xᵀ X Wg`` with ``Wf = Wθ Wφᵀ / N`` and
    ``Wg = Wg Wz`` (``Wθ, Wφ, Wg`` in ``R^{C x C'}``, ``Wz`` in ``R^{C' x C}``, 1x1
    convolutions without bias; ``C' = C / 2`` by default as in Wang et al.).
    ``mode="gaussian"`` replaces the ``1/N`` normalisation by a row softmax of the
    affinity (the "embedded Gaussian" variant).  The BatchNorm after ``Wz`` starts
    with zero weight and bias (identity at initialisation), as in Wang et al.

    The ``N x N`` affinity ``(X Wθ)(X Wφ)ᵀ`` is formed explicitly, as in the
    reference implementation: ``O(N^2 C')`` time and ``O(N^2)`` memory.  (Without a
    softmax, associativity would allow ``(X Wθ)((X Wφ)ᵀ X Wg)`` in linear time; the
    block is kept in its published, quadratic form because that is the comparator
    of the Poly-NL paper.)
    """

    def __init__(
        self,
        channels: int,
        inner_channels: int | None = None,
        reduction: int = 2,
        mode: str = "dot",
        norm: bool = True,
    ):
        super().__init__()
        if mode not in ("dot", "gaussian"):
            raise ValueError(f"mode must be 'dot' or 'gaussian', got {mode!r}")
        self.channels = _positive("channels", channels)
        inner = inner_channels if inner_channels is not None else max(1, channels // _positive("reduction", reduction))
        self.inner_channels = _positive("inner_channels", inner)
        self.mode = mode
        self.theta = _conv1x1(channels, self.inner_channels, bias=False)
        self.phi = _conv1x1(channels, self.inner_channels, bias=False)
        self.g = _conv1x1(channels, self.inner_channels, bias=False)
        self.w_z = _conv1x1(self.inner_channels, channels, bias=False)
        self.norm = nn.BatchNorm2d(channels) if norm else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for conv in (self.theta, self.phi, self.g, self.w_z):
            conv.reset_parameters()
        if self.norm is not None:
            self.norm.reset_parameters()
        self.zero_init_last()

    def zero_init_last(self) -> None:
        _zero_output(self.norm, self.w_z)

    def affinity(self, x: torch.Tensor) -> torch.Tensor:
        """The normalised ``N x N`` affinity, (B, N, N); row ``i`` weighs every position ``j``."""
        theta = self.theta(x).flatten(2)  # (B, C', N)
        phi = self.phi(x).flatten(2)  # (B, C', N)
        if self.mode == "gaussian":
            return torch.bmm(theta.transpose(1, 2), phi).softmax(dim=-1)  # (B, N, N)
        # 1/N applied to the (C' x N) factor: the same product, one N x N tensor fewer
        return torch.bmm(theta.transpose(1, 2) / theta.shape[-1], phi)  # (B, N, N)

    def polynomial_term(self, x: torch.Tensor) -> torch.Tensor:
        """``Y`` before the norm: ``(1/N) (X Wθ)(X Wφ)ᵀ (X Wg) Wz``, (B, C, H, W)."""
        f = self.affinity(x)
        g = self.g(x).flatten(2)  # (B, C', N)
        y = torch.bmm(g, f.transpose(1, 2))  # (B, C', N): y[:, :, i] = sum_j f[i, j] g[:, :, j]
        return self.w_z(_unflatten_like(y, x))

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        y = self.polynomial_term(x)
        return y if self.norm is None else self.norm(y)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, inner_channels={self.inner_channels}, mode={self.mode!r}"


class GlobalContext(ResidualAttention):
    """Global context block (Cao, Xu, Lin, Wei, Hu, "GCNet", ICCV Workshops 2019), add fusion.

    ``α = softmax_N(X Wk)`` (one weight per position, ``Wk`` in ``R^{C x 1}``),
    ``c = αᵀ X`` in ``R^{1 x C}`` (attention pooling), ``Y = 1 (ReLU(LN(c Wv1)) Wv2)``
    broadcast to every position (``Wv1`` in ``R^{C x C/r}``, ``Wv2`` in ``R^{C/r x C}``,
    bottleneck ratio ``r = 16`` as in the paper), ``Z = X + Y``.  ``Wv2``'s weight
    *and* bias start at zero, so the block starts as an identity.

    Cost: ``O(N C)`` time and memory for the pooling plus ``O(C^2 / r)`` for the transform.
    """

    def __init__(self, channels: int, rd_ratio: float = 1.0 / 16, rd_channels: int | None = None, rd_divisor: int = 8):
        super().__init__()
        self.channels = _positive("channels", channels)
        hidden = rd_channels if rd_channels is not None else make_divisible(channels * rd_ratio, rd_divisor)
        self.hidden_channels = _positive("rd_channels", hidden)
        self.conv_attn = _conv1x1(channels, 1, bias=True)
        self.fc1 = _conv1x1(channels, self.hidden_channels, bias=True)
        self.ln = nn.LayerNorm([self.hidden_channels, 1, 1])
        self.act = nn.ReLU(inplace=True)
        self.fc2 = _conv1x1(self.hidden_channels, channels, bias=True)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.kaiming_normal_(self.conv_attn.weight, mode="fan_in", nonlinearity="relu")
        nn.init.zeros_(self.conv_attn.bias)
        self.fc1.reset_parameters()
        self.ln.reset_parameters()
        self.zero_init_last()

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def context(self, x: torch.Tensor) -> torch.Tensor:
        """Attention pooling ``c = softmax_N(X Wk)ᵀ X`` as (B, C, 1, 1)."""
        attn = self.conv_attn(x).flatten(2).softmax(dim=-1)  # (B, 1, N)
        ctx = torch.bmm(x.flatten(2), attn.transpose(1, 2))  # (B, C, 1)
        return ctx.unsqueeze(-1)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        t = self.fc2(self.act(self.ln(self.fc1(self.context(x)))))
        return t.expand_as(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.fc2(self.act(self.ln(self.fc1(self.context(x)))))
        return x + t  # broadcast over positions

    def extra_repr(self) -> str:
        return f"channels={self.channels}, hidden_channels={self.hidden_channels}"


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (Hu, Shen, Sun, CVPR 2018).

    ``s = Φ(X)`` in ``R^{1 x C}``, ``g = σ(ReLU(s W1 + b1) W2 + b2)``,
    ``Z = X ⊙ (1 g)`` (a channel gate broadcast to every position); ``W1`` in
    ``R^{C x C/r}``, ``r = 16``, hidden width ``make_divisible(C / r, 8)`` (at least 8).

    Not a residual block and **not an identity at initialisation**: the sigmoid gate
    multiplies every channel by a value in (0, 1) (about 0.5 when the pre-activation
    is near zero), so inserting it into a trained network changes that network's
    output.  ``forward_parts`` still returns ``(X, Z - X, Z)`` for the visualisation.

    Cost: ``O(N C)`` time (pooling and rescaling) plus ``O(C^2 / r)``.
    """

    def __init__(self, channels: int, reduction: int = 16, rd_channels: int | None = None, rd_divisor: int = 8):
        super().__init__()
        self.channels = _positive("channels", channels)
        hidden = rd_channels if rd_channels is not None else make_divisible(channels / _positive("reduction", reduction), rd_divisor)
        self.hidden_channels = _positive("rd_channels", hidden)
        self.fc1 = _conv1x1(channels, self.hidden_channels, bias=True)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = _conv1x1(self.hidden_channels, channels, bias=True)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.fc1.reset_parameters()
        self.fc2.reset_parameters()

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """The channel gate ``σ(...)`` as (B, C, 1, 1)."""
        return torch.sigmoid(self.fc2(self.act(self.fc1(_spatial_mean(x)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)

    def forward_parts(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        z = self.forward(x)
        return x, z - x, z

    def extra_repr(self) -> str:
        return f"channels={self.channels}, hidden_channels={self.hidden_channels}"


class LatentGNN(ResidualAttention):
    """LatentGNN (Zhang, Yan, He, "LatentGNN: Learning Efficient Non-local Relations
    for Visual Recognition", ICML 2019), one latent kernel, asymmetric bipartite graph.

    With ``V = norm_C(BN(X Wv))``, ``U = norm_C(BN(X Wu))`` in ``R^{N x C'}``
    (``C' = C / channel_stride``, rows L2-normalised):

    1. visible -> latent: ``Ψ = norm_N(ReLU(BN(V Θ)))`` in ``R^{N x d}`` (each latent
       node's affinities L2-normalised over positions), ``Zl = Ψᵀ V`` in ``R^{d x C'}``;
    2. latent -> latent: ``A = softmax(norm(Zl) norm(Zl)ᵀ)`` in ``R^{d x d}`` (dense
       graph on the ``d`` latent nodes), ``Zl' = A Zl``;
    3. latent -> visible: ``Ψ' = norm_d(ReLU(BN(U Θ')))`` in ``R^{N x d}``,
       ``Y = Ψ' Zl'`` in ``R^{N x C'}``;

    ``Z = X + BN(Y Wo)`` with ``Wo`` in ``R^{C' x C}``.  The graph affinity is the
    rank-``d`` product ``Ψ' A Ψᵀ``, never formed.  Normalisations and layer order
    follow the authors' reference implementation; the output BatchNorm starts with
    zero weight and bias (the reference uses a zero-initialised scalar gain instead;
    both make the block an identity at initialisation).

    Cost: ``O(N C C' + N C' d + d^2 C')`` time, ``O(N (C + d))`` memory: linear in ``N``.
    """

    def __init__(self, channels: int, latent_nodes: int = 64, channel_stride: int = 4, inner_channels: int | None = None):
        super().__init__()
        self.channels = _positive("channels", channels)
        inner = inner_channels if inner_channels is not None else max(1, channels // _positive("channel_stride", channel_stride))
        self.inner_channels = _positive("inner_channels", inner)
        self.latent_nodes = _positive("latent_nodes", latent_nodes)
        ci, d = self.inner_channels, self.latent_nodes
        self.down_v2l = nn.Sequential(_conv1x1(channels, ci, bias=False), nn.BatchNorm2d(ci))
        self.down_l2v = nn.Sequential(_conv1x1(channels, ci, bias=False), nn.BatchNorm2d(ci))
        self.psi_v2l = nn.Sequential(_conv1x1(ci, d, bias=False), nn.BatchNorm2d(d), nn.ReLU(inplace=True))
        self.psi_l2v = nn.Sequential(_conv1x1(ci, d, bias=False), nn.BatchNorm2d(d), nn.ReLU(inplace=True))
        self.up = _conv1x1(ci, channels, bias=False)
        self.norm = nn.BatchNorm2d(channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.modules():
            if m is not self and isinstance(m, (nn.Conv2d, nn.BatchNorm2d)):
                m.reset_parameters()
        self.zero_init_last()

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.norm.weight)
        nn.init.zeros_(self.norm.bias)

    @staticmethod
    def _l2(t: torch.Tensor, dim: int) -> torch.Tensor:
        return F.normalize(t, p=2.0, dim=dim, eps=1e-6)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        v = self._l2(self.down_v2l(x), dim=1)  # (B, C', H, W)
        u = self._l2(self.down_l2v(x), dim=1)
        psi_v2l = self._l2(self.psi_v2l(v).flatten(2), dim=2)  # (B, d, N), normalised over positions
        psi_l2v = self._l2(self.psi_l2v(u).flatten(2), dim=1)  # (B, d, N), normalised over latent nodes
        latent = torch.bmm(psi_v2l, v.flatten(2).transpose(1, 2))  # (B, d, C')
        latent_n = self._l2(latent, dim=-1)
        adjacency = torch.bmm(latent_n, latent_n.transpose(1, 2)).softmax(dim=-1)  # (B, d, d)
        latent = torch.bmm(adjacency, latent)  # (B, d, C')
        visible = torch.bmm(latent.transpose(1, 2), psi_l2v)  # (B, C', N)
        return self.norm(self.up(_unflatten_like(visible, x)))

    def extra_repr(self) -> str:
        return f"channels={self.channels}, inner_channels={self.inner_channels}, latent_nodes={self.latent_nodes}"


class EfficientNL(ResidualAttention):
    """Efficient attention (Shen, Zhang, Zhao, Yi, Li, "Efficient Attention:
    Attention with Linear Complexities", WACV 2021), taken to be the supplementary's
    "Efficient-NL" (Table 1b names it without a citation; the main paper's reference
    list could not be checked here).

    ``Q = X Wq``, ``K = X Wk`` in ``R^{N x d_k}``, ``V = X Wv`` in ``R^{N x d_v}``
    (1x1 convolutions with bias), per head:
    ``E = ρq(Q) (ρk(K)ᵀ V)`` where ``ρq`` is a softmax over each query's channels
    (rows) and ``ρk`` a softmax over positions for each key channel (columns), so the
    global context ``ρk(K)ᵀ V`` is only ``d_k x d_v``; heads are concatenated and
    ``Z = X + E Wr`` (reprojection ``Wr`` in ``R^{d_v x C}``).  ``Wr``'s weight and
    bias start at zero so the block starts as an identity (our choice; the paper
    does not prescribe it).  Defaults: ``d_k = d_v = C / 2``, one head.

    Cost: ``O(N C (d_k + d_v) + N d_k d_v / heads)`` time, ``O(N (d_k + d_v))`` memory:
    linear in ``N``.
    """

    def __init__(
        self,
        channels: int,
        key_channels: int | None = None,
        value_channels: int | None = None,
        heads: int = 1,
    ):
        super().__init__()
        self.channels = _positive("channels", channels)
        self.heads = _positive("heads", heads)
        self.key_channels = _positive("key_channels", key_channels if key_channels is not None else max(heads, channels // 2))
        self.value_channels = _positive(
            "value_channels", value_channels if value_channels is not None else max(heads, channels // 2)
        )
        if self.key_channels % heads or self.value_channels % heads:
            raise ValueError(
                f"heads={heads} must divide key_channels={self.key_channels} and value_channels={self.value_channels}"
            )
        self.queries = _conv1x1(channels, self.key_channels, bias=True)
        self.keys = _conv1x1(channels, self.key_channels, bias=True)
        self.values = _conv1x1(channels, self.value_channels, bias=True)
        self.reprojection = _conv1x1(self.value_channels, channels, bias=True)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for conv in (self.queries, self.keys, self.values):
            conv.reset_parameters()
        self.zero_init_last()

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.reprojection.weight)
        nn.init.zeros_(self.reprojection.bias)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        b, h = x.shape[0], self.heads
        q = self.queries(x).flatten(2)  # (B, dk, N)
        k = self.keys(x).flatten(2)
        v = self.values(x).flatten(2)  # (B, dv, N)
        q = q.reshape(b, h, self.key_channels // h, q.shape[-1]).softmax(dim=2)  # over channels of each query
        k = k.reshape(b, h, self.key_channels // h, k.shape[-1]).softmax(dim=3)  # over positions of each key channel
        v = v.reshape(b, h, self.value_channels // h, v.shape[-1])
        context = torch.matmul(k, v.transpose(2, 3))  # (B, h, dk/h, dv/h)
        attended = torch.matmul(context.transpose(2, 3), q)  # (B, h, dv/h, N)
        attended = attended.reshape(b, self.value_channels, attended.shape[-1])
        return self.reprojection(_unflatten_like(attended, x))

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, key_channels={self.key_channels}, "
            f"value_channels={self.value_channels}, heads={self.heads}"
        )


def build_attention(name: str | None, channels: int, **kwargs) -> nn.Module:
    """The attention block called ``name`` for ``channels`` input channels.

    ``name`` is one of :data:`ATTENTION_BLOCKS` (case-insensitive), or ``None`` /
    ``"none"`` for ``nn.Identity()``; ``kwargs`` go to the block's constructor
    (e.g. ``inner_channels`` for ``polynl``, ``latent_nodes`` for ``latentgnn``).

    Raises:
        ValueError: unknown ``name`` (the message lists the valid choices).
    """
    key = "none" if name is None else str(name).strip().lower()
    if key == "none":
        if kwargs:
            raise ValueError(f"attention 'none' takes no keyword arguments, got {sorted(kwargs)}")
        return nn.Identity()
    if key == "polynl":
        return PolyNL(channels, **kwargs)
    elif key == "polynl2":
        return PolyNL2(channels, **kwargs)
    elif key == "nonlocal":
        return NonLocal(channels, **kwargs)
    elif key == "gc":
        return GlobalContext(channels, **kwargs)
    elif key == "se":
        return SqueezeExcite(channels, **kwargs)
    elif key == "latentgnn":
        return LatentGNN(channels, **kwargs)
    elif key == "efficientnl":
        return EfficientNL(channels, **kwargs)
    raise ValueError(f"unknown attention block {name!r}; valid choices: none, {', '.join(ATTENTION_BLOCKS)}")
