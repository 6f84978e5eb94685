"""What tol means: criterion="eigenvalue" stops when every eigenvalue meets tol relative to |λ|.

Checked on known spectra: the returned values meet the rule, the reported eigenvalue error
bounds hold (distance to the nearest eigenvalue), they are quadratic in the residual where
the gap is resolved, and stopping on the eigenvalue saves products over a residual rule that
guarantees the same accuracy.
"""

import pytest
import torch

from landscape.solvers.certify import GS_ULPS, PRODUCT_ULPS
from landscape.solvers.eigsh import eigsh
from oracles import clustered, diff_report, ghost_demo, indefinite, rank_deficient, repeated, small

# The float64 rounding floor eigsh adds to every residual and tolerance (n ≤ 60 basis vectors).
FLOOR_RTOL = PRODUCT_ULPS * 2.3e-16 + GS_ULPS * 60 * 2.3e-16

CASES = [  # known spectra where the wanted values are resolved or exactly repeated
    {"id": "ghost-LA", "factory": ghost_demo, "seed": 0, "which": "LA"},
    {"id": "ghost-SA", "factory": ghost_demo, "seed": 0, "which": "SA"},
    {"id": "ghost-BE", "factory": ghost_demo, "seed": 0, "which": "BE"},
    {"id": "indefinite-LM", "factory": indefinite, "seed": 2, "which": "LM"},
    {"id": "indefinite-BE", "factory": indefinite, "seed": 2, "which": "BE"},
    {"id": "repeated-LA", "factory": repeated, "seed": 1, "which": "LA"},
    {"id": "clustered-LA", "factory": clustered, "seed": 0, "which": "LA"},
    {"id": "small-SA", "factory": small, "seed": 6, "which": "SA"},
]


@pytest.mark.parametrize("tol", [1e-3, 1e-7])
@pytest.mark.parametrize("spec", CASES, ids=[c["id"] for c in CASES])
def test_every_eigenvalue_meets_tol_relative_to_itself(spec, tol):
    case, k = spec["factory"](seed=spec["seed"]), 4
    res = eigsh(case.matrix, k=k, which=spec["which"], tol=tol, criterion="eigenvalue", seed=spec["seed"])
    expected = case.expected(k, spec["which"])
    slack = 2 * FLOOR_RTOL * case.norm
    assert res.converged and res.criterion == "eigenvalue"
    assert ((res.eigenvalues - expected).abs() <= tol * expected.abs() + slack).all(), \
        diff_report(res.eigenvalues, expected, f"{spec['id']} at tol {tol:g}")
    nearest = (res.eigenvalues[:, None] - case.eigenvalues[None, :]).abs().min(dim=1).values
    assert (nearest <= res.eigenvalue_errors + 1e-13 * case.norm).all(), \
        diff_report(res.eigenvalue_errors, nearest, "reported error bounds vs distance to the nearest eigenvalue")
    assert (res.eigenvalue_errors <= res.residuals).all()


def test_error_bounds_are_quadratic_in_the_residual_where_the_gap_is_resolved():
    """ghost_demo's outliers are far apart: each bound is ρ²/gap, far below ρ (Kato–Temple)."""
    case = ghost_demo(seed=0)
    res = eigsh(case.matrix, k=5, tol=1e-4, criterion="eigenvalue")
    assert (res.eigenvalue_errors < 1e-2 * res.residuals).all(), \
        diff_report(res.eigenvalue_errors, res.residuals, "bounds vs residuals")
    err = (res.eigenvalues - case.expected(5, "LA")).abs()
    assert (err <= res.eigenvalue_errors + 1e-13 * case.norm).all()


def test_stopping_on_the_eigenvalue_saves_products_over_an_equivalent_residual_rule():
    """The residual rule that *guarantees* eigenvalues to tol·|λ| (Weyl) is ρ ≤ tol·min|λ|; the
    eigenvalue rule reaches the same accuracy sooner because errors fall like ρ²."""
    case, tol, k = ghost_demo(seed=0), 1e-6, 5
    by_eigenvalue = eigsh(case.matrix, k=k, tol=tol, criterion="eigenvalue", verify=False)
    smallest = float(case.expected(k, "LA").abs().min())
    by_residual = eigsh(case.matrix, k=k, tol=tol * smallest / case.norm, verify=False)
    assert by_eigenvalue.converged and by_residual.converged
    assert by_eigenvalue.num_matvecs < by_residual.num_matvecs, \
        f"eigenvalue rule {by_eigenvalue.num_matvecs} vs residual rule {by_residual.num_matvecs} products"
    expected = case.expected(k, "LA")
    assert ((by_eigenvalue.eigenvalues - expected).abs() <= tol * expected.abs()).all()


def test_zero_eigenvalues_are_judged_at_the_rounding_floor():
    """Rank 3: the fourth and fifth values are exactly 0, where only an absolute floor can be met."""
    case = rank_deficient(seed=3)
    res = eigsh(case.matrix, k=5, tol=1e-6, criterion="eigenvalue")
    assert res.converged and res.num_matvecs < 60, f"{res.num_matvecs} products"
    expected = torch.tensor([9.0, 2.25, 1.0, 0.0, 0.0], dtype=torch.float64)
    assert torch.allclose(res.eigenvalues, expected, atol=1e-12), diff_report(res.eigenvalues, expected)
