"""Newton in the top eigen-subspace, and the same moves to each direction's line-search minimum.

With stored unit eigenvectors v_1 … v_k of the Hessian H of the loss L at θ (eigenvalues
λ_1 ≥ λ_2 ≥ …) and the gradient g of the same loss, the quadratic model along v_i is
L(θ + t v_i) ≈ L(θ) + t gᵀv_i + ½ λ_i t², minimised at t_i = −gᵀv_i / λ_i when λ_i > 0. Moving
the first m directions there,

    θ_m = θ − Σ_{i ≤ m} (gᵀv_i / λ_i) v_i,

changes the loss, if the model held jointly (orthonormal v_i, no coupling), by

    ΔL_m = −½ Σ_{i ≤ m} (gᵀv_i)² / λ_i.

Directions with λ_i ≤ 0 have no minimum in the model and are skipped (listed in the item). This is
the step RazCiuca/MAIS_project_2024 (seed 003, ``step3c_implied_minimum_loss.py``) takes for every λ
above a threshold; sweeping m sweeps the threshold λ_m. The variant moves each direction to the
minimum t*_i of the measured curve L(θ + t v_i) instead (a line search), θ*_m = θ + Σ_{i ≤ m} t*_i v_i.

Cost: one gradient (the stored eigenpairs are reused, no new solve) and one forward pass over each
evaluated set per point θ_m; the line-search variant adds one forward pass per grid point per
direction (none when stored line searches are reused).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from analyses.linesearch.curves import along, curve_minima
from landscape.errors import InputError


def order_positive(eigenvalues: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows with λ > 0 by descending λ, rows with λ ≤ 0 or non-finite): the directions used and skipped."""
    lam = np.asarray(eigenvalues, dtype=np.float64)
    order = np.argsort(-np.nan_to_num(lam, nan=-np.inf), kind="stable")
    good = np.isfinite(lam[order]) & (lam[order] > 0)
    return order[good], order[~good]


def check_m(m_max: int | None, used: int, stored: int, step: int) -> int:
    """The number of directions moved: ``m_max`` (None: all usable), refused above what is stored or usable."""
    if m_max is None:
        return used
    if m_max < 1 or m_max > stored:
        raise InputError(f"--m-max {m_max}: step {step} has {stored} stored eigenpairs; choose 1 ≤ m ≤ {stored} "
                         "(or compute more with `landscape hessian --k K`)")
    if m_max > used:
        raise InputError(f"--m-max {m_max}: only {used} of the {stored} stored eigenvalues at step {step} are "
                         f"positive (a Newton step needs λ > 0); choose m ≤ {used}")
    return m_max


def newton_steps(slopes: np.ndarray, eigenvalues: np.ndarray) -> np.ndarray:
    """t_i = −gᵀv_i / λ_i ``(m,)`` for positive λ_i."""
    return -np.asarray(slopes, np.float64) / np.asarray(eigenvalues, np.float64)


def predicted_change(slopes: np.ndarray, eigenvalues: np.ndarray) -> np.ndarray:
    """ΔL_m = −½ Σ_{i≤m} (gᵀv_i)²/λ_i for m = 0 … len ``(m+1,)`` (0 at m = 0)."""
    terms = -0.5 * np.asarray(slopes, np.float64) ** 2 / np.asarray(eigenvalues, np.float64)
    return np.concatenate([[0.0], np.cumsum(terms)])


def path(theta: Tensor, V: Tensor, steps: np.ndarray) -> Tensor:
    """θ_m = θ + Σ_{i≤m} t_i v_i for m = 0 … len: ``(m+1, P)`` (accumulated in float64)."""
    t = torch.as_tensor(steps, dtype=torch.float64, device=theta.device)
    moves = torch.cumsum(t[:, None] * V.to(torch.float64), dim=0)
    out = torch.cat([torch.zeros_like(moves[:1]), moves]) + theta.to(torch.float64)
    return out.to(theta.dtype)


def evaluate(objective, thetas: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Loss and accuracy at every row ``(n,)``, ``(n,)`` (one forward pass per row)."""
    loss, acc = objective.losses_at(thetas, check_finite=False)
    return loss.detach().double().cpu().numpy(), acc.detach().double().cpu().numpy()


def search_minima(objective, theta: Tensor, V: Tensor, scales: np.ndarray, num: int, span: float,
                  chunk: int = 32) -> dict:
    """t*_i: the minimum of L(θ + t v_i) on t ∈ s_i·[−span, span] (``num`` points; s_i = |t_i| or a floor).

    Returns ``min_t (m,)``, ``min_loss (m,)``, ``bracketed (m,)`` (refined by the parabola through the
    grid argmin and its neighbours, :func:`analyses.linesearch.curves.curve_minima`).
    """
    ts = np.linspace(-span, span, num)
    s = torch.as_tensor(scales, dtype=V.dtype, device=V.device)
    out = along(objective, theta, s[:, None] * V, ts, chunk=chunk, desc="line searches")
    mins = curve_minima(ts, out["loss"])
    return {"min_t": mins["min_t"] * np.asarray(scales, np.float64), "min_loss": mins["min_loss"],
            "bracketed": mins["bracketed"]}
