"""landscape.solvers.eigsh: certified extreme eigenpairs on known spectra, against NumPy and ARPACK."""

import math

import numpy as np
import pytest
import scipy.sparse.linalg as sla
import torch

from landscape.errors import InputError, NonFiniteError, NotSymmetricError
from landscape.operators import CountingOperator, DenseOperator
from landscape.solvers.eigsh import eigsh
from oracles import (SPECTRUM_CASES, build, diff_report, explicit_residuals, ghost_demo, indefinite, rank_deficient,
                     repeated, small, wishart, with_spectrum)

TOL = 1e-9
# |λ_ritz − λ| ≤ ‖Av − λv‖ ≤ TOL·‖A‖ for a symmetric A (Bauer–Fike / Weyl); ×10 for the
# reference eigvalsh's own rounding and for ‖A‖_est ≤ ‖A‖.
EIG_ATOL_PER_NORM = 10 * TOL
# The reported residuals are recomputed in NumPy float64 from the matrix the operator holds:
# rounding only for a float64 operator; for a float32 one the operator's own products
# are off by ~1e-7·‖A‖·(a few), so reported and recomputed agree to ~1e-6·‖A‖.
RESIDUAL_AGREEMENT = {torch.float64: 1e-12, torch.float32: 1e-6}
# Returned float64 eigenvectors are orthonormal to rounding; float32 ones to float32 rounding.
ORTHO_ATOL = {torch.float64: 1e-12, torch.float32: 1e-6}
# ‖A‖_est is the largest |Ritz value| of the operator *as stored and applied*. A float64
# operator holds M to rounding, so it can exceed ‖M‖ only by ~P·eps64 ≈ 1e-13 (P ≤ 1000). A
# float32 operator holds M rounded entry-wise (‖ΔM‖₂ ≤ ‖ΔM‖_F ≤ eps32/2·‖M‖_F ≤ eps32/2·√P·‖M‖)
# and rounds every product again, so its Ritz values may exceed ‖M‖ by a few·√P·eps32: that is
# 2.5e-9 relative on one Intel Xeon (100.00000025 for ‖M‖ = 100) and 0 on the AMD EPYC of CI.
# The bound below is the worst case over vendors, not what one CPU's rounding happens to give.
def norm_estimate_bound(norm: float, dtype: torch.dtype, P: int) -> float:
    return norm * (1 + 4 * math.sqrt(P) * torch.finfo(dtype).eps)


# float32 products carry ~1e-7 relative error, so 1e-5 is a reachable residual target...
FLOAT32_TOL = 1e-5
# ... and 1e-10 is not (the certificate must then say so).
FLOAT32_UNREACHABLE_TOL = 1e-10

WHICH = ["LA", "SA", "LM", "BE"]


def check_against_oracle(case, res, k, which, tol=TOL):
    expected = case.expected(k, which)
    err = float((res.eigenvalues - expected).abs().max())
    assert err <= 10 * tol * case.norm, diff_report(res.eigenvalues, expected, f"{case.name} {which} eigenvalues")
    assert res.converged, f"not converged: residuals {res.residuals.tolist()}, norm_estimate {res.norm_estimate}"
    dtype = res.eigenvectors.dtype
    recomputed = explicit_residuals(case.matrix.to(dtype), res.eigenvalues, res.eigenvectors)
    assert np.abs(recomputed - res.residuals.numpy()).max() <= RESIDUAL_AGREEMENT[dtype] * case.norm, \
        diff_report(res.residuals, recomputed, "reported vs recomputed residuals")
    assert res.residuals.max() <= tol * res.norm_estimate
    assert res.norm_estimate <= norm_estimate_bound(case.norm, dtype, case.P), \
        f"norm_estimate {res.norm_estimate!r} above ‖A‖ = {case.norm!r} by more than {dtype} rounding allows"
    V = res.eigenvectors.to(torch.float64)
    ortho = float((V @ V.T - torch.eye(k, dtype=torch.float64)).abs().max())
    assert ortho <= ORTHO_ATOL[res.eigenvectors.dtype], f"eigenvectors not orthonormal: {ortho:.2e}"


@pytest.mark.parametrize("which", WHICH)
@pytest.mark.parametrize("spec", SPECTRUM_CASES, ids=[c["id"] for c in SPECTRUM_CASES])
def test_eigsh_matches_eigvalsh(spec, which):
    case = build(spec)
    k = 4
    res = eigsh(case.matrix, k=k, which=which, tol=TOL, seed=spec["seed"])
    assert res.eigenvalues.shape == (k,) and res.eigenvectors.shape == (k, case.P) and res.which == which
    check_against_oracle(case, res, k, which)


@pytest.mark.parametrize("which", ["LA", "SA", "LM", "BE"])
def test_eigsh_matches_scipy_arpack(which):
    case = indefinite(seed=7)
    k = 4
    ours = eigsh(DenseOperator(case.matrix), k=k, which=which, tol=TOL)
    arpack = np.sort(sla.eigsh(DenseOperator(case.matrix).to_scipy(), k=k, which=which, tol=1e-12)[0])
    got = np.sort(ours.eigenvalues.numpy())
    assert np.abs(got - arpack).max() <= EIG_ATOL_PER_NORM * case.norm, diff_report(got, arpack, "ours vs ARPACK")


def test_output_order_follows_which():
    case = indefinite(seed=2)  # extremes −3, −2.9 and 7.5, 8
    got = {w: eigsh(case.matrix, k=3, which=w, tol=1e-8).eigenvalues for w in WHICH}
    assert torch.all(got["LA"][:-1] >= got["LA"][1:]) and torch.all(got["SA"][:-1] <= got["SA"][1:])
    assert torch.all(got["LM"].abs()[:-1] >= got["LM"].abs()[1:]) and torch.all(got["BE"][:-1] <= got["BE"][1:])
    assert got["BE"].round(decimals=6).tolist() == [-3.0, 7.5, 8.0]  # ⌈3/2⌉ top, ⌊3/2⌋ bottom


def test_repeated_eigenvalues_are_found_with_their_multiplicity():
    case = repeated(seed=1)  # 5 (×3), 3 (×2), −4 (×2) over a bulk in [−1, 1]
    for which, k, expected in [("LA", 3, [5, 5, 5]), ("LA", 5, [5, 5, 5, 3, 3]), ("SA", 2, [-4, -4]),
                               ("LM", 5, [5, 5, 5, -4, -4])]:
        res = eigsh(case.matrix, k=k, which=which, tol=TOL, seed=3)
        assert torch.allclose(res.eigenvalues, torch.tensor(expected, dtype=torch.float64), atol=1e-7), \
            diff_report(res.eigenvalues, expected, f"{which} k={k}")
    top = eigsh(case.matrix, k=3, which="LA", tol=TOL).eigenvectors
    E5 = case.eigenvectors[-3:]  # the eigenspace of 5: the three vectors must span it
    assert torch.allclose(torch.linalg.svdvals(top @ E5.T), torch.ones(3, dtype=torch.float64), atol=1e-8)


def test_rank_deficient_matrix_zero_eigenvalues():
    case = rank_deficient(seed=3)
    res = eigsh(case.matrix, k=5, which="LA", tol=TOL)
    assert torch.allclose(res.eigenvalues, torch.tensor([9.0, 2.25, 1.0, 0.0, 0.0], dtype=torch.float64),
                          atol=EIG_ATOL_PER_NORM * case.norm), diff_report(res.eigenvalues, [9, 2.25, 1, 0, 0])
    check_against_oracle(case, res, 5, "LA")


def test_small_P_the_krylov_space_is_exact():
    case = small(seed=6)  # P = 8
    res = eigsh(case.matrix, k=7, which="SA", tol=TOL)
    check_against_oracle(case, res, 7, "SA")
    assert res.num_matvecs <= 8 + 7, f"a complete basis needs at most P products plus k checks, used {res.num_matvecs}"
    with pytest.raises(InputError, match="k=8 eigenpairs need 1 <= k < P, and P=8"):
        eigsh(case.matrix, k=8)


def test_float32_operator_returns_float32_vectors_with_honest_residuals():
    case = ghost_demo(seed=0)
    A32 = DenseOperator(case.matrix.to(torch.float32))
    res = eigsh(A32, k=5, which="LA", tol=FLOAT32_TOL)
    assert res.eigenvectors.dtype == torch.float32
    check_against_oracle(case, res, 5, "LA", tol=FLOAT32_TOL)
    hopeless = eigsh(A32, k=5, which="LA", tol=FLOAT32_UNREACHABLE_TOL, max_matvecs=300)
    assert not hopeless.converged and hopeless.num_matvecs <= 300
    recomputed = explicit_residuals(case.matrix.to(torch.float32), hopeless.eigenvalues, hopeless.eigenvectors)
    assert hopeless.residuals.max() > FLOAT32_UNREACHABLE_TOL * hopeless.norm_estimate
    assert np.abs(recomputed - hopeless.residuals.numpy()).max() <= RESIDUAL_AGREEMENT[torch.float32] * case.norm, \
        diff_report(hopeless.residuals, recomputed, "float32 residuals")


def test_norm_estimate_bound_allows_float32_rounding_above_the_float64_norm():
    """‖A‖ = 1 + 0.6·2⁻²³ rounds *up* to 1 + 2⁻²³ in float32: on every CPU the float32
    operator's Ritz value exceeds the float64 norm by ~5e-8 relative (the Intel failure in
    miniature), which a 1e-12 bound refused and the dtype-tied bound accepts."""
    lam = 1 + 0.6 * 2.0 ** -23
    case = with_spectrum(np.array([lam, 0.5, 0.25, 0.125]), seed=0, name="rounds_up")
    A32 = DenseOperator(torch.diag(torch.tensor([lam, 0.5, 0.25, 0.125])).to(torch.float32))
    res = eigsh(A32, k=1, which="LA", tol=FLOAT32_TOL)
    assert res.norm_estimate > case.norm * (1 + 1e-12)
    assert res.norm_estimate <= norm_estimate_bound(case.norm, torch.float32, case.P)


def test_budget_exhaustion_is_reported_honestly():
    case = wishart(seed=5)
    counter = CountingOperator(DenseOperator(case.matrix))
    res = eigsh(counter, k=5, which="SA", tol=TOL, max_matvecs=40)
    assert not res.converged and res.num_matvecs == counter.num_matvecs <= 40
    recomputed = explicit_residuals(case.matrix, res.eigenvalues, res.eigenvectors)
    assert np.abs(recomputed - res.residuals.numpy()).max() <= RESIDUAL_AGREEMENT[torch.float64] * case.norm
    with pytest.raises(InputError, match="max_matvecs=6 is too small"):
        eigsh(case.matrix, k=5, max_matvecs=6)


def test_num_matvecs_counts_every_product_and_callback_reports_progress():
    case = wishart(seed=1)
    seen = []
    counter = CountingOperator(DenseOperator(case.matrix))
    res = eigsh(counter, k=3, which="LA", tol=1e-8, callback=seen.append)
    assert res.num_matvecs == counter.num_matvecs
    assert seen and set(seen[0]) == {"num_matvecs", "max_residual", "num_converged", "num_restarts"}
    counts = [s["num_matvecs"] for s in seen]
    assert counts == sorted(counts) and counts[-1] <= res.num_matvecs - 3  # the last 3: the residual check


def test_same_seed_same_result():
    A = wishart(seed=4).matrix
    a, b = eigsh(A, k=3, tol=1e-8, seed=5), eigsh(A, k=3, tol=1e-8, seed=5)
    assert torch.equal(a.eigenvalues, b.eigenvalues) and torch.equal(a.eigenvectors, b.eigenvectors)
    assert a.num_matvecs == b.num_matvecs


def test_warm_start_from_nearby_eigenvectors_uses_fewer_matvecs():
    case = wishart(seed=5)
    noise = torch.randn(case.P, case.P, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    perturbed = case.matrix + 1e-4 * case.norm * (noise + noise.T) / torch.linalg.matrix_norm(noise + noise.T, 2)
    previous = eigsh(case.matrix, k=5, which="LA", tol=1e-8, seed=0)
    cold = eigsh(perturbed, k=5, which="LA", tol=1e-8, seed=1)
    warm = eigsh(perturbed, k=5, which="LA", tol=1e-8, seed=1, v0=previous.eigenvectors)
    assert warm.converged and torch.allclose(warm.eigenvalues, cold.eigenvalues, atol=1e-7 * case.norm)
    assert warm.num_matvecs < cold.num_matvecs, f"warm {warm.num_matvecs} vs cold {cold.num_matvecs} matvecs"


def test_matvec_callable_with_dim():
    case = small(seed=0)
    res = eigsh(lambda v: case.matrix @ v, k=2, tol=TOL, dim=case.P)
    check_against_oracle(case, res, 2, "LA")


def test_as_dict_holds_storable_values():
    d = eigsh(small(seed=0).matrix, k=2, tol=1e-8).as_dict()
    assert d["eigenvectors"].shape == (2, 8) and d["which"] == "LA" and d["converged"] == 1
    assert all(isinstance(v, (np.ndarray, float, int, str)) for v in d.values())


def test_bad_input_gives_the_right_error():
    A = small(seed=0).matrix
    with pytest.raises(InputError, match="which='XY' is not one of LA, SA, LM, BE"):
        eigsh(A, k=2, which="XY")
    with pytest.raises(InputError, match=r"tol=0 must be in \(0, 1\)"):
        eigsh(A, k=2, tol=0)
    with pytest.raises(InputError, match=r"v0 must have shape \(8,\) or \(j, 8\)"):
        eigsh(A, k=2, v0=torch.ones(2, 3))
    with pytest.raises(NotSymmetricError):
        eigsh(torch.triu(torch.ones(8, 8, dtype=torch.float64)), k=2)
    with pytest.raises(NonFiniteError):
        eigsh(lambda v: torch.full_like(v, float("nan")), k=2, dim=8)


def test_the_probe_finds_an_eigenvector_the_start_vector_cannot_see():
    """A start vector orthogonal to the top eigenvector: plain Lanczos converges to λ₂ and stops.

    The verification cycle (a fresh random direction orthogonal to the converged vectors)
    finds λ₁; without it the wrong answer comes back with a perfectly good residual.
    """
    bulk = np.random.default_rng(0).uniform(0.0, 0.5, 198)
    case = with_spectrum(np.concatenate([[1.001, 1.0], bulk]), seed=0, name="blind_spot")
    q_top = case.eigenvectors[-1]
    v0 = torch.randn(case.P, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    v0 = v0 - (v0 @ q_top) * q_top
    blind = eigsh(case.matrix, k=1, which="LA", tol=TOL, v0=v0, verify=False)
    assert abs(float(blind.eigenvalues[0]) - 1.0) <= 1e-6, "expected the blind run to stop at λ₂ = 1"
    checked = eigsh(case.matrix, k=1, which="LA", tol=TOL, v0=v0)
    assert checked.converged and abs(float(checked.eigenvalues[0]) - 1.001) <= EIG_ATOL_PER_NORM, \
        f"verification missed λ₁ = 1.001: got {checked.eigenvalues.tolist()}"


@pytest.mark.gpu
@pytest.mark.parametrize("basis_device", [None, "cpu"])
def test_cuda_operator_with_basis_on_the_device_or_the_host(basis_device):
    from landscape.solvers import lanczos, spectral_density, trace

    case = ghost_demo(seed=0)
    A = DenseOperator(case.matrix.to("cuda", torch.float32))
    res = eigsh(A, k=5, which="BE", tol=FLOAT32_TOL, basis_device=basis_device)
    assert res.eigenvectors.device.type == "cuda" and res.eigenvectors.dtype == torch.float32
    check_against_oracle(case, res, 5, "BE", tol=FLOAT32_TOL)
    run = lanczos(A, 30, basis_device=basis_device)
    assert run.basis.device.type == ("cpu" if basis_device else "cuda") and torch.isfinite(run.alphas).all()
    assert spectral_density(A, num_probes=2, num_iters=20, basis_device=basis_device).nodes.shape == (2, 20)
    est = trace(A, 60, seed=0)
    assert abs(est.value - float(case.eigenvalues.sum())) <= 5 * est.stderr + 1e-3 * case.norm
