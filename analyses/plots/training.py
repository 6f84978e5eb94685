"""Training curves from a run file: loss, learning rate, and λ_max against 2/η."""

from __future__ import annotations

import numpy as np

from analyses.plots import MissingData, register
from analyses.plots.style import PALETTE, figure


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
    if evals is not None and len(evals["step"]):
        ax.plot(evals["step"], evals["train_loss"], "o-", color=PALETTE[1], label="train (full)")
        ax.plot(evals["step"], evals["test_loss"], "s--", color=PALETTE[2], label="test (full)")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend(loc="upper right")


def _lr_panel(ax, steps_m, sharp):
    step, lr = steps_m["step"], steps_m["lr"]
    if sharp is not None and len(sharp["step"]):
        lam = np.atleast_2d(sharp["eigenvalues"].T).T
        for j in range(lam.shape[1]):
            ax.plot(sharp["step"], lam[:, j], "o-", ms=2, color=PALETTE[j % len(PALETTE)],
                    label=r"$\lambda_{%d}$" % (j + 1))
        ax.plot(step, 2.0 / np.maximum(lr, 1e-300), color="black", lw=0.8, ls="--", label=r"$2/\eta$")
        ax.set_ylabel("sharpness")
        ax.set_yscale("log")
        ax.legend(loc="best")
    else:
        ax.plot(step, lr, color=PALETTE[4])
        ax.set_ylabel(r"learning rate $\eta$")
    ax.set_xlabel("step")


@register("training_curves", caption="Training curves: minibatch loss per step (raw and smoothed), "
          "full train/test loss at evaluation steps (left); online top Hessian eigenvalues against the "
          "edge-of-stability threshold 2/η (Cohen et al. 2021), or the learning-rate schedule when no "
          "online sharpness was logged (right).")
def training_curves(results, run):
    if run is None:
        raise MissingData("no run file given")
    steps_m = run.step_metrics()
    if len(steps_m["step"]) == 0:
        raise MissingData("the run file has no logged steps")
    fig, (a, b) = figure("double", aspect=0.32, ncols=2)
    _loss_panel(a, steps_m, run.eval_metrics())
    _lr_panel(b, steps_m, run.sharpness())
    return [("", fig)]
