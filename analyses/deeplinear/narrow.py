"""Study 1: the two-layer scalar net y = x·w₁·w₂, entirely through :class:`landscape.Objective`.

The model is ``deep_linear(depth=2, width=1, in_dim=1, out_dim=1)`` in float64 with
``loss="mse"`` (ℓ = (f − y)², no ½), so θ = (w₁, w₂) and every number here — the loss grid,
the gradient field, the gradient-descent trajectories (:func:`landscape.optim.sgd_update`),
the critical points and their Hessians (:func:`landscape.dense_hessian`, eigenvalues from
:func:`landscape.lanczos` run for P = 2 steps, which returns every eigenvalue) — comes from
the code path that serves ResNets. :mod:`.product` holds the closed forms they are checked
against:

* the origin is a saddle: H = [[0, −2⟨xy⟩], [−2⟨xy⟩, 0]], eigenvalues ±2⟨xy⟩;
* every point of the hyperbola w₁w₂ = â = ⟨xy⟩/⟨x²⟩ is a minimum with eigenvalues 0 (along
  the hyperbola) and 2⟨x²⟩(w₁² + w₂²).

Critical points are *found* by Newton's method on ∇L = 0 from a grid of starts (the step
−H⁺∇L with the pseudo-inverse, as H is singular on the hyperbola, capped in length), then
merged and classified by the signs of the two eigenvalues (zero within ``EIG_RTOL``·‖H‖).
"""

from __future__ import annotations

import numpy as np
import torch

import landscape as ls
from analyses.deeplinear import product as PR
from analyses.deeplinear.data import DTYPE, ScalarData
from landscape.models import build_model
from landscape.optim import sgd_update

# Newton converges to ‖∇L‖ ≤ newton_tol (1e-11 by default); an eigenvalue is then known to
# about ‖∇L‖/|w| plus float64 rounding of the 2×2 Hessian, far below 1e-7·‖H‖.
EIG_RTOL = 1e-7
MERGE_ATOL = 1e-6        # found points closer than this (in w) are one critical point
MAX_NEWTON_STEP = 0.5    # cap on one Newton step's length (in units of the grid span)
KINDS = ("saddle", "minimum", "maximum", "degenerate")   # degenerate: both eigenvalues ~ 0


def objective(data: ScalarData) -> ls.Objective:
    """The Objective of the two-layer scalar net on ``data`` (float64, one batch)."""
    model = build_model("deep_linear", seed=0, depth=2, width=1, in_dim=1, out_dim=1)
    return ls.Objective(model, data.x, data.y, loss="mse", batch_size=data.x.shape[0], dtype=DTYPE)


def grid_points(span: float, num: int) -> np.ndarray:
    """``num`` coordinates evenly spaced over [−span, span]."""
    return np.linspace(-span, span, num)


def surface(obj: ls.Objective, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """L(w₁ = xs[i], w₂ = ys[j]) as ``(len(ys), len(xs))`` (row j holds w₂ = ys[j])."""
    w1, w2 = np.meshgrid(xs, ys)
    thetas = torch.as_tensor(np.stack([w1.ravel(), w2.ravel()], 1), dtype=DTYPE)
    loss, _ = obj.losses_at(thetas, chunk_size=1024)
    return loss.numpy().reshape(len(ys), len(xs))


def gradient_field(obj: ls.Objective, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """∇L at every grid point, ``(len(ys), len(xs), 2)``."""
    out = np.empty((len(ys), len(xs), 2))
    for j, w2 in enumerate(ys):
        for i, w1 in enumerate(xs):
            out[j, i] = obj.grad(torch.tensor([w1, w2], dtype=DTYPE)).numpy()
    return out


def trajectory(obj: ls.Objective, start, lr: float, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Full-batch GD from ``start``: iterates ``(steps + 1, 2)`` and losses ``(steps + 1,)``."""
    theta = torch.tensor(start, dtype=DTYPE)
    path, losses = [theta.numpy().copy()], []
    for _ in range(steps):
        L, g = obj.loss_and_grad(theta)
        losses.append(float(L))
        theta, _ = sgd_update(theta, g, None, lr, 0.0, False, 0.0)
        path.append(theta.numpy().copy())
    losses.append(float(obj.loss(theta)))
    return np.array(path), np.array(losses)


def newton(obj: ls.Objective, start, *, iters: int, tol: float, span: float) -> tuple[np.ndarray, float, int]:
    """Newton's method on ∇L = 0: ``(θ, ‖∇L(θ)‖, iterations)``."""
    theta = torch.tensor(start, dtype=DTYPE)
    cap = MAX_NEWTON_STEP * span
    for it in range(iters + 1):
        g = obj.grad(theta)
        if float(g.norm()) <= tol or it == iters:
            break
        step = -torch.linalg.pinv(ls.dense_hessian(obj, theta), hermitian=True, rtol=1e-12) @ g
        theta = theta + step * min(1.0, cap / max(float(step.norm()), 1e-300))
    return theta.numpy(), float(g.norm()), it


def eigenvalues(obj: ls.Objective, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ascending Hessian eigenvalues at θ: from the dense Hessian, and from Lanczos (P steps)."""
    th = torch.as_tensor(theta, dtype=DTYPE)
    dense = np.linalg.eigvalsh(ls.dense_hessian(obj, th).numpy())
    lz = ls.lanczos(obj.hessian(th), num_iters=2, seed=0)
    ritz = np.sort(lz.ritz_values().numpy()) if len(lz.alphas) == 2 else dense   # breakdown: H v ∥ v
    return dense, ritz


def classify(lam: np.ndarray) -> str:
    """``saddle`` (signs differ), ``minimum`` (none negative), ``maximum``, or ``degenerate`` (all ~ 0)."""
    tol = EIG_RTOL * max(float(np.abs(lam).max()), 1e-300)
    neg, pos = bool((lam < -tol).any()), bool((lam > tol).any())
    if neg and pos:
        return "saddle"
    if pos or neg:
        return "minimum" if pos else "maximum"
    return "degenerate"


def merge(points: list[np.ndarray]) -> list[int]:
    """Indices of the first occurrence of each distinct point (within ``MERGE_ATOL``)."""
    keep: list[int] = []
    for i, p in enumerate(points):
        if all(np.abs(p - points[j]).max() > MERGE_ATOL for j in keep):
            keep.append(i)
    return keep


def theory_eigenvalues(theta: np.ndarray, m) -> np.ndarray:
    """The issue's closed forms: ±2⟨xy⟩ at the origin; 0 and 2⟨x²⟩(w₁² + w₂²) on the hyperbola.

    NaN for a point that is neither (not a critical point of this loss).
    """
    w1, w2 = theta
    if np.hypot(w1, w2) <= MERGE_ATOL:
        return np.array([-2 * m.xy, 2 * m.xy]) * np.sign(m.xy)
    if abs(w1 * w2 - m.a_hat) <= MERGE_ATOL * max(1.0, abs(m.a_hat)):
        return np.array([0.0, 2 * m.xx * (w1 * w1 + w2 * w2)])
    return np.full(2, np.nan)


def newton_starts(span: float, num: int) -> np.ndarray:
    """A ``num × num`` grid of starts: w₁ over ±0.8·span, w₂ over the same values × 0.9 shifted by
    0.05·span, so the grid is not symmetric under w₁ ↔ w₂ or through the origin (the minima found
    then spread along the hyperbola, and the saddle must be reached, not started from)."""
    c = np.linspace(-0.8 * span, 0.8 * span, num)
    w1, w2 = np.meshgrid(c, 0.9 * c + 0.05 * span)
    return np.stack([w1.ravel(), w2.ravel()], 1)


def critical_points(obj: ls.Objective, cfg, m) -> dict:
    """Newton from a grid of starts (a NarrowConfig), merged; eigenvalues four ways, and kinds.

    Returns arrays: ``points (M, 2)``, ``kind (M,)``, ``eigenvalues`` (dense Hessian),
    ``eigenvalues_lanczos``, ``eigenvalues_closed_form`` (:func:`.product.two_layer_hessian`),
    ``eigenvalues_theory`` (:func:`theory_eigenvalues`), all ``(M, 2)`` ascending;
    ``grad_norm, hits (M,)``; the Newton runs ``newton_starts, newton_ends (S, 2)``,
    ``newton_iters, newton_converged (S,)``; ``a_hat``.
    """
    starts = newton_starts(cfg.span, cfg.newton_grid)
    runs = [newton(obj, s, iters=cfg.newton_iters, tol=cfg.newton_tol, span=cfg.span) for s in starts]
    ends = np.array([th for th, _, _ in runs])
    conv = np.array([gn <= cfg.newton_tol for _, gn, _ in runs])
    good = ends[conv]
    pts = good[merge(list(good))] if len(good) else np.zeros((0, 2))
    eig = [eigenvalues(obj, p) for p in pts]
    dense = np.array([d for d, _ in eig]).reshape(-1, 2)
    return {"points": pts, "kind": np.array([classify(d) for d in dense], dtype=str), "eigenvalues": dense,
            "eigenvalues_lanczos": np.array([z for _, z in eig]).reshape(-1, 2),
            "eigenvalues_closed_form": np.array([np.linalg.eigvalsh(PR.two_layer_hessian(*p, m)) for p in pts]).reshape(-1, 2),
            "eigenvalues_theory": np.array([theory_eigenvalues(p, m) for p in pts]).reshape(-1, 2),
            "grad_norm": np.array([float(obj.grad(torch.as_tensor(p, dtype=DTYPE)).norm()) for p in pts]),
            "hits": np.array([int((np.abs(good - p).max(1) <= MERGE_ATOL).sum()) for p in pts]),
            "newton_starts": starts, "newton_ends": ends, "newton_iters": np.array([it for _, _, it in runs]),
            "newton_converged": conv, "a_hat": m.a_hat}
