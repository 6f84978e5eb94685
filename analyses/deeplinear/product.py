"""Narrow deep linear nets y = (Π_{i=1}^D wᵢ)·x: closed-form loss, gradient and Hessian.

With p = Π wᵢ and the data moments of :mod:`.data` (our MSE: mean of (y − p x)², no ½)::

    L(w)      = ⟨y²⟩ − 2p⟨xy⟩ + p²⟨x²⟩
    ∂L/∂wᵢ    = e · gᵢ,            e = 2(p⟨x²⟩ − ⟨xy⟩),  gᵢ = Π_{k≠i} w_k
    H_ij      = 2⟨x²⟩ gᵢ gⱼ + e · M_ij,   M_ij = Π_{k≠i,j} w_k (i ≠ j),  M_ii = 0

These equal the autograd gradient and Hessian of :class:`landscape.Objective` on
``deep_linear(depth=D, width=1, in_dim=1, out_dim=1)`` (checked in the tests); they are
written out so that hundreds of runs (η × init × depth up to 100) advance together as one
``(B, D)`` tensor. gᵢ comes from prefix and suffix products (no division, so a zero weight
is fine).

For D = 2 at the origin H = [[0, −2⟨xy⟩], [−2⟨xy⟩, 0]] (eigenvalues ±2⟨xy⟩: a saddle);
on the hyperbola of minima w₁w₂ = â, H = 2⟨x²⟩ (w₂, w₁)(w₂, w₁)ᵀ with eigenvalues 0 and
2⟨x²⟩(w₁² + w₂²).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from analyses.deeplinear.data import Moments


def others(W: Tensor) -> Tensor:
    """gᵢ = Π_{k≠i} w_k for every row of ``W (…, D)`` (prefix × suffix products)."""
    ones = torch.ones_like(W[..., :1])
    prefix = torch.cat([ones, W[..., :-1]], -1).cumprod(-1)
    suffix = torch.cat([ones, W.flip(-1)[..., :-1]], -1).cumprod(-1).flip(-1)
    return prefix * suffix


def loss(W: Tensor, m: Moments) -> Tensor:
    """L for every row of ``W (…, D)`` → ``(…)``."""
    p = W.prod(-1)
    return m.yy - 2 * m.xy * p + m.xx * p * p


def grad(W: Tensor, m: Moments) -> Tensor:
    """∇L for every row of ``W (…, D)`` → ``(…, D)``."""
    e = 2 * (W.prod(-1) * m.xx - m.xy)
    return e[..., None] * others(W)


def loss_and_grad(W: Tensor, m: Moments) -> tuple[Tensor, Tensor]:
    """``(L (…), ∇L (…, D))`` sharing the products."""
    p = W.prod(-1)
    e = 2 * (p * m.xx - m.xy)
    return m.yy - 2 * m.xy * p + m.xx * p * p, e[..., None] * others(W)


def pair_products(W: Tensor) -> Tensor:
    """M_ij = Π_{k≠i,j} w_k (i ≠ j), M_ii = 0, for ``W (…, D)`` → ``(…, D, D)``.

    Row i is :func:`others` of W with wᵢ set to 1 (then its own entry, Π_{k≠i} w_k, is zeroed).
    """
    D = W.shape[-1]
    eye = torch.eye(D, dtype=torch.bool, device=W.device)
    Wi = torch.where(eye, torch.ones((), dtype=W.dtype), W[..., None, :])   # (…, D, D): row i has wᵢ := 1
    return torch.where(eye, torch.zeros((), dtype=W.dtype), others(Wi))


def hessian(W: Tensor, m: Moments) -> Tensor:
    """The exact Hessian ``(…, D, D)`` for every row of ``W (…, D)`` (closed form above)."""
    g = others(W)
    e = 2 * (W.prod(-1) * m.xx - m.xy)
    return 2 * m.xx * g[..., :, None] * g[..., None, :] + e[..., None, None] * pair_products(W)


def lambda_max(W: Tensor, m: Moments) -> Tensor:
    """The largest Hessian eigenvalue for every row of ``W (…, D)`` (``eigvalsh``) → ``(…)``."""
    return torch.linalg.eigvalsh(hessian(W, m))[..., -1]


def two_layer_hessian(w1: float, w2: float, m: Moments) -> np.ndarray:
    """The 2×2 Hessian of L(w₁, w₂) written out (the textbook form, for the tests)."""
    off = -2 * m.xy + 4 * m.xx * w1 * w2
    return np.array([[2 * m.xx * w2 * w2, off], [off, 2 * m.xx * w1 * w1]])


def balanced_sharpness(depth: int, m: Moments) -> float:
    """λ_max at the balanced minimum wᵢ = â^{1/D}: 2⟨x²⟩·D·|â|^{2−2/D} (so GD there needs η < 2/λ).

    At a minimum e = 0 and H = 2⟨x²⟩ g gᵀ, whose one non-zero eigenvalue is 2⟨x²⟩‖g‖²,
    with gᵢ = â/wᵢ = |â|^{1−1/D} for every i.
    """
    return 2 * m.xx * depth * abs(m.a_hat) ** (2 - 2 / depth)
