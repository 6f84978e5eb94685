"""landscape.solvers.trace: Hutchinson and Hutch++ converge within their stated uncertainty."""

import math

import numpy as np
import pytest
import torch

from landscape.errors import InputError
from landscape.operators import CountingOperator, DenseOperator
from landscape.solvers.trace import hutchinson_trace, hutchpp_trace, trace
from oracles import random_orthogonal, wishart, with_spectrum

# An estimate is consistent with the truth when within 5 standard errors (the samples are
# means of ≥ 30 terms; two-sided normal tail ~6e-7).
SIGMAS = 5.0
# Quadrupling the probes halves the standard error; with 50 vs 200 samples the sample stds
# vary by ~10%, so the ratio lies well within [0.35, 0.7].
STDERR_RATIO_RANGE = (0.35, 0.7)
# Hutch++ on a rank-10 + noise matrix with a 90-matvec budget: its residual trace is ~1e-3 of
# the total, so its stderr is over 10x below Hutchinson's at the same budget.
HUTCHPP_GAIN = 10.0


def low_rank_plus_noise(seed: int = 0, P: int = 300, rank: int = 10):
    """Ten eigenvalues of 100…10 on top of a Wishart-like noise floor of size ~0.01."""
    g = torch.Generator().manual_seed(seed)
    Q = random_orthogonal(P, seed)[:, :rank]
    X = torch.randn(2 * P, P, generator=g, dtype=torch.float64)
    return Q @ torch.diag(torch.linspace(100, 10, rank, dtype=torch.float64)) @ Q.T + 0.01 * X.T @ X / (2 * P)


def test_hutchinson_is_consistent_and_its_stderr_shrinks_like_one_over_sqrt_n():
    A = wishart(seed=2).matrix
    exact = float(torch.trace(A))
    small, large = hutchinson_trace(A, 50, seed=1), hutchinson_trace(A, 200, seed=1)
    for est in (small, large):
        assert abs(est.value - exact) <= SIGMAS * est.stderr, f"{est.value:.4f} ± {est.stderr:.4f} vs {exact:.4f}"
        assert est.samples.shape == (est.num_matvecs,) and est.method == "hutchinson"
        assert math.isclose(est.value, float(est.samples.mean()), rel_tol=1e-12)
    ratio = large.stderr / small.stderr
    assert STDERR_RATIO_RANGE[0] <= ratio <= STDERR_RATIO_RANGE[1], f"stderr ratio {ratio:.3f}"


def test_hutchinson_variance_matches_theory():
    """Var(zᵀAz) = 2(‖A‖_F² − Σ A_ii²) for Rademacher z (Hutchinson 1989)."""
    A = wishart(seed=3).matrix
    est = hutchinson_trace(A, 400, seed=0)
    theory = math.sqrt(2 * (float((A**2).sum()) - float((A.diagonal() ** 2).sum())))
    sample_std = float(est.samples.std())
    # the sample std of 400 draws is within ~3·(kurtosis-inflated) 1/√(2n) ≈ 20% of the true std
    assert abs(sample_std / theory - 1) <= 0.2, f"sample std {sample_std:.4f}, theory {theory:.4f}"


def test_hutchpp_beats_hutchinson_on_low_rank_plus_noise():
    A = low_rank_plus_noise()
    exact = float(torch.trace(A))
    hpp, hutch = trace(A, 90, "hutch++", seed=0), trace(A, 90, "hutchinson", seed=0)
    assert abs(hpp.value - exact) <= SIGMAS * hpp.stderr, f"Hutch++ {hpp.value:.5f} ± {hpp.stderr:.5f} vs {exact:.5f}"
    assert abs(hutch.value - exact) <= SIGMAS * hutch.stderr
    assert hpp.stderr * HUTCHPP_GAIN <= hutch.stderr, f"stderr Hutch++ {hpp.stderr:.4g}, Hutchinson {hutch.stderr:.4g}"
    assert abs(hpp.value - exact) <= abs(hutch.value - exact) + 1e-9
    assert hpp.samples.shape == (30,) and hpp.num_matvecs == 90 and hpp.low_rank_part > 0.99 * exact


def test_budgets_are_exact_and_counted():
    A = CountingOperator(DenseOperator(wishart(seed=0).matrix))
    trace(A, 61, "hutch++")
    assert A.num_matvecs == 61
    est = hutchpp_trace(with_spectrum(np.arange(1.0, 9.0), seed=0).matrix, 30)  # r = 10 ≥ P = 8: exact
    assert est.num_matvecs == 16 and est.stderr == 0.0 and abs(est.value - 36.0) <= 1e-10


def test_gaussian_probes_same_seed_and_as_dict():
    A = wishart(seed=4).matrix
    a, b = trace(A, 40, seed=3, distribution="gaussian"), trace(A, 40, seed=3, distribution="gaussian")
    assert a.value == b.value and torch.equal(a.samples, b.samples)
    assert abs(a.value - float(torch.trace(A))) <= SIGMAS * a.stderr
    d = a.as_dict()
    assert set(d) == {"value", "stderr", "samples", "method", "num_matvecs", "low_rank_part"}


def test_float32_operator():
    A = wishart(seed=5).matrix
    est = trace(A.to(torch.float32), 60, "hutchinson", seed=0)
    assert abs(est.value - float(torch.trace(A))) <= SIGMAS * est.stderr


def test_bad_input():
    A = wishart(seed=0, P=20, N=40).matrix
    with pytest.raises(InputError, match="method='exact' is not one of"):
        trace(A, 10, "exact")
    with pytest.raises(InputError, match="Hutchinson needs num_matvecs >= 2"):
        trace(A, 1, "hutchinson")
    with pytest.raises(InputError, match="Hutch\\+\\+ needs num_matvecs >= 4"):
        trace(A, 3)
