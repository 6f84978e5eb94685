"""Study 4: wide deep linear nets and the exact solution of Saxe, McClelland & Ganguli (ICLR 2014).

With whitened inputs (Σ_xx = I) and Σ_yx = ⟨y xᵀ⟩ = U S Vᵀ, our loss of a two-layer net is

    L(W₁, W₂) = ⟨‖W₂W₁x − y‖²⟩ = ‖W₂W₁ − Σ_yx‖²_F + ⟨‖y‖²⟩ − ‖Σ_yx‖²_F,
    ∇_{W₁}L = −2 W₂ᵀ(Σ_yx − W₂W₁),   ∇_{W₂}L = −2 (Σ_yx − W₂W₁) W₁ᵀ.

Gradient descent W ← W − η∇L is, to first order in η, the flow dW/dt = −η∇L per step, i.e.
Saxe et al.'s  τ dW₁/dt = W₂ᵀ(Σ_yx − W₂W₁)  with  **τ = 1/(2η) steps**. (Saxe et al. sum
½‖·‖² over the N examples and use a rate λ, so their τ = 1/(Nλ); our mean without ½ is
2/N times their sum, so our η is their λ·N/2: τ = 1/(Nλ) = 1/(2η) again.) From a small
*balanced, aligned* init W₁ = O diag(√u₀) Vᵀ, W₂ = U diag(√u₀) Oᵀ (O orthonormal) the modes
decouple exactly and each strength u_α = u_αᵀ W₂W₁ v_α obeys τ du/dt = 2u(s − u):

    u(t) = s e^{2st/τ} / (e^{2st/τ} − 1 + s/u₀),
    t(u₀ → u_f) = (τ/2s) ln[u_f(s − u₀) / (u₀(s − u_f))],

so modes are learned in order of their singular value s, in time ∝ (τ/s)·ln(s/u₀).
Discrete GD follows the map √u ← √u (1 + 2η(s − u)), within O(ηs) of the flow: the tests
check |u_GD − u(t)| ≤ 2 % of s over the whole run at the default η.

The simulation runs through :class:`landscape.Objective` on ``deep_linear(depth=2, …)``
(float64) and :func:`landscape.optim.sgd_update`, the same code path as every other model.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

import landscape as ls
from analyses.deeplinear.data import DTYPE, WideData
from landscape.models import build_model
from landscape.optim import sgd_update


def tau(lr: float) -> float:
    """τ in steps for learning rate η under our loss (mean over examples, no ½): 1/(2η)."""
    return 1.0 / (2.0 * lr)


def mode_strength(t: np.ndarray, s: float, u0: float, tau_steps: float) -> np.ndarray:
    """u(t) = s e^{2st/τ} / (e^{2st/τ} − 1 + s/u₀), written to stay finite for large t."""
    decay = np.exp(-2 * s * np.asarray(t, dtype=np.float64) / tau_steps)
    return s / (1 - decay + (s / u0) * decay)


def learning_time(s: float, u0: float, uf: float, tau_steps: float) -> float:
    """Steps for a mode to grow from u₀ to u_f: (τ/2s) ln[u_f(s − u₀) / (u₀(s − u_f))]."""
    return tau_steps / (2 * s) * math.log(uf * (s - u0) / (u0 * (s - uf)))


def model(data: WideData, hidden: int, depth: int = 2, **kwargs):
    """The ``deep_linear`` model matching ``data``'s dimensions."""
    return build_model("deep_linear", depth=depth, width=hidden, in_dim=data.V.shape[0],
                       out_dim=data.U.shape[0], **kwargs)


def objective(data: WideData, net) -> ls.Objective:
    """The full-batch float64 MSE Objective of ``net`` on ``data``."""
    return ls.Objective(net, data.X, data.Y, loss="mse", batch_size=data.X.shape[0], dtype=DTYPE)


def balanced_theta(obj: ls.Objective, data: WideData, u0: float, seed: int) -> Tensor:
    """θ of W₁ = O diag(√u₀) Vᵀ, W₂ = U diag(√u₀) Oᵀ with O ``(hidden, r)`` random orthonormal."""
    hidden = obj.spec.shapes[0][0]
    g = torch.Generator().manual_seed(int(seed))
    q, _ = torch.linalg.qr(torch.randn(hidden, len(data.s), generator=g, dtype=DTYPE))
    root = math.sqrt(u0)
    W1, W2 = root * q @ data.V.T, root * data.U @ q.T
    return obj.spec.flatten({obj.spec.names[0]: W1, obj.spec.names[1]: W2})


def end_to_end(obj: ls.Objective, theta: Tensor) -> Tensor:
    """W_D ⋯ W₁ for θ of a ``deep_linear`` model."""
    Ws = list(obj.spec.unflatten(theta).values())
    W = Ws[0]
    for Wl in Ws[1:]:
        W = Wl @ W
    return W


def modes_of(W: Tensor, data: WideData) -> np.ndarray:
    """u_α = u_αᵀ W v_α for every mode α of the target, ``(r,)``."""
    return torch.einsum("oa,oi,ia->a", data.U, W, data.V).numpy()


def simulate(obj: ls.Objective, theta0: Tensor, data: WideData, lr: float, steps: int):
    """GD through the Objective: mode strengths ``(steps + 1, r)`` and losses ``(steps + 1,)``."""
    theta, modes, losses = theta0.clone(), [], []
    for _ in range(steps):
        L, g = obj.loss_and_grad(theta)
        modes.append(modes_of(end_to_end(obj, theta), data))
        losses.append(float(L))
        theta, _ = sgd_update(theta, g, None, lr, 0.0, False, 0.0)
    modes.append(modes_of(end_to_end(obj, theta), data))
    losses.append(float(obj.loss(theta)))
    return np.array(modes), np.array(losses)
