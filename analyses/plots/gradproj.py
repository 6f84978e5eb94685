"""Per-example gradients in the eigenbasis: |cos| histograms per eigenvalue, class means.

Reads ``gradproj/step_XXXXXXXX/projections`` (``landscape gradproj``).
"""

from __future__ import annotations

import numpy as np

from analyses.plots import MissingData, by_step, register
from analyses.plots.style import DIVERGING_CMAP, PALETTE, figure, styled

MAX_PANELS = 8          # eigenvectors shown as histograms (evenly spaced when k is larger)
NUM_BINS = 40
COS_FLOOR = 1e-6        # |cos| below this is drawn in the first bin (log axis)


def _last_step(results) -> tuple[int, dict]:
    items = {s: q["projections"] for s, q in by_step(results, "gradproj").items() if "projections" in q}
    if not items:
        raise MissingData("no per-example gradient projections stored")
    step = max(items)
    return step, items[step]


def _panel_indices(k: int) -> np.ndarray:
    return np.arange(k) if k <= MAX_PANELS else np.unique(np.linspace(0, k - 1, MAX_PANELS).round().astype(int))


@register("gradproj_cos", section="projections", title="Alignment of example gradients with eigenvectors",
          caption="Distribution over training examples of |cos| between each example's gradient and Hessian "
          "eigenvector vⱼ (last analysed step), one panel per eigenvalue λⱼ; dashed: 1/√P, the |cos| of a "
          "random direction. Look for: a heavy right tail (a few examples carry that direction) against a "
          "narrow bump above the dashed line (many examples depend on it slightly).")
@styled
def gradproj_cos(results, run):
    step, a = _last_step(results)
    cos = np.clip(np.asarray(a["abs_cos"]), COS_FLOOR, 1)
    idx = _panel_indices(cos.shape[1])
    ncols = min(4, len(idx))
    nrows = int(np.ceil(len(idx) / ncols))
    fig, axes = figure("double", aspect=0.25 * nrows, ncols=ncols, nrows=nrows, squeeze=False, sharex=True)
    bins = np.geomspace(cos.min(), 1, NUM_BINS)
    lam = np.asarray(a.get("eigenvalues", np.full(cos.shape[1], np.nan)))
    for ax, j in zip(axes.flat, idx):
        ax.hist(cos[:, j], bins=bins, color=PALETTE[0], alpha=0.8)
        if "P" in a:
            ax.axvline(1 / np.sqrt(float(a["P"])), color="black", ls="--", lw=0.7)
        ax.set_xscale("log")
        ax.set_title(rf"$\lambda_{{{j + 1}}}$ = {lam[j]:.3g}")
    for ax in list(axes.flat)[len(idx):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel(r"$|\cos(g_i, v_j)|$")
    fig.suptitle(f"step {step}: {cos.shape[0]} examples; top-{cos.shape[1]} subspace holds "
                 f"{100 * float(a['subspace_fraction']):.1f}% of ‖g‖²", fontsize=8)
    return [("", fig)]


@register("gradproj_classes", section="projections", title="Class structure of the projections",
          caption="Per-class means of the per-example gradient projections gᵢ·vⱼ (Papyan 2019), classes by "
          "rows and eigenvectors by columns, at the last analysed step; bottom: the between-class share of "
          "the projections' variance per eigenvector. Look for: top eigenvectors whose projections separate "
          "the classes (a large between-class share) — the class structure behind the outliers of the "
          "spectrum.")
@styled
def gradproj_classes(results, run):
    step, a = _last_step(results)
    if "class_means" not in a:
        raise MissingData("the projections were stored without labels")
    means = np.asarray(a["class_means"])
    fig, (top, bottom) = figure("single", aspect=1.0, nrows=2, gridspec_kw={"height_ratios": [3, 1]},
                                sharex=True)
    vmax = np.nanmax(np.abs(means)) or 1.0
    im = top.imshow(means, cmap=DIVERGING_CMAP, vmin=-vmax, vmax=vmax, aspect="auto",
                    extent=(0.5, means.shape[1] + 0.5, means.shape[0] - 0.5, -0.5))
    fig.colorbar(im, ax=top, label=r"mean $g_i\cdot v_j$")
    top.set_yticks(np.arange(means.shape[0]))
    top.set_ylabel("class")
    top.set_title(f"step {step}")
    bottom.bar(np.arange(1, means.shape[1] + 1), a["between_class_fraction"], color=PALETTE[1])
    bottom.set_ylim(0, 1)
    bottom.set_xlabel("eigenvector j")
    bottom.set_ylabel("between-class")
    return [("", fig)]
