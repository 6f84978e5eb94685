"""Study 2: learning-rate regimes, labelled from the curvature along the path.

For gradient descent on a quadratic with top eigenvalue λ, the error along the sharpest
direction is multiplied by (1 − ηλ) per step: it decays monotonically for ηλ ≤ 1, with
alternating sign for 1 < ηλ < 2, and grows for ηλ > 2 (the classical stability bound
η < 2/λ_max; Metz et al. 2021 for the unrolled view). On a non-quadratic landscape λ_max
changes along the path, so each run is summarised by ρ(t) = η/(2/λ_max(θ_t)) = ηλ_max(θ_t)/2,
measured along the run (exact Hessian): ρ_end at its last step (where it settles: the
contraction per step there is |1 − 2ρ_end|) and ρ_max over the path. The label (rules
checked in this order, T = number of steps)::

    divergent       the loss blew up (non-finite or > 1e6 × the start), ends above its
                    start, or ρ_end > 1 (η > 2/λ_max where it stops: it cannot settle)
    oscillating     ρ_end > 1/2 (η > 1/λ_max where it settles: the error flips sign every
                    step), or ρ_max > 1 (beyond the stability limit on the way: chaotic)
    about right     ρ_end > RIGHT_RHO (η between 0.2/λ_max and 1/λ_max where it settles)
    slightly small  ρ_max·T > FLAT_RHO_T (works, but needs many steps)
    too small       otherwise: ηλ_max·T ≤ 1 all along, so even the sharpest direction relaxes
                    by less than a factor e over the whole run — a flat line

ρ may be sampled at a subset of the steps (the page's grid samples it at log-spaced steps;
the last sample must be the last step).

The rule is stated in the figure (:data:`RULE`).
"""

from __future__ import annotations

import numpy as np

REGIMES = ("too small", "slightly small", "about right", "oscillating", "divergent")
RIGHT_RHO = 0.1          # ρ_end above this (η > 0.2/λ_max where the run settles): about right
FLAT_RHO_T = 0.5         # max ρ·T at most this (ηλ_max·T ≤ 1): too small
RULE = ("ρ = η·λ_max(θ_t)/2 = η/(2/λ_max) along the path of T steps; ρ_end at its end. "
        "divergent: loss blew up or ends above its start, or ρ_end > 1; "
        "oscillating: ρ_end > 1/2 or max ρ > 1; about right: ρ_end > 0.1; "
        "slightly small: max ρ·T > 0.5; too small: otherwise.")


def label(rho: np.ndarray, loss_start: float, loss_end: float, diverged: bool, steps: int) -> str:
    """The regime of one run of ``steps`` steps from ρ at some of its steps (in order, the last
    one at the end; NaN once blown up) and its first and last loss."""
    finite = np.isfinite(rho)
    rho_max = float(rho[finite].max()) if finite.any() else np.inf
    rho_end = float(rho[-1])
    if diverged or not np.isfinite(loss_end) or loss_end > loss_start or not rho_end <= 1:
        return "divergent"
    if rho_end > 0.5 or rho_max > 1:
        return "oscillating"
    if rho_end > RIGHT_RHO:
        return "about right"
    return "slightly small" if rho_max * steps > FLAT_RHO_T else "too small"


def labels(lrs: np.ndarray, lam: np.ndarray, loss: np.ndarray, diverged: np.ndarray, steps: int) -> list[str]:
    """Labels of runs ``b`` with η = ``lrs[b]``, λ_max ``lam (B, C)`` at C steps (the last at the
    end), losses ``(B, S)`` (first at step 0, last at the end), ``diverged (B,)``."""
    rho = np.asarray(lrs)[:, None] * np.asarray(lam) / 2
    return [label(rho[b], loss[b, 0], loss[b, -1], bool(diverged[b]), steps) for b in range(len(lrs))]


def rho_summary(lrs: np.ndarray, lam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """max_t ρ(t) and the last finite ρ per run, ``(B,)`` each."""
    rho = np.asarray(lrs)[:, None] * np.asarray(lam) / 2
    with np.errstate(invalid="ignore"):
        rmax = np.where(np.isfinite(rho).any(1), np.nanmax(np.where(np.isfinite(rho), rho, np.nan), 1), np.nan)
    last = np.array([r[np.isfinite(r)][-1] if np.isfinite(r).any() else np.nan for r in rho])
    return rmax, last
