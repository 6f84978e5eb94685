"""Batched gradient descent on wide deep linear nets (many learning rates at once).

For whitened inputs the loss of W = W_D ⋯ W₁ depends on the data through Σ_yx and ⟨‖y‖²⟩:

    L = ‖W − Σ_yx‖²_F + ⟨‖y‖²⟩ − ‖Σ_yx‖²_F,   ∇_{W_l} L = (W_D⋯W_{l+1})ᵀ E (W_{l−1}⋯W₁)ᵀ,
    E = 2(W − Σ_yx),

equal to the Objective's autograd loss and gradient on ``deep_linear`` (checked in the
tests). Layers are held as one ``(B, D, n, n)`` tensor, n = max(in, width, out): the first
and last layers are zero-padded and their padding is masked out of every gradient, so it
stays zero. The prefix products W_l⋯W₁ and suffix products W_D⋯W_l come from a
Hillis–Steele scan (⌈log₂ D⌉ batched matmuls each), so one step costs O(log D) tensor
operations instead of O(D). The step itself is :func:`landscape.optim.sgd_update`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from analyses.deeplinear.data import DTYPE
from analyses.deeplinear.tracker import Tracker
from landscape.optim import sgd_update


def pad_layers(Ws: list[Tensor], n: int) -> tuple[Tensor, Tensor]:
    """Stack layer matrices into ``(D, n, n)`` (zero padding) and the 0/1 mask of real entries."""
    out = torch.zeros(len(Ws), n, n, dtype=DTYPE)
    mask = torch.zeros_like(out)
    for l, W in enumerate(Ws):
        out[l, :W.shape[0], :W.shape[1]] = W
        mask[l, :W.shape[0], :W.shape[1]] = 1
    return out, mask


def scan(A: Tensor, *, reverse: bool = False) -> Tensor:
    """Inclusive products along dim 1 of ``A (B, D, n, n)``: out[:, i] = A_i ⋯ A_0 (or A_{D−1} ⋯ A_i)."""
    out, k, D = A.clone(), 1, A.shape[1]
    while k < D:
        if reverse:
            out = torch.cat([out[:, k:] @ out[:, :-k], out[:, -k:]], 1)
        else:
            out = torch.cat([out[:, :k], out[:, k:] @ out[:, :-k]], 1)
        k *= 2
    return out


def loss_and_grad(A: Tensor, mask: Tensor, target: Tensor, yy: float) -> tuple[Tensor, Tensor]:
    """L ``(B,)`` and ∇L ``(B, D, n, n)`` for layers ``A (B, D, n, n)`` and Σ_yx padded to ``(n, n)``."""
    B, _, n, _ = A.shape
    eye = torch.eye(n, dtype=A.dtype).expand(B, 1, n, n)
    prefix = scan(A)                               # W_l ⋯ W_1
    suffix = scan(A, reverse=True)                 # W_D ⋯ W_l
    R = prefix[:, -1] - target                     # W − Σ_yx
    L = (R * R).sum((1, 2)) + yy - float((target * target).sum())
    before = torch.cat([eye, prefix[:, :-1]], 1)   # W_{l−1} ⋯ W_1
    after = torch.cat([suffix[:, 1:], eye], 1)     # W_D ⋯ W_{l+1}
    G = after.transpose(-1, -2) @ (2 * R)[:, None] @ before.transpose(-1, -2)
    return L, G * mask


def descend(A0: Tensor, mask: Tensor, lrs: Tensor, target: Tensor, yy: float, steps: int, *,
            threshold: float, loss_min: float, record_steps) -> dict[str, np.ndarray]:
    """GD from ``A0 (B, D, n, n)`` at ``lrs (B,)``, the rows racing to L − L* ≤ ``threshold``.

    Returns:
        :meth:`.tracker.Tracker.results` plus ``steps_run``.
    """
    A = A0.clone()
    tr = Tracker(A.shape[0], loss_min + threshold, yy, record_steps)
    lr, t = lrs.to(DTYPE)[:, None, None, None], 0
    for t in range(steps + 1):
        L, G = loss_and_grad(A, mask, target, yy)
        tr.book(t, L)
        if tr.check(t, True) or t == steps:
            break
        A = torch.where(tr.running(4), sgd_update(A, G, None, tr.rates(lr), 0.0, False, 0.0)[0], A)
        keep = tr.compact() if t % 32 == 0 else None
        if keep is not None:
            A, lr = A[keep], lr[keep]
    return {**tr.results(), "steps_run": t}
