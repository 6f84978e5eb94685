"""Sharpness figures: loss change against radius (one run), measure against gap (a study).

Stored layout read here (written by ``landscape sharpness`` / ``sharpness-study``):
``sharpness/step_XXXXXXXX/{losses, probes_<kind>, worst_<set>, curvature}`` and
``sharpness_study/table``.
"""

from __future__ import annotations

import numpy as np

from analyses.plots import MissingData, by_step, register
from analyses.plots.style import PALETTE, figure, styled

SPREAD_QUANTILES = (10, 90)  # percentiles of the per-direction changes drawn as a band
MAX_SCATTER_PANELS = 6       # measures shown as scatter plots (largest |τ| first)


def _probe_line(ax, arrays, color, label):
    """Mean change and the band of per-direction changes (antithetic pair means ½(Δ₊ + Δ₋) if stored)."""
    r, d = np.asarray(arrays["radii"]), np.asarray(arrays["deltas"])
    per_direction = d.mean(axis=2)                                   # (R, K): the curvature part
    lo, hi = np.percentile(per_direction, SPREAD_QUANTILES, axis=1)
    ax.fill_between(r, lo, hi, color=color, alpha=0.2, lw=0)
    ax.plot(r, arrays["mean"], "o-", color=color, label=label)
    return np.concatenate([lo, hi, np.asarray(arrays["mean"])])


def _reference(ax, arrays, curv, color):
    """The small-radius prediction r²·tr(H)/(2P) for Gaussian probes."""
    r = np.geomspace(min(arrays["radii"]), max(arrays["radii"]), 50)
    ax.plot(r, r ** 2 * float(curv["trace"]) / (2 * int(arrays["P"])), ":", color=color, lw=0.9)


@register("sharpness_radius", section="sharpness", title="Loss change under random perturbations",
          caption="Random-direction probes: mean loss change ΔL = L(θ ± r u) − L(θ) against the radius r, "
          "with the 10–90% band over directions (of the antithetic pair means ½(ΔL(+r u) + ΔL(−r u)), which "
          "cancel the gradient term), one panel per kind of direction and one line per step; dotted: the "
          "quadratic prediction r²·tr(H)/(2P) from the Hessian trace (Gaussian directions only). Look for: ΔL "
          "growing as r² while the quadratic picture holds and the radius where it leaves the dotted line; a "
          "wide band means a few directions dominate.")
@styled
def sharpness_radius(results, run):
    items = by_step(results, "sharpness")
    kinds = sorted({q for v in items.values() for q in v if q.startswith("probes_")})
    if not kinds:
        raise MissingData("no random-direction probes stored")
    fig, axes = figure("double" if len(kinds) > 1 else "single", aspect=0.4 if len(kinds) > 1 else 0.75,
                       ncols=len(kinds), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        shown = []
        for i, (step, q) in enumerate(sorted(items.items())):
            if kind in q:
                color = PALETTE[i % len(PALETTE)]
                shown.append(_probe_line(ax, q[kind], color, f"step {step}"))
                if kind == "probes_gaussian" and "curvature" in q:
                    _reference(ax, q[kind], q["curvature"], color)
        ax.set_xscale("log")
        _yscale(ax, np.concatenate(shown))
        ax.set_xlabel("radius r")
        ax.set_ylabel(r"$\Delta L$")
        ax.set_title(kind.removeprefix("probes_"))
        ax.legend(loc="upper left")
    return [("", fig)]


def _yscale(ax, values: np.ndarray) -> None:
    """Log scale when every change is positive; otherwise symlog around the smallest |change|."""
    if np.all(values > 0):
        ax.set_yscale("log")
        return
    positive = np.abs(values[values != 0])
    ax.set_yscale("symlog", linthresh=float(positive.min()) if positive.size else 1e-12)


def study_table(results) -> tuple[dict, dict]:
    if results is None or not results.keys("sharpness_study/"):
        raise MissingData("no sharpness study in the file (run `landscape sharpness-study`)")
    return results.read_item("sharpness_study/table")


@register("sharpness_study_tau", section="sharpness", title="Which measure predicts the gap",
          caption="Kendall's τ between each sharpness measure and the generalization gap across the runs of a "
          "study, with percentile-bootstrap 95% intervals (Jiang et al. 2020); right: Spearman's ρ. Look for: "
          "measures whose whole interval lies away from zero; with few runs every interval is wide and no "
          "measure can be ranked.")
@styled
def sharpness_study_tau(results, run):
    t, attrs = study_table(results)
    names = list(t["measures"])
    order = np.argsort(t["tau"])
    fig, axes = figure("double", aspect=max(0.3, 0.025 * len(names)), ncols=2, sharey=True)
    for ax, key in zip(axes, ("tau", "rho")):
        est, lo, hi = (np.asarray(t[k])[order] for k in (key, f"{key}_lo", f"{key}_hi"))
        y = np.arange(len(names))
        ax.errorbar(est, y, xerr=[est - lo, hi - est], fmt="o", color=PALETTE[0], ms=3, capsize=1.5, lw=0.8)
        ax.axvline(0, color="black", lw=0.5)
        ax.set_xlim(-1.05, 1.05)
        ax.set_xlabel(r"Kendall $\tau$" if key == "tau" else r"Spearman $\rho$")
    axes[0].set_yticks(np.arange(len(names)), [names[i] for i in order])
    axes[0].set_title(f"{len(t['labels'])} runs, gap = {attrs.get('gap', 'loss')}")
    return [("", fig)]


@register("sharpness_study_scatter", section="sharpness", title="Measures against the gap",
          caption="Each measure against the generalization gap, one point per run, for the measures with the "
          "largest |τ|; titles give τ and its 95% bootstrap interval. Look for: a monotone trend carried by "
          "all the runs rather than by one or two points.")
@styled
def sharpness_study_scatter(results, run):
    t, attrs = study_table(results)
    names, values, gap = list(t["measures"]), np.asarray(t["values"]), np.asarray(t["gap"])
    top = np.argsort(-np.abs(np.nan_to_num(t["tau"])))[:MAX_SCATTER_PANELS]
    ncols = min(3, len(top))
    nrows = int(np.ceil(len(top) / ncols))
    fig, axes = figure("double", aspect=0.33 * nrows, ncols=ncols, nrows=nrows, squeeze=False)
    for ax, j in zip(axes.flat, top):
        ax.scatter(values[:, j], gap, s=8, color=PALETTE[0])
        if np.all(values[:, j] > 0) and values[:, j].max() > 10 * values[:, j].min():
            ax.set_xscale("log")
        ax.set_title(f"τ = {t['tau'][j]:.2f} [{t['tau_lo'][j]:.2f}, {t['tau_hi'][j]:.2f}]")
        ax.set_xlabel(names[j])
        ax.set_ylabel(f"gap ({attrs.get('gap', 'loss')})")
    for ax in list(axes.flat)[len(top):]:
        ax.set_visible(False)
    return [("", fig)]
