"""Issue 13.3: the training figure draws the stability threshold of the optimizer the run used, labelled.

The run files are written with :class:`landscape.io.RunWriter` directly (a step-decay schedule
and logged sharpness), so the drawn line can be checked against c/η_t exactly. Also: figure
modules do not force a matplotlib backend at import (so notebooks show figures inline).
"""

import os
import subprocess
import sys

import numpy as np
import pytest

from analyses.plots.training import THRESHOLD_GID, training_curves
from checkpoints import TrainConfig
from landscape.io import RunFile, RunWriter

STEPS = 40
LRS = np.where(np.arange(STEPS) < 20, 0.1, 0.01)  # a step decay at 20


def _run_file(path, **optimizer) -> RunFile:
    cfg = TrainConfig(dataset="synthetic", model="mlp", steps=STEPS, **optimizer)
    meta = {"config": cfg.to_dict(), "model_name": "mlp", "model_kwargs": {}, "num_train": 100, "full_batch": True}
    with RunWriter(path, mode="create", meta=meta, P=3, B=0, batch_size=100) as w:
        w.append_steps(np.arange(STEPS), None, np.zeros(STEPS, np.int64), np.linspace(2, 1, STEPS), LRS)
        w.append_snapshot(0, np.zeros(3, np.float32), None)
        for s in range(0, STEPS, 10):
            w.append_sharpness(s, [5.0 + s, 1.0], LRS[s])
        w.commit()
    return RunFile(path)


def _threshold_line(fig):
    lines = [line for ax in fig.axes for line in ax.get_lines() if line.get_gid() == THRESHOLD_GID]
    assert len(lines) == 1, [line.get_label() for ax in fig.axes for line in ax.get_lines()]
    return lines[0]


CASES = [  # (optimizer fields, c in λ = c/η, words the label must hold)
    (dict(momentum=0.0), 2.0, ["2/η"]),
    (dict(momentum=0.9), 3.8, ["2(1+β)/η = 3.8/η", "β = 0.9"]),
    (dict(momentum=0.9, nesterov=True), 2 * 1.9 / 2.8, ["2(1+β)/((1+2β)η)", "Nesterov"]),
    (dict(optimizer="adamw", betas=(0.9, 0.999)), 38.0, ["38/η", "AdamW", "β₁ = 0.9"]),
    (dict(optimizer="adamw", betas=(0.8, 0.999)), 18.0, ["18/η", "β₁ = 0.8"]),
]


@pytest.mark.parametrize("optimizer,c,words", CASES, ids=["gd", "heavy-ball", "nesterov", "adamw", "adamw-b1"])
def test_threshold_line_follows_the_optimizer(tmp_path, optimizer, c, words):
    with _run_file(tmp_path / "run.h5", **optimizer) as run:
        (_, fig), = training_curves(None, run)
    line = _threshold_line(fig)
    np.testing.assert_array_equal(line.get_xdata(), np.arange(STEPS))
    np.testing.assert_allclose(line.get_ydata(), c / LRS, rtol=1e-12)
    assert all(w in line.get_label() for w in words), line.get_label()
    legend = [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]
    assert line.get_label() in legend


def test_adamw_curves_are_named_preconditioned(tmp_path):
    with _run_file(tmp_path / "run.h5", optimizer="adamw") as run:
        (_, fig), = training_curves(None, run)
    ax = fig.axes[1]
    assert ax.get_ylabel() == "preconditioned sharpness"
    assert any("P^{-1}H" in line.get_label() for line in ax.get_lines())


def test_figure_modules_leave_the_backend_alone():
    """A notebook's backend (here: svg, set by the user) survives importing every figure module."""
    code = ("import matplotlib; from analyses.plots import all_figures; import analyses.output.render; all_figures(); "
            "print(matplotlib.get_backend())")
    env = {**os.environ, "MPLBACKEND": "svg"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().lower() == "svg"


def test_the_command_line_renders_headless(tmp_path):
    """`landscape plot` picks Agg itself when nothing is set (no display needed)."""
    with _run_file(tmp_path / "run.h5", momentum=0.9):
        pass
    env = {k: v for k, v in os.environ.items() if k not in ("MPLBACKEND", "DISPLAY", "WAYLAND_DISPLAY")}
    code = ("import sys, matplotlib; from analyses.cli import main; rc = main(sys.argv[1:]); "
            "print(matplotlib.get_backend()); sys.exit(rc)")
    out = subprocess.run([sys.executable, "-c", code, "plot", str(tmp_path / "run.h5"), "--out", str(tmp_path / "f"),
                          "--only", "training_curves"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1].lower() == "agg"
    assert (tmp_path / "f" / "training_curves.png").stat().st_size > 0


def _plain_run(path, lrs, evals) -> RunFile:
    """A run with the given per-step learning rates, full evaluations at ``evals`` and no sharpness."""
    cfg = TrainConfig(dataset="synthetic", model="mlp", steps=STEPS)
    meta = {"config": cfg.to_dict(), "model_name": "mlp", "model_kwargs": {}, "num_train": 100, "full_batch": True}
    with RunWriter(path, mode="create", meta=meta, P=3, B=0, batch_size=100) as w:
        w.append_steps(np.arange(STEPS), None, np.zeros(STEPS, np.int64), np.linspace(2, 1, STEPS), lrs)
        w.append_snapshot(0, np.zeros(3, np.float32), None)
        for s in evals:
            w.append_eval(s, 1.0 - s / 100, 0.5, 1.1 - s / 100, 0.4)
        w.commit()
    return RunFile(path)


def test_constant_learning_rate_gets_no_panel_of_its_own(tmp_path):
    """13.13: no online sharpness and a constant η: one panel, η in the title."""
    with _plain_run(tmp_path / "c.h5", np.full(STEPS, 0.05), evals=[0, 20, 39]) as run:
        fig = training_curves(None, run)[0][1]
    assert len(fig.axes) == 1 and "0.05" in fig.axes[0].get_title()


def test_two_evaluations_are_points_not_a_line(tmp_path):
    """13.13: with only the first and last evaluation, no straight line is drawn between them."""
    with _plain_run(tmp_path / "e.h5", LRS, evals=[0, 39]) as run:
        fig = training_curves(None, run)[0][1]
    full = [line for line in fig.axes[0].get_lines() if "full" in line.get_label()]
    assert full and all(line.get_linestyle() == "None" for line in full)
    assert "n = 2 evaluations" in full[0].get_label()
