"""Figures of hyperparameter optimisation by hypergradients (``landscape hyper optimize``).

Stored layout read here: ``hyperopt/<recipe>/iter_NNNNN`` (attrs ``kind="iteration"``, ``iteration``,
``recipe``, ``groups``; arrays ``{train,val,test}_{loss,acc}`` per seed, ``phi.<g>``, ``hyper.<g>``,
``grad.<g>``, ``rms.<g>``, ...) and ``hyperopt/<recipe>/evaluation`` (attrs ``kind="evaluation"``; see
:mod:`analyses.hyper_optimize.evaluate`). One figure per recipe found in the file.
"""

from __future__ import annotations

import matplotlib
import numpy as np

from analyses.plots import MissingData, register
from analyses.plots.style import DIVERGING_CMAP, PALETTE, SEQUENTIAL_CMAP, figure, styled

SPLIT_LABELS = {"train": "meta-train (inner training set)", "val": "validation (the meta-objective)",
                "test": "test (never optimised)"}
VARIANT_LABELS = {"learned": "learned", "best": "baseline", "initial": "start"}


def _hyperopt_items(results) -> dict[str, dict]:
    """``{recipe: {"iterations": [(arrays, attrs)] by iteration, "evaluation": (arrays, attrs) or None}}``."""
    if results is None:
        raise MissingData("no results file given")
    found: dict[str, dict] = {}
    for key in results.keys("hyperopt/"):
        arrays, attrs = results.read_item(key)
        entry = found.setdefault(attrs["recipe"], {"iterations": [], "evaluation": None})
        if attrs.get("kind") == "evaluation":
            entry["evaluation"] = (arrays, attrs)
        else:
            entry["iterations"].append((arrays, attrs))
    if not found:
        raise MissingData("no hyperparameter optimisation in the file (run `landscape hyper optimize`)")
    for entry in found.values():
        entry["iterations"].sort(key=lambda item: int(item[1]["iteration"]))
    return found


def _evaluations(results, recipes=None) -> dict[str, tuple[dict, dict]]:
    out = {r: e["evaluation"] for r, e in _hyperopt_items(results).items()
           if e["evaluation"] is not None and (recipes is None or r in recipes)}
    if not out:
        raise MissingData("no evaluation of " + ("/".join(recipes) if recipes else "an optimisation") +
                          " in the file (it is written when every meta-iteration is complete)")
    return out


def progress_arrays(iterations: list) -> dict[str, np.ndarray]:
    """Per meta-iteration: ``k``, seed means and stds of each split's loss/accuracy, and the RMS per block."""
    out = {"k": np.asarray([int(attrs["iteration"]) for _, attrs in iterations])}
    for split in ("train", "val", "test"):
        for m in ("loss", "acc"):
            rows = np.stack([np.asarray(a[f"{split}_{m}"], float) for a, _ in iterations])
            out[f"{split}_{m}"], out[f"{split}_{m}_std"] = rows.mean(axis=1), rows.std(axis=1)
    for g in iterations[0][1].get("groups", []):
        out[f"rms.{g}"] = np.stack([np.atleast_1d(a[f"rms.{g}"]) for a, _ in iterations])
    return out


@register("hyperopt_progress", caption="Meta-optimisation per meta-iteration: the loss of the trained nets on their "
          "own training set (meta-train), on the validation set (the meta-objective) and on the test set (never "
          "optimised) — seed mean with ± one std band over the iteration's seeds — and the raw hypergradient's RMS "
          "per block (one line per parameter tensor where the group has a layer axis; log scale). Look for the "
          "validation loss falling, the test loss following it (a gap opening is overfitting of the validation set), "
          "and blocks whose raw gradients differ by orders of magnitude (what the per-block normalisation evens out).",
          title="Meta-train, validation and test loss per meta-iteration")
@styled
def hyperopt_progress(results, run):
    figs = []
    for recipe, entry in sorted(_hyperopt_items(results).items()):
        if not entry["iterations"]:
            continue
        p = progress_arrays(entry["iterations"])
        groups = entry["iterations"][0][1].get("groups", [])
        fig, axes = figure("double", aspect=0.33, ncols=3)
        for j, split in enumerate(("train", "val", "test")):
            for ax, m in ((axes[0], "loss"), (axes[1], "acc")):
                y, s = p[f"{split}_{m}"], p[f"{split}_{m}_std"]
                ax.plot(p["k"], y, color=PALETTE[j], label=SPLIT_LABELS[split])
                ax.fill_between(p["k"], y - s, y + s, color=PALETTE[j], alpha=0.2, lw=0)
        axes[0].set_ylabel("loss after T steps")
        axes[1].set_ylabel("accuracy after T steps")
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=3)
        _rms_panel(axes[2], p, groups, entry["iterations"][0][1].get("layer_names", []))
        for ax in axes:
            ax.set_xlabel("meta-iteration")
        fig.suptitle(f"recipe: {recipe}")
        figs.append((recipe, fig))
    if not figs:
        raise MissingData("no meta-iteration in the file")
    return figs


def _rms_panel(ax, p: dict, groups: list, names: list) -> None:
    styles = ["-", "--", ":", "-."]
    for i, g in enumerate(groups):
        rms = p[f"rms.{g}"]
        for b in range(rms.shape[1]):
            label = f"{g}" + (f" · {names[b]}" if rms.shape[1] == len(names) and rms.shape[1] > 1 else "")
            ax.plot(p["k"], rms[:, b], styles[i % len(styles)], color=PALETTE[b % len(PALETTE)], lw=0.9, label=label)
    ax.set_yscale("log")
    ax.set_ylabel("raw hypergradient RMS")
    if sum(p[f"rms.{g}"].shape[1] for g in groups) <= 8:
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=5)


@register("hyperopt_learning_curves", caption="Learning curves on held-out seeds: validation and test loss against the "
          "training step for the learned hyperparameters, the baseline (schedule: the best constant learning rate on "
          "the same number of steps; init: the model's own initialisation; ard: the best single L2 penalty) and the "
          "starting values; seed mean with ± one std band. Look for where the learned curve pulls ahead and whether "
          "the lead holds on the test set.", title="Learned hyperparameters against the baseline")
@styled
def hyperopt_learning_curves(results, run):
    figs = []
    for recipe, (a, attrs) in sorted(_evaluations(results, ("schedule", "init", "ard")).items()):
        fig, axes = figure("double", aspect=0.33, ncols=3)
        steps = np.asarray(a["curve_steps"])
        for j, which in enumerate(("learned", "best", "initial")):
            label = VARIANT_LABELS[which] + (f" ({attrs['baseline']})" if which == "best" else "")
            for ax, metric in zip(axes, ("val_loss", "test_loss", "test_acc")):
                y = np.asarray(a[f"curve.{which}.{metric}"], float)
                m, s = y.mean(axis=0), y.std(axis=0)
                ax.plot(steps, m, color=PALETTE[j], label=label)
                ax.fill_between(steps, m - s, m + s, color=PALETTE[j], alpha=0.2, lw=0)
        for ax, label in zip(axes, ("validation loss", "test loss", "test accuracy")):
            ax.set_xlabel("training step")
            ax.set_ylabel(label)
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=3)
        fig.suptitle(f"recipe: {recipe} ({len(attrs['eval_seeds'])} held-out seeds)")
        figs.append((recipe, fig))
    return figs


@register("hyperopt_schedule", caption="The learned learning-rate schedule η_t (per layer where learned per layer), "
          "drawn every few meta-iterations from light (early) to dark (last), against the best constant rate on the "
          "same budget (dashed) and the starting rate (dotted); below, the raw hypergradient dL/d ln η_t at the first "
          "and the last meta-iteration. Look for the shape the meta-loss asks for (warm-up, decay) and for "
          "hypergradients concentrated at the start and the end of training (the lab notes' Jan 15 remark).",
          title="Learned learning-rate schedule")
@styled
def hyperopt_schedule(results, run):
    entry = _hyperopt_items(results).get("schedule")
    if not entry or not entry["iterations"] or entry["evaluation"] is None:
        raise MissingData("no complete schedule recipe in the file (`landscape hyper optimize --recipe schedule`)")
    its, (ev, _) = entry["iterations"], entry["evaluation"]
    T = int(np.asarray(ev["curve_steps"])[-1])
    fig, (top, bottom) = figure("double", aspect=0.6, nrows=2, sharex=True)
    single = _schedule_panel(top, its, ev, T)
    _schedule_gradient_panel(bottom, its, T, single)
    return [("", fig)]


def _schedule_panel(ax, its: list, ev: dict, T: int) -> bool:
    """The learned schedules, the evolution of a single one, the best constant and the start; True if single."""
    names, lr = its[0][1].get("layer_names", []), per_step(ev["lr_learned"], T)
    single, cmap = lr.shape[1] == 1, matplotlib.colormaps[SEQUENTIAL_CMAP]
    picks = np.unique(np.linspace(0, len(its) - 1, min(6, len(its))).round().astype(int))
    for n, i in enumerate(picks[:-1] if single else []):   # the schedule's evolution (one schedule only)
        h = np.exp(per_step(its[i][0].get("hyper.log_lr", its[i][0]["phi.log_lr"]), T))
        ax.plot(np.arange(T), h[:, 0], color=cmap(0.85 - 0.6 * n / max(1, len(picks) - 1)), lw=0.7,
                label=f"meta-iteration {its[i][1]['iteration']}")
    for col in range(lr.shape[1]):
        label = "learned" + ("" if single else f" · {names[col] if col < len(names) else col}")
        ax.plot(np.arange(T), lr[:, col], color=PALETTE[col % len(PALETTE)], lw=1.4, label=label)
    ax.axhline(float(ev["best_const"]), color="black", ls="--", lw=0.8, label="best constant")
    ax.axhline(float(np.asarray(ev["lr_initial"]).reshape(-1)[0]), color="black", ls=":", lw=0.8, label="start")
    ax.set_yscale("log")
    ax.set_ylabel(r"learning rate $\eta_t$")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=5)
    return single


def _schedule_gradient_panel(ax, its: list, T: int, single: bool) -> None:
    """dL/d ln η_t (summed over layers) at the first and the last meta-iteration."""
    for j, i in enumerate((0, len(its) - 1)):
        raw = np.asarray(its[i][0]["grad.log_lr"], float)
        g = per_step(raw, T).sum(axis=1)
        if raw.ndim < 2 or raw.shape[0] == 1:
            g = g / T        # one rate for every step: its hypergradient spread evenly over the steps
        ax.plot(np.arange(T), g, color=PALETTE[j], lw=0.9, label=f"meta-iteration {its[i][1]['iteration']}")
    ax.axhline(0, color="black", lw=0.4)
    ax.set_ylabel(r"$dL_{val}/d\ln\eta_t$" + ("" if single else " (all layers)"))
    ax.set_xlabel("training step t")
    ax.legend(loc="best", fontsize=6)


def per_step(values, T: int) -> np.ndarray:
    """A stored ``log_lr`` (or its gradient) of shape (), (T, 1), (1, L) or (T, L) as a (T, L) array."""
    a = np.asarray(values, float)
    a = a.reshape(1, 1) if a.ndim == 0 else a.reshape(a.shape[0], -1)
    return np.broadcast_to(a, (T, a.shape[1])) if a.shape[0] == 1 else a[:T]


def quantile_density(knots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edges and density of a piecewise-linear quantile function: 1/((K − 1)(q_{k+1} − q_k)) per bin."""
    knots = np.asarray(knots, float)
    width = np.diff(knots)
    return knots, np.divide(1.0 / (len(knots) - 1), width, out=np.full_like(width, np.inf), where=width > 0)


@register("hyperopt_init", caption="Learned initial weight distribution of each parameter tensor: the density of the "
          "learned quantile function (solid steps; every bin carries the same probability, so none is empty), the "
          "empirical histogram of the initial weights it gives one held-out net (bars), and the model's own "
          "initialisation it started from (dashed). Look for layers whose scale or shape moved, and for the "
          "histogram following the density (small layers, e.g. biases, have fewer weights than bins; the density "
          "axis stops at 4× the median bin, so the spikes of very narrow bins are cut).",
          title="Learned initial weight distributions per layer")
@styled
def hyperopt_init(results, run):
    (a, attrs), = _evaluations(results, ("init",)).values()
    names, sizes = attrs["layer_names"], np.asarray(a["layer_sizes"], int)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    ncols = 2 if len(names) <= 4 else 3
    nrows = int(np.ceil(len(names) / ncols))
    fig, axes = figure("double", aspect=0.3 * nrows, nrows=nrows, ncols=ncols, squeeze=False)
    for i, name in enumerate(names):
        ax = axes.flat[i]
        theta = np.asarray(a["theta0_learned"], float)[offsets[i]:offsets[i + 1]]
        counts, edges = np.histogram(theta, bins=min(40, max(5, len(theta) // 5)), density=True)
        ax.stairs(counts, edges, fill=True, color=PALETTE[5], alpha=0.5, label="histogram")
        for knots, style, label in ((a["knots_learned"][i], "-", "learned"), (a["knots_initial"][i], "--", "start")):
            edges, dens = quantile_density(knots)
            ax.stairs(dens, edges, color=PALETTE[0] if style == "-" else "black", ls=style, lw=1.0, label=label)
        _cap_density(ax, counts, a["knots_learned"][i])
        ax.set_title(f"{name} ({sizes[i]} weights)")
        ax.set_xlabel("initial value")
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    axes.flat[0].set_ylabel("density")
    axes.flat[0].legend(loc="best", fontsize=6)
    return [("", fig)]


DENSITY_CAP = 4.0  # the density axis stops at this × the median bin's density (spikes of narrow bins are cut)


def _cap_density(ax, counts: np.ndarray, knots: np.ndarray) -> None:
    """Top of the density axis: the histogram's or the learned density's peak, the latter at most
    DENSITY_CAP × its median bin."""
    _, dens = quantile_density(knots)
    dens = dens[np.isfinite(dens)]
    top = max(float(counts.max()), min(float(dens.max()), DENSITY_CAP * float(np.median(dens))))
    ax.set_ylim(0, 1.05 * top)


@register("hyperopt_ard", caption="Automatic relevance determination on logistic regression: the learned per-weight "
          "L2 penalty log₁₀ λ as heat strips, one row per class and one column per position of the length-40 "
          "MNIST-1D input signal (the input's own shape: a 1-D signal, so each class's weights form a strip), beside "
          "the trained weights under the learned penalties and under the best single penalty. Look for positions "
          "the penalties switch off (bright) and whether the learned weights are sparser or smoother.",
          title="Per-weight L2 penalties (ARD) in the input's shape")
@styled
def hyperopt_ard(results, run):
    (a, _), = _evaluations(results, ("ard",)).values()
    shape = tuple(int(s) for s in a["weight_shape"])
    if len(shape) != 2:
        raise MissingData(f"the first layer's weights have shape {shape}; the strips need a (classes, inputs) matrix")
    n = shape[0] * shape[1]
    lam = np.log10(np.asarray(a["l2_learned"], float)[:n].reshape(shape))
    w_l, w_b = (np.asarray(a[k], float)[:n].reshape(shape) for k in ("theta_learned", "theta_best"))
    fig, axes = figure("double", aspect=0.55, nrows=3, sharex=True)
    im = axes[0].imshow(lam, aspect="auto", cmap=SEQUENTIAL_CMAP, interpolation="nearest")
    fig.colorbar(im, ax=axes[0], label=r"$\log_{10}\lambda$")
    vmax = float(np.nanmax(np.abs(np.concatenate([w_l.ravel(), w_b.ravel()]))))
    for ax, w, title in ((axes[1], w_l, "weights, learned penalties"),
                         (axes[2], w_b, f"weights, best single λ = {float(a['best_const']):.3g}")):
        im = ax.imshow(w, aspect="auto", cmap=DIVERGING_CMAP, vmin=-vmax, vmax=vmax, interpolation="nearest")
        fig.colorbar(im, ax=ax, label="weight")
        ax.set_title(title)
    axes[0].set_title("learned per-weight penalty")
    for ax in axes:
        ax.set_ylabel("class")
        ax.set_yticks(range(shape[0]))
    axes[-1].set_xlabel("input position (MNIST-1D signal, 40 samples)")
    return [("", fig)]


@register("hyperopt_distill", caption="Distilled training set ('canonical examples'): the optimised example of each "
          "class as a curve over the 40 positions of the MNIST-1D signal (solid), beside the mean of that class's "
          "real training examples (grey) and the example's starting point (dotted). A freshly initialised net "
          "trained on these ten curves alone is what the validation loss judged.",
          title="Distilled examples, one per class")
@styled
def hyperopt_distill(results, run):
    figs = []
    for recipe, (a, _) in sorted(_evaluations(results, ("distill", "distill_fixed")).items()):
        x, labels = np.asarray(a["distilled_inputs"], float), np.asarray(a["labels"], int)
        start, means = np.asarray(a["distilled_start"], float), np.asarray(a["class_means"], float)
        C = means.shape[0]
        fig, axes = figure("double", aspect=0.4, nrows=2, ncols=(C + 1) // 2, sharex=True, squeeze=False)
        for c in range(C):
            ax = axes.flat[c]
            ax.plot(means[c].reshape(-1), color="0.6", lw=1.0, label="class mean (real)")
            for i in np.flatnonzero(labels == c):
                ax.plot(start[i].reshape(-1), ":", color="black", lw=0.6, label="start")
                ax.plot(x[i].reshape(-1), color=PALETTE[0], lw=1.1, label="distilled")
            ax.set_title(f"class {c}")
        for ax in list(axes.flat)[C:]:
            ax.set_visible(False)
        axes.flat[0].legend(loc="best", fontsize=5)
        for ax in axes[-1]:
            ax.set_xlabel("position")
        fig.suptitle(f"recipe: {recipe}")
        figs.append((recipe, fig))
    return figs


@register("hyperopt_distill_table", caption="Test accuracy of nets trained only on the distilled examples against "
          "nets trained on as many random real training examples (one draw per seed), with the learned learning "
          "rates and with the best constant rate; one dot per held-out seed, bar: mean ± std. The distilled set "
          "should beat the real examples by more than the seed-to-seed spread.",
          title="Distilled against random real examples")
@styled
def hyperopt_distill_table(results, run):
    figs = []
    for recipe, (a, attrs) in sorted(_evaluations(results, ("distill", "distill_fixed")).items()):
        rows = [("distilled", "distilled"), ("real", "random real\n(learned η)"), ("real_tuned", "random real\n(best constant η)")]
        fig, ax = figure("single", aspect=0.7)
        for j, (key, label) in enumerate(rows):
            acc = np.asarray(a[f"{key}_test_acc"], float)
            ax.plot(np.full(len(acc), j) + np.linspace(-0.15, 0.15, len(acc)), acc, "o", color=PALETTE[j], ms=3)
            ax.errorbar(j + 0.3, acc.mean(), yerr=acc.std(ddof=1) if len(acc) > 1 else 0, fmt="s", color="black",
                        ms=3, capsize=2)
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels([r[1] for r in rows])
        ax.set_ylabel("test accuracy")
        ax.set_title(f"{recipe}: margin {attrs['margin']:+.3f}, spread {attrs['spread']:.3f}")
        figs.append((recipe, fig))
    return figs
