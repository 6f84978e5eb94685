"""landscape.solvers.eigsh warm starts from a block v0 (j, P): seeding, breakdown, honest counts."""

import numpy as np
import pytest
import torch

from landscape.operators import CountingOperator, DenseOperator
from landscape.solvers.eigsh import SEED_ETA_PER_TOL, default_krylov_size, eigsh
from oracles import diff_report, explicit_residuals, indefinite, wishart

TOL = 1e-9
# |θ − λ| ≤ ‖Av − θv‖ ≤ TOL·‖A‖ for a symmetric A (Kahan), so a warm and a cold answer, each
# certified, differ by at most 2·TOL·‖A‖; ×5 for ‖A‖_est ≤ ‖A‖ and the oracle's own rounding.
EIG_ATOL_PER_NORM = 10 * TOL
# Davis–Kahan: a certified vector is within angle ≤ ‖r‖ / gap of its eigenvector, gap = distance
# of θ to the rest of the spectrum, so warm and cold vectors are within the sum of theirs (×2 margin;
# measured as the chord ‖v ∓ w‖, since 1 − (v·w)² cannot resolve angles below ~1e-8).
ANGLE_MARGIN = 2.0
# Products a seeded run may spend before its first report: the j seed products and one step.
SEED_STEPS = 1
FLOAT32_TOL = 1e-5
# float32 products are off by ~1e-7·‖A‖ each; reported and recomputed residuals agree to ~1e-6·‖A‖.
FLOAT32_RESIDUAL_AGREEMENT = 1e-6

CASES = [  # (factory, seed, which): simple extreme eigenvalues at both ends
    {"id": "wishart-LA", "factory": wishart, "seed": 5, "which": "LA"},
    {"id": "wishart-SA", "factory": wishart, "seed": 5, "which": "SA"},
    {"id": "indefinite-BE", "factory": indefinite, "seed": 7, "which": "BE"},
]


def exact_block(case, k, which):
    """The oracle's eigenvectors ``(k, P)`` of the k eigenvalues ``which`` asks for."""
    lam, expected = case.eigenvalues, case.expected(k, which)
    idx = [int(torch.argmin((lam - e).abs())) for e in expected]
    return case.eigenvectors[idx]


def perturbation(case, eps):
    """A symmetric E with ‖E‖₂ = eps·‖A‖ (seeded)."""
    noise = torch.randn(case.P, case.P, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return eps * case.norm * (noise + noise.T) / torch.linalg.matrix_norm(noise + noise.T, 2)


def check_same_eigenpairs(A, lam_true, warm, cold, norm):
    """Both answers certified, equal eigenvalues within 2 tol, and vectors at Davis–Kahan distance."""
    assert warm.converged and cold.converged, f"residuals warm {warm.residuals}, cold {cold.residuals}"
    assert float((warm.eigenvalues - cold.eigenvalues).abs().max()) <= EIG_ATOL_PER_NORM * norm, \
        diff_report(warm.eigenvalues, cold.eigenvalues, "warm vs cold eigenvalues")
    for i, theta in enumerate(warm.eigenvalues):
        gap = float((lam_true - theta).abs().sort().values[1])  # distance to the next eigenvalue
        bound = ANGLE_MARGIN * float(warm.residuals[i] + cold.residuals[i]) / gap
        v, w = warm.eigenvectors[i], cold.eigenvectors[i]
        chord = min(float(torch.linalg.norm(v - w)), float(torch.linalg.norm(v + w)))
        assert chord <= bound, f"pair {i}: warm and cold vectors {chord:.2e} apart > Davis–Kahan {bound:.2e}"


@pytest.mark.parametrize("spec", CASES, ids=[c["id"] for c in CASES])
def test_exact_eigenvectors_converge_at_the_seed(spec):
    """v0 = the exact wanted eigenvectors: certified right after the j seed products and one step."""
    case, k, which = spec["factory"](seed=spec["seed"]), 4, spec["which"]
    seen = []
    warm = eigsh(case.matrix, k=k, which=which, tol=TOL, seed=1, v0=exact_block(case, k, which),
                 callback=seen.append)
    cold = eigsh(case.matrix, k=k, which=which, tol=TOL, seed=1)
    assert seen[0]["num_converged"] == k and seen[0]["num_matvecs"] <= k + SEED_STEPS, seen[0]
    m = default_krylov_size(k, case.P)
    assert warm.num_matvecs <= k + SEED_STEPS + (m - k) + k, "seed, one step, one probe cycle, the residual check"
    assert warm.num_matvecs < cold.num_matvecs
    check_same_eigenpairs(case.matrix, case.eigenvalues, warm, cold, case.norm)


@pytest.mark.parametrize("spec", CASES, ids=[c["id"] for c in CASES])
@pytest.mark.parametrize("eps_per_tol", [0.1, 1e3], ids=["nearly-invariant", "far"])
def test_eigenvectors_of_a_perturbed_matrix_save_matvecs(spec, eps_per_tol):
    """v0 = eigenvectors of A, solving A + εE: fewer matvecs than cold either way. Close seeds are
    seeded as a subspace, never worse than Lanczos from their sum; far ones fall back to that sum."""
    case, k, which = spec["factory"](seed=spec["seed"]), 4, spec["which"]
    A = case.matrix + perturbation(case, eps_per_tol * TOL)
    lam_true = torch.linalg.eigvalsh(A)
    block = exact_block(case, k, which)
    warm = eigsh(A, k=k, which=which, tol=TOL, seed=1, v0=block)
    cold = eigsh(A, k=k, which=which, tol=TOL, seed=1)
    summed = eigsh(A, k=k, which=which, tol=TOL, seed=1, v0=block.sum(dim=0))
    assert warm.num_matvecs < cold.num_matvecs, f"warm {warm.num_matvecs} vs cold {cold.num_matvecs} matvecs"
    if eps_per_tol < SEED_ETA_PER_TOL:
        assert warm.num_matvecs <= summed.num_matvecs, f"seeded {warm.num_matvecs} vs summed {summed.num_matvecs}"
    check_same_eigenpairs(A, lam_true, warm, cold, case.norm)


@pytest.mark.parametrize("which", ["LA", "SA"])
def test_seeding_beats_the_summed_start_when_wanted_eigenvalues_are_close(which):
    """Wishart ends are close together: Lanczos from b = Σ v0_i resolves the block only to its error
    times a large factor, and must iterate; the seeded Ritz pairs are certified at once."""
    case, k = wishart(seed=5), 4
    A = case.matrix + perturbation(case, 0.1 * TOL)
    block = exact_block(case, k, which)
    seeded = eigsh(A, k=k, which=which, tol=TOL, seed=1, v0=block)
    summed = eigsh(A, k=k, which=which, tol=TOL, seed=1, v0=block.sum(dim=0))
    assert seeded.converged and seeded.num_matvecs < summed.num_matvecs, \
        f"seeded {seeded.num_matvecs} vs summed {summed.num_matvecs} matvecs"


@pytest.mark.parametrize("which_rows", ["top", "middle"])
def test_a_block_spanning_an_invariant_subspace_still_finds_k_pairs(which_rows):
    """j = 2 exact eigenvectors, k = 4 > j: the residuals vanish (breakdown) and the search goes on
    from a random vector; a block away from the wanted end must not hide the true top pairs."""
    case, k, j = wishart(seed=5), 4, 2
    rows = [-1, -2] if which_rows == "top" else [150, 151]
    res = eigsh(case.matrix, k=k, which="LA", tol=TOL, seed=2, v0=case.eigenvectors[rows])
    expected = case.expected(k, "LA")
    assert res.converged and res.eigenvalues.shape == (k,)
    assert float((res.eigenvalues - expected).abs().max()) <= EIG_ATOL_PER_NORM * case.norm, \
        diff_report(res.eigenvalues, expected, f"{which_rows} block, k={k} > j={j}")


def test_the_count_includes_the_seed_products():
    case, k = wishart(seed=5), 4
    block = exact_block(case, k, "LA")
    counter = CountingOperator(DenseOperator(case.matrix))
    seen = []
    res = eigsh(counter, k=k, which="LA", tol=TOL, v0=block, callback=seen.append)
    assert res.num_matvecs == counter.num_matvecs, f"reported {res.num_matvecs}, operator saw {counter.num_matvecs}"
    assert seen[0]["num_matvecs"] == k + SEED_STEPS, f"first report after {seen[0]['num_matvecs']} products"


def test_a_far_block_costs_nothing_over_its_summed_start_vector():
    """η > SEED_ETA_PER_TOL·tol: the product that measured η is the first Lanczos step from b."""
    case = indefinite(seed=7)
    block = torch.linalg.qr(torch.randn(case.P, 3, generator=torch.Generator().manual_seed(3),
                                        dtype=torch.float64))[0].T
    from_block = eigsh(case.matrix, k=3, which="LA", tol=TOL, seed=4, v0=block)
    from_sum = eigsh(case.matrix, k=3, which="LA", tol=TOL, seed=4, v0=block.sum(dim=0))
    assert from_block.num_matvecs == from_sum.num_matvecs  # (b differs from the sum by rounding only)
    assert torch.allclose(from_block.eigenvalues, from_sum.eigenvalues, atol=EIG_ATOL_PER_NORM * case.norm)


def test_block_warm_start_is_deterministic_and_within_budget():
    case, k = wishart(seed=5), 2
    block = exact_block(case, 8, "LA")  # 8 rows, but only max_matvecs − k = 4 fit the budget
    a = eigsh(case.matrix, k=k, tol=1e-6, seed=5, v0=block, max_matvecs=6)
    b = eigsh(case.matrix, k=k, tol=1e-6, seed=5, v0=block, max_matvecs=6)
    assert a.num_matvecs <= 6 and a.num_matvecs == b.num_matvecs
    assert torch.equal(a.eigenvalues, b.eigenvalues) and torch.equal(a.eigenvectors, b.eigenvectors)


def test_float32_operator_seeded_block_has_honest_residuals():
    case, k = wishart(seed=5), 4
    A32 = DenseOperator(case.matrix.to(torch.float32))
    res = eigsh(A32, k=k, which="LA", tol=FLOAT32_TOL, v0=exact_block(case, k, "LA"))
    assert res.converged and res.eigenvectors.dtype == torch.float32
    recomputed = explicit_residuals(case.matrix.to(torch.float32), res.eigenvalues, res.eigenvectors)
    assert np.abs(recomputed - res.residuals.numpy()).max() <= FLOAT32_RESIDUAL_AGREEMENT * case.norm, \
        diff_report(res.residuals, recomputed, "float32 residuals")
