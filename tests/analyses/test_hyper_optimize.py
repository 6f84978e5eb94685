"""``landscape hyper optimize``: the recipes' layout, resume (also after SIGKILL), bad input, the figures' data."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from analyses.cli import main
from analyses.hyper_optimize import OptimizeConfig, recipe
from landscape.errors import InputError
from landscape.io import ResultsFile

ROOT = Path(__file__).resolve().parents[2]
CHILD_TIMEOUT_S = 180  # the child imports torch and h5py on a loaded 2-core machine
SMALL = ["--dataset-kwargs", '{"num_train": 300, "num_test": 100}', "--num-val", "100", "--eval-seeds", "2",
         "--const-num", "3", "--curve-points", "3", "--seeds-per-iter", "2", "--no-progress", "--device", "cpu"]
MLP8 = ["--model-kwargs", '{"in_dim": 40, "hidden": [8], "activation": "tanh"}']
TINY = {  # each recipe at a size that runs in a second or two
    "schedule": [*MLP8, "--steps", "8", "--batch-size", "25", "--iterations", "3"],
    "init": [*MLP8, "--steps", "8", "--batch-size", "25", "--iterations", "2", "--quantile-knots", "5"],
    "ard": ["--steps", "120", "--batch-size", "50", "--iterations", "2"],     # T ≥ 100: the reversible route
    "distill": [*MLP8, "--steps", "4", "--iterations", "3"],
}


def optimize(name: str, out, *extra) -> int:
    return main(["hyper", "optimize", "--recipe", name, "--out", str(out), *SMALL, *TINY[name], *extra])


def arrays_of(path, prefix: str) -> dict[str, dict]:
    with ResultsFile(path, "r") as r:
        return {k: r.read_item(k)[0] for k in r.keys(prefix)}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("hyperopt")
    out = {}
    for name in TINY:
        out[name] = folder / f"{name}.h5"
        assert optimize(name, out[name]) == 0
    return out


@pytest.mark.parametrize("name", list(TINY))
def test_one_item_per_meta_iteration_then_the_evaluation(runs, name):
    n = int(TINY[name][TINY[name].index("--iterations") + 1])
    with ResultsFile(runs[name], "r") as r:
        keys = r.keys(f"hyperopt/{name}/")
        assert keys == [f"hyperopt/{name}/evaluation"] + [f"hyperopt/{name}/iter_{k:05d}" for k in range(n)]
        a, attrs = r.read_item(keys[2])
        b, _ = r.read_item(keys[1])
        ev, ev_attrs = r.read_item(keys[0])
    assert attrs["kind"] == "iteration" and attrs["iteration"] == 1 and attrs["config"]["chosen_route"] == attrs["route"]
    assert attrs["route"] == ("reversible" if name == "ard" else "checkpointed") and attrs["route_reason"]
    assert a["val_loss"].shape == a["test_loss"].shape == a["train_acc"].shape == (2,)          # per seed
    for g in attrs["groups"]:
        np.testing.assert_array_equal(a[f"phi.{g}"], b[f"next.{g}"])        # each iteration starts where the last ended
        assert a[f"grad.{g}"].shape == a[f"phi.{g}"].shape if name != "init" else a[f"grad.{g}"].shape == a[f"hyper.{g}"].shape
    assert ev_attrs["kind"] == "evaluation" and len(ev_attrs["eval_seeds"]) == 2
    if name == "distill":
        assert ev["distilled_test_acc"].shape == ev["real_test_acc"].shape == (2,)
        assert {"margin", "spread", "beats_by_more_than_spread"} <= set(ev_attrs)
    else:
        assert ev["curve.learned.test_loss"].shape == (2, len(ev["curve_steps"]))


def test_per_block_normalisation_evens_out_the_layers(runs):
    """init: one RMS per layer; the step direction has unit RMS in every layer whatever the raw scale."""
    a = arrays_of(runs["init"], "hyperopt/init/iter_")["hyperopt/init/iter_00000"]
    rms, step = a["rms.init_quantiles"], a["step.init_quantiles"]
    assert rms.shape == (4,) and rms.max() / rms.min() > 2                     # raw scales differ across layers
    np.testing.assert_allclose(np.sqrt((step ** 2).mean(axis=1)), 1.0, rtol=1e-12)


def test_rerun_continues_where_it_stopped_bitwise(runs, tmp_path, capsys):
    short = tmp_path / "short.h5"
    assert optimize("schedule", short, "--iterations", "1") == 0
    assert optimize("schedule", short) == 0                                   # 3 iterations: continues from 1
    assert "2 meta-iteration(s) computed, 1 already complete" in capsys.readouterr().out
    resumed, whole = arrays_of(short, "hyperopt/schedule/"), arrays_of(runs["schedule"], "hyperopt/schedule/")
    assert resumed.keys() == whole.keys()
    for key in resumed:
        for name in whole[key]:
            np.testing.assert_array_equal(resumed[key][name], whole[key][name], err_msg=f"{key}/{name}")


def test_another_config_is_refused_in_one_line_and_nothing_is_lost(runs, tmp_path, capsys):
    import shutil

    copy = tmp_path / "copy.h5"
    shutil.copy(runs["schedule"], copy)
    before = copy.read_bytes()
    assert optimize("schedule", copy, "--meta-lr", "0.01") == 2
    err = capsys.readouterr().err.strip()
    assert "meta_lr: stored 0.05, asked 0.01" in err and "--recompute" in err and len(err.splitlines()) == 1, err
    assert copy.read_bytes() == before


BAD = [
    dict(id="unknown-recipe", args=["--recipe", "dropout"], match="unknown recipe 'dropout'"),
    dict(id="unknown-group", args=["--groups", "log_lr,dropout"], match="unknown or repeated hyperparameter group"),
    dict(id="meta-lr-zero", args=["--meta-lr", "0"], match="meta-learning rate must be a finite number > 0"),
    dict(id="meta-lr-nan", args=["--meta-lr", "nan"], match="meta-learning rate must be a finite number > 0"),
    dict(id="meta-lr-of-other-group", args=["--meta-lr-groups", "log_l2=0.1"], match="not optimised"),
    dict(id="reversible-without-momentum", args=["--route", "reversible", "--momentum", "0"],
         match="no finite bit budget"),
    dict(id="main-group-dropped", args=["--groups", "log_l2"], match="keep it among --groups"),
]


@pytest.mark.parametrize("case", BAD, ids=[c["id"] for c in BAD])
def test_bad_input_is_one_line_and_writes_nothing(case, tmp_path, capsys):
    out = tmp_path / "bad.h5"
    args = case["args"]
    name = args[1] if args[0] == "--recipe" else "schedule"
    cmd = ["hyper", "optimize", "--recipe", name, "--out", str(out), *SMALL, *TINY["schedule"]]
    rc = main(cmd + (args[2:] if args[0] == "--recipe" else args))
    err = capsys.readouterr().err.strip()
    assert rc == 2 and case["match"] in err and len(err.splitlines()) == 1, err
    if out.exists():
        with ResultsFile(out, "r") as r:
            assert r.keys() == []


def test_a_diverging_meta_step_stops_and_keeps_the_iterations_before(tmp_path, capsys):
    out = tmp_path / "nan.h5"
    rc = optimize("schedule", out, "--meta-lr", "60", "--normalize", "group", "--meta-optimizer", "sgd",
                  "--meta-momentum", "0")
    err = capsys.readouterr().err.strip()
    assert rc == 3 and len(err.splitlines()) == 1, err
    assert "meta-iteration 1" in err and "meta-iterations 0–0 are kept in" in err, err
    with ResultsFile(out, "r") as r:
        assert r.keys() == ["hyperopt/schedule/iter_00000"]


def test_config_checks_values():
    with pytest.raises(InputError, match="lr_knots must lie in"):
        recipe("schedule", lr_knots=500)
    with pytest.raises(InputError, match="unknown setting"):
        recipe("schedule", learning_rate=0.1)
    assert OptimizeConfig().iterate_settings().keys().isdisjoint({"iterations", "eval_seeds"})


def test_sigkill_then_rerun_gives_the_uninterrupted_result(runs, tmp_path):
    """A child killed (SIGKILL) after its second meta-iteration; the rerun continues and matches bitwise."""
    out = tmp_path / "killed.h5"
    args = ["hyper", "optimize", "--recipe", "schedule", "--out", str(out), *SMALL, *TINY["schedule"]]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    code = "import sys; from analyses.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen([sys.executable, "-u", "-c", code, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + CHILD_TIMEOUT_S
        for line in proc.stdout:
            if line.startswith("[2/3]"):
                break
            assert time.monotonic() < deadline, "the child printed no second meta-iteration in time"
        else:
            pytest.fail(f"the child ended before its second meta-iteration: {proc.stderr.read()[-2000:]}")
    finally:
        proc.kill()
        proc.wait(CHILD_TIMEOUT_S)
    with ResultsFile(out, "r") as r:
        assert not r.is_complete("hyperopt/schedule/evaluation")
        assert len(r.keys("hyperopt/schedule/iter_")) in (2, 3)               # the kill may land after the third
    assert main(args) == 0
    resumed, whole = arrays_of(out, "hyperopt/schedule/"), arrays_of(runs["schedule"], "hyperopt/schedule/")
    assert resumed.keys() == whole.keys()
    for key in resumed:
        for name in whole[key]:
            np.testing.assert_array_equal(resumed[key][name], whole[key][name], err_msg=f"{key}/{name}")


def _draw(path, figure: str):
    from analyses.output.render import open_inputs_for_figures
    from analyses.plots import all_figures

    with open_inputs_for_figures([str(path)]) as (results, run):
        drawn = all_figures()[figure].draw(results, run)
        stored = {k: results.read_item(k)[0] for k in results.keys("hyperopt/")}
    return drawn, stored


def test_progress_and_learning_curves_draw_the_stored_numbers(runs):
    (name, fig), = _draw(runs["schedule"], "hyperopt_progress")[0]
    stored = _draw(runs["schedule"], "hyperopt_progress")[1]
    its = [stored[f"hyperopt/schedule/iter_{k:05d}"] for k in range(3)]
    loss = fig.axes[0]
    np.testing.assert_allclose(loss.lines[1].get_ydata(), [a["val_loss"].mean() for a in its])   # validation
    np.testing.assert_allclose(loss.lines[2].get_ydata(), [a["test_loss"].mean() for a in its])
    assert fig.axes[2].get_yscale() == "log" and name == "schedule"
    (_, curves), = _draw(runs["ard"], "hyperopt_learning_curves")[0]
    ev = _draw(runs["ard"], "hyperopt_learning_curves")[1]["hyperopt/ard/evaluation"]
    np.testing.assert_allclose(curves.axes[0].lines[0].get_ydata(), ev["curve.learned.val_loss"].mean(axis=0))
    np.testing.assert_allclose(curves.axes[2].lines[1].get_ydata(), ev["curve.best.test_acc"].mean(axis=0))


def test_schedule_figure_shows_the_learned_rates_and_the_best_constant(runs):
    drawn, stored = _draw(runs["schedule"], "hyperopt_schedule")
    ((_, fig),), ev = drawn, stored["hyperopt/schedule/evaluation"]
    top = fig.axes[0]
    learned = next(line for line in top.lines if line.get_label() == "learned")
    np.testing.assert_allclose(learned.get_ydata(), ev["lr_learned"][:, 0])
    best = next(line for line in top.lines if line.get_label() == "best constant")
    assert best.get_ydata()[0] == pytest.approx(float(ev["best_const"]))


def test_init_figure_draws_the_learned_density_and_the_histogram(runs):
    from analyses.plots.hyperopt import quantile_density

    drawn, stored = _draw(runs["init"], "hyperopt_init")
    ((_, fig),), ev = drawn, stored["hyperopt/init/evaluation"]
    ax = fig.axes[0]
    steps = next(p for p in ax.patches if p.get_label() == "learned")
    edges, dens = quantile_density(ev["knots_learned"][0])
    np.testing.assert_allclose(steps.get_data().values, dens)
    np.testing.assert_allclose(steps.get_data().edges, edges)
    hist = next(p for p in ax.patches if p.get_label() == "histogram")
    assert np.sum(hist.get_data().values * np.diff(hist.get_data().edges)) == pytest.approx(1.0)   # a density


def test_ard_strips_are_the_penalties_in_the_inputs_shape(runs):
    drawn, stored = _draw(runs["ard"], "hyperopt_ard")
    ((_, fig),), ev = drawn, stored["hyperopt/ard/evaluation"]
    image = fig.axes[0].images[0].get_array()
    assert image.shape == (10, 40)                                     # classes × positions of the 1-D signal
    np.testing.assert_allclose(image, np.log10(ev["l2_learned"][:400].reshape(10, 40)))


def test_distill_figures_draw_the_examples_and_the_table(runs):
    drawn, stored = _draw(runs["distill"], "hyperopt_distill")
    ((_, fig),), ev = drawn, stored["hyperopt/distill/evaluation"]
    distilled = [line for line in fig.axes[3].lines if line.get_label() == "distilled"][0]
    np.testing.assert_allclose(distilled.get_ydata(), ev["distilled_inputs"][3])
    (_, table), = _draw(runs["distill"], "hyperopt_distill_table")[0]
    np.testing.assert_allclose(table.axes[0].lines[0].get_ydata(), ev["distilled_test_acc"])


def test_per_step_reads_every_schedule_shape():
    from analyses.plots.hyperopt import per_step

    assert per_step(np.float64(0.5), 4).shape == (4, 1)
    assert per_step(np.ones((1, 3)), 4).shape == (4, 3)
    np.testing.assert_array_equal(per_step(np.arange(8.0).reshape(4, 2), 4)[:, 1], [1, 3, 5, 7])


def test_problem_source_holds_the_validation_set_out_of_the_training_split(tiny_run):
    import argparse

    import torch

    from analyses.driver.problems import ProblemSource

    args = argparse.Namespace(run=None, dataset="mnist1d", dataset_kwargs={"num_train": 300, "num_test": 100},
                              model="mlp", model_kwargs={"in_dim": 40, "hidden": [4]}, loss="cross_entropy", lr=0.1,
                              momentum=0.9, weight_decay=0.0, nesterov=False, batch_size=25, full_batch=False)
    with ProblemSource(args, 5, "cpu", torch.float64, num_val=100) as source:
        prob = source.problem(0)
        x = source.data.x_train
        assert len(prob.x_train) == 200 and len(prob.x_val) == 100 and len(source.test[0]) == 100
        torch.testing.assert_close(prob.x_val, x[200:].double())                # the last 100 training examples
        assert int(prob.batches.max()) < 200                                    # batches never touch them
        assert source.spec["validation"] == "last 100 of the training split"
    with pytest.raises(InputError, match="cannot hold out 300"):
        ProblemSource(args, 5, "cpu", torch.float64, num_val=300)
    run_args = argparse.Namespace(**{**vars(args), "run": str(tiny_run.path)})
    with pytest.raises(InputError, match="cannot be used with a run file"):
        ProblemSource(run_args, 5, "cpu", torch.float64, num_val=10)
