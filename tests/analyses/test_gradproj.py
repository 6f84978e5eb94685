"""Per-example gradient projections against explicit per-example gradients (float64 oracle)."""

import numpy as np
import pytest
import torch
from torch import nn

from analyses.gradproj import gradient_projections
from landscape.curvature import dense_hessian
from landscape.errors import InputError
from landscape.objective import Objective

# Everything is float64 and linear in the gradients: the mean of N projections and the
# projection of the mean differ by rounding only (N·ε·|g_i·v| ~ 1e-15).
F64_ATOL = 1e-12
# Oracle comparisons (JVP vs explicit reverse-mode gradients; vmap(grad) norms): rounding.
ORACLE_RTOL = 1e-10


def per_example_gradients(net, spec, theta, x, y):
    """Explicit reverse-mode g_i = ∇ℓ_i, one example at a time."""
    def loss(th, xi, yi):
        out = torch.func.functional_call(net, spec.unflatten(th), (xi[None],))
        return nn.functional.cross_entropy(out, yi[None])
    return torch.stack([torch.func.grad(loss)(theta, xi, yi) for xi, yi in zip(x, y)])


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).double()
    x = torch.randn(30, 4, dtype=torch.float64)
    y = torch.randint(0, 3, (30,))
    obj = Objective(net, x, y, batch_size=8)
    theta = obj.theta
    G = per_example_gradients(net, obj.spec, theta, x, y)                       # (N, P) oracle
    evals, evecs = torch.linalg.eigh(dense_hessian(obj, theta))
    V = evecs[:, -4:].flip(1).T.contiguous()                                    # top-4, (k, P)
    return obj, theta, y.numpy(), G, V


def test_projections_norms_and_cosines_match_explicit_gradients(setup):
    obj, theta, labels, G, V = setup
    out = gradient_projections(obj, theta, V, labels)
    want = (G @ V.T).numpy()
    assert np.allclose(out["projections"], want, rtol=ORACLE_RTOL, atol=F64_ATOL), \
        f"max |Δ| = {np.abs(out['projections'] - want).max():.2e}"
    norms = G.norm(dim=1).numpy()
    assert np.allclose(out["grad_norms"], norms, rtol=ORACLE_RTOL)
    assert np.allclose(out["abs_cos"], np.abs(want) / norms[:, None], rtol=ORACLE_RTOL)
    assert out["abs_cos"].max() <= 1 + F64_ATOL


def test_mean_of_projections_is_the_full_gradient_projection(setup):
    obj, theta, labels, _, V = setup
    out = gradient_projections(obj, theta, V, labels)
    assert out["mean_projection_error"] < F64_ATOL, f"mean vs full: {out['mean_projection_error']:.2e}"
    full = (V @ obj.grad(theta)).numpy()
    assert np.allclose(out["full_projection"], full, atol=F64_ATOL)


def test_subspace_fractions(setup):
    obj, theta, labels, G, V = setup
    g = obj.grad(theta)
    whole = gradient_projections(obj, theta, torch.linalg.qr(torch.randn(theta.numel(), theta.numel(),
                                                             dtype=torch.float64))[0].T)
    assert abs(whole["subspace_fraction"] - 1) < F64_ATOL * 10, "a full basis must hold the whole gradient"
    assert np.allclose(whole["example_subspace_fraction"], 1, atol=1e-9)
    out = gradient_projections(obj, theta, 3.0 * V + 0.1 * V.roll(1, 0))        # not orthonormal
    c = torch.linalg.lstsq(V.T, g[:, None]).solution[:, 0]
    want = float((V.T @ c).norm() ** 2 / g.norm() ** 2)
    assert abs(out["subspace_fraction"] - want) < 1e-9, (out["subspace_fraction"], want)
    ortho = gradient_projections(obj, theta, V)
    assert abs(ortho["direction_fraction"].sum() - ortho["subspace_fraction"]) < 1e-9


def test_class_structure(setup):
    obj, theta, labels, G, V = setup
    out = gradient_projections(obj, theta, V, labels, num_classes=4)
    proj = (G @ V.T).numpy()
    for c in range(3):
        assert np.allclose(out["class_means"][c], proj[labels == c].mean(0), atol=F64_ATOL)
    assert np.isnan(out["class_means"][3]).all() and out["class_counts"][3] == 0
    assert np.all((out["between_class_fraction"] >= 0) & (out["between_class_fraction"] <= 1 + F64_ATOL))


def test_bad_input(setup):
    obj, theta, labels, _, V = setup
    with pytest.raises(InputError, match="shape"):
        gradient_projections(obj, theta, V[:, :-1])
    with pytest.raises(InputError, match="labels"):
        gradient_projections(obj, theta, V, labels[:-1])


# ---- the command line on a tiny MNIST-1D run (tests/analyses/conftest.py) ---------------------

# float32 sums over N = 200 examples of terms ~|g_i·v|: mean vs full gradient agree to ~1e-6
# relative to the largest per-example projection (the mean of N rounding errors).
CLI_MEAN_RTOL = 1e-5


def cli(*args):
    from analyses.cli import main

    return main([*map(str, args), "--device", "cpu"])


@pytest.fixture(scope="module")
def eigen_file(tiny_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("gradproj") / "eigen.h5"
    assert cli("hessian", tiny_run.path, "--steps", "20,30", "--k", "4", "--tol", "1e-3", "--out", out) == 0
    return out


def test_cli_end_to_end_with_eigen_file(tiny_run, eigen_file, tmp_path, capsys):
    from analyses.plots.gradproj import gradproj_classes, gradproj_cos
    from landscape.io import ResultsFile

    out = tmp_path / "g.h5"
    assert cli("gradproj", tiny_run.path, "--steps", "30", "--eigen", eigen_file, "--k", "3", "--out", out) == 0
    with ResultsFile(out, "r") as r:
        a, attrs = r.read_item("gradproj/step_00000030/projections")
        assert len(gradproj_cos(r, None)) == 1 and len(gradproj_classes(r, None)) == 1
    assert a["projections"].shape == (200, 3) and a["class_means"].shape == (10, 3)
    scale = np.abs(a["projections"]).max()
    assert a["mean_projection_error"] < CLI_MEAN_RTOL * scale, \
        f"mean of projections vs full projection: {a['mean_projection_error']:.2e} (scale {scale:.2e})"
    assert 0 <= a["subspace_fraction"] <= 1 and np.all(a["abs_cos"] <= 1 + 1e-5)
    assert attrs["eigen_source"]["key"] == "hessian/step_00000030/eigen"
    capsys.readouterr()
    assert cli("gradproj", tiny_run.path, "--steps", "30", "--eigen", eigen_file, "--k", "3", "--out", out) == 0
    assert "0 item(s) computed" in capsys.readouterr().out


@pytest.mark.parametrize("args,match", [(("--steps", "10"), "step 10 has no stored eigenvectors"),
                                        (("--k", "9"), "has 4 stored eigenvectors"),
                                        (("--k", "0"), "at least one eigenvector")])
def test_cli_bad_input_exits_nonzero(tiny_run, eigen_file, tmp_path, capsys, args, match):
    assert cli("gradproj", tiny_run.path, "--eigen", eigen_file, "--out", tmp_path / "g.h5", *args) == 2
    assert match in capsys.readouterr().err
