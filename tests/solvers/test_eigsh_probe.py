"""The probe for missed eigenvalues and the block start: what they promise, checked on oracles.

The probe's failure bound (landscape.solvers.probe) is a worst case over spectra; here it is
checked by sampling against a spectrum built to be hard for it, and its length and reported
margins against the numbers it is defined by. The repeated-eigenvalue oracle tests of
test_eigsh.py are the probe's other guarantee and stay there.
"""

import math

import numpy as np
import pytest
import torch

from landscape.errors import InputError
from landscape.operators import CountingOperator, DenseOperator, LinearOperator
from landscape.solvers import lanczos
from landscape.solvers.eigsh import WARM_RANDOM_SHARE, eigsh
from landscape.solvers.probe import failure, margin_steps, miss_margin
from oracles import diff_report, ghost_demo, repeated, wishart, with_spectrum

TOL = 1e-9
# Sampling the failure event: with S samples of a probability p ≤ bound the observed rate
# exceeds bound + 4·sqrt(bound/S) with probability < 1e-4 (Chernoff), so the test is not flaky.
SAMPLES = 400


def hard_spectrum(n: int, eps: float) -> torch.Tensor:
    """λ_max = 1 and the rest packed just below 1 − ε (up to the bottom 0): the KW worst case
    puts the other eigenvalues where a polynomial cannot separate them from λ_max."""
    rest = np.linspace(0.0, 1.0 - eps, n - 1)
    return torch.diag(torch.tensor(np.concatenate([rest, [1.0]]), dtype=torch.float64))


def test_failure_bound_holds_by_sampling():
    n, q, eps = 200, 5, 0.2
    bound = failure(eps, q, n)
    assert 0.05 < bound < 1, f"pick a case where the bound is informative, got {bound}"
    A = hard_spectrum(n, eps)
    misses = sum(float(lanczos(A, q, seed=s).ritz_values().max()) < 1 - eps for s in range(SAMPLES))
    assert misses / SAMPLES <= bound + 4 * math.sqrt(bound / SAMPLES), \
        f"observed miss rate {misses / SAMPLES:.3f} above the bound {bound:.3f}"


def test_probe_length_and_margin_follow_the_accepted_probability():
    """Default length: the fewest steps after which a value one spread beyond is missed with
    probability ≤ δ; smaller δ, longer probe; the reported margin is that of the steps taken."""
    case = ghost_demo(seed=0)
    runs = {d: eigsh(case.matrix, k=5, tol=TOL, miss_probability=d) for d in (1e-1, 1e-3, 1e-6)}
    steps = {d: margin_steps(case.P - 5, d) for d in runs}
    assert steps[1e-1] < steps[1e-3] < steps[1e-6]
    for d, res in runs.items():
        assert res.probe_matvecs == steps[d] and res.miss_probability == d
        assert res.miss_margin == pytest.approx(miss_margin(steps[d], case.P - 5, d)) and res.miss_margin <= 1.0
        assert res.converged


def test_a_longer_probe_settles_on_a_gapped_spectrum():
    """ghost_demo: outliers 100 … 12 over a bulk below 1.3: the KW bound soon leaves no room above 12."""
    case = ghost_demo(seed=0)
    res = eigsh(case.matrix, k=5, tol=TOL, probe_steps=40)
    assert res.miss_bound == 0.0 and res.miss_margin == 0.0 and res.probe_matvecs < 40


def test_k1_from_a_random_start_is_its_own_probe():
    """The main Krylov space is grown from a uniform random vector: for one value per end it is
    exactly the probe, so no separate probe products are spent."""
    case = ghost_demo(seed=0)
    cold = eigsh(case.matrix, k=1, tol=1e-6, seed=1)
    assert cold.probe_matvecs == 0 and math.isfinite(cold.miss_margin) and cold.converged
    assert cold.num_matvecs >= margin_steps(case.P, cold.miss_probability)
    both = eigsh(case.matrix, k=2, which="BE", tol=1e-6, seed=1)
    assert both.probe_matvecs == 0 and both.converged


def test_k1_warm_start_is_randomized_and_is_its_own_probe():
    """A single warm vector gets a random share (WARM_RANDOM_SHARE): the run lasts as long as the
    loosened bound needs, with no separate probe; verify=False keeps the pure warm start."""
    case = ghost_demo(seed=0)
    v0 = case.eigenvectors[-1] + 0.01 * case.eigenvectors[0]
    warm = eigsh(case.matrix, k=1, tol=1e-6, seed=1, v0=v0)
    need = margin_steps(case.P, warm.miss_probability, share=WARM_RANDOM_SHARE)
    assert warm.probe_matvecs == 0 and warm.num_matvecs == need and warm.converged
    assert warm.miss_margin <= 1.0
    pure = eigsh(case.matrix, k=1, tol=1e-6, seed=1, v0=v0, verify=False)
    assert pure.num_matvecs < warm.num_matvecs and pure.converged


def test_block_start_sees_repeated_eigenvalues_without_a_probe():
    """Band Lanczos from b = 3 vectors holds three directions of the triple eigenvalue 5."""
    case = repeated(seed=1)
    res = eigsh(case.matrix, k=5, which="LA", tol=TOL, seed=3, block_size=3, verify=False)
    expected = torch.tensor([5, 5, 5, 3, 3], dtype=torch.float64)
    assert torch.allclose(res.eigenvalues, expected, atol=1e-7), diff_report(res.eigenvalues, expected)


class BlockRecorder(LinearOperator):
    """A dense operator that records how many rows each call received."""

    def __init__(self, M):
        super().__init__(M.shape[0], M.dtype, M.device)
        self.M, self.rows = M, []

    def _matvec(self, v):
        self.rows.append(1)
        return self.M @ v

    def _matmat(self, V):
        self.rows.append(V.shape[0])
        return V @ self.M


@pytest.mark.parametrize("block_size", [2, 4])
def test_block_products_are_batched_calls(block_size):
    case = wishart(seed=1)
    op = BlockRecorder(case.matrix)
    res = eigsh(op, k=4, tol=1e-8, block_size=block_size)
    assert res.converged and res.block_size == block_size and sum(op.rows) == res.num_matvecs
    full = sum(r for r in op.rows if r == block_size)  # partial blocks only where the basis is nearly full
    assert full >= 0.75 * res.num_matvecs, f"calls received {op.rows}"
    expected = case.expected(4, "LA")
    assert torch.allclose(res.eigenvalues, expected, atol=1e-7 * case.norm)


def test_block_probe_uses_independent_chains():
    case = ghost_demo(seed=0)
    res = eigsh(CountingOperator(DenseOperator(case.matrix)), k=5, tol=TOL, block_size=2)
    steps = margin_steps(case.P - 5, res.miss_probability, chains=2)
    assert res.probe_matvecs == 2 * steps and res.miss_margin <= 1.0


def test_new_probe_arguments_are_checked():
    A = ghost_demo(seed=0).matrix
    with pytest.raises(InputError, match="miss_probability=0 must be in"):
        eigsh(A, k=2, miss_probability=0)
    with pytest.raises(InputError, match="block_size=0 must be a positive integer"):
        eigsh(A, k=2, block_size=0)
    with pytest.raises(InputError, match="probe_steps=0 must be a positive integer"):
        eigsh(A, k=2, probe_steps=0)
    with pytest.raises(InputError, match="criterion='ritz' is not one of"):
        eigsh(A, k=2, criterion="ritz")


def test_blind_spot_found_by_a_random_block_companion():
    """The warm start is orthogonal to the top eigenvector; a random second start vector sees it."""
    bulk = np.random.default_rng(0).uniform(0.0, 0.5, 198)
    case = with_spectrum(np.concatenate([[1.001, 1.0], bulk]), seed=0, name="blind_spot")
    q_top = case.eigenvectors[-1]
    v0 = torch.randn(case.P, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    v0 = v0 - (v0 @ q_top) * q_top
    res = eigsh(case.matrix, k=1, tol=TOL, v0=v0, block_size=2, verify=False)
    assert abs(float(res.eigenvalues[0]) - 1.001) <= 1e-8, res.eigenvalues
