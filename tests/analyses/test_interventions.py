"""`landscape intervene`: Newton in the top subspace, band noise, learned noise, shaped continued training."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from eigen_results import write_dense_eigen

from analyses.cli import main
from analyses.interventions import newton as NW
from analyses.interventions import noise as NZ
from landscape.io import ResultsFile, step_key

# Newton's predicted drop −½Σ(gᵀv)²/λ is second order; on the tiny MLP the cubic remainder is a few % of it
# for the first directions (measured 2%), so 15% separates "the model holds" from "it does not".
QUADRATIC_RTOL = 0.15
# Float32 losses of a 300-example subset, summed in float64: rounding ~1e-7 of a loss ~0.5; 2e-6 is far above it
# and far below the drops checked (6e-5 … 5e-3 on the quick demo run).
DEMO_LOSS_ATOL = 2e-6
# On a quadratic loss (linear regression) the prediction is exact: float64 rounding of sums of P terms.
EXACT_RTOL = 1e-9

SMALL = ["--draws", "4", "--noise-scales", "0.01,0.1", "--learn-steps", "3", "--continue-steps", "4",
         "--refresh", "2", "--eval-every", "2", "--ls-points", "21"]


@pytest.fixture(scope="module")
def done(tiny_run, tmp_path_factory):
    """Exact eigenpairs at step 30 and every intervention computed once."""
    out = tmp_path_factory.mktemp("intervene") / "res.h5"
    write_dense_eigen(tiny_run.path, out, k=6, steps=[30])
    assert main(["intervene", str(tiny_run.path), "--steps", "30", "--out", str(out), "--device", "cpu", *SMALL]) == 0
    return out


def _item(path, quantity, step=30):
    with ResultsFile(path) as r:
        return r.read_item(step_key("intervene", step, quantity))


def test_newton_prediction_is_exact_on_a_quadratic():
    from landscape.objective import Objective

    g = torch.Generator().manual_seed(0)
    X, y = torch.randn(40, 5, generator=g, dtype=torch.float64), torch.randn(40, generator=g, dtype=torch.float64)
    obj = Objective(torch.nn.Linear(5, 1).double(), X, y, loss="mse")
    theta = obj.theta
    H = obj.hvp(theta, torch.eye(6, dtype=torch.float64))
    lam, U = torch.linalg.eigh((H + H.T) / 2)
    used, _ = NW.order_positive(lam.numpy())
    V = U.T[used]
    slopes = (V @ obj.grad(theta)).numpy()
    thetas = NW.path(theta, V, NW.newton_steps(slopes, lam.numpy()[used]))
    loss, _ = NW.evaluate(obj, thetas)
    np.testing.assert_allclose(loss - loss[0], NW.predicted_change(slopes, lam.numpy()[used]), rtol=EXACT_RTOL,
                               atol=EXACT_RTOL * loss[0])
    full = obj.grad(thetas[-1])
    assert float(full.norm()) < 1e-10            # every direction moved: the minimum of the quadratic


def test_newton_in_the_top_subspace_drops_the_loss_as_predicted(done):
    a, attrs = _item(done, "newton")
    change = a["train_loss"] - a["train_loss"][0]
    for m in (1, 2):
        assert change[m] < 0
        np.testing.assert_allclose(change[m], a["predicted_change"][m], rtol=QUADRATIC_RTOL)
    assert a["m"].tolist() == list(range(7)) and np.isinf(a["threshold"][0])
    assert np.all(np.diff(a["threshold"][1:]) <= 0) and attrs["cost"]["gradients"] == 1
    assert attrs["linesearch_source"] == "computed" and a["ls_train_loss"].shape == (7,)
    assert a["ls_bracketed"].all() and a["ls_train_loss"][1] <= a["train_loss"][0]


def test_band_noise_has_every_draw_and_its_error_bars(done):
    a, _ = _item(done, "noise")
    assert a["band_names"].tolist() == ["top", "middle", "bulk", "all"]
    assert a["test_loss"].shape == (4, 2, 4) and a["test_bma_loss"].shape == (4, 2)
    np.testing.assert_allclose(a["test_loss_sem"], a["test_loss"].std(-1, ddof=1) / 2)
    assert np.all(a["test_bma_loss"] <= a["test_loss_mean"] + 1e-12)       # Jensen: log of a mean ≥ mean of logs
    assert np.all(np.abs(a["test_loss_mean"][:, 1] - a["base_test_loss"]) >= np.abs(a["test_loss_mean"][:, 0] -
                                                                                       a["base_test_loss"]) - 1e-3)


def test_learned_noise_reports_a_scale_per_band(done):
    a, attrs = _item(done, "noise_learned")
    assert a["sigma"].shape == (4, 3) and a["band_names"].tolist() == ["top", "middle", "bulk"]
    assert np.all(a["sigma"] > 0) and attrs["cost"]["gradients"] == 12
    assert set(a["val_indices"]).isdisjoint(a["heldout_indices"])


def test_continued_variants_share_the_control_checkpoint_and_batches(done):
    control, _ = _item(done, "continued_control")
    for v in ("inverse", "stationary", "dom", "bulk"):
        a, attrs = _item(done, f"continued_{v}")
        assert a["examples"].tolist() == control["examples"].tolist()
        assert a["step_loss"][0] == control["step_loss"][0]          # same θ_s, same first batch
        assert a["train_loss"][0] == control["train_loss"][0]
        assert a["refresh_steps"].tolist() == [0, 2] and a["scales"].shape == (2, 6)
        assert attrs["cost"]["refresh_hvps"] == int(a["refresh_matvecs"].sum()) > 0
    dom, bulk = _item(done, "continued_dom")[0], _item(done, "continued_bulk")[0]
    assert np.all(dom["scales"] == 1) and dom["rest"] == 0 and np.all(bulk["scales"] == 0) and bulk["rest"] == 1
    b1, _ = _item(done, "continued_b1")
    assert b1["batch_size"] == 1 and b1["examples"].tolist() == control["examples"].tolist()
    assert b1["lr"] == pytest.approx(control["lr"] / control["batch_size"])


def test_a_rerun_computes_nothing(done, tiny_run, capsys):
    assert main(["intervene", str(tiny_run.path), "--steps", "30", "--out", str(done), "--device", "cpu", *SMALL]) == 0
    assert "0 item(s) computed" in capsys.readouterr().out


def test_stored_line_searches_are_used(tiny_run, tmp_path):
    out = tmp_path / "res.h5"
    write_dense_eigen(tiny_run.path, out, k=4, steps=[30])
    assert main(["linesearch", str(tiny_run.path), "--steps", "30", "--out", str(out), "--device", "cpu",
                 "--t-max", "0.3", "--num-t", "31"]) == 0
    assert main(["intervene", str(tiny_run.path), "--steps", "30", "--out", str(out), "--device", "cpu",
                 "--do", "newton", "--linesearch", "stored"]) == 0
    a, attrs = _item(out, "newton")
    with ResultsFile(out) as r:
        curves = r.read_item(step_key("linesearch", 30, "curves"))[0]
    assert attrs["linesearch_source"] == "stored"
    np.testing.assert_array_equal(a["ls_t"], curves["min_t"][a["directions"]])


BAD = [
    (["--steps", "20"], "steps with eigenvectors: 30"),
    (["--m-max", "7"], "choose 1 ≤ m ≤ 6"),
    (["--noise-scales", "-0.1"], "finite numbers ≥ 0"),
    (["--noise-scales", "nan"], "finite numbers ≥ 0"),
    (["--variants", "control,sideways"], "unknown sideways"),
    (["--learn-init", "0"], "must be > 0"),
]


@pytest.mark.parametrize("extra,message", BAD, ids=[b[1][:20] for b in BAD])
def test_bad_input_is_one_line_and_overwrites_nothing(done, tiny_run, capsys, extra, message):
    before = done.read_bytes()
    argv = ["intervene", str(tiny_run.path), "--steps", "30", "--out", str(done), "--device", "cpu", *SMALL, *extra]
    assert main(argv) != 0
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert done.read_bytes() == before


def test_bands_and_scales_are_checked():
    assert [b.name for b in NZ.bands((2,), 5)] == ["top", "middle", "bulk", "all"]
    assert [(b.start, b.stop) for b in NZ.bands((1, 3), 5)[:3]] == [(0, 1), (1, 3), (3, 5)]
    with pytest.raises(Exception, match="increase strictly"):
        NZ.bands((3, 2), 5)
    with pytest.raises(Exception, match="finite"):
        NZ.check_scales([0.1, float("inf")])


def test_figures_draw_the_stored_numbers(done):
    import matplotlib.pyplot as plt

    from analyses.plots import MissingData, all_figures

    figures = all_figures()
    with ResultsFile(done) as r:
        newton = r.read_item(step_key("intervene", 30, "newton"))[0]
        noise = r.read_item(step_key("intervene", 30, "noise"))[0]
        control = r.read_item(step_key("intervene", 30, "continued_control"))[0]
        (_, fig), = figures["intervene_newton"].draw(r, None)
        predicted = fig.axes[0].lines[0]
        np.testing.assert_allclose(predicted.get_ydata(), newton["predicted_change"])
        measured = fig.axes[0].lines[1]
        np.testing.assert_allclose(measured.get_ydata(), newton["train_loss"] - newton["train_loss"][0])
        plt.close(fig)
        (_, fig), = figures["intervene_noise"].draw(r, None)
        bars = fig.axes[0].containers                                   # one errorbar container per band
        assert len(bars) == 4
        np.testing.assert_allclose(bars[2].lines[0].get_ydata(), noise["test_loss_mean"][2])
        plt.close(fig)
        (_, fig), = figures["intervene_continued"].draw(r, None)
        labels = [line.get_label() for line in fig.axes[1].lines]
        assert labels[0] == "SGD (control)" and "Dom-SGD" in labels and "batch size 1" in labels
        np.testing.assert_allclose(fig.axes[1].lines[0].get_ydata(), control["test_loss"])
        np.testing.assert_array_equal(fig.axes[1].lines[0].get_xdata(), control["examples"])
        plt.close(fig)
        (_, fig), = figures["intervene_noise_learned"].draw(r, None)
        assert fig.axes[0].get_yscale() == "log" and len(fig.axes[0].lines) == 3
        plt.close(fig)
    with pytest.raises(MissingData, match="no results file"):
        figures["intervene_newton"].draw(None, None)


@pytest.mark.slow
def test_newton_on_the_quick_demo_run_drops_the_loss_as_predicted(tmp_path):
    """The issue's check on the demo's MNIST-1D run (``landscape demo --quick``): Newton in the top subspace."""
    from analyses.cli.demo import QUICK, run_demo

    run_demo(tmp_path, config=QUICK, log=lambda _: None)
    run, res = tmp_path / "run.h5", tmp_path / "results.h5"
    # the demo stored its own Newton item (with line-search minima): replace it with this setting
    assert main(["intervene", str(run), "--steps", "last", "--out", str(res), "--device", "cpu", "--do", "newton",
                 "--linesearch", "none", "--recompute"]) == 0
    with ResultsFile(res) as r:
        (step, key), = r.items("intervene", "newton")
        a = r.read_item(key)[0]
    change = a["fit_loss"] - a["fit_loss"][0]                   # the loss the eigenpairs are of (the subset)
    assert abs(a["predicted_change"][-1]) > 1e-4                # a drop far above float32 rounding (measured 5e-3)
    for m in range(1, len(change)):
        np.testing.assert_allclose(change[m], a["predicted_change"][m], rtol=QUADRATIC_RTOL,
                                   atol=DEMO_LOSS_ATOL)
