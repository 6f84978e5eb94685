"""Hypergradient scan figures: meta-loss and hypergradient against the hyperparameter, and chaos diagnostics.

Stored layout read here (written by ``landscape hyper scan``): ``hyper_scan/<hyper>/summary``
(arrays over the grid, see :func:`analyses.hyper_scan.summarize`) and the points
``hyper_scan/<hyper>/point_NNNNN`` (per seed; their attrs ``value``/``index`` give the grid
coordinate). One figure per scanned hyperparameter.
"""

from __future__ import annotations

import math

import numpy as np

from analyses.plots import MissingData, register
from analyses.plots.style import PALETTE, figure, styled

LABELS = {"lr": r"learning rate $\eta$", "init_scale": "initial scale", "l2": r"L2 penalty $\lambda$"}


def scans(results) -> dict[str, tuple[dict, dict]]:
    """``{hyper: (summary arrays, summary attrs)}`` of every complete scan in the file."""
    if results is None:
        raise MissingData("no results file given")
    found = {}
    for key in results.keys("hyper_scan/"):
        if key.endswith("/summary"):
            arrays, attrs = results.read_item(key)
            found[attrs["hyper"]] = (arrays, attrs)
    if not found:
        raise MissingData("no complete hypergradient scan in the file (run `landscape hyper scan` to the end)")
    return found


def seed_curves(results, hyper: str) -> tuple[np.ndarray, np.ndarray]:
    """Grid values ``(G,)`` and per-seed hypergradients ``(G, S, n_T)`` from the point items."""
    rows = []
    for key in results.keys(f"hyper_scan/{hyper}/point_"):
        arrays, attrs = results.read_item(key)
        rows.append((int(attrs["index"]), float(attrs["value"]), arrays["hypergrad"]))
    rows.sort()
    return np.asarray([r[1] for r in rows]), np.stack([r[2] for r in rows])


def _transition_lines(ax, s: dict) -> None:
    for j, x in enumerate(np.asarray(s["transition_value"], float)):
        if np.isfinite(x):
            ax.axvline(x, color=PALETTE[j % len(PALETTE)], ls="--", lw=0.8)


@register("hyper_scan", caption="Meta-loss (validation loss after T steps, seed mean with min–max band) and "
          "its hypergradient dL/d ln x (one thin line per seed) against the scanned hyperparameter x, "
          "one colour per horizon T (Maclaurin et al. 2015, Fig. 6). Dashed: where the hypergradient "
          "stops agreeing with the local finite-difference slope (the transition to chaos).")
@styled
def hyper_scan(results, run):
    figs = []
    for hyper, (s, _) in sorted(scans(results).items()):
        x, g = seed_curves(results, hyper)
        fig, (top, bottom) = figure("single", aspect=1.2, nrows=2, sharex=True)
        for j, T in enumerate(s["horizons"]):
            c = PALETTE[j % len(PALETTE)]
            m, sd = s["meta_loss_mean"][:, j], s["meta_loss_std"][:, j]
            top.plot(s["values"], m, "-", color=c, label=f"T = {int(T)}")
            top.fill_between(s["values"], m - sd, m + sd, color=c, alpha=0.2, lw=0)
            for k in range(g.shape[1]):
                bottom.plot(x, g[:, k, j], "-", color=c, lw=0.7, alpha=0.8)
        for ax in (top, bottom):
            _transition_lines(ax, s)
            ax.set_xscale("log")
        _symlog(bottom, g)
        top.set_ylabel("validation loss")
        bottom.set_ylabel(r"$dL/d\ln x$")
        bottom.set_xlabel(LABELS.get(hyper, hyper))
        top.legend(loc="best")
        figs.append((hyper, fig))
    return figs


MAX_DECADE_TICKS = 4  # labelled decades per sign on the symlog axis (more overlap)


def _symlog(ax, g: np.ndarray) -> None:
    """Symlog y axis: linear below the 10th percentile of |g|, a few labelled decades above."""
    finite = np.abs(g[np.isfinite(g) & (g != 0)])
    if not finite.size:
        return
    lin = float(np.percentile(finite, 10))
    ax.set_yscale("symlog", linthresh=lin)
    lo, hi = math.ceil(math.log10(lin)), math.floor(math.log10(finite.max()))
    if hi < lo:
        return
    step = max(1, math.ceil((hi - lo + 1) / MAX_DECADE_TICKS))
    decades = [10.0 ** k for k in range(hi, lo - 1, -step)]
    ax.set_yticks(sorted([-d for d in decades] + [0.0] + decades))


@register("hyper_chaos", caption="Chaos diagnostics along the scan, one colour per horizon T: disagreement "
          "|g − fd|/(|g| + |fd|) of the hypergradient with the central difference of the meta-loss; "
          "sign changes of the hypergradient per unit ln x; its coefficient of variation across seeds; "
          "and the stability of the step maps (largest over the sampled steps t = 0 and T − 1 of every horizon): "
          "η·λ_max of the minibatch Hessian and of the full training loss against 2(1 + β) (dotted), and ρ from "
          "the top of the spectrum against 1.")
@styled
def hyper_chaos(results, run):
    figs = []
    for hyper, (s, attrs) in sorted(scans(results).items()):
        fig, axes = figure("double", aspect=0.6, nrows=2, ncols=2, sharex=True)
        panels = [("fd_disagreement", "FD disagreement", "linear"),
                  ("sign_changes_per_unit", r"sign changes per unit $\ln x$", "linear"),
                  ("hypergrad_cv", "seed CV of hypergradient", "log")]
        for ax, (name, label, scale) in zip(axes.flat, panels):
            for j, T in enumerate(s["horizons"]):
                ax.plot(s["values"], s[name][:, j], "o-", ms=2, color=PALETTE[j % len(PALETTE)], label=f"T = {int(T)}")
            ax.set_ylabel(label)
            ax.set_yscale(scale)
        axes[0, 0].axhline(attrs["chaos_disagreement"], color="black", lw=0.5, ls=":")
        axes[0, 0].legend(loc="upper left")
        _stability_panel(axes[1, 1], s)
        for ax in axes.flat:
            ax.set_xscale("log")
            _transition_lines(ax, s)
        for ax in axes[1]:
            ax.set_xlabel(LABELS.get(hyper, hyper))
        figs.append((hyper, fig))
    return figs


def _stability_panel(ax, s: dict) -> None:
    if "b_max" not in s:
        ax.text(0.5, 0.5, "no stability data", ha="center", transform=ax.transAxes)
        return
    worst = {k: np.nanmax(np.asarray(s[k], float), axis=1) for k in ("b_max", "eta_lambda_max_full", "rho_top")}
    ax.plot(s["values"], worst["b_max"], "o-", ms=2, color="black", label=r"$\eta\lambda_{max}$ (step maps)")
    ax.plot(s["values"], worst["eta_lambda_max_full"], "s-", ms=2, color=PALETTE[4],
            label=r"$\eta\lambda_{max}$ (full batch)")
    ax.plot(s["values"], worst["rho_top"], "^-", ms=2, color=PALETTE[5], label=r"$\rho$ (top)")
    threshold = 2 * (1 + float(np.nanmean(s["beta"]))) if "beta" in s else 2.0
    ax.axhline(threshold, color="black", ls=":", lw=0.8)
    ax.axhline(1.0, color=PALETTE[5], ls=":", lw=0.8)
    ax.set_yscale("log")
    ax.set_ylabel("stability")
    ax.legend(loc="best")
