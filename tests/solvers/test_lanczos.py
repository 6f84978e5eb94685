"""landscape.solvers.lanczos: float64 Lanczos with full reorthogonalization on known spectra."""

import pytest
import torch

from landscape.errors import InputError, NonFiniteError
from landscape.operators import DenseOperator
from landscape.solvers.lanczos import lanczos
from oracles import clustered, diff_report, ghost_demo, indefinite, rank_deficient, repeated, small, wishart

# P steps on P ≤ 300 in float64: Ritz values agree with eigvalsh to rounding (~P·eps·‖A‖).
FULL_RUN_RTOL = 1e-10
# Ghost demo (R11): top-5 Ritz values after 150 steps, relative to each value.
GHOST_RTOL = 1e-8
# A Ritz value within this relative distance of 100 counts as a copy of λ₁ = 100.
COPY_RTOL = 1e-6
# Full reorthogonalization keeps the float64 basis orthonormal to rounding.
ORTHO_ATOL = 1e-12
# The Lanczos relation A Vᵀ = Vᵀ T + β v eₘᵀ holds to rounding (relative to ‖A‖).
RELATION_RTOL = 1e-12
# float32 products (relative error ~1e-7 each) give Ritz values off by ~1e-6 of ‖A‖ at worst.
FLOAT32_RTOL = 1e-5

FULL_RUN_CASES = [pytest.param(f, id=f.__name__) for f in (clustered, indefinite, wishart, small)]


@pytest.mark.parametrize("factory", FULL_RUN_CASES)
def test_P_steps_return_every_eigenvalue(factory):
    case = factory(seed=11)
    res = lanczos(case.matrix, case.P, seed=0)
    theta = res.ritz_values()
    assert theta.shape == (case.P,), f"stopped after {theta.shape[0]} of {case.P} steps"
    err = float((theta - case.eigenvalues).abs().max()) / case.norm
    assert err <= FULL_RUN_RTOL, diff_report(theta, case.eigenvalues, f"{case.name} Ritz values")


def test_ghost_demo_top5_exactly_once_with_reorthogonalization():
    case = ghost_demo(seed=0)
    top5 = torch.tensor([100.0, 60.0, 35.0, 20.0, 12.0], dtype=torch.float64)
    theta = lanczos(case.matrix, 150, seed=1).ritz_values().flip(0)
    rel = ((theta[:5] - top5).abs() / top5).max()
    assert rel <= GHOST_RTOL, diff_report(theta[:5], top5, "top-5 Ritz values")
    for lam in top5:
        copies = int(((theta - lam).abs() <= COPY_RTOL * lam).sum())
        assert copies == 1, f"{copies} Ritz values within {COPY_RTOL:g} of {float(lam)}: {theta[:10].tolist()}"


def test_ghost_demo_without_reorthogonalization_shows_ghosts():
    """The check above has teeth: the plain recurrence reports λ₁ = 100 several times."""
    case = ghost_demo(seed=0)
    theta = lanczos(case.matrix, 150, seed=1, reorth=False).ritz_values()
    copies = int(((theta - 100.0).abs() <= COPY_RTOL * 100.0).sum())
    assert copies > 1, f"expected ghost copies of 100 without reorthogonalization, got {copies}"


def test_rank_deficient_matrix_breaks_down_without_nan():
    case = rank_deficient(seed=3)  # rank 3; K(A, v) = span(v, range A) has dimension 4
    res = lanczos(case.matrix, 10, seed=0)
    assert res.breakdown and res.num_matvecs == 4 and res.last_beta == 0.0
    assert torch.isfinite(res.alphas).all() and torch.isfinite(res.betas).all()
    expected = torch.tensor([0.0, 1.0, 2.25, 9.0], dtype=torch.float64)
    assert torch.allclose(res.ritz_values(), expected, atol=FULL_RUN_RTOL * case.norm, rtol=0), \
        diff_report(res.ritz_values(), expected)


def test_repeated_eigenvalues_give_only_true_eigenvalues():
    """Exact arithmetic sees each distinct value once; rounding may bring in further copies.

    Either way every Ritz value of a P-step run is an eigenvalue and every distinct
    eigenvalue is found.
    """
    case = repeated(seed=1)
    theta = lanczos(case.matrix, case.P, seed=0).ritz_values()
    distance = (theta[:, None] - case.eigenvalues[None, :]).abs()
    tol = FULL_RUN_RTOL * case.norm
    assert float(distance.min(dim=1).values.max()) <= tol, "a Ritz value that is no eigenvalue"
    assert float(distance.min(dim=0).values.max()) <= tol, "an eigenvalue that no Ritz value found"


def test_basis_is_orthonormal_and_satisfies_the_lanczos_relation():
    case = wishart(seed=2)
    res = lanczos(case.matrix, 60, seed=4)
    V, T, m = res.basis, res.tridiagonal(), 60
    assert V.dtype == torch.float64 and V.shape == (m, case.P)
    ortho = float((V @ V.T - torch.eye(m, dtype=torch.float64)).abs().max())
    assert ortho <= ORTHO_ATOL, f"max |VVᵀ − I| = {ortho:.2e}"
    R = V @ case.matrix - T @ V  # rows: A v_j − Σ T_ij v_i; only the last is nonzero (= β_m v_{m+1})
    assert float(R[:-1].norm()) <= RELATION_RTOL * case.norm * m, f"relation residual {float(R[:-1].norm()):.2e}"
    assert abs(float(R[-1].norm()) - res.last_beta) <= RELATION_RTOL * case.norm * m


def test_ritz_values_and_residuals_come_from_the_tridiagonal():
    case = indefinite(seed=0)
    res = lanczos(case.matrix, 30, seed=0)
    theta, S = res.ritz()
    assert torch.allclose(theta, torch.linalg.eigvalsh(res.tridiagonal()), atol=1e-12, rtol=0)
    Y = S.T @ res.basis  # Ritz vectors
    explicit = (Y @ case.matrix - theta[:, None] * Y).norm(dim=1)
    assert torch.allclose(res.ritz_residuals(), explicit, atol=1e-10 * case.norm, rtol=0), \
        diff_report(res.ritz_residuals(), explicit, "Ritz residuals")


def test_same_seed_same_result_and_v0_is_used():
    A = wishart(seed=3).matrix
    a, b, c = lanczos(A, 20, seed=7), lanczos(A, 20, seed=7), lanczos(A, 20, seed=8)
    assert torch.equal(a.alphas, b.alphas) and torch.equal(a.betas, b.betas) and torch.equal(a.basis, b.basis)
    assert not torch.equal(a.alphas, c.alphas)
    v0 = torch.ones(A.shape[0], dtype=torch.float64)
    first = float(lanczos(A, 1, v0=v0).alphas[0])
    assert abs(first - float(v0 @ A @ v0 / (v0 @ v0))) <= 1e-12 * float(A.abs().max()) * A.shape[0]


def test_float32_operator_float64_recurrence():
    case = clustered(seed=5)
    res = lanczos(DenseOperator(case.matrix.to(torch.float32)), case.P, seed=0)
    assert res.basis.dtype == torch.float64 and res.alphas.dtype == torch.float64
    err = float((res.ritz_values() - case.eigenvalues).abs().max()) / case.norm
    assert err <= FLOAT32_RTOL, diff_report(res.ritz_values(), case.eigenvalues)


def test_basis_device_and_keep_basis():
    A = small(seed=0).matrix
    assert lanczos(A, 5, basis_device="cpu").basis.device.type == "cpu"
    assert lanczos(A, 5, keep_basis=False).basis is None
    assert lanczos(A, 5, keep_basis=False, reorth=False).basis is None
    d = lanczos(A, 5).as_dict()
    assert set(d) == {"alphas", "betas", "num_matvecs", "breakdown", "last_beta"} and d["betas"].shape == (4,)


def test_bad_input_and_non_finite_products():
    A = small(seed=0).matrix
    with pytest.raises(InputError, match="num_iters must be >= 1"):
        lanczos(A, 0)
    with pytest.raises(InputError, match="v0 is the zero vector"):
        lanczos(A, 3, v0=torch.zeros(8))
    with pytest.raises(InputError, match=r"v0 must have shape \(8,\)"):
        lanczos(A, 3, v0=torch.ones(5))
    with pytest.raises(NonFiniteError, match="NaN/Inf"):
        lanczos(lambda v: v * float("nan"), 3, dim=8)
