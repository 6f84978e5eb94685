"""Eigendirection line searches: grids, batching, minibatch curves, fits, zoom and the quadratic check.

Oracles: closed forms (polynomials, a pure quadratic objective) and the dense float64 Hessian of a
small tanh MLP (torch.func.hessian of the flat-θ loss, computed here independently of the package).
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call, hessian

from analyses.linesearch.fits import FunctionalForm, fit_curves
from analyses.linesearch.curves import (TGrid, along, curvature, curve_minima, minibatch_statistics, minibatches,
                                       select_directions, taylor_fit)
from analyses.linesearch.zoom import roughness, zoom
from analyses.linesearch.quadratic_check import quadratic_check, random_unit_directions
from landscape.errors import InputError
from landscape.models import build_model
from landscape.objective import Objective

# Same points through two float64 paths (vmapped losses_at vs a direct loss): rounding only.
F64_ATOL = 1e-12
# Mean of per-example float64 losses over equal batches vs over all: an algebraic identity.
BATCH_MEAN_ATOL = 1e-12
# float32: per-example losses averaged in float64 vs the objective's own float64 batch sums of the
# same float32 forward values (vmapped vs not): ~1e-7 relative per value. The brief's 1e-6.
F32_BATCH_MEAN_RTOL = 1e-6
# Small-t curvature vs λ_i, relative to max|λ| (the quartic bias is absolute, so small |λ_i| would
# magnify it). A quadratic fit on |t| ≤ w is biased ∝ w²: measured 1.5e-3 at w = 0.1 and 1.3e-4 at
# w = 0.03 (float64) on this network; float32 adds rounding noise ~ ε·L/w² ≈ 1e-4 at w = 0.1.
# Bounds: ~4× the measured error.
CURVATURE_WINDOW_F64, CURVATURE_RTOL_F64 = 0.03, 5e-4
CURVATURE_WINDOW_F32, CURVATURE_RTOL_F32 = 0.1, 5e-3
# Exact polynomials through lstsq on ≤ 41 points, t scaled to [-1, 1]: conditioning ~1e2, so ~1e-12.
POLY_RTOL = 1e-9
# On a pure quadratic (linear regression, MSE) every prediction is exact up to float64 rounding of L.
QUADRATIC_EXACT_ATOL = 1e-10


# ---- fixtures -------------------------------------------------------------------------------------

def _flat_loss(model, x, y):
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]

    def loss(theta):
        params, o = {}, 0
        for n, s in zip(names, shapes):
            k = int(np.prod(s))
            params[n], o = theta[o:o + k].view(s), o + k
        return F.cross_entropy(functional_call(model, params, (x,)), y)
    return loss


@pytest.fixture(scope="module")
def mlp():
    """A tanh MLP (P = 147) on 200 synthetic examples, float64, with its dense Hessian's eigenpairs."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 8, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (200,), generator=g)
    model = build_model("mlp", seed=0, in_dim=8, hidden=[12], out_dim=3, activation="tanh").double()
    obj = Objective(model, x, y, batch_size=64)
    H = hessian(_flat_loss(model, x, y))(obj.theta)
    lam, U = torch.linalg.eigh(H)
    idx = torch.tensor([-1, -2, -3, 0, 1])  # three largest, two smallest (negative)
    return {"model": model, "x": x, "y": y, "obj": obj, "theta": obj.theta, "V": U[:, idx].T.contiguous(),
            "lam": lam[idx].numpy()}


# ---- grids and selections -------------------------------------------------------------------------

def test_grids():
    lin = TGrid(2.0, 41).values()
    assert len(lin) == 41 and lin[20] == 0.0 and lin[0] == -2.0
    log = TGrid(1.0, 9, "log", 1e-3).values()
    assert len(log) == 9 and log[4] == 0.0 and log[5] == pytest.approx(1e-3) and log[-1] == pytest.approx(1.0)
    np.testing.assert_allclose(log[:4], -log[5:][::-1])


@pytest.mark.parametrize("grid,match", [(TGrid(1.0, 0), "point"), (TGrid(float("inf")), "finite"),
                                        (TGrid(float("nan")), "finite"), (TGrid(-1.0), "positive"),
                                        (TGrid(1.0, 9, "log", 2.0), "t_min < t_max"),
                                        (TGrid(1.0, 9, "cubic"), "spacing")])
def test_bad_grids_are_clear_errors(grid, match):
    with pytest.raises(InputError, match=match):
        grid.values()


def test_select_directions():
    lam = np.array([5.0, -1.0, 3.0, 0.5])
    assert select_directions("top:2", lam).tolist() == [0, 2]
    assert select_directions("bottom:2", lam).tolist() == [1, 3]
    assert select_directions("3,1", lam).tolist() == [3, 1]
    assert select_directions("all", lam).tolist() == [0, 1, 2, 3]
    for bad, match in (("7", "out of range"), ("top:9", "1 … 4"), ("first:2", "use 'top:n'")):
        with pytest.raises(InputError, match=match):
            select_directions(bad, lam)


def test_minibatches_partition():
    B = minibatches(100, 20, seed=3)
    assert B.shape == (5, 20) and sorted(B.ravel().tolist()) == list(range(100))
    assert minibatches(100, 20, 2, seed=3).tolist() == B[:2].tolist()
    with pytest.raises(InputError, match="do not fit"):
        minibatches(100, 20, 6)


# ---- batched evaluation ---------------------------------------------------------------------------

class _CountingObjective:
    """Passes every call to the objective and counts the parameter vectors given to ``losses_at``."""

    def __init__(self, obj):
        self.obj, self.vectors = obj, 0

    def losses_at(self, thetas, **kw):
        self.vectors += thetas.shape[0]
        return self.obj.losses_at(thetas, **kw)


def test_along_matches_direct_losses_and_counts_centre_once(mlp):
    obj, th, V = mlp["obj"], mlp["theta"], mlp["V"][:2]
    ts = TGrid(0.5, 5).values()
    counted = _CountingObjective(obj)
    out = along(counted, th, V, ts, chunk=3)
    assert counted.vectors == 2 * 4 + 1  # k·(T − 1) + 1: one forward pass per point, θ itself once
    want = np.array([[float(obj.loss(th + t * v)) for t in ts] for v in V])
    np.testing.assert_allclose(out["loss"], want, atol=F64_ATOL)
    assert out["acc"].shape == (2, 5) and np.all((0 <= out["acc"]) & (out["acc"] <= 1))


def test_minibatch_curves_average_to_the_full_curve(mlp):
    obj, th, V = mlp["obj"], mlp["theta"], mlp["V"][:2]
    ts = TGrid(0.5, 7).values()
    out = along(obj, th, V, ts, batches=minibatches(200, 25, seed=1))
    assert out["batch_loss"].shape == (2, 7, 8)
    np.testing.assert_allclose(out["batch_loss"].mean(-1), out["loss"], atol=BATCH_MEAN_ATOL)
    np.testing.assert_allclose(out["loss"], along(obj, th, V, ts)["loss"], atol=F64_ATOL)


def test_minibatch_mean_equals_full_curve_in_float32(mlp):
    obj32 = Objective(mlp["model"].float(), mlp["x"].float(), mlp["y"], batch_size=64)
    mlp["model"].double()
    th, V, ts = obj32.theta, mlp["V"][:2].float(), TGrid(0.5, 7).values()
    out = along(obj32, th, V, ts, batches=minibatches(200, 40, seed=2))
    full = along(obj32, th, V, ts)["loss"]  # Objective.losses_at: an independent reduction
    rel = np.abs(out["batch_loss"].mean(-1) - full) / np.abs(full)
    assert rel.max() <= F32_BATCH_MEAN_RTOL, f"max relative difference {rel.max():.2e}"


@pytest.mark.parametrize("dtype,window,rtol", [(torch.float64, CURVATURE_WINDOW_F64, CURVATURE_RTOL_F64),
                                               (torch.float32, CURVATURE_WINDOW_F32, CURVATURE_RTOL_F32)])
def test_small_t_curvature_matches_eigenvalues(mlp, dtype, window, rtol):
    model = mlp["model"].to(dtype)
    obj = Objective(model, mlp["x"].to(dtype), mlp["y"], batch_size=64)
    mlp["model"].double()
    ts = TGrid(window, 21).values()
    c = curvature(ts, along(obj, obj.theta, mlp["V"].to(dtype), ts)["loss"], window)
    err = np.abs(c - mlp["lam"]) / np.abs(mlp["lam"]).max()
    assert err.max() <= rtol, f"fitted {c} vs λ {mlp['lam']}: relative errors {err}"


# ---- curve summaries and fits ---------------------------------------------------------------------

def test_taylor_fit_and_minima_on_exact_polynomials():
    ts = np.linspace(-2, 2, 41)
    Y = np.stack([1 + 0.5 * ts + 3 * ts**2 / 2, 2 - ts + 0.2 * ts**2 / 2 + 0.6 * ts**4 / 24])
    coef, rms = taylor_fit(ts, Y, 4)
    np.testing.assert_allclose(coef, [[1, 0.5, 3, 0, 0], [2, -1, 0.2, 0, 0.6]], atol=POLY_RTOL)
    assert rms.max() < POLY_RTOL
    m = curve_minima(ts, Y[:1])
    assert m["min_t"][0] == pytest.approx(-0.5 / 3, abs=POLY_RTOL) and m["bracketed"][0]
    edge = curve_minima(ts, (ts - 5.0)[None] ** 2)
    assert not edge["bracketed"][0] and edge["min_t"][0] == 2.0


def test_minibatch_statistics_of_shifted_parabolas():
    ts = np.linspace(-1, 1, 41)
    shifts = np.array([[-0.1, 0.0, 0.1, 0.2], [0.0, 0.01, -0.01, 0.0]])  # (k, n_b)
    lam = np.array([1.0, 10.0])
    curves = 0.5 * lam[:, None, None] * (ts[None, :, None] - shifts[:, None, :]) ** 2  # (k, T, n_b)
    st = minibatch_statistics(ts, curves, lam, window=1.0)
    np.testing.assert_allclose(st["batch_min_t"], shifts, atol=POLY_RTOL)
    np.testing.assert_allclose(st["batch_curvature"], lam[:, None] * np.ones((1, 4)), rtol=POLY_RTOL)
    np.testing.assert_allclose(st["min_t_std"], shifts.std(1, ddof=1), atol=POLY_RTOL)


def test_fits_of_a_quartic_depart_where_predicted():
    ts = np.linspace(-2, 2, 81)
    lam, a4, tol = np.array([2.0]), 3.0, 0.1
    loss = (0.5 * lam[0] * ts**2 + a4 * ts**4 / 24)[None]
    out = fit_curves(ts, loss, lam, np.zeros(1), window=0.1, tol=tol)
    # d(t) = (a4 t⁴/24)/(λ t²/2) = a4 t²/(12 λ) exceeds tol beyond t* = √(12 λ tol / a4)
    t_star = np.sqrt(12 * lam[0] * tol / a4)
    assert np.all(out["departure_t"] >= t_star) and np.all(out["departure_t"] <= t_star + 0.05)
    assert out["curvature_ratio"][0] == pytest.approx(1.0, abs=1e-2)  # quartic bias a4 w²/(14λ) = 1e-3 at w = 0.1
    np.testing.assert_allclose(out["quartic_coef"][0], [0, 0, 2.0, 0, 3.0], atol=POLY_RTOL)


def test_user_form_is_fitted():
    ts = np.linspace(-1, 1, 41)
    form = FunctionalForm("cosh", lambda t, a, b, c: a + b * np.cosh(c * t), ("a", "b", "c"), (0.0, 1.0, 1.0))
    loss = np.stack([1 + 0.5 * np.cosh(2 * ts), -1 + 2 * np.cosh(0.5 * ts)])
    out = fit_curves(ts, loss, np.array([2.0, 0.5]), window=0.2, form=form)
    assert out["form_ok"].all()
    np.testing.assert_allclose(np.abs(out["form_params"]), [[1, 0.5, 2], [1, 2, 0.5]], rtol=1e-5)


# ---- dense zoom -----------------------------------------------------------------------------------

def test_roughness_exponents_of_known_curves():
    rng = np.random.default_rng(0)
    h, Z = 1e-3, 4097
    t = np.arange(Z) * h
    curves = np.stack([0.5 * 3.0 * t**2, rng.standard_normal(Z) * 1e-3, np.cumsum(rng.standard_normal(Z))])
    r = roughness(curves, h, np.array([3.0, 1.0, 1.0]))
    np.testing.assert_allclose(r["d2"][0], r["quadratic_d2"][0], rtol=1e-6)  # smooth: (λh²)² exactly
    assert np.allclose(r["exponent"][0], 4.0, atol=1e-3)
    assert np.all(np.abs(r["exponent"][1]) < 0.3) and r["noise_sigma"][1] == pytest.approx(1e-3, rel=0.05)
    assert np.all(np.abs(r["exponent"][2][:4] - 1.0) < 0.2)  # Brownian: Hölder ½ → 2α = 1 (fewer
    # independent second differences at long lags make the estimate noisier there)


@pytest.mark.slow
def test_zoom_float32_is_noise_float64_is_smooth(mlp):
    obj64 = mlp["obj"]
    obj32 = Objective(mlp["model"].float(), mlp["x"].float(), mlp["y"], batch_size=64)
    mlp["model"].double()
    out = zoom(obj32, mlp["theta"], mlp["V"][:1], np.zeros(1), mlp["lam"][:1], half_width=1e-5, num=513,
               objective64=obj64)
    assert np.all(out["exponent64"][0][:3] > 3.5), out["exponent64"]   # resolved: smooth, D₂ ∝ h⁴
    assert np.all(np.abs(out["exponent"][0][:3]) < 1.0), out["exponent"]  # float32: rounding noise
    assert out["fp32_error_std"][0] > 0


# ---- quadratic-independence check -----------------------------------------------------------------

def test_quadratic_check_is_exact_on_a_quadratic_objective():
    g = torch.Generator().manual_seed(5)
    X, y = torch.randn(60, 6, generator=g, dtype=torch.float64), torch.randn(60, generator=g, dtype=torch.float64)
    net = torch.nn.Linear(6, 1, bias=False).double()
    obj = Objective(net, X, y, loss="mse", batch_size=16)
    H = 2 * X.T @ X / 60  # the closed form under the MSE convention ℓ = ‖f − y‖²
    lam, U = torch.linalg.eigh(H)
    V = U[:, -3:].T.contiguous()  # three of six eigenvectors: the rest is the residual r
    Ud = random_unit_directions(6, 4, seed=0, dtype=torch.float64)
    out = quadratic_check(obj, obj.theta, V, Ud, TGrid(3.0, 11).values())
    np.testing.assert_allclose(out["quadratic"], out["true"], atol=QUADRATIC_EXACT_ATOL)
    np.testing.assert_allclose(out["independent"], out["true"], atol=QUADRATIC_EXACT_ATOL)
    np.testing.assert_allclose(out["curvature"], ((Ud @ H) * Ud).sum(1).numpy(), atol=QUADRATIC_EXACT_ATOL)
    assert np.isnan(out["parting_quadratic"]).all() and np.isnan(out["parting_independent"]).all()


def test_quadratic_check_parts_on_a_network(mlp):
    Ud = random_unit_directions(mlp["theta"].numel(), 2, seed=1, dtype=torch.float64)
    out = quadratic_check(mlp["obj"], mlp["theta"], mlp["V"][:3], Ud, TGrid(8.0, 17).values(), rtol=0.1)
    small = np.abs(out["ts"]) <= 0.5
    rel = np.abs(out["quadratic"] - out["true"])[:, small].max() / np.abs(out["true"] - out["L0"]).max()
    assert rel < 0.05, f"quadratic prediction off by {rel:.2e} at |t| ≤ 0.5"
    assert np.isfinite(out["parting_quadratic"]).any()  # tanh saturates: it parts somewhere on |t| ≤ 8


# ---- the command, end to end on a tiny MNIST-1D run -----------------------------------------------

# Small-t curvature from the command vs the exact λ_i, relative to λ_max. The tiny run is a ReLU MLP:
# the Hessian ignores activation kinks, which a line search crosses once |t| ≳ 3e-3 (measured: 12%
# error at w = 3e-3, 6e-7 at w = 1e-3, in float64). So: float64, |t| ≤ 1e-3, where rounding noise is
# ε·L/w² ≈ 1e-10; the bound leaves 100× over the measured error.
E2E_CURVATURE_RTOL = 1e-4


@pytest.fixture(scope="module")
def eigen_file(tiny_run, tmp_path_factory):
    from eigen_results import write_dense_eigen

    path = tmp_path_factory.mktemp("linesearch") / "eigen.h5"
    lams = write_dense_eigen(tiny_run.path, path, k=4, steps=[30])
    return path, lams[30]


def _results(tmp_path, eigen_file):
    import shutil

    out = tmp_path / "res.h5"
    shutil.copy(eigen_file[0], out)
    return out


def _main(*argv):
    from analyses.cli import main

    return main([str(a) for a in argv])


LINESEARCH_ARGV = ["--steps", "30", "--device", "cpu", "--dtype", "float64", "--t-max", "1e-3", "--num-t", "11",
                   "--fit-window", "1e-3", "--minibatch-size", "20", "--zoom", "1", "--zoom-points", "65",
                   "--zoom-float64", "--random-directions", "1", "--form", "a + c*t + b*t**2/2"]


@pytest.fixture(scope="module")
def linesearch_out(tiny_run, eigen_file, tmp_path_factory):
    """The results file after one `landscape linesearch` with every part switched on."""
    out = _results(tmp_path_factory.mktemp("linesearch_out"), eigen_file)
    assert _main("linesearch", tiny_run.path, "--out", out, *LINESEARCH_ARGV) == 0
    return out


def test_linesearch_command_end_to_end(tiny_run, eigen_file, linesearch_out, capsys):
    from landscape.io import ResultsFile

    with ResultsFile(linesearch_out) as r:
        c, _ = r.read_item("linesearch/step_00000030/curves")
        f, _ = r.read_item("linesearch/step_00000030/fits")
        z, _ = r.read_item("linesearch/step_00000030/zoom")
        q, _ = r.read_item("linesearch/step_00000030/quadratic_check")
    lam = eigen_file[1]
    err = np.abs(f["fitted_curvature"] - lam) / lam.max()
    assert err.max() <= E2E_CURVATURE_RTOL, f"fitted {f['fitted_curvature']} vs λ {lam}"
    assert c["batch_loss"].shape == (4, 11, 10)  # 200 examples in 10 disjoint minibatches of 20
    np.testing.assert_allclose(c["batch_loss"].mean(-1), c["loss"], atol=BATCH_MEAN_ATOL)
    assert f["form_ok"].all() and f["form_params"].shape == (4, 3)
    assert z["loss"].shape == z["loss64"].shape == (1, 65) and q["true"].shape == (1, 11)
    argv = ["linesearch", tiny_run.path, "--out", linesearch_out, *LINESEARCH_ARGV]
    capsys.readouterr()
    assert _main(*argv) == 0
    assert "0 item(s) computed, 4 already complete" in capsys.readouterr().out
    assert _main(*argv, "--t-max", "2e-3") != 0  # the last --t-max wins: another grid, refused
    assert "computed with other options (t_max: stored 0.001, asked 0.002" in capsys.readouterr().err


@pytest.mark.parametrize("extra,match", [
    (["--steps", "10"], "no eigenvectors for step(s) 10; steps with eigenvectors: 30"),
    (["--directions", "9"], "out of range"),
    (["--num-t", "0"], "has 0 point"),
    (["--t-max", "inf"], "finite"),
    (["--spacing", "log", "--t-min", "nan"], "finite")])
def test_linesearch_bad_input_is_one_clear_error(tiny_run, eigen_file, tmp_path, capsys, extra, match):
    out = _results(tmp_path, eigen_file)
    code = _main("linesearch", tiny_run.path, "--out", out, "--steps", "30", "--device", "cpu", *extra)
    err = capsys.readouterr().err
    assert code != 0 and match in err and err.count("\n") == 1, err


def test_linesearch_figures_draw_from_stored_results(linesearch_out):
    import matplotlib.pyplot as plt

    from analyses.plots import MissingData, all_figures
    from landscape.io import ResultsFile

    figures = all_figures()
    names = ("linesearch_curves", "linesearch_minima", "linesearch_deviation", "linesearch_zoom", "quadratic_check")
    with ResultsFile(linesearch_out) as r:
        for name in names:
            drawn = figures[name].draw(r, None)
            assert len(drawn) == 1 and drawn[0][1].axes, name
            plt.close(drawn[0][1])
        with pytest.raises(MissingData, match="run `landscape trajectory`"):
            figures["trajectory_eigenbasis"].draw(r, None)
