"""Loss surfaces: point values, curvature along eigenvectors, cost in forward passes, budget, trajectory."""

import numpy as np
import pytest
import torch
from torch import nn

from analyses import surface as S
from landscape.curvature import dense_hessian
from landscape.errors import InputError
from landscape.objective import Objective

F64_ATOL = 1e-12  # float64 losses of the same point by two routes (vmapped vs single): rounding
# Quadratic fit on x ∈ [−h, h], h = 1e-3: the quartic term moves the x² coefficient by
# O(h²·L⁗/λ) ~ 1e-6 relative; rounding of L (1e-16) over h² adds ~1e-10 absolute.
CURVATURE_RTOL = 1e-5


class CountingObjective:
    """Forwards to an Objective and counts the parameter vectors given to ``losses_at``."""

    def __init__(self, obj):
        self.obj, self.points = obj, 0

    def losses_at(self, thetas):
        self.points += thetas.shape[0]
        return self.obj.losses_at(thetas)


@pytest.fixture(scope="module")
def obj():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).double()
    return Objective(net, torch.randn(40, 4, dtype=torch.float64), torch.randint(0, 3, (40,)), batch_size=16)


def test_surface_points_are_the_loss_at_those_points(obj):
    theta = obj.theta
    D = torch.randn(2, theta.numel(), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    xs, ys = np.linspace(-1, 1, 4), np.linspace(-0.5, 0.5, 3)
    loss, acc = S.evaluate_rows(obj, theta, D, xs, ys, points_per_call=5)
    assert loss.shape == acc.shape == (3, 4)
    for j, y in enumerate(ys):
        for i, x in enumerate(xs):
            want, want_acc = obj.loss_and_accuracy(theta + x * D[0] + y * D[1])
            assert abs(loss[j, i] - want.item()) < F64_ATOL and abs(acc[j, i] - want_acc.item()) < F64_ATOL
    part, _ = S.evaluate_rows(obj, theta, D, xs, ys, start=1, stop=3)
    assert np.allclose(part, loss[1:3], atol=F64_ATOL), "a block of rows differs from the same rows of the grid"


def test_grid_costs_exactly_G_squared_forward_passes(obj):
    counting, G = CountingObjective(obj), 5
    D = torch.randn(2, obj.theta.numel(), dtype=torch.float64)
    S.evaluate_rows(counting, obj.theta, D, np.linspace(-1, 1, G), np.linspace(-1, 1, G), points_per_call=3)
    assert counting.points == G * G, f"{counting.points} points evaluated for a {G}×{G} grid"


def test_surface_along_an_eigenvector_has_its_curvature(obj):
    theta = obj.theta
    evals, evecs = torch.linalg.eigh(dense_hessian(obj, theta))
    for j in (-1, -2, 0):
        xs = np.linspace(-1e-3, 1e-3, 7)
        loss, _ = S.evaluate_rows(obj, theta, evecs[:, j], xs)
        got, want = S.fitted_curvature(xs, loss[0]), evals[j].item()
        scale = max(abs(want), evals.abs().max().item() * 1e-3)
        assert abs(got - want) < CURVATURE_RTOL * scale, f"eigenvalue {want:.6g}: fitted curvature {got:.6g}"


def test_budget_guard_says_how_long():
    assert S.check_budget(100, 0.1, max_minutes=1) == pytest.approx(10.0)
    with pytest.raises(InputError, match=r"a 51×51 grid needs 2601 forward passes, about 43.4 min"):
        S.check_budget(2601, 1.0, max_minutes=10, shape=(51, 51))


def test_estimate_seconds_is_positive(obj):
    assert S.estimate_seconds(obj, obj.theta) > 0


def test_project_trajectory_recovers_plane_coordinates():
    gen = torch.Generator().manual_seed(0)
    P = 30
    D = torch.randn(2, P, generator=gen, dtype=torch.float64)                   # not orthogonal
    origin = torch.randn(P, generator=gen, dtype=torch.float64)
    coords = torch.randn(6, 2, generator=gen, dtype=torch.float64)
    normal = torch.randn(P, dtype=torch.float64, generator=gen)
    normal -= D.T @ torch.linalg.solve(D @ D.T, D @ normal)                     # orthogonal to the plane
    off = torch.linspace(0, 1, 6, dtype=torch.float64)
    thetas = origin + coords @ D + off[:, None] * normal
    got, dist = S.project_trajectory(thetas, origin, D)
    assert np.allclose(got, coords.numpy(), atol=1e-10) and np.allclose(dist, (off * normal.norm()).numpy())


@pytest.mark.parametrize("xs,ys,match", [([0.0], None, "≥ 2"), ([1.0, 0.0], None, "increasing"),
                                         ([0, float("nan")], None, "finite"), ([0, 1], [0], "y grid")])
def test_bad_grids(xs, ys, match):
    with pytest.raises(InputError, match=match):
        S.check_grid(xs, ys)


def test_direction_count_must_match_the_grid(obj):
    with pytest.raises(InputError, match="2-D surface needs directions"):
        S.evaluate_rows(obj, obj.theta, obj.theta[None], [0, 1], [0, 1])


# ---- the command line on a tiny MNIST-1D run (tests/analyses/conftest.py) ---------------------

FLOAT32_RTOL = 1e-5  # the same float32 loss by a batched (vmapped) and a plain forward pass


def surface_cli(run, out, *extra):
    from analyses.cli import main

    return main(["surface", str(run), "--out", str(out), "--device", "cpu", *extra])


def read(out, key):
    from landscape.io import ResultsFile

    with ResultsFile(out, "r") as r:
        return r.read_item(key)


def test_cli_2d_surface_with_trajectory_and_plot(tiny_run, tmp_path, capsys):
    from analyses.plots.surface import surface_2d
    from landscape.io import ResultsFile

    out = tmp_path / "s.h5"
    assert surface_cli(tiny_run.path, out, "--grid", "4,3", "--span", "1,0.5") == 0
    arrays, attrs = read(out, "surface/step_00000030/filter-filter")
    assert arrays["loss"].shape == (3, 4) and np.all(np.isfinite(arrays["loss"]))
    assert arrays["trajectory_coords"].shape == (len(tiny_run.saved_steps), 2)
    assert np.allclose(arrays["trajectory_coords"][-1], 0, atol=1e-6), "θ_step must sit at the origin"
    assert attrs["settings"]["directions"] == ["filter", "filter"]
    capsys.readouterr()
    assert surface_cli(tiny_run.path, out, "--grid", "4,3", "--span", "1,0.5") == 0
    assert "0 item(s) computed" in capsys.readouterr().out
    with ResultsFile(out, "r") as r:
        figs = surface_2d(r, None)
    assert len(figs) == 1 and figs[0][1].axes


def test_cli_1d_difference_reaches_the_other_checkpoint(tiny_run, tmp_path):
    from checkpoints.replay import open_run

    out = tmp_path / "s.h5"
    assert surface_cli(tiny_run.path, out, "--directions", "step:0", "--grid", "3", "--span", "0:1") == 0
    arrays, _ = read(out, "surface/step_00000030/step0")
    with open_run(tiny_run.path) as run:
        obj = run.objective(30)
        want = obj.loss(run.theta(0)).item()
    got = arrays["loss"][0, -1]
    assert abs(got - want) < FLOAT32_RTOL * want, f"L at x=1: {got} vs L(θ_0) {want}"


def test_cli_resumes_a_killed_grid(tiny_run, tmp_path, monkeypatch):
    import analyses.cli.surface as cmd

    out, full = tmp_path / "killed.h5", tmp_path / "full.h5"
    args = ("--grid", "3", "--directions", "gaussian,gaussian")
    assert surface_cli(tiny_run.path, full, *args) == 0
    real, calls = cmd.SU.evaluate_rows, []

    def dying(*a, **kw):
        calls.append(kw["start"])
        if len(calls) == 2:
            raise KeyboardInterrupt                    # killed while computing the second row
        return real(*a, **kw)

    monkeypatch.setattr(cmd.SU, "evaluate_rows", dying)
    assert surface_cli(tiny_run.path, out, *args) == 130
    calls.clear()
    monkeypatch.setattr(cmd.SU, "evaluate_rows", lambda *a, **kw: (calls.append(kw["start"]), real(*a, **kw))[1])
    assert surface_cli(tiny_run.path, out, *args) == 0
    assert calls == [1, 2], f"the rerun recomputed rows {calls}; only rows 1 and 2 were missing"
    key = "surface/step_00000030/gaussian-gaussian"
    assert np.array_equal(read(out, key)[0]["loss"], read(full, key)[0]["loss"])


@pytest.mark.parametrize("args,match", [
    (("--directions", "filter,filter,filter"), "one (1-D surface) or two"),
    (("--directions", "sphere"), "unknown direction"),
    (("--directions", "eigen:0"), "integer ≥ 1"),
    (("--grid", "1"), "≥ 2 points"),
    (("--grid", "400", "--max-minutes", "0.001"), "forward passes, about"),
    (("--directions", "eigen:1"), "no stored eigenvectors"),
])
def test_cli_bad_input_exits_nonzero(tiny_run, tmp_path, capsys, args, match):
    assert surface_cli(tiny_run.path, tmp_path / "s.h5", *args) == 2
    err = capsys.readouterr().err
    assert match in err, err


def test_cli_refuses_a_run_of_another_model(tiny_run, tiny_bn_run, tmp_path, capsys):
    assert surface_cli(tiny_run.path, tmp_path / "s.h5", "--directions", f"run:{tiny_bn_run.path}") == 2
    assert "another model" in capsys.readouterr().err


# Along a unit Lanczos eigenvector (residual ≤ tol·λ) the curvature vᵀHv equals λ to
# O(residual²/gap); the parabola fit on ±1e-3 in float64 adds O(1e-6): 1e-3 relative is safe.
EIGEN_CURVATURE_RTOL = 1e-3


def test_cli_surface_along_top_eigenvector_has_its_curvature(tiny_run, tmp_path):
    from analyses.cli import main
    from analyses.plots.surface import fitted_curvature

    out = tmp_path / "s.h5"
    assert main(["hessian", str(tiny_run.path), "--k", "2", "--tol", "1e-6", "--dtype", "float64",
                 "--out", str(out), "--device", "cpu"]) == 0
    assert surface_cli(tiny_run.path, out, "--dtype", "float64", "--directions", "eigen:1", "--grid", "7",
                       "--span", "1e-3") == 0
    lam = read(out, "hessian/step_00000030/eigen")[0]["eigenvalues"][0]
    a, _ = read(out, "surface/step_00000030/eigen1")
    got = fitted_curvature(a["xs"], a["loss"][0])
    assert abs(got - lam) < EIGEN_CURVATURE_RTOL * abs(lam), f"curvature {got:.6g} vs λ₁ {lam:.6g}"
