"""How far does the quadratic, eigen-independent picture hold along random directions?

Along a random unit direction u, compare the true loss with the quadratic prediction from
uᵀHu and with the sum of the eigendirection line searches (docs/analyses-eigen.md).

For a unit direction u, split u = Σ_i c_i v_i + r with c = V u over the k stored
eigenvectors and r ⊥ span(V). Three curves on the t-grid:

* true:      L(θ + t u);
* quadratic: L(θ) + t g·u + ½ t² uᵀHu (one gradient for all u, one HVP per u);
* independent (sum of eigendirection line searches):
      L(θ) + Σ_i [L(θ + t c_i v_i) − L(θ)] + [L(θ + t r) − L(θ)],
  exact when L is a sum of functions of each coordinate c_i (and of the rest).

On a quadratic L both predictions are exact (the cross terms v_iᵀH r = λ_i v_iᵀ r
vanish). Where each prediction parts from the truth is reported as the smallest
|t| on each side with |prediction − true| > ``rtol`` · |true − L(θ)| + ``atol``.
The independent prediction costs (k + 2)·T forward passes per direction.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from analyses.linesearch.curves import along
from landscape.directions import gaussian, unit_rows


def random_unit_directions(P: int, n: int, *, seed: int, dtype=torch.float32, device="cpu") -> Tensor:
    """n seeded Gaussian directions scaled to unit norm ``(n, P)`` (:func:`landscape.directions.gaussian`)."""
    return unit_rows(gaussian(P, n, seed=seed, dtype=dtype, device=device))


def parting_t(ts: np.ndarray, pred: np.ndarray, true: np.ndarray, L0: float, rtol: float, atol: float) -> np.ndarray:
    """Smallest |t| on the negative and positive side where the prediction leaves the truth ``(2,)`` (NaN: never)."""
    ts = np.asarray(ts)
    bad = np.abs(pred - true) > rtol * np.abs(true - L0) + atol
    out = np.full(2, np.nan)
    for side, mask in enumerate((ts < 0, ts > 0)):
        mags = np.abs(ts[mask])
        hits = mags[bad[mask]]
        out[side] = hits.min() if hits.size else np.nan
    return out


def quadratic_check(objective, theta: Tensor, V: Tensor, U: Tensor, ts: np.ndarray, *,
                    rtol: float = 0.1, atol: float = 1e-6, chunk: int = 64) -> dict:
    """The three curves of the module docstring for each row of U.

    Args:
        objective: a :class:`landscape.Objective`.
        theta: θ ``(P,)``; V: eigenvectors ``(k, P)`` (orthonormal rows); U: unit directions ``(n, P)``.
        ts: the t-grid ``(T,)``, containing 0.
        rtol, atol: the parting criterion.

    Returns:
        ``ts``, ``coefficients (n, k)`` (c = V u), ``residual_norm (n,)`` (‖r‖),
        ``curvature (n,)`` (uᵀHu), ``slope (n,)`` (g·u), ``true``, ``quadratic``, ``independent``
        ``(n, T)``, ``parting_quadratic`` and ``parting_independent`` ``(n, 2)``, ``L0``.
    """
    ts = np.asarray(ts, dtype=np.float64)
    V, U = V.to(theta), U.to(theta)
    L0, g = objective.loss_and_grad(theta)
    L0 = float(L0)
    C = U @ V.T                                            # (n, k)
    R = U - C @ V                                          # (n, P) components outside span(V)
    uHu = (objective.hvp(theta, U) * U).sum(1).double().cpu().numpy()
    slope = (U @ g.to(theta)).double().cpu().numpy()
    true = along(objective, theta, U, ts, chunk=chunk, desc="random directions")["loss"]
    quad = L0 + slope[:, None] * ts[None] + 0.5 * uHu[:, None] * ts[None] ** 2
    indep = np.stack([_independent(objective, theta, V, c, r, ts, L0, chunk) for c, r in zip(C, R)])
    parts = {name: np.stack([parting_t(ts, p, t, L0, rtol, atol) for p, t in zip(pred, true)])
             for name, pred in (("parting_quadratic", quad), ("parting_independent", indep))}
    return {"ts": ts, "coefficients": C.double().cpu().numpy(), "residual_norm": R.norm(dim=1).double().cpu().numpy(),
            "curvature": uHu, "slope": slope, "true": true, "quadratic": quad, "independent": indep,
            "L0": L0, "rtol": rtol, "atol": atol, **parts}


def _independent(objective, theta: Tensor, V: Tensor, c: Tensor, r: Tensor, ts: np.ndarray, L0: float,
                 chunk: int) -> np.ndarray:
    """L0 + Σ_i [L(θ + t c_i v_i) − L0] + [L(θ + t r) − L0] on the grid ``(T,)``."""
    W = torch.cat([c[:, None] * V, r[None]])             # (k + 1, P): scaled eigen-components and the rest
    curves = along(objective, theta, W, ts, chunk=chunk, desc="eigen-components")["loss"]
    return L0 + (curves - L0).sum(0)
