"""Interventions in the Hessian eigenbasis (``landscape intervene``), from stored results only.

Reads ``intervene/step_XXXXXXXX/{newton, noise, noise_learned, continued_<variant>}`` of the last
step that has each; see docs/interventions.md for the formulas.
"""

from __future__ import annotations

import numpy as np

from analyses.plots import MissingData, by_step, last_step_item, register
from analyses.plots.style import PALETTE, figure, styled

SPLIT_COLOURS = {"fit": PALETTE[2], "train": PALETTE[0], "test": PALETTE[1]}
VARIANT_ORDER = ("control", "inverse", "stationary", "dom", "bulk", "b1")
VARIANT_LABELS = {"control": "SGD (control)", "inverse": r"inverse-$\lambda$", "stationary": "stationary-variance",
                  "dom": "Dom-SGD", "bulk": "Bulk-SGD", "b1": "batch size 1"}


def last_item(results, quantity: str) -> tuple[int, dict]:
    """``(step, arrays)`` of the latest step holding ``intervene/…/quantity``."""
    return last_step_item(results, "intervene", quantity, f" --do {quantity}")


def _threshold_axis(ax, a: dict) -> None:
    """A top axis labelling m by the λ threshold λ_m (every direction with λ ≥ λ_m moved)."""
    m, lam = np.asarray(a["m"]), np.asarray(a["threshold"])
    top = ax.secondary_xaxis("top")
    ticks = m[1:][:: max(1, len(m) // 6)]
    top.set_xticks(ticks, [f"{lam[i]:.2g}" for i in ticks])
    top.set_xlabel(r"threshold $\lambda_m$")


@register("intervene_newton", title="Newton in the top subspace", caption="Newton in the top-m eigen-subspace, θ − Σ_{i≤m}(gᵀv_i/λ_i)v_i, against m "
          "(top axis: the eigenvalue threshold λ_m). Left: the change of the loss the eigenpairs are of, "
          "measured (markers) and predicted by the quadratic model −½Σ(gᵀv_i)²/λ_i (dashed); middle and "
          "right: the change of the train and test loss, and their accuracy, after the Newton moves (solid) and "
          "after moving each direction to its line-search minimum (dotted). Look for the markers on the dashed line at "
          "small m (the quadratic model holds) and for whether the test loss follows the train loss down.")
@styled
def intervene_newton(results, run):
    step, a = last_item(results, "newton")
    m = np.asarray(a["m"])
    fig, (ax0, ax1, ax2) = figure("double", aspect=0.3, ncols=3)
    base = "fit" if "fit_loss" in a else "train"
    ax0.plot(m, a["predicted_change"], "--", color="black", label="quadratic model")
    ax0.plot(m, a[f"{base}_loss"] - a[f"{base}_loss"][0], "o", color=SPLIT_COLOURS[base], label=f"{base}: Newton")
    if f"ls_{base}_loss" in a:
        ax0.plot(m, a[f"ls_{base}_loss"] - a[f"ls_{base}_loss"][0], "s", mfc="none", color=SPLIT_COLOURS[base],
                 label=f"{base}: line search")
    ax0.set_ylabel(r"$\Delta L$")
    ax0.legend()
    for split in ("train", "test"):
        c = SPLIT_COLOURS[split]
        base_loss = a[f"{split}_loss"][0]
        ax1.plot(m, a[f"{split}_loss"] - base_loss, "o-", color=c, label=f"{split} (at m = 0: {base_loss:.3g})")
        ax2.plot(m, 100 * a[f"{split}_acc"], "o-", color=c, label=split)
        if f"ls_{split}_loss" in a:
            ax1.plot(m, a[f"ls_{split}_loss"] - base_loss, ":", color=c)
            ax2.plot(m, 100 * a[f"ls_{split}_acc"], ":", color=c)
    ax1.axhline(0, color="0.6", lw=0.6)
    ax1.set_ylabel(r"loss change $L(\theta_m) - L(\theta)$")
    ax2.set_ylabel("accuracy (%)")
    ax1.legend()
    for ax in (ax0, ax1, ax2):
        ax.set_xlabel("directions moved m")
        _threshold_axis(ax, a)
    fig.suptitle(f"step {step}: {len(np.asarray(a['rows_skipped']))} non-positive eigenvalue(s) skipped", fontsize=8)
    return [("", fig)]


def _errorbars(ax, sigmas, mean, sem, label, color, offset):
    x = np.asarray(sigmas) * offset
    ax.errorbar(x, mean, yerr=sem, fmt="o-", ms=2.5, capsize=2, color=color, label=label)


@register("intervene_noise", title="Noise per eigen-band", caption="Gaussian noise of standard deviation σ per direction added in one band of "
          "Hessian eigendirections at a time (top, middle, the bulk = complement of the top-k, all): mean test loss "
          "and accuracy over the draws with ± 1 standard error (n draws); dotted: the loss of the averaged "
          "prediction over the draws; grey: no noise. Points of a band are shifted slightly along σ to stay apart. "
          "Look for the band whose noise costs least, and for any σ where the test loss or accuracy improves.")
@styled
def intervene_noise(results, run):
    step, a = last_item(results, "noise")
    names, sigmas = [str(n) for n in a["band_names"]], np.asarray(a["sigmas"])
    fig, (ax0, ax1) = figure("double", aspect=0.32, ncols=2)
    offsets = np.geomspace(0.93, 1.07, len(names))
    for b, name in enumerate(names):
        c = PALETTE[b % len(PALETTE)]
        _errorbars(ax0, sigmas, a["test_loss_mean"][b], a["test_loss_sem"][b], name, c, offsets[b])
        _errorbars(ax1, sigmas, 100 * a["test_acc_mean"][b], 100 * a["test_acc_sem"][b], name, c, offsets[b])
        if "test_bma_loss" in a:
            ax0.plot(sigmas * offsets[b], a["test_bma_loss"][b], ":", color=c)
    ax0.axhline(float(a["base_test_loss"]), color="0.6", lw=0.8)
    ax1.axhline(100 * float(a["base_test_acc"]), color="0.6", lw=0.8)
    for ax, label in ((ax0, "test loss"), (ax1, "test accuracy (%)")):
        if (sigmas > 0).all():
            ax.set_xscale("log")
        ax.set_xlabel(r"noise scale $\sigma$ per direction")
        ax.set_ylabel(label)
    ax0.legend(title=f"band (n = {int(a['num_draws'])})")
    fig.suptitle(f"step {step}", fontsize=8)
    return [("", fig)]


@register("intervene_noise_learned", title="Noise scales learned on validation data", caption="Noise scales σ_b per band learned on a validation half of the test "
          "split by descending the expected validation loss in log σ_b (reparameterised antithetic draws): σ_b "
          "against the step (left) and the mean validation loss of each step's draws (right); the legend gives "
          "the held-out loss (mean ± standard error) at the learned scales. Look for scales that shrink (the validation "
          "loss is convex across the band) or grow (noise there helps it).")
@styled
def intervene_noise_learned(results, run):
    step, a = last_item(results, "noise_learned")
    sigma, names = np.asarray(a["sigma"]), [str(n) for n in a["band_names"]]
    fig, (ax0, ax1) = figure("double", aspect=0.32, ncols=2)
    for b, name in enumerate(names):
        ax0.plot(np.arange(len(sigma)), sigma[:, b], color=PALETTE[b % len(PALETTE)], label=name)
    ax0.set_yscale("log")
    ax0.set_xlabel("step")
    ax0.set_ylabel(r"$\sigma_b$")
    ax0.legend()
    ax1.plot(np.arange(1, len(sigma)), a["objective"], color=PALETTE[7])
    ax1.axhline(float(a["base_val_loss"]), color="0.6", lw=0.8, label="no noise")
    ax1.set_xlabel("step")
    ax1.set_ylabel("validation loss (draws)")
    ax1.legend(title=f"held-out at learned σ: {float(a['learned_heldout_loss_mean']):.4g} ± "
                     f"{float(a['learned_heldout_loss_sem']):.2g}")
    fig.suptitle(f"step {step}", fontsize=8)
    return [("", fig)]


def continued_items(results) -> tuple[int, dict[str, dict]]:
    """``(step, {variant: arrays})`` of the latest step with continued training."""
    steps = {s: {k.removeprefix("continued_"): v for k, v in q.items() if k.startswith("continued_")}
             for s, q in by_step(results, "intervene").items()}
    steps = {s: v for s, v in steps.items() if v}
    if not steps:
        raise MissingData("no continued training stored (run `landscape intervene --do continued`)")
    step = max(steps)
    return step, steps[step]


@register("intervene_continued", title="Continued training shaped in the eigenbasis", caption="Continued training from one checkpoint on the same batch plan: plain "
          "SGD (control) and the update shaped in the refreshed top-k Hessian eigenbasis (inverse-λ, the "
          "stationary-variance rule, Dom-SGD onto the subspace, Bulk-SGD out of it) and the same examples at batch "
          "size 1; train loss, test loss and test accuracy against the training examples seen. Look for Dom-SGD "
          "stalling while Bulk-SGD keeps pace with SGD, and for any variant ending with a lower test loss.")
@styled
def intervene_continued(results, run):
    step, variants = continued_items(results)
    fig, axes = figure("double", aspect=0.3, ncols=3)
    order = [v for v in VARIANT_ORDER if v in variants] + sorted(set(variants) - set(VARIANT_ORDER))
    for i, v in enumerate(order):
        a = variants[v]
        style = dict(color=PALETTE[i % len(PALETTE)], label=VARIANT_LABELS.get(v, v),
                     lw=1.6 if v == "control" else 1.0, ls="-" if v != "b1" else "--")
        for ax, q, scale in zip(axes, ("train_loss", "test_loss", "test_acc"), (1, 1, 100)):
            ax.plot(a["examples"], scale * np.asarray(a[q]), **style)
    for ax, label in zip(axes, ("train loss", "test loss", "test accuracy (%)")):
        ax.set_xlabel("examples seen")
        ax.set_ylabel(label)
    axes[0].legend()
    fig.suptitle(f"continued from step {step}", fontsize=8)
    return [("", fig)]
