"""landscape.solvers.slq: stochastic Lanczos quadrature against the exact spectral measure."""

import math

import numpy as np
import pytest
import torch

from landscape.errors import InputError
from landscape.solvers.sampling import make_generator, probe_vectors
from landscape.solvers.slq import SpectralDensity, spectral_density
from oracles import ghost_demo, indefinite, rank_deficient, wishart

# Weights of each probe are squared components of a unit vector: they sum to 1 up to rounding.
WEIGHT_SUM_ATOL = 1e-12
# Trapezoid rule for Gaussians of width σ on a grid of spacing ≤ σ/20 that extends 5σ past
# the nodes: the tails beyond 5σ hold < 6e-7 of the mass, the discretization error is far less.
INTEGRAL_ATOL = 1e-5
# Gauss quadrature is exact for degree ≤ 2m − 1; float64 Lanczos with full reorthogonalization
# reproduces vᵀ A^p v to rounding, amplified by ‖A‖^p: compare relative to ‖A‖^p.
QUADRATURE_RTOL = 1e-10
# Stochastic checks: 5 standard errors (two-sided failure probability ~6e-7 under normality).
SIGMAS = 5.0


@pytest.fixture(scope="module")
def case():
    return indefinite(seed=3)


@pytest.fixture(scope="module")
def density(case):
    return spectral_density(case.matrix, num_probes=12, num_iters=25, seed=0)


def probes_of(P: int, num: int, seed: int) -> torch.Tensor:
    """The unit Rademacher probes spectral_density draws for ``seed`` (the same generator stream)."""
    g = make_generator(seed)
    return torch.cat([probe_vectors(1, P, seed=g, normalize=True) for _ in range(num)])


def test_shapes_weights_and_matvec_count(case, density):
    assert density.nodes.shape == density.weights.shape == (12, 25) and density.dim == case.P
    assert density.num_matvecs == 12 * 25
    assert float((density.weights.sum(dim=1) - 1).abs().max()) <= WEIGHT_SUM_ATOL
    assert density.density_per_probe(torch.linspace(-4, 9, 50), 0.1).shape == (12, 50)


@pytest.mark.parametrize("sigma", [0.05, 0.5])
def test_density_integrates_to_one(density, sigma):
    grid = density.grid(num_points=int(20 * 20 / sigma), sigma=sigma)
    assert float(grid[1] - grid[0]) <= sigma / 20
    total = float(torch.trapezoid(density.density(grid, sigma), grid))
    assert abs(total - 1) <= INTEGRAL_ATOL, f"∫ρ = {total:.8f} for σ = {sigma}"


def test_each_probe_is_a_gauss_quadrature_of_its_own_measure(case, density):
    """Σ_j w_j θ_j^p = vᵀ A^p v exactly for p ≤ 2m − 1 = 49 (Golub & Meurant)."""
    V = probes_of(case.P, 12, seed=0)
    Vp = V.clone()
    for p in range(1, 12):
        Vp = Vp @ case.matrix
        exact = (Vp * V).sum(dim=1)
        err = float((density.moments(p) - exact).abs().max()) / case.norm**p
        assert err <= QUADRATURE_RTOL, f"moment p={p}: relative error {err:.2e}"


def test_each_probe_cdf_is_within_the_chebyshev_markov_stieltjes_bound(case, density):
    """|F_quadrature(t) − F_v(t)| ≤ max_j w_j for every t (Chebyshev–Markov–Stieltjes inequalities)."""
    V = probes_of(case.P, 12, seed=0)
    mass = (V @ case.eigenvectors.T) ** 2  # (n_v, P): weight of each eigenvalue in each probe's measure
    jumps = torch.cat([case.eigenvalues, density.nodes.flatten()]).sort().values
    points = torch.cat([jumps, jumps - 1e-9]).sort().values
    for i in range(12):
        F_v = (mass[i][:, None] * (case.eigenvalues[:, None] <= points[None, :])).sum(dim=0)
        F_q = SpectralDensity(density.nodes[i:i + 1], density.weights[i:i + 1], case.P).cdf(points)
        gap, bound = float((F_v - F_q).abs().max()), float(density.weights[i].max())
        assert gap <= bound + 1e-12, f"probe {i}: sup|F_v − F_quad| = {gap:.4f} > max weight {bound:.4f}"


def test_density_matches_the_spectral_measure_in_distribution():
    """Kolmogorov distance to the true eigenvalue CDF ≤ quadrature bound + probe noise (5σ)."""
    case = wishart(seed=1)
    n_v, m = 20, 30
    dens = spectral_density(case.matrix, num_probes=n_v, num_iters=m, seed=2)
    t = torch.linspace(float(case.eigenvalues[0]) - 0.1, float(case.eigenvalues[-1]) + 0.1, 2000, dtype=torch.float64)
    F_true = (case.eigenvalues[:, None] <= t[None, :]).to(torch.float64).mean(dim=0)
    ks = float((dens.cdf(t) - F_true).abs().max())
    # Unit Rademacher probes: F_v(t) has variance ≤ 2F(1−F)/P ≤ 1/(2P); averaged over n_v probes.
    noise = SIGMAS * math.sqrt(1 / (2 * case.P * n_v))
    bound = float(dens.weights.max(dim=1).values.mean()) + noise
    assert ks <= bound, f"Kolmogorov distance {ks:.4f} > {bound:.4f}"


def test_moments_estimate_normalized_traces_of_powers(case, density):
    for p in (1, 2, 3):
        exact = float((case.eigenvalues**p).mean())
        samples = density.moments(p)
        stderr = float(samples.std()) / math.sqrt(samples.shape[0])
        assert abs(float(samples.mean()) - exact) <= SIGMAS * stderr, \
            f"p={p}: SLQ {float(samples.mean()):.5f} ± {stderr:.5f}, exact tr(A^p)/P = {exact:.5f}"


def test_breakdown_pads_with_zero_weights():
    case = rank_deficient(seed=3)  # Lanczos stops after 4 steps
    dens = spectral_density(case.matrix, num_probes=3, num_iters=10, seed=0)
    assert dens.nodes.shape == (3, 10) and torch.isfinite(dens.nodes).all()
    assert (dens.weights[:, 4:] == 0).all() and dens.num_matvecs == 12
    expected = torch.tensor([0.0, 1.0, 2.25, 9.0], dtype=torch.float64)
    assert torch.allclose(dens.nodes[:, :4], expected.expand(3, 4), atol=1e-10)


def test_stored_density_redraws_without_recomputation(density):
    again = SpectralDensity.from_dict(density.as_dict())
    grid = torch.linspace(-5, 10, 300, dtype=torch.float64)
    assert torch.equal(again.density(grid, 0.2), density.density(grid, 0.2))
    assert all(isinstance(v, (np.ndarray, int)) for v in density.as_dict().values())


def test_same_seed_same_density_and_ghost_free_outliers():
    A = ghost_demo(seed=0, P=400).matrix
    a = spectral_density(A, num_probes=2, num_iters=60, seed=9)
    b = spectral_density(A, num_probes=2, num_iters=60, seed=9)
    assert torch.equal(a.nodes, b.nodes) and torch.equal(a.weights, b.weights)
    copies = ((a.nodes - 100.0).abs() <= 1e-6 * 100).sum(dim=1)
    assert copies.tolist() == [1, 1], f"copies of λ₁ = 100 per probe: {copies.tolist()}"


def test_gaussian_probes_and_bad_input(case):
    dens = spectral_density(case.matrix, num_probes=2, num_iters=5, distribution="gaussian")
    assert dens.nodes.shape == (2, 5)
    with pytest.raises(InputError, match="num_probes >= 1"):
        spectral_density(case.matrix, num_probes=0)
    with pytest.raises(InputError, match="distribution='sphere'"):
        spectral_density(case.matrix, distribution="sphere")
    with pytest.raises(InputError, match="sigma must be > 0"):
        dens.density([0.0], 0.0)
