"""The training trajectory in the eigenbasis of a reference Hessian (user guide: docs/analyses-eigen.md).

For saved parameters θ_t and the top-k eigenvectors V = (v_1 … v_k) ``(k, P)`` of the
Hessian at a reference checkpoint θ_ref (usually the end of training), the
coordinates

    c_t,i = v_iᵀ (θ_t − θ_ref)

are the signed distance from the reference along each eigendirection. Under the
quadratic model L(θ) ≈ L* + ½ Σ_i λ_i (c_i − c*_i)², SGD with learning rate η moves
each coordinate independently as an AR(1) process

    c_{t+1} − c* = (1 − ηλ_i)(c_t − c*) − η ξ_t,

so it decays geometrically and then oscillates with stationary variance
η s_i² / (λ_i (2 − ηλ_i)) (s_i² the gradient-noise variance along v_i). The
iteration is stable only for ηλ_i < 2; with heavy-ball momentum β in the PyTorch
form (b ← βb + g, θ ← θ − ηb) the condition is ηλ_i < 2(1 + β) (Polyak 1964;
Cohen et al. 2021, "Gradient descent on neural networks typically occurs at the
edge of stability"), with Nesterov momentum ηλ_i < 2(1 + β)/(1 + 2β).

**Settling step (the method).** Each coordinate series is cut into consecutive
blocks of ``block`` saved steps and averaged per block. The last ``tail_fraction``
of the blocks is first taken as the stationary segment. A line fitted to the
segment gives its mean μ, its slope and the residuals; an AR(1) fitted to the
residuals (std σ, lag-one correlation ρ — the process the quadratic model
predicts) gives the standard deviation of a block mean,

    σ_B = σ √(B + 2 Σ_{j<B} (B − j) ρ^j) / B,

and the standard error of the slope, σ √((1 + ρ)/(1 − ρ) / Σ (t − t̄)²). The settling
block is the first block that starts ``persist`` (3) consecutive block means all
within μ ± ``band``·σ_B (band = 2): the first time the decaying transient has
sunk into the noise and stays there. The stationary segment is then refitted from
the settling block to the end and the test repeated until the block stops moving
(a longer segment estimates σ and ρ better). The settling step is the first saved
step of that block. A coordinate has **not settled** within the run
(``settled = False``, step −1) when the settling block lies in the last
``tail_fraction``, or when the stationary segment still drifts: |slope| exceeds
Φ⁻¹(1 − α_drift/2) times its standard error. Saved steps are assumed evenly spaced
(ρ is per saved step).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from analyses.driver.records import Record
from landscape.errors import InputError
from landscape.stability import OPTIMIZERS, stability_constant


@dataclass(frozen=True)
class SettlingConfig:
    """How the settling step is found (see the module docstring)."""

    block: int = 0               # saved steps per block; 0 = n_saved // 40 (at least 1)
    tail_fraction: float = 0.25  # the last fraction of blocks first taken as stationary
    band: float = 2.0            # half-width of the band around μ, in units of σ_B
    persist: int = 3             # consecutive blocks inside the band that count as settled
    alpha_drift: float = 0.01    # false-alarm probability of the drift test on the stationary segment
    min_tail_blocks: int = 3     # fewer stationary blocks cannot be fitted


def project(thetas: Iterable[np.ndarray], theta_ref: np.ndarray, V: np.ndarray) -> np.ndarray:
    """Coordinates c_t = V (θ_t − θ_ref) for every θ_t, in float64.

    Args:
        thetas: the saved parameter vectors ``(P,)``, in step order.
        theta_ref: the reference θ ``(P,)``.
        V: the reference eigenvectors, row-wise ``(k, P)``.

    Returns:
        ``(n_steps, k)``.
    """
    V = np.asarray(V, dtype=np.float64)
    ref = np.asarray(theta_ref, dtype=np.float64)
    if V.ndim != 2 or V.shape[1] != ref.shape[0]:
        raise InputError(f"eigenvectors of shape {V.shape} do not match θ_ref of length {ref.shape[0]}")
    return np.stack([V @ (np.asarray(t, dtype=np.float64) - ref) for t in thetas])


def _blocks(x: np.ndarray, block: int) -> np.ndarray:
    """Means of consecutive blocks of ``block`` rows; a short remainder joins the last block."""
    n_blocks = max(1, len(x) // block)
    edges = [i * block for i in range(n_blocks)] + [len(x)]
    return np.stack([x[a:b].mean(axis=0) for a, b in zip(edges[:-1], edges[1:])])


def _block_size(n: int, cfg: SettlingConfig) -> int:
    return cfg.block if cfg.block > 0 else max(1, n // 40)


def _line_fit(x: np.ndarray) -> tuple[float, float, np.ndarray, float]:
    """Least-squares line through ``x`` against its row index: mean, slope, residuals, Σ(t − t̄)²."""
    t = np.arange(len(x)) - (len(x) - 1) / 2.0
    tt = float(np.sum(t * t))  # elementwise sums: BLAS dot is slower for one short vector
    slope = float(np.sum(t * x) / tt) if tt > 0 else 0.0
    return float(x.mean()), slope, x - x.mean() - slope * t, tt


def _ar1_fit(r: np.ndarray) -> tuple[float, float]:
    """Std σ and lag-one correlation ρ (clipped to [−0.99, 0.999]) of residuals ``r``."""
    rho = float(np.clip(np.sum(r[1:] * r[:-1]) / max(float(np.sum(r * r)), 1e-300), -0.99, 0.999))
    return float(r.std(ddof=2)), rho


def _drifting(tail: np.ndarray, sigma: float, rho: float, z: float, floor: float) -> tuple[bool, float]:
    """Whether the tail's slope exceeds z standard errors σ √((1+ρ)/(1−ρ) / Σ(t − t̄)²)."""
    _, slope, _, tt = _line_fit(tail)
    se = sigma * math.sqrt((1 + rho) / (1 - rho) / max(tt, 1e-300))
    return abs(slope) > z * max(se, floor), slope


def ar1_block_std(sigma: float, rho: float, B: int) -> float:
    """Std of the mean of B consecutive samples of a stationary AR(1) with std σ and correlation ρ."""
    j = np.arange(1, B)
    return sigma * math.sqrt(max(B + 2.0 * float(np.sum((B - j) * rho ** j)), 1.0)) / B


def _first_entry(inside: np.ndarray, persist: int) -> int:
    """First block b with inside[b:b+persist] all true; len(inside) when there is none."""
    run = np.convolve(inside.astype(int), np.ones(persist, dtype=int), mode="valid")
    hits = np.flatnonzero(run == persist)
    return int(hits[0]) if hits.size else len(inside)


def _settle_column(x: np.ndarray, M: np.ndarray, block: int, n_tail: int, cfg: SettlingConfig) -> dict:
    """The settling test for one coordinate: fit the tail, then refit from the settling block on."""
    tail_start = start = (len(M) - n_tail) * block
    for _ in range(10):  # the fitted segment only grows; a few rounds converge
        mu, _, resid, _ = _line_fit(x[start:])
        sigma, rho = _ar1_fit(resid)
        sd = ar1_block_std(sigma, rho, block)
        floor = 1e-12 * (1.0 + abs(mu))  # exact convergence (σ = 0) would flag round-off
        settle_block = _first_entry(np.abs(M - mu) <= max(cfg.band * sd, floor), cfg.persist)
        if settle_block * block >= start:
            break
        start = settle_block * block
    drifting, slope = _drifting(x[tail_start:], sigma, rho, float(norm.ppf(1 - cfg.alpha_drift / 2)), floor)
    settled = settle_block < len(M) - n_tail and not drifting
    return {"settle_block": settle_block, "settled": settled, "drifting": drifting, "stationary_mean": mu,
            "amplitude": sigma, "tail_rho": rho, "tail_slope": slope, "block_std": sd, "segment_start_row": start}


def settling(C: np.ndarray, steps: np.ndarray, cfg: SettlingConfig = SettlingConfig()) -> dict:
    """Settling step of each coordinate series (the method of the module docstring).

    Args:
        C: coordinates ``(n_steps, k)`` (one column per eigendirection).
        steps: the saved step of each row ``(n_steps,)``.
        cfg: block size, tail fraction and α.

    Returns:
        ``settle_step (k,)`` int (−1 where not settled), ``settled``, ``drifting`` (bool),
        ``stationary_mean`` μ, ``amplitude`` (residual σ of the stationary segment),
        ``tail_rho``, ``tail_slope`` (per saved step), ``block_std`` σ_B,
        ``segment_start_row`` (first row of the fitted stationary segment), each ``(k,)``;
        and ``block``, ``tail_start_row``.
    """
    C = np.atleast_2d(np.asarray(C, dtype=np.float64).T).T
    block = _block_size(len(C), cfg)
    M = _blocks(C, block)
    n_tail = max(cfg.min_tail_blocks, math.ceil(cfg.tail_fraction * len(M)))
    if len(M) < n_tail + 1:
        raise InputError(f"{len(C)} saved steps make {len(M)} blocks of {block}; the settling test needs "
                         f"more than {n_tail}: save more steps or pass a smaller block size")
    cols = [_settle_column(C[:, i], M[:, i], block, n_tail, cfg) for i in range(C.shape[1])]
    out = {key: np.array([c[key] for c in cols]) for key in cols[0]}
    first_step = np.asarray(steps)[np.minimum(out.pop("settle_block") * block, len(C) - 1)]
    out["settle_step"] = np.where(out["settled"], first_step, -1).astype(np.int64)
    return {**out, "block": block, "tail_start_row": (len(M) - n_tail) * block}


def stability_threshold(momentum: float = 0.0, nesterov: bool = False, *, optimizer: str = "sgd",
                        beta1: float = 0.9) -> float:
    """The largest stable η·λ of the run's update rule on a quadratic (:mod:`landscape.stability`).

    Heavy ball (b ← βb + g, θ ← θ − ηb): 2(1 + β). Nesterov (b ← βb + g,
    θ ← θ − η(g + βb)): 2(1 + β)/(1 + 2β). Both are where an eigenvalue of the
    2 × 2 iteration matrix on (θ, b) crosses −1; β = 0 gives the classic 2. AdamW:
    (2 + 2β₁)/(1 − β₁) for the eigenvalues of the preconditioned Hessian P⁻¹H.
    """
    return stability_constant(optimizer, momentum, nesterov, beta1)


def stability(eigenvalues: np.ndarray, lr: float, momentum: float = 0.0, *, nesterov: bool = False,
              weight_decay: float = 0.0, optimizer: str = "sgd", beta1: float = 0.9) -> dict:
    """η·(λ_i + wd) against :func:`stability_threshold`; ``lambda_crit`` is the largest stable λ.

    Weight decay wd adds wd·I to the Hessian the update sees, so it shifts every λ_i. For
    AdamW the threshold holds for the preconditioned Hessian P⁻¹H, not for the eigenvalues
    of H given here: ``eta_lambda`` and ``lambda_crit`` are then NaN and ``stable`` False
    (compare the preconditioned sharpness the trainer logs instead); an optimizer without a
    known threshold (a user's own) gets a NaN threshold.
    """
    known = optimizer in OPTIMIZERS
    threshold = stability_threshold(momentum, nesterov, optimizer=optimizer, beta1=beta1) if known else math.nan
    if optimizer != "sgd":
        nan = np.full(np.shape(eigenvalues), np.nan)
        return {"eta_lambda": nan, "threshold": threshold, "stable": np.zeros(np.shape(eigenvalues), bool),
                "lambda_crit": math.nan}
    lam = np.asarray(eigenvalues, dtype=np.float64) + weight_decay
    return {"eta_lambda": lr * lam, "threshold": threshold, "stable": lr * lam < threshold,
            "lambda_crit": (threshold / lr - weight_decay) if lr > 0 else math.inf}


def lr_at_steps(saved_steps: np.ndarray, logged_steps: np.ndarray, lrs: np.ndarray) -> np.ndarray:
    """The learning rate of the update applied at each saved step (the last one after the end)."""
    if len(logged_steps) == 0:
        raise InputError("the run file logs no learning rates; cannot relate oscillations to η")
    idx = np.searchsorted(logged_steps, saved_steps).clip(0, len(logged_steps) - 1)
    return np.asarray(lrs, dtype=np.float64)[idx]


def lr_phases(lr: np.ndarray, min_points: int = 8, rtol: float = 1e-9) -> list[tuple[int, int]]:
    """``[start, end)`` row ranges of constant learning rate holding at least ``min_points`` rows."""
    change = np.flatnonzero(~np.isclose(lr[1:], lr[:-1], rtol=rtol, atol=0.0)) + 1
    edges = [0, *change.tolist(), len(lr)]
    return [(a, b) for a, b in zip(edges[:-1], edges[1:]) if b - a >= min_points]


def phase_amplitudes(C: np.ndarray, lr: np.ndarray, min_points: int = 8) -> dict:
    """Oscillation amplitude per constant-lr phase: std over the second half of each phase.

    Returns:
        ``phase_start``, ``phase_end`` (row ranges), ``phase_lr`` ``(n_phases,)`` and
        ``phase_amplitude`` ``(n_phases, k)``.
    """
    phases = lr_phases(lr, min_points)
    amps = [C[(a + b) // 2:b].std(axis=0, ddof=1) for a, b in phases]
    k = C.shape[1]
    return {"phase_start": np.array([a for a, _ in phases], dtype=np.int64),
            "phase_end": np.array([b for _, b in phases], dtype=np.int64),
            "phase_lr": np.array([lr[a] for a, _ in phases], dtype=np.float64),
            "phase_amplitude": np.array(amps).reshape(len(phases), k)}


def trajectory_analysis(C: np.ndarray, steps: np.ndarray, eigenvalues: np.ndarray, lr: np.ndarray, *,
                        momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0,
                        cfg: SettlingConfig = SettlingConfig(), optimizer: str = "sgd", beta1: float = 0.9) -> dict:
    """Everything the trajectory analysis stores, from the coordinates ``C (n_steps, k)``.

    ``lr`` is the learning rate at each saved step; stability uses the median over the
    stationary tail (the rate the oscillation amplitude was measured at).
    """
    out = {"steps": np.asarray(steps, dtype=np.int64), "coordinates": C, "lr": lr,
           "eigenvalues": np.asarray(eigenvalues, dtype=np.float64)}
    out.update(settling(C, steps, cfg))
    tail_lr = float(np.median(lr[out["tail_start_row"]:]))
    stab = stability(eigenvalues, tail_lr, momentum, nesterov=nesterov, weight_decay=weight_decay,
                     optimizer=optimizer, beta1=beta1)
    out.update({f"stability_{k}": v for k, v in stab.items()}, tail_lr=tail_lr, momentum=momentum,
               nesterov=int(nesterov), weight_decay=weight_decay)
    out.update(phase_amplitudes(C, lr))
    return out


def eigenbasis_record(thetas: Iterable[np.ndarray], theta_ref: np.ndarray, eig, idx: np.ndarray, steps: list[int],
                      logged: dict, centre: np.ndarray, config: dict) -> Record:
    """The trajectory item: coordinates of θ_t − θ_ref along the chosen stored eigenvectors and their analysis.

    Args:
        thetas: θ at each of ``steps`` (flat arrays, in order).
        theta_ref: θ at the reference step.
        eig: the stored eigenpairs at the reference step (:class:`~analyses.driver.eigen.Eigen`).
        idx: the rows of ``eig`` used.
        steps: the saved steps projected.
        logged: the run's per-step log (``step`` and ``lr`` arrays).
        centre: the coordinate subtracted per direction (0, or the line-search minimum).
        config: the options (settling test, optimiser: momentum, nesterov, weight_decay).
    """
    C = project(thetas, theta_ref, eig.eigenvectors[idx]) - centre[None]
    lr = lr_at_steps(np.asarray(steps), logged["step"], logged["lr"])
    settle = SettlingConfig(block=config["block"], tail_fraction=config["tail_fraction"], band=config["band"],
                            persist=config["persist"], alpha_drift=config["alpha_drift"])
    out = trajectory_analysis(C, np.asarray(steps), eig.eigenvalues[idx], lr, momentum=config["momentum"],
                              nesterov=config["nesterov"], weight_decay=config["weight_decay"], cfg=settle,
                              optimizer=config.get("optimizer", "sgd"), beta1=config.get("beta1", 0.9))
    return Record({**out, "directions": idx.astype(np.int64), "centre": centre}, {"ref_step": eig.step})
