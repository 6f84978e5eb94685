"""Sharpness probes and worst-case sharpness against closed forms and dense float64 Hessians."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from analyses import sharpness as S
from landscape.curvature import dense_hessian
from landscape.directions import random_directions
from landscape.errors import InputError
from landscape.objective import Objective

# Antithetic pairs: ½(Δ(+r)+Δ(−r)) − ½r²uᵀHu = O(r⁴ ‖∇⁴L‖) ; at r = 1e-2 in float64 the
# fourth-order term is ~1e-8 relative to the quadratic one, rounding ~1e-16/1e-4·L: 1e-5 holds.
QUADRATIC_RTOL = 1e-5
# Statistical check: mean over K of uᵀHu has std √(2 tr(H²))/(P√K); allow 5 standard deviations.
CLT_SIGMAS = 5.0
# Projected gradient ascent on a quadratic: the best iterate is within 1e-3 of the true maximum
# after 60 steps (eigen-gap 4:1, so the power-iteration-like contraction is ≤ (1/4)^steps).
ASCENT_RTOL = 1e-3
EXACT_ATOL = 1e-12  # float64 identities (bounds of a maximum, aggregates)


@pytest.fixture(scope="module")
def classifier():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    x = torch.randn(60, 5, dtype=torch.float64)
    y = torch.randint(0, 3, (60,))
    train = Objective(net, x, y, batch_size=25)
    return train, Objective(net, x[:20] + 0.1, y[:20], batch_size=25), dense_hessian(train, train.theta)


@pytest.fixture(scope="module")
def regression():
    """MSE linear regression at its minimum: L(θ*+δ) − L(θ*) = δᵀ(XᵀX/N)δ exactly, H = 2XᵀX/N."""
    N = 40
    Q, _ = torch.linalg.qr(torch.randn(N, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64))
    X = Q * torch.tensor([4.0, 2.0, 1.0], dtype=torch.float64) * math.sqrt(N)   # XᵀX/N = diag(16, 4, 1)
    y = torch.randn(N, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    net = nn.Linear(3, 1, bias=False).double()
    obj = Objective(net, X, y, loss="mse", batch_size=16)
    theta_star = torch.linalg.lstsq(X, y[:, None]).solution[:, 0]
    return obj, theta_star, torch.tensor([32.0, 8.0, 2.0], dtype=torch.float64)


def test_antithetic_probes_measure_the_quadratic_form(classifier):
    obj, _, H = classifier
    theta = obj.theta
    cfg = S.ProbeConfig(radii=(1e-2,), num_directions=12, seed=3, points_per_call=64)
    res = S.probes(obj, theta, obj.spec, cfg, progress=False)
    U = random_directions("gaussian", theta, obj.spec, 12, seed=3)
    want = 0.5 * 1e-4 * torch.einsum("kp,pq,kq->k", U, H, U).numpy()
    got = res["deltas"][0].mean(axis=1)
    err = np.abs(got - want).max() / np.abs(want).max()
    assert err < QUADRATIC_RTOL, f"½(Δ(+r)+Δ(−r)) vs ½r²uᵀHu: relative error {err:.2e}"


def test_probe_mean_matches_trace_over_P(classifier):
    """E[Δ] = r²·tr(H)/(2P) for Gaussian u ~ N(0, I/P), the gradient term cancelled by ±u."""
    obj, _, H = classifier
    theta, r, K = obj.theta, 1e-2, 200
    res = S.probes(obj, theta, obj.spec, S.ProbeConfig(radii=(r,), num_directions=K, seed=0, points_per_call=200),
                   progress=False)
    P = theta.numel()
    want = r ** 2 * torch.trace(H).item() / (2 * P)
    sigma = r ** 2 / 2 * math.sqrt(2 * torch.trace(H @ H).item()) / P / math.sqrt(K)
    got = res["mean"][0]
    assert abs(got - want) < CLT_SIGMAS * sigma, f"mean Δ {got:.4e} vs r²tr(H)/(2P) {want:.4e} (σ {sigma:.1e})"


def test_aggregates_and_kinds(classifier):
    obj, _, _ = classifier
    for kind in ("gaussian", "filter", "adaptive"):
        cfg = S.ProbeConfig(radii=(0.01, 0.1), num_directions=3, kind=kind, antithetic=False, points_per_call=2)
        res = S.probes(obj, obj.theta, obj.spec, cfg, progress=False)
        d = res["deltas"]
        assert d.shape == (2, 3, 1)
        assert np.allclose(res["sum_abs"], np.abs(d).sum(axis=(1, 2)), atol=EXACT_ATOL)
        assert np.allclose(res["mean_sq"], (d ** 2).mean(axis=(1, 2)), atol=EXACT_ATOL)
        assert np.allclose(res["max"], d.max(axis=(1, 2)), atol=EXACT_ATOL)


def test_probes_do_not_depend_on_chunking(classifier):
    obj, _, _ = classifier
    a = S.probes(obj, obj.theta, obj.spec, S.ProbeConfig(radii=(0.05,), num_directions=5, points_per_call=2),
                 progress=False)
    b = S.probes(obj, obj.theta, obj.spec, S.ProbeConfig(radii=(0.05,), num_directions=5, points_per_call=64),
                 progress=False)
    assert np.allclose(a["deltas"], b["deltas"], rtol=1e-10, atol=EXACT_ATOL)


@pytest.mark.parametrize("bad,match", [({"radii": (0.1, 0.0)}, "positive"), ({"radii": ()}, "no radius"),
                                       ({"radii": (-1,)}, "positive"), ({"num_directions": 0}, "at least one"),
                                       ({"kind": "sphere"}, "unknown probe kind")])
def test_probe_config_refuses_bad_input(bad, match):
    with pytest.raises(InputError, match=match):
        S.ProbeConfig(**bad)


def test_worst_case_ball_on_a_quadratic(regression):
    """max_{‖δ‖≤ε} δᵀAδ = λ_max(A) ε² with A = XᵀX/N = diag(16, 4, 1)."""
    obj, theta, h = regression
    eps = 0.05
    res = S.worst_case(obj, theta, S.WorstCaseConfig(radii=(eps,), constraint="ball", steps=60), progress=False)
    want = 16.0 * eps ** 2
    got = res["max_delta"][0]
    assert want * (1 - ASCENT_RTOL) <= got <= want * (1 + EXACT_ATOL), f"ball max {got:.6e} vs {want:.6e}"
    assert res["delta_norm"][0] <= eps * (1 + EXACT_ATOL)
    base = obj.loss(theta).item()
    assert abs(res["keskar"][0] - 100 * got / (1 + base)) < EXACT_ATOL


def test_worst_case_box_reaches_the_corner(regression):
    """For diagonal A the box maximum is the corner: Σ_i A_ii (ε(|θ_i|+1))²."""
    obj, theta, _ = regression
    eps = 1e-3
    res = S.worst_case(obj, theta, S.WorstCaseConfig(radii=(eps,), constraint="box", steps=20), progress=False)
    half = eps * (theta.abs() + 1)
    want = float((torch.tensor([16.0, 4.0, 1.0], dtype=torch.float64) * half ** 2).sum())
    got = res["max_delta"][0]
    assert abs(got - want) <= ASCENT_RTOL * want, f"box max {got:.6e} vs corner value {want:.6e}"


def test_worst_case_config_refuses_bad_input():
    with pytest.raises(InputError, match="positive"):
        S.WorstCaseConfig(radii=(0.0,))
    with pytest.raises(InputError, match="'ball' or 'box'"):
        S.WorstCaseConfig(constraint="sphere")
    with pytest.raises(InputError, match="steps ≥ 1"):
        S.WorstCaseConfig(steps=0)


def test_losses_and_gap(classifier):
    train, test, _ = classifier
    out = S.losses(train, test, train.theta)
    assert abs(out["gap_loss"] - (out["test_loss"] - out["train_loss"])) < EXACT_ATOL
    assert abs(out["train_loss"] - train.loss(train.theta).item()) < EXACT_ATOL


# ---- the command line on a tiny MNIST-1D run (tests/analyses/conftest.py) ---------------------

def sharpness_cli(run, out, *extra):
    from analyses.cli import main

    return main(["sharpness", str(run), "--out", str(out), "--device", "cpu", *extra])


FAST = ("--radii", "0.01,0.1", "--directions", "3", "--worst", "box", "--worst-radii", "1e-3",
        "--ascent-steps", "2", "--no-curvature", "--kinds", "gaussian,filter")


def test_cli_end_to_end_and_resume(tiny_run, tmp_path, capsys):
    from landscape.io import ResultsFile

    out = tmp_path / "r.h5"
    assert sharpness_cli(tiny_run.path, out, *FAST) == 0
    with ResultsFile(out, "r") as r:
        keys = r.keys("sharpness/")
        arrays, attrs = r.read_item("sharpness/step_00000030/probes_filter")
    assert [k.rsplit("/", 1)[1] for k in keys] == ["losses", "probes_filter", "probes_gaussian", "worst_box"]
    assert arrays["deltas"].shape == (2, 3, 2) and arrays["gap_loss"] == arrays["test_loss"] - arrays["train_loss"]
    assert attrs["settings"]["kind"] == "filter" and attrs["model"]["name"] == "mlp"
    capsys.readouterr()
    assert sharpness_cli(tiny_run.path, out, *FAST) == 0
    assert "0 item(s) computed, 4 already complete" in capsys.readouterr().out


def test_cli_refuses_changed_settings(tiny_run, tmp_path, capsys):
    out = tmp_path / "r.h5"
    assert sharpness_cli(tiny_run.path, out, "--kinds", "none", "--worst", "none", "--no-curvature") == 0
    assert sharpness_cli(tiny_run.path, out, "--kinds", "gaussian", "--radii", "0.2", "--directions", "2",
                         "--worst", "none", "--no-curvature", "--subset", "100") != 0
    assert "other settings" in capsys.readouterr().err


@pytest.mark.parametrize("args,match", [(("--radii", "0,0.1"), "positive"), (("--radii", "-0.1"), "positive"),
                                        (("--directions", "0"), "at least one direction"),
                                        (("--kinds", "sphere"), "unknown sphere"),
                                        (("--worst-radii", "0"), "positive")])
def test_cli_bad_input_exits_nonzero(tmp_path, capsys, args, match):
    assert sharpness_cli(tmp_path / "missing_run.h5", tmp_path / "r.h5", *args) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1, err


def test_radius_plot_from_stored_probes(tiny_run, tmp_path):
    from analyses.plots import MissingData
    from analyses.plots.sharpness import sharpness_radius
    from landscape.io import ResultsFile

    out = tmp_path / "r.h5"
    assert sharpness_cli(tiny_run.path, out, "--steps", "10,30", "--radii", "0.01,0.1", "--directions", "2",
                         "--worst", "none", "--no-curvature") == 0
    with ResultsFile(out, "r") as r:
        (suffix, fig), = sharpness_radius(r, None)
        assert len(fig.axes[0].lines) == 2, "one line per step"
    with ResultsFile(tmp_path / "empty.h5", "a") as r:
        with pytest.raises(MissingData):
            sharpness_radius(r, None)


# Statistical agreement of two estimates (probe mean, Hutch++ trace), each with its standard
# error: 5 combined standard deviations.
CLI_SIGMAS = 5.0


def test_cli_probe_mean_matches_the_stored_trace(tiny_run, tmp_path):
    """From the CLI: mean ΔL of Gaussian ± probes = r²·tr(H)/(2P), tr(H) from Hutch++ (float64)."""
    from landscape.io import ResultsFile

    out, r = tmp_path / "r.h5", 1e-3
    assert sharpness_cli(tiny_run.path, out, "--dtype", "float64", "--radii", str(r), "--directions", "64",
                         "--points-per-call", "64", "--worst", "none", "--trace-matvecs", "150") == 0
    with ResultsFile(out, "r") as f:
        probes, _ = f.read_item("sharpness/step_00000030/probes_gaussian")
        curv, _ = f.read_item("sharpness/step_00000030/curvature")
    pair = probes["deltas"][0].mean(axis=1)                     # ½(Δ₊ + Δ₋) per direction
    P, K = probes["P"], len(pair)
    want = r ** 2 * curv["trace"] / (2 * P)
    sigma = np.hypot(pair.std(ddof=1) / np.sqrt(K), r ** 2 * curv["trace_stderr"] / (2 * P))
    got = probes["mean"][0]
    assert abs(got - want) < CLI_SIGMAS * sigma, f"mean Δ {got:.4e} vs r²tr(H)/(2P) {want:.4e} (σ {sigma:.1e})"
    assert curv["lambda_converged"] == 1 and curv["lambda_max"] > 0
