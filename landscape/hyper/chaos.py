"""Stability of the training map: the spectral radius of one step's Jacobian.

The Jacobian of step t, S_t = (θ_t, m_t) ↦ S_{t+1}, for the heavy-ball rule with rates η
(a scalar or a diagonal D = diag(η)), momentum β and A_t = H_t + diag(λ) (the minibatch
Hessian plus the L2 term) is ::

    J_t = [[I − D A_t,  −β D],
           [A_t,         β I]]

Conjugating by diag(D^{-1/2}, D^{1/2}) turns it into the same matrix with D A_t replaced by
the symmetric B_t = D^{1/2} A_t D^{1/2}, whose blocks are polynomials in B_t; so every
eigenvalue b of B_t gives two eigenvalues μ of J_t, the roots of

    μ² − (1 + β − b) μ + β = 0,

and |μ| is largest at the ends of B_t's spectrum. Hence ρ(J_t) = max(ρ(b_min), ρ(b_max)),
from two extreme eigenvalues of a symmetric operator (our Lanczos, :func:`landscape.eigsh`).
For plain GD (β = 0), J_t = I − η A_t and ρ = max |1 − η a|: the map expands along the top
curvature direction when η λ_max > 2; with momentum when η λ_max > 2(1 + β) (Metz et al.
2021, "Gradients are not all you need"). ρ > 1 means the tangents of forward mode and the
adjoints of reverse mode grow along that direction: the hypergradient explodes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from landscape.hyper.hyperparams import lr_at, momentum_at, train_inputs, weight_decay
from landscape.operators import LinearOperator
from landscape.solvers import eigsh

EIG_TOL = 1e-4           # relative residual of the two extreme eigenvalues (a stability diagnostic, not a spectrum)
EIG_MAX_MATVECS = 300    # budget of Hessian-vector products per step map


class ScaledCurvature(LinearOperator):
    """B_t = D^{1/2} (H_t + diag λ) D^{1/2}: the symmetric core of step t's Jacobian.

    Args:
        problem, hyper: the training problem and hyperparameters; t: the step; theta: θ_t.
    """

    def __init__(self, problem, hyper: Mapping[str, Tensor], t: int, theta: Tensor):
        super().__init__(problem.P, problem.dtype, problem.device)
        self.problem, self.t, self.theta = problem, t, theta.detach()
        self.x = train_inputs(problem, hyper).detach()
        self.root_lr = _as_vector(lr_at(problem, hyper, t), problem).sqrt()
        self.l2 = _as_vector(weight_decay(problem, hyper), problem)

    def _matvec(self, v: Tensor) -> Tensor:
        u = self.root_lr * v
        with torch.enable_grad():
            th = self.theta.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(self.problem.batch_loss(th, self.t, self.x), th, create_graph=True)
            (hu,) = torch.autograd.grad(g, th, u)
        return self.root_lr * (hu + self.l2 * u)


class StepJacobian(LinearOperator):
    """J_t = I − η (H_t + λ) for plain GD with a scalar rate: symmetric, so eigsh applies directly."""

    def __init__(self, problem, hyper: Mapping[str, Tensor], t: int, theta: Tensor):
        super().__init__(problem.P, problem.dtype, problem.device)
        self.B = ScaledCurvature(problem, hyper, t, theta)

    def _matvec(self, v: Tensor) -> Tensor:
        return v - self.B.matvec(v)


def _as_vector(value, problem) -> Tensor:
    if isinstance(value, Tensor):
        value = value.detach().to(problem.device, problem.dtype)
        return value.expand(problem.P) if value.ndim == 0 else value
    return torch.full((problem.P,), float(value), dtype=problem.dtype, device=problem.device)


def momentum_radius(b: float, beta: float) -> float:
    """max |μ| over the roots of μ² − (1 + β − b) μ + β = 0."""
    p = 1.0 + beta - b
    disc = p * p - 4.0 * beta
    if disc < 0:
        return math.sqrt(beta)
    root = math.sqrt(disc)
    return max(abs(p + root), abs(p - root)) / 2.0


@dataclass(frozen=True)
class StepStability:
    """Stability of step t's map.

    Attributes:
        step: t. b_max, b_min: extreme eigenvalues of B_t = D^{1/2} A_t D^{1/2} (for a scalar
            rate, η λ_max and η λ_min of H_t + λ). lambda_max, lambda_min: of A_t itself (NaN
            for per-layer rates). beta: β_t. rho: ρ(J_t). rho_top: ρ(b_max), the oscillatory
            instability from the top of the spectrum (ρ(b_min) > 1 when b_min < 0 is the ordinary
            escape along negative curvature, present at any rate). threshold: 2(1 + β), the b_max beyond
            which ρ > 1 (a root passes −1). residual: largest relative residual of the two.
    """

    step: int
    b_max: float
    b_min: float
    lambda_max: float
    lambda_min: float
    beta: float
    rho: float
    rho_top: float
    threshold: float
    residual: float
    num_matvecs: int

    def as_dict(self) -> dict:
        return asdict(self)


def step_stability(problem, hyper: Mapping[str, Tensor], t: int, theta: Tensor, *, seed: int = 0,
                   tol: float = EIG_TOL, max_matvecs: int = EIG_MAX_MATVECS) -> StepStability:
    """ρ(J_t) at θ_t from the two extreme eigenvalues of B_t (Lanczos)."""
    B = ScaledCurvature(problem, hyper, t, theta)
    res = eigsh(B, k=2, which="BE", tol=tol, max_matvecs=max_matvecs, seed=seed)
    b_min, b_max = float(res.eigenvalues.min()), float(res.eigenvalues.max())
    beta = float(momentum_at(problem, hyper, t)) if _has_momentum(problem, hyper) else 0.0
    lr = lr_at(problem, hyper, t)
    scalar = not isinstance(lr, Tensor) or lr.ndim == 0
    eta = float(lr) if scalar else math.nan
    rho = max(momentum_radius(b_min, beta), momentum_radius(b_max, beta))
    rel = float((res.residuals / max(abs(b_max), abs(b_min), 1e-300)).max())
    return StepStability(t, b_max, b_min, b_max / eta if scalar else math.nan, b_min / eta if scalar else math.nan,
                         beta, rho, momentum_radius(b_max, beta), 2.0 * (1.0 + beta), rel, int(res.num_matvecs))


class FullCurvature(LinearOperator):
    """H of the mean loss over the whole training set at θ (the trainer's online sharpness)."""

    def __init__(self, problem, hyper: Mapping[str, Tensor], theta: Tensor):
        super().__init__(problem.P, problem.dtype, problem.device)
        self.problem, self.theta = problem, theta.detach()
        self.x = train_inputs(problem, hyper).detach()

    def _matvec(self, v: Tensor) -> Tensor:
        p = self.problem
        with torch.enable_grad():
            th = self.theta.detach().requires_grad_(True)
            loss = p.loss_fn(p.forward(th, self.x), p.y_train).mean()
            (g,) = torch.autograd.grad(loss, th, create_graph=True)
            (hv,) = torch.autograd.grad(g, th, v)
        return hv


def full_batch_sharpness(problem, hyper: Mapping[str, Tensor], theta: Tensor, *, seed: int = 0,
                         tol: float = EIG_TOL, max_matvecs: int = EIG_MAX_MATVECS) -> float:
    """λ_max of the full training loss's Hessian at θ (Lanczos)."""
    res = eigsh(FullCurvature(problem, hyper, theta), k=1, which="LA", tol=tol, max_matvecs=max_matvecs, seed=seed)
    return float(res.eigenvalues[0])


def _has_momentum(problem, hyper) -> bool:
    return "momentum" in hyper or problem.momentum != 0
