"""Training curves from a run file: loss, learning rate, and λ_max against the run's stability threshold.

The threshold is that of the optimizer the run used (:mod:`landscape.stability`, the one
definition the trainer and the trajectory analysis use too): 2/η for gradient descent,
2(1+β)/η for heavy-ball momentum β, 2(1+β)/((1+2β)η) for Nesterov, and for AdamW
(2+2β₁)/((1−β₁)η) against the preconditioned sharpness λ_max(P⁻¹H) the trainer logs.
"""

from __future__ import annotations

import numpy as np

from analyses.plots import MissingData, register
from analyses.plots.style import PALETTE, figure
from landscape.stability import run_constant, threshold_label

THRESHOLD_GID = "stability-threshold"  # the threshold line's id, for readers of the figure (and tests)
MIN_EVALS_FOR_LINES = 3  # fewer full evaluations are drawn as points: a line through two would invent a curve


def _smooth(y: np.ndarray, window: int) -> np.ndarray:
    """Running mean over ``window`` steps (valid part only, same length via edge padding)."""
    if window <= 1 or len(y) < window:
        return y
    kernel = np.ones(window) / window
    padded = np.pad(y, (window // 2, window - 1 - window // 2), mode="edge")
    return np.convolve(padded, kernel, mode="valid")


def _loss_panel(ax, steps_m, evals):
    step, loss = steps_m["step"], steps_m["loss"]
    ax.plot(step, loss, color=PALETTE[5], alpha=0.35, lw=0.6, label="minibatch loss")
    ax.plot(step, _smooth(loss, max(1, len(loss) // 50)), color=PALETTE[0], label="minibatch (smoothed)")
    n = 0 if evals is None else len(evals["step"])
    if n:
        joined = n >= MIN_EVALS_FOR_LINES
        ax.plot(evals["step"], evals["train_loss"], "o-" if joined else "o", color=PALETTE[1],
                label=f"train (full, n = {n} evaluations)")
        ax.plot(evals["step"], evals["test_loss"], "s--" if joined else "s", color=PALETTE[2], label="test (full)")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend(loc="upper right")


def _lr_panel(ax, steps_m, sharp, config: dict):
    step, lr = steps_m["step"], steps_m["lr"]
    if sharp is not None and len(sharp["step"]):
        adaptive = config.get("optimizer", "sgd") == "adamw"
        lam = np.atleast_2d(sharp["eigenvalues"].T).T
        for j in range(lam.shape[1]):
            name = r"$\lambda_{%d}(P^{-1}H)$" if adaptive else r"$\lambda_{%d}$"
            ax.plot(sharp["step"], lam[:, j], "o-", ms=2, color=PALETTE[j % len(PALETTE)], label=name % (j + 1))
        c = run_constant(config)
        if c is not None:
            ax.plot(step, c / np.maximum(lr, 1e-300), color="black", lw=0.8, ls="--", gid=THRESHOLD_GID,
                    label=threshold_label(config))
        ax.set_ylabel("preconditioned sharpness" if adaptive else "sharpness")
        ax.set_yscale("log")
        ax.legend(loc="best", fontsize="small")
    else:
        ax.plot(step, lr, color=PALETTE[4])
        ax.set_ylabel(r"learning rate $\eta$")
    ax.set_xlabel("step")


@register("training_curves", section="training", title="Training curves",
          caption="Minibatch loss at every step (raw and smoothed) with the full train and test loss at the "
          "evaluation steps (left; points when fewer than three); the top Hessian eigenvalues logged during "
          "training against the stability threshold of the run's optimizer, dashed (2/η for gradient "
          "descent, 2(1+β)/η with heavy-ball momentum β, Cohen et al. 2021; for AdamW the preconditioned "
          "λ_max(P⁻¹H) against (2+2β₁)/((1−β₁)η), Cohen et al. 2022), or the learning-rate schedule when no "
          "online sharpness was logged (right; a constant learning rate is given in the title instead). Look "
          "for: test loss parting from train loss (overfitting); λ₁ rising until it meets the threshold and "
          "hovering there (the edge of stability), or staying well below it (stable training).")
def training_curves(results, run):
    if run is None:
        raise MissingData("no run file given")
    steps_m = run.step_metrics()
    if len(steps_m["step"]) == 0:
        raise MissingData("the run file has no logged steps")
    sharp, lr = run.sharpness(), np.asarray(steps_m["lr"])
    if len(sharp["step"]) == 0 and np.ptp(lr) == 0:     # nothing to show on the right: a constant η
        fig, a = figure("single", aspect=0.7)
        _loss_panel(a, steps_m, run.eval_metrics())
        a.set_title(rf"constant learning rate $\eta$ = {lr[0]:.3g}")
        return [("", fig)]
    fig, (a, b) = figure("double", aspect=0.32, ncols=2)
    _loss_panel(a, steps_m, run.eval_metrics())
    _lr_panel(b, steps_m, sharp, run.config)
    return [("", fig)]
