"""landscape.operators: dense, shifted, negated, deflated and counting operators; scipy export; errors."""

import numpy as np
import pytest
import scipy.sparse.linalg as sla
import torch

from landscape.errors import InputError, NonFiniteError, NotSymmetricError
from landscape.operators import (CallableOperator, CountingOperator, DeflatedOperator, DenseOperator, NegatedOperator,
                                 ShiftedOperator, apply_float64, as_operator)
from oracles import diff_report, indefinite, wishart

# Products of float64 dense matrices of norm ≤ 10 and P ≤ 300: rounding is ~P·eps·‖M‖ ≈ 1e-12.
PRODUCT_ATOL = 1e-11
# ARPACK through to_scipy at tol=1e-12, against eigvalsh: both rounding-level.
SCIPY_EIG_ATOL = 1e-9


@pytest.fixture(scope="module")
def case():
    return indefinite(seed=2)


def rows(P: int, k: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(k, P, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_dense_operator_products_match_the_matrix(case):
    A, X = DenseOperator(case.matrix), rows(case.P, 3)
    assert A.shape == (case.P, case.P) and A.dtype == torch.float64 and A.dim == case.P
    assert torch.allclose(A @ X[0], case.matrix @ X[0], atol=PRODUCT_ATOL, rtol=0), diff_report(A @ X[0], case.matrix @ X[0])
    assert torch.allclose(A @ X, X @ case.matrix, atol=PRODUCT_ATOL, rtol=0), diff_report(A @ X, X @ case.matrix)


def test_to_scipy_gives_a_float64_operator_that_arpack_accepts(case):
    S = DenseOperator(case.matrix.to(torch.float32)).to_scipy()
    assert S.dtype == np.float64 and S.shape == (case.P, case.P)
    x = np.arange(case.P, dtype=np.float64)
    assert S.matvec(x).dtype == np.float64 and S.matmat(np.stack([x, x], axis=1)).shape == (case.P, 2)
    vals = np.sort(sla.eigsh(DenseOperator(case.matrix).to_scipy(), k=3, which="LA", tol=1e-12)[0])
    expected = case.eigenvalues[-3:].numpy()
    assert np.abs(vals - expected).max() <= SCIPY_EIG_ATOL, diff_report(vals, expected, "scipy eigsh")


def test_non_symmetric_matrix_is_refused_with_the_largest_asymmetry():
    M = torch.eye(4, dtype=torch.float64)
    M[0, 2] = 0.5
    with pytest.raises(NotSymmetricError, match=r"largest asymmetry \|M\[0,2\] − M\[2,0\]\| = 0\.5"):
        DenseOperator(M)
    DenseOperator(M, check_symmetric=False)  # the explicit way out
    with pytest.raises(NotSymmetricError, match="square"):
        DenseOperator(torch.zeros(3, 4))


def test_rounding_level_asymmetry_is_accepted():
    M = wishart(seed=0, P=50, N=80).matrix
    noisy = M + 1e-9 * torch.randn(50, 50, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with pytest.raises(NotSymmetricError):
        DenseOperator(noisy)  # 1e-9 relative is far above float64 rounding
    DenseOperator(noisy.to(torch.float32))  # ... but below float32 rounding


def test_non_finite_matrix_raises():
    M = torch.eye(3)
    M[1, 1] = float("nan")
    with pytest.raises(NonFiniteError, match="1 NaN/Inf"):
        DenseOperator(M)


def test_as_operator_accepts_operators_tensors_arrays_and_callables(case):
    A = DenseOperator(case.matrix)
    assert as_operator(A) is A
    assert isinstance(as_operator(case.matrix.numpy()), DenseOperator)
    f = as_operator(lambda v: 2 * v, dim=5)
    assert isinstance(f, CallableOperator) and torch.equal(f @ torch.ones(5, dtype=torch.float64), 2 * torch.ones(5))
    with pytest.raises(InputError, match="needs its dimension: pass dim=P"):
        as_operator(lambda v: v)
    with pytest.raises(InputError, match="dim=3 does not match"):
        as_operator(A, dim=3)
    with pytest.raises(InputError, match="cannot use a str"):
        as_operator("H")


def test_shifted_negated_and_deflated_operators_match_their_formulas(case):
    M, X = case.matrix, rows(case.P, 2, seed=3)
    V, lam = case.eigenvectors[-2:], case.eigenvalues[-2:]
    expected = {"shifted": M - 1.5 * torch.eye(case.P, dtype=torch.float64), "negated": -M,
                "deflated": M - V.T @ torch.diag(lam) @ V}
    ops = {"shifted": ShiftedOperator(DenseOperator(M), 1.5), "negated": NegatedOperator(DenseOperator(M)),
           "deflated": DeflatedOperator(DenseOperator(M), V, lam)}
    for name, op in ops.items():
        want = X @ expected[name]
        assert torch.allclose(op @ X, want, atol=PRODUCT_ATOL, rtol=0), diff_report(op @ X, want, name)
        assert torch.allclose(op @ X[0], want[0], atol=PRODUCT_ATOL, rtol=0), diff_report(op @ X[0], want[0], name)
    deflated_top = torch.linalg.eigvalsh(expected["deflated"])[-1]
    assert abs(float(deflated_top) - float(case.eigenvalues[-3])) <= PRODUCT_ATOL


def test_deflated_operator_checks_shapes(case):
    with pytest.raises(InputError, match=r"V of shape \(k, 200\)"):
        DeflatedOperator(DenseOperator(case.matrix), torch.zeros(2, 7), torch.zeros(2))


def test_counting_operator_counts_every_product_and_reports_it(case):
    seen = []
    A = CountingOperator(DenseOperator(case.matrix), callback=seen.append)
    A @ rows(case.P, 1)[0]
    A @ rows(case.P, 4)
    apply_float64(A, rows(case.P, 10), block_size=3)
    assert A.num_matvecs == 15 and seen == [1, 5, 8, 11, 14, 15]


def test_apply_float64_casts_and_checks_for_non_finite_output(case):
    A32 = DenseOperator(case.matrix.to(torch.float32))
    out = apply_float64(A32, rows(case.P, 2))
    assert out.dtype == torch.float64 and out.shape == (2, case.P)
    bad = CallableOperator(lambda v: v * float("inf"), 4)
    with pytest.raises(NonFiniteError, match="NaN/Inf"):
        apply_float64(bad, torch.ones(4, dtype=torch.float64))
