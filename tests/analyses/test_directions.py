"""Direction generators: seeding, filter normalization (Li et al. 2018), adaptive scaling, PCA."""

import pytest
import torch
from torch import nn

from landscape import directions as D
from landscape.errors import InputError
from landscape.params import ParamSpec

# E‖u‖² = 1 for u ~ N(0, I/P); the mean over k rows has std √(2/P)/√k ≈ 0.0032 for
# P = 1000, k = 200, so 0.02 is about 6 standard deviations.
NORM_MEAN_TOL = 0.02
# float32 rescaling of a filter: a few ulps relative (plus FILTER_EPS, negligible here).
FILTER_NORM_RTOL = 1e-5
# PCA via a float64 Gram matrix of a float64 trajectory: rounding only.
PCA_ATOL = 1e-9


def conv_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv1d(2, 4, 3), nn.BatchNorm1d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6, 3))


def spec_theta(model):
    spec = ParamSpec.from_module(model)
    return spec, spec.theta_of(model)


def test_gaussian_is_seeded_and_chunkable():
    a = D.gaussian(50, 5, seed=3)
    assert torch.equal(a, D.gaussian(50, 5, seed=3))
    assert torch.equal(a[2:4], D.gaussian(50, 2, seed=3, offset=2)), "direction j must not depend on chunking"
    assert not torch.equal(a, D.gaussian(50, 5, seed=4))


def test_gaussian_has_unit_expected_norm():
    U = D.gaussian(1000, 200, seed=0)
    mean_sq = U.pow(2).sum(1).mean().item()
    assert abs(mean_sq - 1) < NORM_MEAN_TOL, f"E‖u‖² = {mean_sq:.4f}, expected 1 ± {NORM_MEAN_TOL}"


@pytest.mark.parametrize("ignore_biasbn", [True, False])
def test_filter_normalize_matches_filter_norms(ignore_biasbn):
    spec, theta = spec_theta(conv_net())
    U = D.gaussian(spec.numel, 3, seed=1)
    V = D.filter_normalize(U, theta, spec, ignore_biasbn=ignore_biasbn)
    for (name, shape), sl in zip(zip(spec.names, spec.shapes), spec.slices().values()):
        if len(shape) == 1:
            expect = torch.zeros_like(theta[sl]) if ignore_biasbn else theta[sl]
            assert torch.equal(V[:, sl], expect.expand_as(V[:, sl])), f"{name}: 1-D parameters mishandled"
            continue
        got = V[:, sl].reshape(3, shape[0], -1).norm(dim=2)
        want = theta[sl].reshape(1, shape[0], -1).norm(dim=2).expand_as(got)
        err = ((got - want).abs() / want).max().item()
        assert err < FILTER_NORM_RTOL, f"{name}: filter norms differ from θ's by relative {err:.2e}"
    assert torch.equal(U, D.gaussian(spec.numel, 3, seed=1)), "the input directions were modified"


def test_filter_normalize_is_idempotent():
    """Applied twice it changes nothing (loss-landscapes #3: repeated normalization of biases)."""
    spec, theta = spec_theta(conv_net())
    once = D.filter_normalize(D.gaussian(spec.numel, 2, seed=0), theta, spec, ignore_biasbn=False)
    twice = D.filter_normalize(once, theta, spec, ignore_biasbn=False)
    err = (once - twice).abs().max().item()
    assert err < FILTER_NORM_RTOL * theta.abs().max().item(), f"second normalization moved entries by {err:.2e}"


def test_adaptive_scale_and_random_kinds():
    spec, theta = spec_theta(conv_net())
    U = D.gaussian(spec.numel, 2, seed=5)
    assert torch.equal(D.adaptive_scale(U, theta, eta=0.1), U * (theta.abs() + 0.1))
    assert torch.equal(D.random_directions("adaptive", theta, spec, 2, seed=5, eta=0.1), U * (theta.abs() + 0.1))
    assert torch.equal(D.random_directions("gaussian", theta, spec, 2, seed=5), U)
    with pytest.raises(InputError, match="η ≥ 0"):
        D.adaptive_scale(U, theta, eta=-1)
    with pytest.raises(InputError, match="unknown random direction kind"):
        D.random_directions("sphere", theta, spec, 2, seed=0)


def test_unit_rows_difference_and_gradient():
    V = torch.tensor([[3.0, 4.0], [0.0, 2.0]])
    assert torch.allclose(D.unit_rows(V).norm(dim=1), torch.ones(2))
    assert torch.equal(D.difference(torch.zeros(2), V[0]), V[:1])
    assert torch.allclose(D.gradient_direction(V[0]), torch.tensor([[0.6, 0.8]]))
    with pytest.raises(InputError, match="zero vector"):
        D.unit_rows(torch.zeros(1, 3))
    with pytest.raises(InputError, match="identical"):
        D.difference(V[0], V[0])
    with pytest.raises(InputError, match="different models"):
        D.difference(torch.zeros(2), torch.zeros(3))


def test_trajectory_pca_recovers_a_plane():
    """A trajectory inside a known 2-D affine plane: the two components span exactly that plane."""
    gen = torch.Generator().manual_seed(0)
    basis, _ = torch.linalg.qr(torch.randn(40, 2, generator=gen, dtype=torch.float64))
    coeff = torch.randn(12, 2, generator=gen, dtype=torch.float64) * torch.tensor([5.0, 1.0], dtype=torch.float64)
    thetas = 1.0 + coeff @ basis.T                                  # (T=12, P=40)
    comps, ratio = D.trajectory_pca(thetas, 2)
    assert torch.allclose(comps @ comps.T, torch.eye(2, dtype=torch.float64), atol=PCA_ATOL)
    residual = (basis - comps.T @ (comps @ basis)).abs().max().item()
    assert residual < PCA_ATOL, f"PCA components miss the plane by {residual:.2e}"
    assert abs(ratio.sum().item() - 1) < PCA_ATOL and ratio[0] > ratio[1]
    with pytest.raises(InputError, match="at most 11 components"):
        D.trajectory_pca(thetas, 12)
    with pytest.raises(InputError, match="spans fewer than 3"):
        D.trajectory_pca(thetas, 3)
