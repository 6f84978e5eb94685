"""Figures of the Hessian over training, from the items ``landscape hessian`` stores.

* ``hessian_density`` — SLQ spectral density per step (Ghorbani, Krishnan & Xiao 2019),
  Gaussian-smoothed from the stored nodes and weights, log scale, with the spread over
  probes (each probe's own density) as a band.
* ``hessian_eigenvalues`` — the top eigenvalues against the step, error bars = the
  certified residuals ‖Hv − λv‖ (an eigenvalue lies within its residual of λ).
* ``hessian_trace`` — tr H against the step with ± 1 standard error.
"""

from __future__ import annotations

import numpy as np

from analyses.plots import MissingData, register
from analyses.plots.style import PALETTE, figure

DENSITY_GRID = 800       # points of the grid the density is drawn on
KERNEL_FRACTION = 0.01   # Gaussian kernel width σ as a fraction of the spectrum's range
DENSITY_FLOOR = 1e-8     # smallest density shown on the log axis
MAX_PANELS = 4           # density panels (steps spread over those stored)


def _items(results, quantity: str) -> list[tuple[int, str]]:
    if results is None:
        raise MissingData("no results file given")
    found = results.items("hessian", quantity)
    if not found:
        raise MissingData(f"the results file holds no hessian {quantity} items (run `landscape hessian`)")
    return found


def gaussian_density(nodes: np.ndarray, weights: np.ndarray, grid: np.ndarray, sigma: float) -> np.ndarray:
    """Per-probe densities ``(n_v, len(grid))``: Σ_j w_j N(t; node_j, σ²) for each probe's row."""
    z = (grid[None, None, :] - nodes[:, :, None]) / sigma
    return (weights[:, :, None] * np.exp(-0.5 * z**2)).sum(axis=1) / (sigma * np.sqrt(2 * np.pi))


def _spread(steps: list, n: int) -> list:
    if len(steps) <= n:
        return steps
    return [steps[i] for i in np.linspace(0, len(steps) - 1, n).round().astype(int)]


@register("hessian_density", section="spectrum", title="Spectral density",
          caption="Hessian spectral density by stochastic Lanczos quadrature at a few training steps (log "
          "scale, Gaussian kernel 1% of the spectral range wide): mean over probe vectors (line) and the "
          "range of single-probe densities (band). Look for: a bulk near zero with isolated outliers to its "
          "right, and the mass of negative eigenvalues (non-convexity) shrinking as training proceeds; a wide "
          "band means too few probes to trust the tails.")
def hessian_density(results, run):
    chosen = _spread(_items(results, "density"), MAX_PANELS)
    data = [(s, results.read_item(k)[0]) for s, k in chosen]
    lo = min(float(d["nodes"].min()) for _, d in data)
    hi = max(float(d["nodes"].max()) for _, d in data)
    pad = 0.05 * max(hi - lo, 1e-12)
    grid = np.linspace(lo - pad, hi + pad, DENSITY_GRID)
    sigma = KERNEL_FRACTION * max(hi - lo, 1e-12)
    fig, axes = figure("double", aspect=0.28, ncols=len(data), sharey=True, squeeze=False)
    for ax, (step, d) in zip(axes[0], data):
        per_probe = np.maximum(gaussian_density(d["nodes"], d["weights"], grid, sigma), DENSITY_FLOOR)
        ax.fill_between(grid, per_probe.min(0), per_probe.max(0), color=PALETTE[5], alpha=0.35, lw=0)
        ax.plot(grid, per_probe.mean(0), color=PALETTE[0])
        ax.set_yscale("log")
        ax.set_title(f"step {step}")
        ax.set_xlabel(r"eigenvalue $\lambda$")
    axes[0][0].set_ylabel("density")
    return [("", fig)]


@register("hessian_eigenvalues", section="spectrum", title="Top eigenvalues over training",
          caption="Top Hessian eigenvalues λ₁ ≥ λ₂ ≥ … against the training step; error bars are the "
          "certified residuals ‖Hv − λv‖ (a true eigenvalue lies within its residual of the marker; the bars "
          "hide behind the markers when converged). Look for: the top eigenvalues rising early in training "
          "(progressive sharpening) and levelling off; a few outliers standing apart from the rest.")
def hessian_eigenvalues(results, run):
    rows = [(s, results.read_item(k)[0]) for s, k in _items(results, "eigen")]
    steps = np.array([s for s, _ in rows])
    k = min(len(d["eigenvalues"]) for _, d in rows)
    lam = np.array([d["eigenvalues"][:k] for _, d in rows])
    res = np.array([d["residuals"][:k] for _, d in rows])
    fig, ax = figure("single")
    for i in range(k):
        ax.errorbar(steps, lam[:, i], yerr=res[:, i], fmt="o-", ms=2, lw=0.8, capsize=1.5,
                    color=PALETTE[i % len(PALETTE)], label=rf"$\lambda_{{{i + 1}}}$" if i < 6 else None)
    if (lam > 0).all():
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("eigenvalue")
    ax.legend(loc="best", ncols=2)
    return [("", fig)]


@register("hessian_trace", section="spectrum", title="Trace over training",
          caption="Trace of the Hessian (the sum of all its eigenvalues; Hutch++/Hutchinson estimate) against "
          "the training step, ± 1 standard error. Look for: whether the trace follows λ₁ (curvature "
          "concentrated in the top directions) or moves on its own (the bulk changes); error bars as wide as "
          "the changes mean the estimate needs more matrix-vector products.")
def hessian_trace(results, run):
    rows = [(s, results.read_item(k)[0]) for s, k in _items(results, "trace")]
    steps = np.array([s for s, _ in rows])
    value = np.array([float(d["value"]) for _, d in rows])
    err = np.array([float(d["stderr"]) for _, d in rows])
    fig, ax = figure("single")
    ax.errorbar(steps, value, yerr=err, fmt="o-", ms=2.5, capsize=2, color=PALETTE[1])
    ax.set_xlabel("step")
    ax.set_ylabel(r"$\mathrm{tr}\,H$")
    return [("", fig)]
