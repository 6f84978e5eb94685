"""Continued training with the update shaped in the top-k Hessian eigenbasis.

Every variant continues from the same checkpoint on the same batch plan as a plain-SGD
**control** (:mod:`checkpoints.continuation`: the trainer's loop restarted at the step, the run's
batches continued), with the update rule of :func:`landscape.optim.sgd_update` reshaped by a
:class:`landscape.optim.SubspaceShape` built from the top-k eigenpairs (λ_i, v_i), recomputed
every R updates by Lanczos warm-started at the previous eigenvectors (the first time at the
stored ones). Along v_i the learning rate is η s_i, in the complement η ρ:

* ``inverse`` — inverse-λ preconditioning in the subspace: s_i = λ_k / λ_i (ρ = 1), every top
  direction then has the curvature η λ_k of the k-th (λ_i ≤ 0: s_i = 1);
* ``stationary`` — the per-direction rate whose stationary variance is the Laplace posterior's
  (seed 003, step 5; Mandt, Hoffman & Blei 2017, "Stochastic Gradient Descent as Approximate
  Bayesian Inference"). On ½λx² with per-example gradient variance c along v (minibatch noise
  c/B), heavy-ball SGD x' = x − η(λx + ξ) + β(x − x₋) has the stationary variance
  η c (1+β) / (B λ (1−β) (2(1+β) − ηλ)); the posterior ∝ exp(−N L) has variance 1/(N λ). They are
  equal when

      η_i = 2 B (1 − β²) / ((1 + β) N c_i + (1 − β) B λ_i),     s_i = η_i / η,

  with c_i the variance of the per-example projections g_n·v_i (measured at each refresh, k
  forward-mode passes). With c ≈ λ (Fisher ≈ Hessian) a constant η is "Bayesian" for exactly one
  eigenvalue, λ* = 2B(1−β²) / (η ((1+β) N + (1−β) B)) (the seed's insight); larger λ get a
  smaller rate, smaller λ a larger one;
* ``dom`` — Dom-SGD, the update projected onto the top subspace (s = 1, ρ = 0), and ``bulk`` —
  Bulk-SGD, projected out of it (s = 0, ρ = 1): Song, Ahn & Yun (ICLR 2025), "Does SGD really
  happen in tiny subspaces?"; Gur-Ari, Roberts & Dyer (2018) for the top-subspace picture;
* ``b1`` — the seed's last prediction: the same examples in the same order at batch size 1 with
  a tiny learning rate (default η/B, the linear-scaling rule's equal temperature).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from landscape.optim import SubspaceShape

VARIANTS = ("control", "inverse", "stationary", "dom", "bulk", "b1")
SHAPED = ("inverse", "stationary", "dom", "bulk")


def inverse_rule(objective, theta, eig) -> SubspaceShape:
    """s_i = λ_min⁺ / λ_i for λ_i > 0 (λ_min⁺ the smallest positive of the k), else 1; ρ = 1."""
    lam = torch.as_tensor(eig.eigenvalues, dtype=torch.float64)
    pos = lam > 0
    ref = lam[pos].min() if bool(pos.any()) else torch.tensor(1.0, dtype=torch.float64)
    scales = torch.where(pos, ref / lam.clamp_min(torch.finfo(torch.float64).tiny), torch.ones_like(lam))
    return SubspaceShape(eig.eigenvectors, scales.to(eig.eigenvectors), 1.0)


def dom_rule(objective, theta, eig) -> SubspaceShape:
    """Dom-SGD: onto span(V)."""
    return SubspaceShape.onto(eig.eigenvectors)


def bulk_rule(objective, theta, eig) -> SubspaceShape:
    """Bulk-SGD: out of span(V)."""
    return SubspaceShape.out_of(eig.eigenvectors)


@dataclass(frozen=True)
class StationaryRule:
    """s_i = η_i/η with η_i = 2B(1−β²)/((1+β)N c_i + (1−β)B λ_i) (module docstring)."""

    lr: float           # η, the continuation's base learning rate
    batch_size: int     # B
    num_train: int      # N, the posterior's number of examples
    momentum: float     # β

    @property
    def critical_eigenvalue(self) -> float:
        """λ* = 2B(1−β²)/(η((1+β)N + (1−β)B)): the curvature a constant η samples at the posterior's variance (c = λ)."""
        B, N, b = self.batch_size, self.num_train, self.momentum
        return 2 * B * (1 - b * b) / (self.lr * ((1 + b) * N + (1 - b) * B))

    def rates(self, eigenvalues: np.ndarray, variances: np.ndarray) -> np.ndarray:
        """η_i ``(k,)`` (NaN where the denominator is not positive)."""
        B, N, b = self.batch_size, self.num_train, self.momentum
        den = (1 + b) * N * np.asarray(variances) + (1 - b) * B * np.asarray(eigenvalues)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(den > 0, 2 * B * (1 - b * b) / den, np.nan)

    def __call__(self, objective, theta, eig) -> SubspaceShape:
        V = eig.eigenvectors
        proj = objective.per_example_projections(theta, V).double()          # (n, k): g_n·v_i
        c = proj.var(dim=0, unbiased=False).cpu().numpy()
        rates = self.rates(np.asarray(eig.eigenvalues, np.float64), c)
        scales = np.where(np.isfinite(rates), rates / self.lr, 1.0)
        return SubspaceShape(V, torch.as_tensor(scales, dtype=V.dtype, device=V.device), 1.0)


def rule_for(variant: str, *, lr: float, batch_size: int, num_train: int, momentum: float):
    """The shaping rule of a variant (None for the unshaped ``control`` and ``b1``)."""
    if variant == "stationary":
        return StationaryRule(lr, batch_size, num_train, momentum)
    return {"inverse": inverse_rule, "dom": dom_rule, "bulk": bulk_rule}.get(variant)


def curves(result, log: list) -> dict:
    """The arrays of one continuation: evaluations, per-step losses and the refresh log."""
    out = {"eval_steps": result.eval_steps, "examples": result.eval_steps * result.batch_size,
           "train_loss": result.train_loss, "train_acc": result.train_acc, "test_loss": result.test_loss,
           "test_acc": result.test_acc, "step_loss": result.step_loss, "lr": float(result.lr),
           "batch_size": int(result.batch_size), "wall_time": float(result.wall_time)}
    if log:
        out.update(refresh_steps=np.array([e["step"] for e in log], np.int64),
                   refresh_eigenvalues=np.stack([e["eigenvalues"] for e in log]),
                   refresh_residuals=np.stack([e["residuals"] for e in log]),
                   refresh_matvecs=np.array([e["num_matvecs"] for e in log], np.int64),
                   refresh_converged=np.array([e["converged"] for e in log], np.int64),
                   scales=np.stack([e["scales"] for e in log]), rest=float(log[-1]["rest"]))
    return out
