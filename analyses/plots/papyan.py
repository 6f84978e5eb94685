"""Papyan's class structure of the Hessian (``landscape papyan``), from stored results only.

Reads ``papyan/step_XXXXXXXX/{spectra, density}`` of the last step holding each.
"""

from __future__ import annotations

import numpy as np
from matplotlib.ticker import MaxNLocator

from analyses.plots import last_step_item, register
from analyses.plots.spectrum import gaussian_density
from analyses.plots.style import DIVERGING_CMAP, PALETTE, figure, styled

OPERATORS = {"hessian": ("H", PALETTE[7]), "ggn": ("G", PALETTE[0]), "residual": ("H − G", PALETTE[4]),
             "class": ("class means", PALETTE[1]), "cross": ("cross-class", PALETTE[2]),
             "within": ("within-class", PALETTE[5]), "self": (r"$G_0$ (c' = c)", PALETTE[3])}
DENSITY_GRID = 600
KERNEL_FRACTION = 0.01   # Gaussian kernel width as a fraction of the spectral range
DENSITY_FLOOR = 1e-6


def last(results, quantity: str) -> tuple[int, dict]:
    """``(step, arrays)`` of the latest step holding ``papyan/…/quantity``."""
    return last_step_item(results, "papyan", quantity, "")


@register("papyan_spectra", title="Spectra of the Hessian and its parts", caption="Top eigenvalues (certified Lanczos) of the Hessian H, its Gauss–Newton part G, "
          "the rest H − G and Papyan's parts of G: class means, cross-class, within-class and the c' = c term G₀ "
          "(Papyan 2019). Dashed: the largest eigenvalue of H off the class-mean span; the eigenvalues of H above it "
          "are the outliers. Look for as many outliers as classes minus one, and for which part reaches them.")
@styled
def papyan_spectra(results, run):
    step, a = last(results, "spectra")
    fig, ax = figure("single", aspect=0.8)
    for name, (label, colour) in OPERATORS.items():
        lam = np.asarray(a.get(f"eigenvalues_{name}", []), np.float64)
        lam = lam[lam > 0]
        if len(lam):
            ax.plot(np.arange(1, len(lam) + 1), lam, "o-" if name == "hessian" else ".-", color=colour, label=label,
                    lw=1.4 if name == "hessian" else 0.8)
    ax.axhline(float(a["bulk_edge_class"]), color="black", ls="--", lw=0.7)
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("index i")
    ax.set_ylabel(r"eigenvalue $\lambda_i$")
    ax.set_title(f"step {step}: {int(a['outliers_class'])} outliers, top-eigenspace overlap with the class "
                 f"means {float(a['top_overlap_class']):.2f}")
    ax.legend(ncols=2, loc="lower left")
    return [("", fig)]


@register("papyan_density", title="Spectral densities of the parts", caption="Spectral densities (stochastic Lanczos quadrature, Gaussian kernel of width 1% "
          "of the range, log scale, mean over probes) of the Hessian H, its Gauss–Newton part G, the rest H − G and "
          "the within-class part of G. Look for the outliers of H sitting apart from a bulk that the within-class "
          "part shares.")
@styled
def papyan_density(results, run):
    step, d = last(results, "density")
    names = [n for n in ("hessian", "ggn", "residual", "within") if f"nodes_{n}" in d]
    lo = min(float(np.min(d[f"nodes_{n}"])) for n in names)
    hi = max(float(np.max(d[f"nodes_{n}"])) for n in names)
    span = max(hi - lo, 1e-12)
    grid = np.linspace(lo - 0.05 * span, hi + 0.05 * span, DENSITY_GRID)
    fig, ax = figure("single", aspect=0.7)
    for n in names:
        dens = gaussian_density(np.asarray(d[f"nodes_{n}"]), np.asarray(d[f"weights_{n}"]), grid,
                                KERNEL_FRACTION * span).mean(0)
        ax.plot(grid, np.maximum(dens, DENSITY_FLOOR), color=OPERATORS[n][1], label=OPERATORS[n][0])
    ax.set_yscale("log")
    ax.set_xlabel(r"eigenvalue $\lambda$")
    ax.set_ylabel("density")
    ax.set_title(f"step {step}")
    ax.legend()
    return [("", fig)]


@register("papyan_classes", title="Class gradients and the class-mean span", caption="Left: cosines between the per-class mean gradients g_c (Papyan 2020). Right: "
          "the share ‖Qᵀv_i‖² of each top Hessian eigenvector v_i inside the span of the class means (dark) and of "
          "all the class/cross-class means (light). Look for the top eigenvectors lying almost wholly in the class-mean "
          "span, and for where that stops.")
@styled
def papyan_classes(results, run):
    step, a = last(results, "spectra")
    fig, (ax0, ax1) = figure("double", aspect=0.36, ncols=2)
    cos = np.asarray(a["class_gradient_cos"])
    im = ax0.imshow(cos, cmap=DIVERGING_CMAP, vmin=-1, vmax=1)
    fig.colorbar(im, ax=ax0, label=r"$\cos(g_c, g_{c'})$")
    ax0.set_xlabel("class c'")
    ax0.set_ylabel("class c")
    i = np.arange(1, len(a["overlap_class"]) + 1)
    ax1.bar(i, a["overlap_between"], color=PALETTE[5], label="class + cross-class means")
    ax1.bar(i, a["overlap_class"], color=PALETTE[0], width=0.5, label="class means")
    ax1.set_ylim(0, 1.3)
    ax1.set_yticks(np.linspace(0, 1, 6))
    ax1.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax1.set_xlabel("Hessian eigenvector i")
    ax1.set_ylabel(r"share in span")
    ax1.legend(loc="upper center", ncols=2)
    fig.suptitle(f"step {step}", fontsize=8)
    return [("", fig)]
