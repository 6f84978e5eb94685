"""Figures of the eigendirection analyses (``landscape linesearch``, ``evolution``, ``trajectory``).

Each reads the stored items only: ``linesearch/step_*/{curves,fits,zoom,quadratic_check}``,
``evolution/step_*/overlap_step_*``, ``evolution/{eigenvalues,density}`` and
``trajectory/step_*/eigenbasis``. Figures of the line search are drawn for the last step
that has them.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from analyses.plots import MissingData, register, step_items
from analyses.plots.style import PALETTE, SEQUENTIAL_CMAP, figure, styled

MAX_PANELS = 8     # directions drawn as small multiples
MAX_HEATMAPS = 4   # overlap matrices (pairs spread over those stored)


def _last(results, analysis: str, quantity: str) -> tuple[int, dict]:
    return step_items(results, analysis, quantity)[-1]


def _grid(n: int, width: str = "double"):
    ncols = min(n, 4)
    nrows = -(-n // ncols)
    fig, axes = figure(width, aspect=0.3 * nrows, ncols=ncols, nrows=nrows, squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    return fig, axes.ravel()


@register("linesearch_curves", section="eigendirections", title="Loss along the top eigenvectors",
          caption="Loss along Hessian eigenvectors, L(θ + t vᵢ) on the full training set (solid), against the "
          "quadratic model L(θ) + t g·vᵢ + λᵢt²/2 (dashed), at the last step with a line search; one panel "
          "per direction, λᵢ in the title. Look for: how far in t the two curves agree — where the solid "
          "curve bends away the second-order picture of that direction stops holding.")
@styled
def linesearch_curves(results, run):
    step, c = _last(results, "linesearch", "curves")
    ts, n = np.asarray(c["ts"]), min(len(c["eigenvalues"]), MAX_PANELS)
    L0 = c["loss"][:, int(np.argmin(np.abs(ts)))]
    fig, axes = _grid(n)
    for i, ax in enumerate(axes[:n]):
        lam = c["eigenvalues"][i]
        ax.plot(ts, c["loss"][i], color=PALETTE[0], label="loss")
        ax.plot(ts, L0[i] + c["slopes"][i] * ts + 0.5 * lam * ts**2, color=PALETTE[1], ls="--", label="quadratic")
        j = int(c["directions"][i]) + 1   # eigenpairs are numbered from 1 everywhere: λ₁ ≥ λ₂ ≥ …
        ax.set_title(rf"$v_{{{j}}}$: $\lambda_{{{j}}}$ = {lam:.3g}")
        ax.set_xlabel("t")
    axes[0].set_ylabel(f"loss (step {step})")
    axes[0].legend()
    return [("", fig)]


@register("linesearch_minima", section="eigendirections", title="Minibatch minima along eigenvectors",
          caption="Minibatch line searches: the spread over minibatches of the minimum t* of each "
          "eigendirection's curve (left), and the standard deviation of t* and the mean minibatch curvature "
          "against λᵢ (right; dotted: curvature = λ). Look for: minibatch minima scattering more along flat "
          "directions (small λ) than along sharp ones, and minibatch curvature tracking the full-batch λᵢ.")
@styled
def linesearch_minima(results, run):
    step, c = _last(results, "linesearch", "curves")
    if "batch_min_t" not in c:
        raise MissingData("the line search stored no minibatch curves (rerun with --minibatch-size)")
    lam = np.asarray(c["eigenvalues"])
    fig, (a, b) = figure("double", aspect=0.35, ncols=2)
    a.boxplot(list(c["batch_min_t"]), showfliers=False)
    a.set_xticks(range(1, len(lam) + 1), [f"{x:.2g}" for x in lam], rotation=45)
    a.set_xlabel(rf"$\lambda_i$ (each box: n = {np.shape(c['batch_min_t'])[1]} minibatches)")
    a.set_ylabel(f"minibatch minimum t* (step {step})")
    b.loglog(np.abs(lam), c["min_t_std"], "o", color=PALETTE[0], label="std of t*")
    b.errorbar(np.abs(lam), np.abs(c["curvature_mean"]), yerr=c["curvature_std"], fmt="s", color=PALETTE[1],
               label="|mean curvature| ± std")
    b.plot(np.abs(lam), np.abs(lam), ":", color="black", label=r"$\lambda$")
    b.set_xlabel(r"$|\lambda_i|$")
    b.set_title(rank_correlation_title(c), fontsize=7)
    b.legend(fontsize=6, loc="best")
    return [("", fig)]


MIN_RANK_N = 6  # fewer directions than this: no rank correlation is shown (a 4-point ρ means little)


def rank_correlation_title(c: dict) -> str:
    """Spearman's ρ between λ and the spread of the minimum, with n and its 95% interval — or why not."""
    n = int(c.get("spearman_n", len(c["eigenvalues"])))
    rho = float(c["spearman_lambda_min_std"])
    if n < MIN_RANK_N or not np.isfinite(rho):
        return f"rank correlation not shown: n = {n} directions (< {MIN_RANK_N})"
    lo, hi = np.asarray(c.get("spearman_lambda_min_std_ci", [np.nan, np.nan]), dtype=float)
    return f"Spearman ρ(λ, std t*) = {rho:.2f}, 95% CI [{lo:.2f}, {hi:.2f}], n = {n}"


@register("linesearch_deviation", section="eigendirections", title="Departure from the quadratic model",
          caption="Relative departure from the quadratic model along each eigenvector, |L(θ + t vᵢ) − qᵢ(t)| "
          "/ (½|λᵢ|t²), against |t| (solid: t > 0, dotted: t < 0; qᵢ the quadratic prediction); dashed: the "
          "departure tolerance. Look for: where each curve crosses the dashed line — the radius within which "
          "the quadratic model of that direction can be trusted — and differences between the two signs (odd, "
          "third-order terms).")
@styled
def linesearch_deviation(results, run):
    step, f = _last(results, "linesearch", "fits")
    ts, dev = np.asarray(f["ts"]), np.abs(np.asarray(f["deviation"]))
    fig, ax = figure("single")
    cmap = plt.get_cmap(SEQUENTIAL_CMAP)
    lam = np.asarray(f["eigenvalues"])
    for i in range(len(lam)):
        for sign, ls in ((1, "-"), (-1, ":")):
            m = sign * ts > 0
            ax.loglog(np.abs(ts[m]), dev[i, m], ls, color=cmap(i / max(1, len(lam) - 1)),
                      label=rf"$\lambda$={lam[i]:.2g}" if sign > 0 else None)
    ax.axhline(0.1, color="black", ls="--", lw=0.6)
    ax.set_xlabel("|t|")
    ax.set_ylabel(f"relative deviation (step {step})")
    ax.legend(fontsize=6)
    return [("", fig)]


@register("linesearch_zoom", section="eigendirections", title="Roughness at the minimum",
          caption="Dense zoom around the line-search minimum (left) and the second-order structure function "
          "D₂(h) = mean [f(t+h) − 2f(t) + f(t−h)]² against the lag h (right), float32 (circles) and float64 "
          "(squares), dashed: the quadratic model's (λh²)². Look for the slope on the log-log axes: 4 is "
          "smooth, 0 is rounding noise, in between a rough (Hölder-α, slope 2α) curve; float32 flattening "
          "where float64 keeps slope 4 shows the roughness is rounding, not the landscape.")
@styled
def linesearch_zoom(results, run):
    step, z = _last(results, "linesearch", "zoom")
    fig, (a, b) = figure("double", aspect=0.35, ncols=2)
    for i in range(len(z["eigenvalues"])):
        col = PALETTE[i % len(PALETTE)]
        a.plot(z["offsets"], z["loss"][i] - z["loss"][i].min(), color=col, lw=0.6)
        b.loglog(z["lags"], z["d2"][i], "o-", color=col, label=rf"$\lambda$={z['eigenvalues'][i]:.2g} fp32")
        if "d264" in z:
            b.loglog(z["lags"], z["d264"][i], "s-", color=col, mfc="none", label="fp64")
        b.loglog(z["lags"], z["quadratic_d2"][i], "--", color=col, lw=0.7)
    a.ticklabel_format(axis="x", style="sci", scilimits=(-2, 2))
    a.set_xlabel("offset from the minimum")
    a.set_ylabel(f"L − min L (float32, step {step})")
    b.set_xlabel("lag h")
    b.set_ylabel(r"$D_2(h)$")
    b.legend(fontsize=6)
    return [("", fig)]


@register("quadratic_check", section="eigendirections", title="Random directions against the eigen-decomposition",
          caption="Random directions u: the true loss L(θ + t u) (solid), the quadratic prediction from uᵀHu "
          "(dashed) and the prediction that adds up the line searches along the eigenvectors (dotted), one "
          "panel per direction; markers: where each prediction parts from the truth. Look for: whether "
          "independent one-dimensional curves along the eigenvectors explain the loss along a random "
          "direction (dotted on solid) or the directions interact.")
@styled
def quadratic_check(results, run):
    step, q = _last(results, "linesearch", "quadratic_check")
    ts, n = np.asarray(q["ts"]), min(len(q["true"]), MAX_PANELS)
    fig, axes = _grid(n)
    for i, ax in enumerate(axes[:n]):
        ax.plot(ts, q["true"][i], color=PALETTE[0], label="true")
        ax.plot(ts, q["quadratic"][i], "--", color=PALETTE[1], label=r"$u^\top H u$")
        ax.plot(ts, q["independent"][i], ":", color=PALETTE[2], label="sum of eigen line searches")
        ax.set_title(f"u{i}: ‖r‖ = {q['residual_norm'][i]:.2f}")
        ax.set_xlabel("t")
    axes[0].set_ylabel(f"loss (step {step})")
    axes[0].legend(fontsize=6)
    return [("", fig)]


def _pairs(results) -> list[tuple[int, int, dict]]:
    if results is None:
        raise MissingData("no results file given")
    out = []
    for quantities in results.by_step("evolution").values():
        for q, key in quantities.items():
            if q.startswith("overlap_step_"):
                arrays, attrs = results.read_item(key)
                out.append((int(attrs["step_a"]), int(attrs["step_b"]), arrays))
    if not out:
        raise MissingData("no evolution overlap items (run `landscape evolution`)")
    return sorted(out, key=lambda p: (p[0], p[1]))


@register("eigen_overlaps", section="eigendirections", title="Eigenvector overlaps between checkpoints",
          caption="Overlaps |V_a V_bᵀ| of the eigenvectors of two checkpoints (heatmaps; rows: eigenvalue "
          "index at the earlier step a, columns: at the later step b) and the best match of each eigenvector "
          "against its index (right). Look for: a bright diagonal with row maxima near 1 — each eigenvector "
          "survives as itself; off-diagonal mass means eigenvectors swap places (near-equal eigenvalues) or "
          "mix.")
@styled
def eigen_overlaps(results, run):
    pairs = _pairs(results)
    shown = [pairs[i] for i in np.unique(np.linspace(0, len(pairs) - 1, min(MAX_HEATMAPS, len(pairs))).round().astype(int))]
    fig, axes = figure("double", aspect=0.3, ncols=len(shown) + 1, squeeze=False)
    axes = axes[0]
    for ax, (a, b, arr) in zip(axes, shown):
        ka, kb = np.shape(arr["overlap"])
        im = ax.imshow(arr["overlap"], vmin=0, vmax=1, cmap=SEQUENTIAL_CMAP,   # eigenpairs numbered from 1
                       extent=(0.5, kb + 0.5, ka + 0.5, 0.5))
        ax.set_title(f"{a} → {b}")
        ax.set_xlabel(f"index at {b}")
    axes[0].set_ylabel("index at step a")
    fig.colorbar(im, ax=axes[len(shown) - 1], shrink=0.8)
    cmap = plt.get_cmap(SEQUENTIAL_CMAP)
    for j, (a, b, arr) in enumerate(pairs):
        axes[-1].plot(np.arange(1, len(arr["row_max"]) + 1), arr["row_max"], "o-", ms=2,
                      color=cmap(j / max(1, len(pairs) - 1)), label=f"{a}→{b}")
    axes[-1].set_ylim(0, 1.02)
    axes[-1].set_xlabel("eigenvalue index i")
    axes[-1].set_ylabel(r"max$_j$ |v$_i$(a)·v$_j$(b)|")
    axes[-1].legend(fontsize=5)
    return [("", fig)]


@register("eigenvalue_trajectories", section="spectrum", title="Eigenvalues and eigenspace overlap",
          caption="Stored top eigenvalues against the training step, one line per index (top), and the "
          "overlap (1/k)Σcos²θⱼ of the top-k eigenspaces between compared checkpoints, drawn at the later "
          "step (bottom). Look for: the overlap approaching 1 — the top eigenspace stops rotating early in "
          "training (Gur-Ari et al. 2018) while its eigenvalues still change.")
@styled
def eigenvalue_trajectories(results, run):
    if results is None or not results.is_complete("evolution/eigenvalues"):
        raise MissingData("no evolution/eigenvalues table (run `landscape evolution`)")
    t, _ = results.read_item("evolution/eigenvalues")
    fig, (a, b) = figure("single", aspect=1.0, nrows=2, sharex=True)
    lam = np.asarray(t["eigenvalues"])
    cmap = plt.get_cmap(SEQUENTIAL_CMAP)
    for i in range(lam.shape[1]):
        a.plot(t["steps"], lam[:, i], "o-", ms=2, color=cmap(i / max(1, lam.shape[1] - 1)))
    if np.nanmin(lam) > 0:
        a.set_yscale("log")
    a.set_ylabel(r"$\lambda_i$")
    nearest: dict[int, tuple[int, float]] = {}  # later step b → (closest earlier step a, overlap)
    for a_, b_, arr in (_pairs(results) if results.by_step("evolution") else []):
        if a_ >= nearest.get(b_, (-1, 0.0))[0]:
            nearest[b_] = (a_, float(arr["subspace_overlap"]))
    steps_b = sorted(nearest)
    b.plot(steps_b, [nearest[s][1] for s in steps_b], "s-", color=PALETTE[1])
    b.set_ylim(0, 1.02)
    b.set_xlabel("step")
    b.set_ylabel("subspace overlap")
    return [("", fig)]


@register("density_evolution", section="spectrum", title="Spectral density over training",
          caption="Hessian spectral density (SLQ, Gaussian kernel) at each stored step on one common "
          "eigenvalue grid; colour: log₁₀ density. Look for: outliers detaching from the bulk and moving "
          "right as the network sharpens, and the negative part of the spectrum thinning out.")
@styled
def density_evolution(results, run):
    if results is None or not results.is_complete("evolution/density"):
        raise MissingData("no evolution/density table (run `landscape hessian --density`, then `landscape evolution`)")
    d, _ = results.read_item("evolution/density")
    fig, ax = figure("single")
    log = np.log10(np.maximum(np.asarray(d["density"]), 1e-12))
    steps = np.asarray(d["steps"], dtype=np.float64)
    grid = np.asarray(d["grid"], dtype=np.float64)
    mesh = ax.pcolormesh(_edges(grid), _edges(steps), log, cmap=SEQUENTIAL_CMAP, vmin=max(log.min(), log.max() - 8),
                         shading="flat")
    ax.plot(np.full(len(steps), grid[0]), steps, ">", color="black", ms=3, clip_on=False,
            label=f"stored densities (n = {len(steps)})")    # each row sits at its true step
    ax.set_xlabel(r"eigenvalue $\lambda$")
    ax.set_ylabel("step")
    ax.legend(loc="upper right", fontsize=6)
    fig.colorbar(mesh, ax=ax, label=r"log$_{10}$ density")
    return [("", fig)]


def _edges(centres: np.ndarray) -> np.ndarray:
    """Cell edges around (unevenly spaced) centres: the midpoints, and the first and last centre
    themselves (no cell reaches beyond the steps that were measured)."""
    if len(centres) == 1:
        return np.array([centres[0] - 0.5, centres[0] + 0.5])
    return np.concatenate([[centres[0]], (centres[1:] + centres[:-1]) / 2, [centres[-1]]])


@register("trajectory_eigenbasis", section="eigendirections", title="Training in the eigenbasis",
          caption="Training seen in the eigenbasis of the Hessian at a reference step: the coordinate vᵢᵀ(θ_t "
          "− θ_ref) along each eigendirection against the step (left; dotted: where it settles), and the "
          "stationary oscillation amplitude against η·λᵢ (right; dashed: the optimizer's stability "
          "threshold). Look for: sharp directions settling first and oscillating about the minimum while flat "
          "directions keep drifting; amplitudes growing as η·λᵢ nears the threshold.")
@styled
def trajectory_eigenbasis(results, run):
    ref, tr = _last(results, "trajectory", "eigenbasis")
    C, steps, lam = np.asarray(tr["coordinates"]), np.asarray(tr["steps"]), np.asarray(tr["eigenvalues"])
    fig, (a, b) = figure("double", aspect=0.35, ncols=2)
    cmap = plt.get_cmap(SEQUENTIAL_CMAP)
    for i in range(C.shape[1]):
        col = cmap(i / max(1, C.shape[1] - 1))
        a.plot(steps, C[:, i], color=col, lw=0.8, label=rf"$\lambda$={lam[i]:.2g}")
        if tr["settled"][i]:
            a.axvline(tr["settle_step"][i], color=col, ls=":", lw=0.6)
    a.set_xlabel("step")
    a.set_ylabel(f"distance along $v_i$ (ref. step {ref})")
    a.legend(fontsize=5)
    b.loglog(tr["stability_eta_lambda"], tr["amplitude"], "o", color=PALETTE[0])
    b.axvline(float(tr["stability_threshold"]), color="black", ls="--", lw=0.7)
    b.set_xlabel(r"$\eta\,\lambda_i$ (tail learning rate)")
    b.set_ylabel("oscillation amplitude")
    return [("", fig)]
