"""landscape.solvers.power: the PyHessian-style baseline, with honest residuals."""

import numpy as np
import pytest
import torch

from landscape.errors import InputError
from landscape.solvers.eigsh import eigsh
from landscape.solvers.power import power_iteration
from oracles import diff_report, explicit_residuals, ghost_demo, wishart

# Rayleigh quotients err by ~‖r‖²/gap: with residuals ≤ 1e-3·‖A‖ and gaps ≥ 5% of ‖A‖ that is ≤ 2e-5·‖A‖.
EIG_RTOL = 1e-4
# Reported residuals are float64 products recomputed in NumPy: rounding only.
RESIDUAL_AGREEMENT = 1e-12


def test_power_iteration_finds_well_separated_outliers_with_true_residuals():
    case = ghost_demo(seed=0)
    res = power_iteration(case.matrix, k=3, max_iters=300, tol=1e-8, seed=0)
    expected = torch.tensor([100.0, 60.0, 35.0], dtype=torch.float64)
    assert res.converged and res.which == "LM" and res.eigenvectors.shape == (3, case.P)
    assert float((res.eigenvalues - expected).abs().max()) <= EIG_RTOL * case.norm, diff_report(res.eigenvalues, expected)
    recomputed = explicit_residuals(case.matrix, res.eigenvalues, res.eigenvectors)
    assert np.abs(recomputed - res.residuals.numpy()).max() <= RESIDUAL_AGREEMENT * case.norm


def test_power_iteration_needs_more_matvecs_than_eigsh_for_the_same_residual():
    """On a Wishart spectrum (top gap ~1%) power iteration converges slowly; Lanczos does not."""
    case = wishart(seed=1)
    power = power_iteration(case.matrix, k=3, max_iters=500, tol=1e-10, seed=0)
    target = float(power.residuals.max()) / case.norm
    lanczos = eigsh(case.matrix, k=3, which="LA", tol=max(target, 1e-12), seed=0)
    assert lanczos.converged and lanczos.residuals.max() <= power.residuals.max() * (1 + 1e-9)
    assert lanczos.num_matvecs < power.num_matvecs, f"eigsh {lanczos.num_matvecs} vs power {power.num_matvecs}"


def test_not_converged_within_max_iters_is_reported():
    case = wishart(seed=1)
    res = power_iteration(case.matrix, k=1, max_iters=3, tol=1e-12)
    assert not res.converged and res.num_matvecs == 3


def test_bad_input():
    with pytest.raises(InputError, match="need 1 <= k < P"):
        power_iteration(torch.eye(4, dtype=torch.float64), k=4)
