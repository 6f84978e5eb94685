"""Sharpness at a point: random-direction probes, worst-case ε-sharpness, λ_max and trace.

Every function takes an :class:`~landscape.objective.Objective` (the training loss
L), the parameters θ ``(P,)`` and a frozen config, and returns a dict of arrays; the
command stores them next to the train and test loss at θ (:func:`losses`), so the
generalization gap sits beside every measure.

**Random probes.** Directions u_j are Gaussian N(0, I/P) (E‖u‖² = 1), optionally
filter-normalized (Li et al. 2018) or scaled by |θ| + η (adaptive, Kwon et al. 2021);
see :mod:`landscape.directions`. At radius r the change Δ_j(±r) = L(θ ± r u_j) − L(θ).
With ``antithetic=True`` both signs are evaluated: the gradient term cancels exactly,
½(Δ(+r) + Δ(−r)) = ½ r² uᵀHu + O(r⁴), and since E[uᵀHu] = tr(H)/P for Gaussian u,
the mean change is r²·tr(H)/(2P) + O(r⁴). Aggregates over all evaluations at one
radius: Σ|Δ| (the seed's measure), mean Δ², max Δ, mean Δ and the spread (std).

**Worst case.** Keskar et al. 2017, "On Large-Batch Training ...": the ε-sharpness
φ = 100 · (max_{δ∈C} L(θ+δ) − L(θ)) / (1 + L(θ)) over the box
C = {|δ_i| ≤ ε(|θ_i| + 1)}, or here also the ball ‖δ‖₂ ≤ ε; the maximum is sought by
projected gradient ascent (normalized steps in the ball, signed steps in the box;
Madry et al. 2018) from a seeded random start; the step is halved, back at the best
iterate, whenever a step fails to raise the loss (after APGD, Croce & Hein 2020).

**Curvature.** λ_max by Lanczos (:func:`landscape.eigsh`, certified by its residual)
and tr(H) by Hutch++ (:func:`landscape.trace`, with its standard error).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

import landscape as ls
from analyses.driver.records import Record
from landscape.directions import RANDOM_KINDS, random_directions
from landscape.errors import InputError

CONSTRAINTS = ("ball", "box")


def _check_radii(radii, what: str) -> tuple[float, ...]:
    radii = tuple(float(r) for r in radii)
    if not radii:
        raise InputError(f"{what}: no radius given; pass e.g. --radii 0.01,0.05")
    if any(not np.isfinite(r) or r <= 0 for r in radii):
        raise InputError(f"{what}: every radius must be a positive number, got {list(radii)}")
    return radii


@dataclass(frozen=True)
class ProbeConfig:
    """Random-direction probes."""

    radii: tuple = (0.01, 0.05, 0.1)  # step lengths r (units depend on kind, see module doc)
    num_directions: int = 20           # K directions (2K evaluations per radius if antithetic)
    kind: str = "gaussian"             # gaussian | filter | adaptive
    seed: int = 0
    antithetic: bool = True            # evaluate ±u: cancels the gradient term exactly
    eta: float = 0.0                   # η of the adaptive scaling |θ| + η
    ignore_biasbn: bool = True         # filter kind: zero the 1-D parameters (Li et al.)
    points_per_call: int = 8           # parameter vectors per Objective.losses_at call

    def __post_init__(self):
        object.__setattr__(self, "radii", _check_radii(self.radii, "sharpness probes"))
        if self.num_directions < 1:
            raise InputError(f"sharpness probes need at least one direction, got {self.num_directions}")
        if self.kind not in RANDOM_KINDS:
            raise InputError(f"unknown probe kind {self.kind!r}; use one of {', '.join(RANDOM_KINDS)}")


@dataclass(frozen=True)
class WorstCaseConfig:
    """Worst-case ε-sharpness by projected gradient ascent."""

    radii: tuple = (1e-3,)    # ε: ball radius, or relative box half-width ε(|θ_i| + 1)
    constraint: str = "box"   # box (Keskar et al.) | ball
    steps: int = 20           # ascent steps (one full-data gradient each)
    step_size: float = 1.0    # first step as a fraction of ε; halved on every failed step
    seed: int = 0             # seed of the random start

    def __post_init__(self):
        object.__setattr__(self, "radii", _check_radii(self.radii, "worst-case sharpness"))
        if self.constraint not in CONSTRAINTS:
            raise InputError(f"unknown constraint {self.constraint!r}; use 'ball' or 'box'")
        if self.steps < 1 or not self.step_size > 0:
            raise InputError(f"worst-case sharpness needs steps ≥ 1 and step_size > 0, "
                             f"got steps={self.steps}, step_size={self.step_size}")


@dataclass(frozen=True)
class CurvatureConfig:
    """λ_max (Lanczos) and trace (Hutch++) of the Hessian."""

    eig_tol: float = 1e-4          # relative residual tolerance of eigsh
    trace_matvecs: int = 99        # HVP budget of the trace estimate
    trace_method: str = "hutch++"  # hutch++ | hutchinson
    seed: int = 0


def losses(train, test, theta: Tensor) -> dict:
    """Train and test loss and accuracy at θ and the gaps (test − train loss, train − test acc)."""
    tr_loss, tr_acc = (float(x) for x in train.loss_and_accuracy(theta))
    te_loss, te_acc = (float(x) for x in test.loss_and_accuracy(theta))
    return {"train_loss": tr_loss, "train_acc": tr_acc, "test_loss": te_loss, "test_acc": te_acc,
            "gap_loss": te_loss - tr_loss, "gap_error": tr_acc - te_acc}


def _losses_at(obj, thetas: Tensor) -> np.ndarray:
    return obj.losses_at(thetas)[0].detach().double().cpu().numpy()


def probe_deltas(obj, theta: Tensor, spec, config: ProbeConfig, *, progress: bool = True) -> np.ndarray:
    """Loss changes ``(R, K, S)`` at θ ± r u_j (S = 2 if antithetic, else 1: +r only)."""
    signs = (1.0, -1.0) if config.antithetic else (1.0,)
    S, K, R = len(signs), config.num_directions, len(config.radii)
    c = max(1, config.points_per_call // S)                    # directions per call
    base = float(_losses_at(obj, theta[None])[0])
    out = np.empty((R, K, S))
    sign = torch.tensor(signs, dtype=theta.dtype, device=theta.device)[None, :, None]
    bar = tqdm(total=R * K * S, desc="probes", unit="pt", disable=not progress, leave=False)
    for j0 in range(0, K, c):
        U = random_directions(config.kind, theta, spec, min(c, K - j0), seed=config.seed, offset=j0,
                              eta=config.eta, ignore_biasbn=config.ignore_biasbn)
        for i, r in enumerate(config.radii):
            pts = theta + r * sign * U[:, None, :]                 # (c, S, P)
            out[i, j0:j0 + len(U)] = (_losses_at(obj, pts.reshape(-1, theta.numel())) - base).reshape(-1, S)
            bar.update(pts.shape[0] * S)
    bar.close()
    return out


def aggregate(deltas: np.ndarray, radii) -> dict:
    """Per-radius aggregates of ``(R, K, S)`` changes; ``curvature_estimate`` = 2·mean/r² (≈ tr(H)/P)."""
    flat = deltas.reshape(deltas.shape[0], -1)
    r = np.asarray(radii, dtype=np.float64)
    return {"sum_abs": np.abs(flat).sum(1), "mean_sq": (flat ** 2).mean(1), "max": flat.max(1),
            "mean": flat.mean(1), "std": flat.std(1), "curvature_estimate": 2 * flat.mean(1) / r ** 2}


def probes(obj, theta: Tensor, spec, config: ProbeConfig, *, progress: bool = True) -> dict:
    """Random-direction probes: ``radii``, ``deltas (R, K, S)``, the aggregates and P."""
    deltas = probe_deltas(obj, theta, spec, config, progress=progress)
    return {"radii": np.asarray(config.radii), "deltas": deltas, "P": int(theta.numel()),
            **aggregate(deltas, config.radii)}


def _scale(theta: Tensor, eps: float, constraint: str) -> Tensor:
    return eps * (theta.abs() + 1) if constraint == "box" else torch.full_like(theta, eps)


def _project(delta: Tensor, scale: Tensor, eps: float, constraint: str) -> Tensor:
    if constraint == "box":
        return torch.maximum(torch.minimum(delta, scale), -scale)
    n = delta.norm()
    return delta * (eps / n) if n > eps else delta


def _start(theta: Tensor, scale: Tensor, eps: float, config: WorstCaseConfig) -> Tensor:
    gen = torch.Generator().manual_seed(config.seed)
    z = torch.randn(theta.numel(), generator=gen).to(theta)
    if config.constraint == "box":
        return 0.5 * scale * z.clamp(-1, 1)
    return 0.5 * eps * z / z.norm()


def _ascent_step(g: Tensor, scale: Tensor, alpha: float, eps: float, constraint: str) -> Tensor:
    if constraint == "box":
        return g.sign() * (alpha / eps) * scale
    return alpha * g / (g.norm() + 1e-30)


def ascend(obj, theta: Tensor, eps: float, config: WorstCaseConfig) -> tuple[float, Tensor, np.ndarray]:
    """Projected gradient ascent in the set of size ε; returns (best loss, best δ, loss per iterate).

    The step starts at ``step_size·ε`` and is halved, from the best iterate so far,
    whenever a step fails to raise the loss (a monotone variant of APGD's step rule,
    Croce & Hein 2020), so the best loss never decreases.
    """
    scale = _scale(theta, eps, config.constraint)
    alpha = config.step_size * eps
    delta = _start(theta, scale, eps, config)
    best, best_delta, best_g, trace = -np.inf, delta, None, []
    for t in range(config.steps + 1):
        if t == config.steps:
            trace.append(float(obj.loss(theta + delta)))
            break
        loss, g = obj.loss_and_grad(theta + delta)
        trace.append(float(loss))
        if trace[-1] > best:
            best, best_delta, best_g = trace[-1], delta, g
        else:
            alpha, delta, g = alpha / 2, best_delta, best_g
        delta = _project(delta + _ascent_step(g, scale, alpha, eps, config.constraint), scale, eps, config.constraint)
    if trace[-1] > best:
        best, best_delta = trace[-1], delta
    return best, best_delta, np.array(trace)


def worst_case(obj, theta: Tensor, config: WorstCaseConfig, *, progress: bool = True) -> dict:
    """Worst-case sharpness per ε: ``max_delta``, ``keskar`` (φ, in %), ``delta_norm``, ``ascent``."""
    base = float(obj.loss(theta))
    best, norms, traces = [], [], []
    for eps in tqdm(config.radii, desc=f"ascent ({config.constraint})", disable=not progress, leave=False):
        loss, delta, trace = ascend(obj, theta, eps, config)
        best.append(loss - base)
        norms.append(float(delta.norm()))
        traces.append(trace - base)
    best = np.array(best)
    return {"radii": np.asarray(config.radii), "max_delta": best, "keskar": 100 * best / (1 + base),
            "delta_norm": np.array(norms), "ascent": np.stack(traces), "base_loss": base}


def curvature(obj, theta: Tensor, config: CurvatureConfig) -> dict:
    """λ_max (with its residual ‖Hv − λv‖) and tr(H) (with its standard error) at θ."""
    H = obj.hessian(theta)
    eig = ls.eigsh(H, k=1, which="LA", tol=config.eig_tol, seed=config.seed)
    tr = ls.trace(H, num_matvecs=config.trace_matvecs, method=config.trace_method, seed=config.seed)
    return {"lambda_max": float(eig.eigenvalues[0]), "lambda_residual": float(eig.residuals[0]),
            "lambda_converged": int(bool(eig.converged)), "trace": float(tr.value),
            "trace_stderr": float(tr.stderr), "trace_samples": np.asarray(tr.samples, dtype=np.float64),
            "P": int(theta.numel()), "num_matvecs": int(eig.num_matvecs + tr.num_matvecs)}


def item_settings(cfg, objective_settings: dict) -> dict:
    """What an item's numbers depend on: the objective's settings and its own config
    (``points_per_call`` changes no number, so it is left out)."""
    own = {} if cfg is None else {k: v for k, v in vars(cfg).items() if k != "points_per_call"}
    return {**objective_settings, **own}


class SharpnessWork:
    """Computes one (step, quantity) item from the driver's inputs (train and test objectives at the step).

    Every item holds the train and test loss and accuracy at θ and the gaps next to its measure.
    """

    def __init__(self, inputs, *, progress: bool = True):
        self.inputs, self.progress = inputs, progress
        self._losses: dict[int, dict] = {}

    def losses(self, step: int) -> dict:
        """Train/test loss and accuracy and the gaps at θ_step (computed once per step)."""
        if step not in self._losses:
            train, test = self.inputs.objective(step), self.inputs.objective(step, "test")
            self._losses[step] = losses(train, test, train.theta)
        return self._losses[step]

    def compute(self, step: int, quantity: str, cfg, settings: dict):
        train = self.inputs.objective(step)
        theta = train.theta
        if quantity.startswith("probes_"):
            arrays = probes(train, theta, train.spec, cfg, progress=self.progress)
        elif quantity.startswith("worst_"):
            arrays = worst_case(train, theta, cfg, progress=self.progress)
        elif quantity == "curvature":
            arrays = curvature(train, theta, cfg)
        else:
            arrays = {}
        return Record({**arrays, **self.losses(step)}, {**self.inputs.item_attrs(step), "settings": settings})
