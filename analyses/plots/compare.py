"""Figures comparing runs (scope "runs"): each is drawn once from every run given to the report.

* ``training_compare`` — full train/test loss, accuracy, and the online top eigenvalue against each
  run's stability threshold λ_crit = c/η of its optimizer (:func:`landscape.stability.run_constant`,
  the one definition the trainer and the training figure use: c = 2 for gradient descent, 2(1+β)
  for heavy ball, 2(1+β)/(1+2β) for Nesterov; for AdamW the logged eigenvalue is of P⁻¹H).
* ``spectrum_compare`` — λ₁ (with its certified residual) and tr H (± 1 s.e.) of ``landscape hessian``.
* ``sharpness_compare`` — the random-direction probes' mean ΔL against the radius at each run's last
  analysed step, the generalization gap in the legend.

Each needs at least two runs holding the data; otherwise it raises :class:`MissingData`.
"""

from __future__ import annotations

import numpy as np

from analyses.plots import MissingData, by_step, register
from analyses.plots.style import PALETTE, figure, styled
from landscape.stability import run_constant

MIN_RUNS = 2   # a comparison needs two runs


def _with(runs, has, what: str) -> list:
    """The runs for which ``has(view)`` holds; MissingData when fewer than two."""
    kept = [v for v in runs if has(v)]
    if len(kept) < MIN_RUNS:
        raise MissingData(f"fewer than {MIN_RUNS} runs with {what} ({len(kept)} of {len(runs)})")
    return kept


def _has_evals(view) -> bool:
    return view.run is not None and len(view.run.eval_metrics()["step"]) > 0


def lambda_crit(config: dict, lr: np.ndarray) -> np.ndarray | None:
    """The largest stable curvature c/η of the run's optimizer at learning rates ``lr`` (None: no known c)."""
    c = run_constant(config)
    return None if c is None else c / np.maximum(np.asarray(lr, dtype=np.float64), 1e-300)


def _curvature_panel(ax, view, color) -> bool:
    sharp = view.run.sharpness()
    if not len(sharp["step"]):
        return False
    steps_m = view.run.step_metrics()
    ax.plot(sharp["step"], np.atleast_2d(sharp["eigenvalues"].T).T[:, 0], "o-", ms=2, color=color,
            label=rf"{view.label}: $\lambda_1$")
    crit = lambda_crit(view.run.config, steps_m["lr"])
    if crit is not None:
        ax.plot(steps_m["step"], crit, ":", color=color, lw=0.9, label=rf"{view.label}: $\lambda_{{crit}}$")
    return True


@register("training_compare", section="training", title="Runs side by side", scope="runs",
          caption="The runs side by side, one colour per run: full train (solid) and test (dashed) loss at "
          "the evaluation steps (left), train and test accuracy (middle), and the top Hessian eigenvalue "
          "logged during training against the stability threshold of the run's optimizer, λ_crit = c/η "
          "dotted (c = 2 for gradient descent, 2(1+β) with heavy-ball momentum β; for AdamW the eigenvalue is "
          "of the preconditioned P⁻¹H) (right). Look for: which run ends with the lower test loss and the "
          "smaller train–test gap, and how close each run's curvature came to its own threshold.")
@styled
def training_compare(runs):
    runs = _with(runs, _has_evals, "full train/test evaluations in the run file")
    fig, (a, b, c) = figure("double", aspect=0.3, ncols=3)
    any_curvature = False
    for i, view in enumerate(runs):
        col, ev = PALETTE[i % len(PALETTE)], view.run.eval_metrics()
        a.plot(ev["step"], ev["train_loss"], "o-", ms=2, color=col, label=f"{view.label} train")
        a.plot(ev["step"], ev["test_loss"], "s--", ms=2, color=col, label=f"{view.label} test")
        b.plot(ev["step"], ev["train_acc"], "o-", ms=2, color=col)
        b.plot(ev["step"], ev["test_acc"], "s--", ms=2, color=col)
        any_curvature |= _curvature_panel(c, view, col)
    a.set(xlabel="step", ylabel="loss")
    b.set(xlabel="step", ylabel="accuracy")
    a.legend(fontsize=6)
    if any_curvature:
        c.set(xlabel="step", ylabel="curvature", yscale="log")
        c.legend(fontsize=6)
    else:
        c.set_visible(False)
    return [("", fig)]


def _hessian_rows(view, quantity: str) -> list:
    return view.results.items("hessian", quantity) if view.results is not None else []


@register("spectrum_compare", section="spectrum", title="Spectra compared", scope="runs",
          caption="The runs side by side: the top Hessian eigenvalue λ₁ (error bars: its certified residual) "
          "and the trace tr H (± 1 standard error) at the steps each run was analysed. Look for: which run "
          "sits in the sharper region and when the runs part; compare only runs analysed on the same data "
          "subset (see the eigenvalue tables).")
@styled
def spectrum_compare(runs):
    runs = _with(runs, lambda v: _hessian_rows(v, "eigen"), "stored Hessian eigenpairs")
    fig, (a, b) = figure("double", aspect=0.35, ncols=2)
    for i, view in enumerate(runs):
        col = PALETTE[i % len(PALETTE)]
        eig = [(s, view.results.read_item(k)[0]) for s, k in _hessian_rows(view, "eigen")]
        a.errorbar([s for s, _ in eig], [float(np.max(d["eigenvalues"])) for _, d in eig],
                   yerr=[float(d["residuals"][int(np.argmax(d["eigenvalues"]))]) for _, d in eig],
                   fmt="o-", ms=2.5, capsize=1.5, color=col, label=view.label)
        tr = [(s, view.results.read_item(k)[0]) for s, k in _hessian_rows(view, "trace")]
        if tr:
            b.errorbar([s for s, _ in tr], [float(d["value"]) for _, d in tr],
                       yerr=[float(d["stderr"]) for _, d in tr], fmt="s-", ms=2.5, capsize=1.5, color=col,
                       label=view.label)
    a.set(xlabel="step", ylabel=r"$\lambda_1$")
    b.set(xlabel="step", ylabel=r"$\mathrm{tr}\,H$")
    a.legend(fontsize=6)
    return [("", fig)]


def _last_sharpness(view) -> tuple[int, dict] | None:
    if view.results is None or not view.results.by_step("sharpness"):
        return None
    step, items = max(by_step(view.results, "sharpness").items())
    return (step, items) if any(q.startswith("probes_") for q in items) else None


@register("sharpness_compare", section="sharpness", title="Sharpness of the runs compared", scope="runs",
          caption="The runs side by side: mean loss change ΔL under random perturbations of radius r (antithetic "
          "pair means, which cancel the gradient term) at each run's last analysed step, one line per run, "
          "one panel per kind of direction; the legend gives each run's generalization gap (test − train "
          "loss). Look for: whether the run with the larger ΔL (the sharper solution) is also the one with "
          "the larger gap — with a handful of runs an observation, not a correlation.")
@styled
def sharpness_compare(runs):
    runs = _with(runs, _last_sharpness, "random-direction sharpness probes")
    last = [(v, *_last_sharpness(v)) for v in runs]
    kinds = sorted({q for _, _, items in last for q in items if q.startswith("probes_")})
    fig, axes = figure("double" if len(kinds) > 1 else "single", aspect=0.4 if len(kinds) > 1 else 0.75,
                       ncols=len(kinds), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        for i, (view, step, items) in enumerate(last):
            if kind in items:
                p = items[kind]
                ax.plot(p["radii"], p["mean"], "o-", color=PALETTE[i % len(PALETTE)],
                        label=f"{view.label} (step {step}, gap {float(p['gap_loss']):.3g})")
        ax.set(xscale="log", xlabel="radius r", ylabel=r"mean $\Delta L$", title=kind.removeprefix("probes_"))
        if all(np.all(np.asarray(items[kind]["mean"]) > 0) for _, _, items in last if kind in items):
            ax.set_yscale("log")
        ax.legend(fontsize=6, loc="upper left")
    return [("", fig)]
