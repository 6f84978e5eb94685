"""Deep-linear figures, drawn from the stored items ``deeplinear/<study>/<name>`` only.

Written by ``landscape deeplinear`` (layouts: ``analyses/deeplinear/records.py`` and
``docs/contracts.md``). Each figure raises :class:`MissingData` when its items are absent,
so ``landscape plot`` and ``landscape report`` include the ones that are present.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from analyses.plots import MissingData, register
from analyses.plots.style import DIVERGING_CMAP, PALETTE, SEQUENTIAL_CMAP, figure

REGIME_COLOURS = {"too small": "#999999", "slightly small": "#56B4E9", "about right": "#009E73",
                  "oscillating": "#E69F00", "divergent": "#D55E00"}
INIT_MARKERS = "osD^v<>"
PATH_COLOURS = ["#D55E00", "#56B4E9", "#CC79A7", "#E69F00", "#009E73", "#0072B2"]   # Okabe–Ito, no black/yellow


def depth_ticks(ax, depths) -> None:
    """Log x axis ticked at the stored values (depths, singular values)."""
    from matplotlib.ticker import FixedLocator, NullLocator

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator(list(depths)))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([str(int(d)) for d in depths])


def item(results, study: str, name: str) -> tuple[dict, dict]:
    """The arrays and attributes of ``deeplinear/study/name``, or MissingData."""
    key = f"deeplinear/{study}/{name}"
    if results is None or not results.is_complete(key):
        raise MissingData(f"no {key} in the results (run `landscape deeplinear {study}`)")
    return results.read_item(key)


def _hyperbola(ax, a_hat: float, span: float) -> None:
    w = np.linspace(abs(a_hat) / span, span, 200)
    for sign in (1, -1):
        ax.plot(sign * w, sign * a_hat / w, color="white", lw=0.9, ls="--")


@register("deeplinear_landscape", caption="The two-layer net y = x·w₁·w₂ on y = a·x + noise. Left: log₁₀ of "
          "the exact loss over (w₁, w₂) (through the Objective), the hyperbola of minima w₁w₂ = â (dashed), "
          "the normalised negative gradient field (arrows), gradient-descent paths (lines, start ○) and the "
          "critical points found by Newton's method (× saddle, • minima). Right: the loss along each path.")
def deeplinear_landscape(results, run):
    s, sattrs = item(results, "narrow", "surface")
    tr, _ = item(results, "narrow", "trajectories")
    cp, _ = item(results, "narrow", "critical_points")
    fig, (ax, bx) = figure("double", aspect=0.45, ncols=2, gridspec_kw={"width_ratios": [1.3, 1]})
    img = ax.pcolormesh(s["w1"], s["w2"], np.log10(s["loss"]), cmap=SEQUENTIAL_CMAP, shading="auto", rasterized=True)
    fig.colorbar(img, ax=ax, label=r"$\log_{10} L$")
    _hyperbola(ax, sattrs["moments"]["a_hat"], float(s["w1"].max()))
    g = -np.asarray(s["gradient"])
    norm = np.hypot(g[..., 0], g[..., 1]) + 1e-300
    ax.quiver(s["field_w1"], s["field_w2"], g[..., 0] / norm, g[..., 1] / norm, color="white", alpha=0.6,
              width=0.003, scale=30)
    _paths(ax, bx, tr, float(s["w1"].max()))
    _critical(ax, cp)
    ax.set(xlim=(s["w1"][0], s["w1"][-1]), ylim=(s["w2"][0], s["w2"][-1]), xlabel="$w_1$", ylabel="$w_2$", aspect="equal")
    bx.set(yscale="log", xlabel="step", title=f"loss $L$ along each path, η = {float(tr['lr']):g}")
    bx.legend(loc="upper right")
    return [("", fig)]


def _paths(ax, bx, tr: dict, span: float) -> None:
    for k, (path, losses) in enumerate(zip(tr["paths"], tr["losses"])):
        colour = PATH_COLOURS[k % len(PATH_COLOURS)]
        inside = np.all(np.abs(path) <= 1.2 * span, axis=1)
        ax.plot(path[inside, 0], path[inside, 1], color=colour, lw=1.1)
        ax.plot(*path[0], "o", mfc="none", color=colour, ms=4)
        bx.plot(np.arange(len(losses)), losses, color=colour, label=f"from ({path[0, 0]:g}, {path[0, 1]:g})")


def _critical(ax, cp: dict) -> None:
    pts, kinds = np.asarray(cp["points"]), np.asarray(cp["kind"])
    for kind, marker in (("saddle", "x"), ("minimum", "o"), ("maximum", "^")):
        sel = kinds == kind
        if sel.any():
            ax.plot(pts[sel, 0], pts[sel, 1], marker, color="red" if kind == "saddle" else "white",
                    ms=6 if kind == "saddle" else 3.5, mew=1.5, ls="none", label=kind)


@register("deeplinear_critical_points", caption="Critical points of y = x·w₁·w₂ found by Newton's method, "
          "Hessian eigenvalues from the Objective (dense Hessian; Lanczos agrees) against the closed forms: "
          "±2⟨xy⟩ at the saddle, 0 and 2⟨x²⟩(w₁² + w₂²) on the hyperbola of minima. Left: found against "
          "closed form (the diagonal is equality); right: the non-zero eigenvalue of each minimum against "
          "w₁² + w₂², with the line 2⟨x²⟩(w₁² + w₂²).")
def deeplinear_critical_points(results, run):
    cp, attrs = item(results, "narrow", "critical_points")
    if not len(cp["points"]):
        raise MissingData("Newton's method found no critical point")
    lam, th, kinds = np.asarray(cp["eigenvalues"]), np.asarray(cp["eigenvalues_theory"]), np.asarray(cp["kind"])
    fig, (ax, bx) = figure("double", aspect=0.38, ncols=2)
    for kind, colour in (("saddle", PALETTE[1]), ("minimum", PALETTE[0])):
        sel = kinds == kind
        ax.plot(th[sel].ravel(), lam[sel].ravel(), "o", color=colour, ms=4, mfc="none", label=kind)
    lim = np.nanmax(np.abs(th)) * 1.1
    ax.plot([-lim, lim], [-lim, lim], color="black", lw=0.5)
    err = np.nanmax(np.abs(lam - th))
    ax.set(xlabel="closed-form eigenvalue", ylabel="found eigenvalue", title=f"max |difference| = {err:.1e}")
    ax.legend()
    _hyperbola_eigs(bx, cp, attrs["moments"]["xx"])
    return [("", fig)]


def _hyperbola_eigs(bx, cp: dict, xx: float) -> None:
    sel = np.asarray(cp["kind"]) == "minimum"
    r2 = (np.asarray(cp["points"])[sel] ** 2).sum(1)
    if not sel.any():
        return
    grid = np.linspace(0, r2.max() * 1.1, 50)
    bx.plot(grid, 2 * xx * grid, color="black", lw=0.6, label=r"$2\langle x^2\rangle(w_1^2+w_2^2)$")
    bx.plot(r2, np.asarray(cp["eigenvalues"])[sel, 1], "o", mfc="none", color=PALETTE[0], label="found, λ₂")
    bx.plot(r2, np.asarray(cp["eigenvalues"])[sel, 0], "s", mfc="none", color=PALETTE[2], label="found, λ₁ (≈ 0)")
    bx.set(xlabel="$w_1^2 + w_2^2$ at the minimum", ylabel="Hessian eigenvalue")
    bx.legend()


@register("deeplinear_regimes", caption="Learning-rate regimes of y = x·w₁·w₂ from one start: excess loss "
          "L − L* per step for a sweep of η (left); ρ = η·λ_max(θ_t)/2 = η/(2/λ_max) along each path "
          "(middle; dotted lines at the rule's thresholds 0.1, 1/2, 1); the paths in the (w₁, w₂) plane with "
          "the hyperbola of minima (right; oscillating runs zig-zag across the valley). Each run is labelled "
          "automatically by the rule printed below the panels.")
def deeplinear_regimes(results, run):
    rg, attrs = item(results, "regimes", "curves")
    fig, (ax, bx, cx) = figure("double", aspect=0.36, ncols=3)
    for k, (eta, lab) in enumerate(zip(rg["lrs"], rg["label"])):
        style = {"color": REGIME_COLOURS.get(str(lab), "black"), "ls": ("-", "--", ":", "-.")[k % 4]}
        excess = np.asarray(rg["loss"][k]) - float(rg["loss_min"])
        ax.plot(rg["steps"], np.where(excess > 0, excess, np.nan), **style)
        bx.plot(rg["steps"], eta * np.asarray(rg["lam"][k]) / 2, **style)
        path = np.asarray(rg["path"][k])
        ok = np.all(np.isfinite(path) & (np.abs(path) < 4), axis=1)
        cx.plot(path[ok, 0], path[ok, 1], lw=0.9, label=f"η = {eta:.3g}: {lab}", **style)
    for level in (0.1, 0.5, 1.0):
        bx.axhline(level, color="black", lw=0.5, ls=":")
    _hyperbola(cx, attrs["moments"]["a_hat"], 3.0)
    cx.lines[-1].set_color("black"), cx.lines[-2].set_color("black")
    cx.plot(*rg["start"], "ko", ms=3)
    ax.set(yscale="log", xlabel="step", ylabel="$L - L^*$", ylim=(1e-12, None))
    bx.set(yscale="log", xlabel="step", ylabel=r"$\rho = \eta\,\lambda_{\max}/2$")
    cx.set(xlim=(-3, 3), ylim=(-3, 3), xlabel="$w_1$", ylabel="$w_2$", aspect="equal")
    cx.legend(fontsize=5, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.text(0.01, -0.02, "Rule: " + str(attrs.get("rule", "")), fontsize=6, wrap=True, va="top")
    return [("", fig)]


@register("deeplinear_depth", caption="Narrow deep nets y = (Π wᵢ)·x started at wᵢ = c, each depth with its "
          "best learning rate from the sweep. Left: learning time (steps until L − L* ≤ threshold for good) "
          "against depth — it grows with depth when the initial product c^D vanishes (c < 1) and stays flat "
          "for the isometric c = 1. Right: the best η falls with depth, below 2/λ_max at the balanced "
          "minimum, 1/(⟨x²⟩·D·â^{2−2/D}) (dashed).")
def deeplinear_depth(results, run):
    dp, _ = item(results, "depth", "sweep")
    depths = np.asarray(dp["depths"])
    fig, (ax, bx) = figure("double", aspect=0.38, ncols=2)
    for i, c in enumerate(dp["inits"]):
        t = np.asarray(dp["best_time"])[:, i].astype(float)
        colour, mk = PALETTE[i % len(PALETTE)], INIT_MARKERS[i % len(INIT_MARKERS)]
        ax.plot(depths, np.where(t >= 0, np.maximum(t, 0.5), np.nan), mk + "-", color=colour, label=f"c = {c:g}")
        _censored(ax, depths, t, dp)
        bx.plot(depths, dp["best_lr"][:, i], mk + "-", color=colour, label=f"best η, c = {c:g}")
    bx.plot(depths, dp["critical_lr"], "k--", lw=0.8, label=r"$2/\lambda_{\max}$ at the balanced minimum")
    ax.set(yscale="log", xlabel="depth D", ylabel="learning time (steps)")
    bx.set(yscale="log", xlabel="depth D", ylabel="learning rate η")
    depth_ticks(ax, depths), depth_ticks(bx, depths)
    ax.legend(), bx.legend(fontsize=6)
    return [("", fig)]


def _censored(ax, depths, t, dp) -> None:
    miss = t < 0
    if miss.any():
        ax.plot(depths[miss], np.full(miss.sum(), float(dp["curve_steps"][-1])), "^", color="black", ms=4,
                label="not learned within the horizon")


@register("deeplinear_init", caption="Initialisation of a narrow deep net (depth in the title). Left: the "
          "initial product c^D against depth — vanishing for c < 1, exploding for c > 1, constant for the "
          "isometric c = 1. Middle: learning time at the best η against c (wᵢ = c), and for small random "
          "inits wᵢ ~ N(0, σ²) (triangles at the top: not learned within the horizon; a learning time of 0 — "
          "the init already within the threshold — is drawn at 0.5). Right: the best η.")
def deeplinear_init(results, run):
    it, _ = item(results, "depth", "init")
    fig, (ax, bx, cx) = figure("double", aspect=0.32, ncols=3)
    cs = np.asarray(it["init_value"])[np.asarray(it["init_kind"]) == 0]
    cmap = plt.get_cmap(DIVERGING_CMAP)
    spread = max(float(np.abs(cs - 1).max()), 1e-12)
    for k, c in enumerate(cs):
        colour = "black" if c == 1 else cmap(0.5 + 0.5 * (c - 1) / spread)
        ax.plot(it["product_depths"], it["product_table"][k], color=colour, lw=1.6 if c == 1 else 0.9, label=f"c = {c:g}")
    ax.set(yscale="log", xlabel="depth D", ylabel=r"$c^D$", ylim=(1e-12, 1e6))
    ax.legend(fontsize=5, ncol=2)
    _init_panel(bx, cx, it)
    bx.set_title(f"D = {int(it['init_depth'])}")
    return [("", fig)]


def _init_panel(bx, cx, it: dict) -> None:
    kind, value = np.asarray(it["init_kind"]), np.asarray(it["init_value"])
    t, eta = np.asarray(it["best_time"]).astype(float), np.asarray(it["best_lr"])
    top = float(it["curve_steps"][-1])
    const = kind == 0
    bx.plot(value[const], np.where(t[const] >= 0, np.maximum(t[const], 0.5), np.nan), "o-", color=PALETTE[0], label="$w_i = c$")
    cx.plot(value[const], eta[const], "o-", color=PALETTE[0], label="$w_i = c$")
    rnd = ~const
    bx.plot(value[rnd], np.where(t[rnd] >= 0, t[rnd], top), "^", color=PALETTE[1], mfc="none",
            label=r"$w_i \sim N(0, \sigma^2)$, x-axis σ")
    cx.plot(value[rnd], eta[rnd], "^", color=PALETTE[1], mfc="none", label=r"random, σ")
    cx.axhline(float(it["critical_lr"]), color="black", ls="--", lw=0.7, label=r"$2/\lambda_{\max}$ at the minimum")
    for ax in (bx, cx):
        ax.axvline(1.0, color="grey", lw=0.5)
    bx.set(yscale="log", xlabel="c (or σ)", ylabel="learning time (steps)")
    cx.set(yscale="log", xlabel="c (or σ)", ylabel="best η")
    bx.legend(fontsize=5), cx.legend(fontsize=5)


@register("deeplinear_saxe", caption="Two-layer linear net from a small balanced init (Saxe, McClelland & "
          "Ganguli 2014). Left: strength u_α of each SVD mode of Σ_yx under gradient descent through the "
          "Objective (solid) against the exact u(t) = s·e^{2st/τ}/(e^{2st/τ} − 1 + s/u₀) with τ = 1/(2η) "
          "(dashed), and from a small random init (dotted): sigmoids, learned in order of s. Middle: "
          "|u_GD − u(t)|/s (the 2 % bound dotted). Right: steps to reach s/2 against s, simulated (○ balanced, "
          "△ random init) and (τ/2s)·ln[(s − u₀)/u₀] (line).")
def deeplinear_saxe(results, run):
    sx, _ = item(results, "saxe", "modes")
    t, s = np.asarray(sx["t"]), np.asarray(sx["s"])
    fig, (ax, bx, cx) = figure("double", aspect=0.32, ncols=3)
    for a, sa in enumerate(s):
        colour = PALETTE[a % len(PALETTE)]
        ax.plot(t, sx["u_sim"][:, a], color=colour, lw=1.6, label=f"s = {sa:g}")
        ax.plot(t, sx["u_theory"][:, a], color="black", ls="--", lw=0.7)
        ax.plot(t, sx["u_random"][:, a], color=colour, ls=":", lw=0.9)
        bx.plot(t, np.abs(sx["u_sim"][:, a] - sx["u_theory"][:, a]) / sa, color=colour, label=f"s = {sa:g}")
    bx.axhline(0.02, color="black", ls=":", lw=0.7, label="2 %")
    _half_times(cx, sx)
    ax.set(xlabel="step", ylabel=r"mode strength $u_\alpha$", title=f"η = {float(sx['lr']):g}, τ = {float(sx['tau']):g} steps")
    bx.set(xlabel="step", ylabel=r"$|u_{GD} - u(t)|/s$", yscale="log", ylim=(1e-6, 0.1))
    ax.legend(loc="center right", fontsize=6), bx.legend(fontsize=6)
    return [("", fig)]


def _half_times(cx, sx: dict) -> None:
    s, u0, tau = np.asarray(sx["s"]), float(sx["u0"]), float(sx["tau"])
    grid = np.geomspace(s.min() * 0.8, s.max() * 1.25, 60)
    cx.plot(grid, tau / (2 * grid) * np.log((grid - u0) / u0), color="black", lw=0.8, label=r"$(\tau/2s)\ln[(s-u_0)/u_0]$")
    for key, marker, label in (("half_time_sim", "o", "balanced init"), ("half_time_random", "^", "random init")):
        ht = np.asarray(sx[key]).astype(float)
        cx.plot(s[ht >= 0], ht[ht >= 0], marker, mfc="none", color=PALETTE[0 if marker == "o" else 1], label=label)
    cx.set(yscale="log", xlabel="singular value s", ylabel="steps to s/2")
    depth_ticks(cx, s)
    cx.set_xticklabels([f"{v:g}" for v in s])
    cx.legend(fontsize=6)


@register("deeplinear_saxe_depth", caption="Wide deep linear nets (Σ_yx of the Saxe study): learning time at "
          "the best learning rate against depth, for small random Gaussian and orthogonal inits. Random inits "
          "slow down with depth (▲: not learned within the horizon; deeper nets then not run); orthogonal "
          "ones stay within a narrow band of learning times while the best η (right) falls with depth.")
def deeplinear_saxe_depth(results, run):
    sd, _ = item(results, "saxe", "depth")
    depths = np.asarray(sd["depths"])
    fig, (ax, bx) = figure("double", aspect=0.38, ncols=2)
    for i, name in enumerate(sd["inits"]):
        colour, mk = PALETTE[i % len(PALETTE)], INIT_MARKERS[i % len(INIT_MARKERS)]
        t = np.asarray(sd["best_time"][i]).astype(float)
        run_ = ~np.asarray(sd["skipped"][i])
        ax.plot(depths[run_ & (t >= 0)], t[run_ & (t >= 0)], mk + "-", color=colour, label=str(name))
        miss = run_ & (t < 0)
        ax.plot(depths[miss], np.asarray(sd["steps_run"][i])[miss], "^", color=colour, ms=5)
        bx.plot(depths, sd["best_lr"][i], mk + "-", color=colour, label=str(name))
    ax.set(yscale="log", xlabel="depth D", ylabel="learning time (steps)")
    bx.set(yscale="log", xlabel="depth D", ylabel="best η")
    depth_ticks(ax, depths), depth_ticks(bx, depths)
    ax.legend(fontsize=6), bx.legend(fontsize=6)
    return [("", fig)]
