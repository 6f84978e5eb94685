"""What ``tol`` means, and the certificates of the returned eigenpairs (no extra products).

Residuals. Relation (2) of :mod:`landscape.solvers.krylov` gives ‖A y − θ y‖ for every Ritz
pair from the products already computed. What it cannot see is rounding outside the
float64 arithmetic of the solver: the operator's own error on a product and the cast of
the returned vector to the operator's dtype, each a few units of that dtype's precision
times ‖A‖, plus float64 Gram–Schmidt rounding (a few n·eps64·‖A‖). That *floor* is added:

    residual_i = ‖relation (2)‖ + leak part + floor,   floor = (PRODUCT_ULPS·eps(dtype) + GS_ULPS·n·eps64)·‖A‖_est.

A pair whose leak part (a bound, not an exact term; rounding-sized in every path of the
solver) exceeds both the floor and ``LEAK_PER_TOL`` · tol · ‖A‖_est is not certified tightly,
and its residual is recomputed with one explicit product (reported in ``recomputed``).

Eigenvalue errors. For a unit y with Rayleigh quotient θ and residual ρ, some eigenvalue
lies within ρ of θ (Weyl), and if the rest of the spectrum is at distance ≥ g > ρ from θ,
that eigenvalue is within ρ²/g (Kato 1949, Temple 1952; Parlett 1998, §11.7). The gap g is
estimated from the other Ritz values, each widened by its own residual:

    error_i = ρ_i²/g_i if g_i > max(ρ_i, τ_i) else ρ_i,   g_i = min_{j ≠ i} (|θ_i − θ_j| − ρ_j),

with τ_i the tolerance (below): values closer together than the asked accuracy form a cluster
that is not resolved at that accuracy, and only the Weyl bound is claimed for them. The
quadratic form is a bound when every other eigenvalue within g_i of θ_i is represented by a
Ritz value — the question the probe for missed eigenvalues answers (:mod:`landscape.solvers.probe`).

Stopping (``criterion``):

* ``"residual"`` (default): ‖A v − θ v‖ ≤ tol · ‖A‖_est for every pair;
* ``"eigenvalue"``: error_i ≤ tol · |θ_i| for every pair — "every eigenvalue to ``tol``
  relative", which is what most users mean by a tolerance, and usually far fewer products:
  the eigenvalue error falls like the *square* of the residual.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from landscape.operators import LinearOperator, apply_float64

CRITERIA = ("residual", "eigenvalue")

# Floor of a certified residual, in units of ‖A‖_est. A product of a dtype-d operator is off
# by a few eps(d)·‖A‖ (float32 dense products on the oracle matrices: 1–3e-7 relative;
# float32 HVPs: 0.4–2.4e-7 against each other, bench/hvp.py), and casting the float64
# vector to d moves it by eps(d)/2 per entry, its residual by ≤ eps(d)·‖A‖. 4 ulps covers both.
PRODUCT_ULPS = 4.0
# Two-pass Gram–Schmidt and the rotations of a restart round at ~n·eps64 relative (Giraud et
# al. 2005); 8 per basis vector is a safe multiple.
GS_ULPS = 8.0
# A leak part (a bound, not an exact term) is tight enough when it is below the floor or below
# this share of the tolerance (it then cannot change a convergence decision, and the reported
# residual overstates the true one by less than 1e-4·tol·‖A‖); above both, recompute that residual.
LEAK_FLOORS = 1.0
LEAK_PER_TOL = 1e-4


@dataclass(frozen=True)
class Accuracy:
    """The stopping rule of one eigsh call (see the module docstring).

    Attributes:
        criterion: ``"residual"`` or ``"eigenvalue"``.
        tol: relative tolerance in (0, 1).
        dtype: the operator's dtype (for the floor).
    """

    criterion: str
    tol: float
    dtype: torch.dtype

    def floor(self, scale: float, n: int) -> float:
        """The rounding floor of a certified residual (absolute)."""
        eps = torch.finfo(self.dtype).eps if self.dtype.is_floating_point else 0.0
        return (PRODUCT_ULPS * eps + GS_ULPS * max(n, 1) * torch.finfo(torch.float64).eps) * scale

    def tolerance(self, theta: Tensor, scale: float, n: int) -> Tensor:
        """τ_i, the error each value may have in eigenvalue units: tol·‖A‖_est (residual) or
        tol·|θ_i| plus twice the floor (eigenvalue: values at the level of rounding, such as
        the zero eigenvalues of a rank-deficient A, are judged in absolute terms)."""
        floor = self.floor(scale, n)
        if self.criterion == "residual":
            return torch.full_like(theta, max(self.tol * scale, floor))
        return self.tol * theta.abs() + 2 * floor

    def converged(self, errors: Tensor, rho: Tensor, theta: Tensor, scale: float, n: int) -> Tensor:
        """Which pairs meet the rule (``rho`` certified residuals, ``errors`` eigenvalue errors)."""
        if self.criterion == "residual":
            return rho <= self.tol * scale
        return errors <= self.tolerance(theta, scale, n)


def eigenvalue_errors(theta: Tensor, rho: Tensor, idx: Tensor, min_gap: Tensor | None = None) -> Tensor:
    """min(ρ_i, ρ_i²/g_i) for the pairs ``idx`` among all Ritz values ``theta`` (n,) with
    residual bounds ``rho`` (n,); g_i = min_{j ≠ i} (|θ_i − θ_j| − ρ_j).

    The quadratic form is used only where g_i exceeds ``min_gap`` (k,), the tolerance: values
    closer together than the asked accuracy form a cluster that is not resolved at that
    accuracy, where a Ritz value need not stand for every eigenvalue near it, so only the
    Weyl bound ρ_i is claimed there.
    """
    errors = rho[idx].clone()
    for row, i in enumerate(idx.tolist()):
        others = torch.ones_like(theta, dtype=torch.bool)
        others[i] = False
        if not bool(others.any()):
            continue
        gap = float(((theta[others] - theta[i]).abs() - rho[others]).min())
        floor = float(rho[i]) if min_gap is None else max(float(rho[i]), float(min_gap[row]))
        if gap > floor:
            errors[row] = rho[i] ** 2 / gap
    return errors


def locked_errors(basis, theta: Tensor, rho: Tensor, at_lock: Tensor) -> Tensor:
    """Eigenvalue error bounds of the k locked rows of ``basis`` after the probe.

    ``at_lock`` are their bounds when they were locked (gaps to the Ritz values of the main
    basis). A Ritz value of the probe block bounds the deflated operator's spectrum from the
    inside, so the gap to the rest of the spectrum is at most the distance to the nearest one:
    where that is smaller than the gap assumed at lock time, the bound grows to ρ²/distance
    (at most ρ). Returns ``(k,)``.
    """
    k, n = theta.numel(), basis.size
    if n <= k:
        return at_lock.clone()
    free = torch.linalg.eigvalsh(basis.T[k:n, k:n])
    distance = (theta.unsqueeze(1) - free.unsqueeze(0)).abs().min(dim=1).values
    return torch.minimum(rho, torch.maximum(at_lock, rho ** 2 / distance.clamp(min=1e-300)))


def certified_residuals(op: LinearOperator, theta: Tensor, Y: Tensor, relation: Tensor, leak: Tensor,
                        floor: float, slack: float = 0.0) -> tuple[Tensor, Tensor, int]:
    """Residuals of the returned pairs: the relation's where tight, else one explicit product each.

    Args:
        op: the operator.
        theta: ``(k,)`` values; ``Y``: ``(k, P)`` the returned vectors in the operator's dtype.
        relation: ``(k,)`` residual norms from relation (2), leak part included.
        leak: ``(k,)`` the leak part alone.
        floor: the rounding floor (absolute).
        slack: a leak below this (absolute) is tight enough too (``LEAK_PER_TOL`` · tol · ‖A‖_est).

    Returns:
        ``(residuals (k,), recomputed (k,) bool, products used)``.
    """
    recomputed = leak > max(LEAK_FLOORS * floor, slack)
    residuals = relation + floor
    if bool(recomputed.any()):
        rows = Y[recomputed.to(Y.device)]
        R = apply_float64(op, rows) - theta[recomputed].to(Y.device).unsqueeze(1) * rows.to(torch.float64)
        residuals[recomputed] = torch.linalg.norm(R, dim=1).cpu()
    return residuals, recomputed, int(recomputed.sum())


def relative(x: float, scale: float) -> float:
    """x / ‖A‖_est (nan for a zero operator)."""
    return x / scale if scale > 0 else math.nan
