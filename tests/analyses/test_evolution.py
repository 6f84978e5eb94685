"""Spectrum evolution: overlaps, principal angles, eigenvalue tables and densities against closed forms."""

import numpy as np
import pytest

from analyses.evolution import (compare, density_evolution, density_on_grid, eigenvalue_table, overlap,
                                         principal_angles, step_pairs)
from landscape.errors import InputError

# float64 products of orthonormal float64 rows (P = 200): rounding ~ P·eps ≈ 5e-14.
EXACT_ATOL = 1e-12
# Known rotation angles recovered by scipy's sine/cosine formulas to rounding.
ANGLE_ATOL = 1e-10
# Riemann sum of a Gaussian mixture on a grid of 4000 points with σ ≥ 25 grid spacings: error ≪ 1e-6.
DENSITY_MASS_ATOL = 1e-6


def orthonormal_rows(k, P, seed):
    return np.linalg.qr(np.random.default_rng(seed).standard_normal((P, k)))[0].T


def test_overlap_with_itself_is_the_identity_and_angles_vanish():
    V = orthonormal_rows(8, 200, 0)
    out = compare(V, V.astype(np.float32), k_subspace=5)  # float32 storage of the same vectors
    np.testing.assert_allclose(out["overlap"], np.eye(8), atol=1e-6)  # float32 rounding of unit rows
    np.testing.assert_allclose(overlap(V, V), np.eye(8), atol=EXACT_ATOL)
    np.testing.assert_allclose(principal_angles(V, V, 5), 0.0, atol=EXACT_ATOL)
    assert out["row_argmax"].tolist() == list(range(8)) and out["subspace_overlap"] == pytest.approx(1.0)


def test_overlap_finds_a_permutation_with_signs():
    V = orthonormal_rows(6, 200, 1)
    perm, signs = np.array([2, 0, 1, 5, 3, 4]), np.array([1, -1, 1, -1, 1, 1])[:, None]
    out = compare(V, signs * V[perm])
    assert out["row_argmax"].tolist() == np.argsort(perm).tolist()
    np.testing.assert_allclose(out["row_max"], 1.0, atol=EXACT_ATOL)


def test_principal_angles_of_a_known_rotation():
    V = orthonormal_rows(4, 200, 2)  # rotate v_0 towards v_3 (outside the top-2) by φ
    phi = 0.3
    W = V.copy()
    W[0] = np.cos(phi) * V[0] + np.sin(phi) * V[3]
    np.testing.assert_allclose(principal_angles(V, W, 2), [0.0, phi], atol=ANGLE_ATOL)
    out = compare(V[:2], W[:2])
    assert out["subspace_overlap"] == pytest.approx((1 + np.cos(phi) ** 2) / 2, abs=ANGLE_ATOL)
    assert out["row_max"][0] == pytest.approx(np.cos(phi), abs=EXACT_ATOL)


def test_a_rotation_inside_the_subspace_changes_rows_not_angles():
    V = orthonormal_rows(2, 200, 3)
    R = np.array([[np.cos(0.7), -np.sin(0.7)], [np.sin(0.7), np.cos(0.7)]])
    out = compare(V, R @ V)
    np.testing.assert_allclose(out["principal_angles"], 0.0, atol=1e-7)  # sin-formula resolution near 0
    assert out["row_max"].max() < 0.8  # no single eigenvector matches


def test_bad_inputs_are_clear_errors():
    with pytest.raises(InputError, match="different length"):
        overlap(np.ones((2, 5)), np.ones((2, 6)))
    with pytest.raises(InputError, match="subspace dimension"):
        principal_angles(np.eye(3, 5), np.eye(3, 5), k=4)
    with pytest.raises(InputError, match="unknown pairing"):
        step_pairs([0, 1], "every")


def test_step_pairs():
    assert step_pairs([30, 10, 20]) == [(10, 20), (20, 30)]
    assert step_pairs([10, 20, 30], "first") == [(10, 20), (10, 30)]
    assert step_pairs([10, 20, 30], "last") == [(10, 30), (20, 30)]
    assert step_pairs([10, 20, 30], "all") == [(10, 20), (10, 30), (20, 30)]


def test_eigenvalue_table_pads_with_nan():
    t = eigenvalue_table([np.array([3.0, 2.0]), np.array([5.0, 4.0, 1.0])])
    assert t.shape == (2, 3) and np.isnan(t[0, 2]) and t[1].tolist() == [5.0, 4.0, 1.0]


def test_density_is_normalised_and_peaks_at_the_nodes():
    nodes = np.array([[0.0, 10.0], [0.0, 10.0]])
    weights = np.array([[0.75, 0.25], [0.75, 0.25]])
    grid = np.linspace(-20, 30, 4000)
    phi = density_on_grid(nodes, weights, grid, sigma=0.5)
    assert np.trapezoid(phi, grid) == pytest.approx(1.0, abs=DENSITY_MASS_ATOL)
    assert phi[np.argmin(abs(grid))] == pytest.approx(0.75 / (0.5 * np.sqrt(2 * np.pi)), rel=1e-3)
    ev = density_evolution([nodes, nodes * 2], [weights, weights], num=64)
    assert ev["density"].shape == (2, 64) and ev["grid"][0] < 0 and ev["grid"][-1] > 20


# ---- the command, end to end on a tiny MNIST-1D run -----------------------------------------------

# Stored eigenvectors are float32 roundings of exact float64 ones: V Vᵀ = I to ~ √k·2⁻²⁴ per entry.
STORED_ORTHONORMAL_ATOL = 1e-6


@pytest.fixture(scope="module")
def eigen_all_steps(tiny_run, tmp_path_factory):
    from eigen_results import write_dense_eigen

    path = tmp_path_factory.mktemp("evolution") / "eigen.h5"
    return path, write_dense_eigen(tiny_run.path, path, k=4)


def _copy(src, tmp_path):
    import shutil

    shutil.copy(src, tmp_path / "res.h5")
    return tmp_path / "res.h5"


def _main(*argv):
    from analyses.cli import main

    return main([str(a) for a in argv])


def test_evolution_command_end_to_end(eigen_all_steps, tmp_path, capsys):
    from landscape.io import step_key
    from landscape.io import ResultsFile

    res = _copy(eigen_all_steps[0], tmp_path)
    assert _main("evolution", res) == 0
    with ResultsFile(res) as r:
        table, _ = r.read_item("evolution/eigenvalues")
        pair, _ = r.read_item(step_key("evolution", 20, "overlap_step_00000030"))
        V30 = r.read_item(step_key("hessian", 30, "eigen"))[0]["eigenvectors"]
        keys = r.keys("evolution/")
    assert table["steps"].tolist() == [0, 10, 20, 30]
    np.testing.assert_allclose(table["eigenvalues"], np.stack([eigen_all_steps[1][s] for s in (0, 10, 20, 30)]))
    assert len([k for k in keys if "overlap" in k]) == 3 and "evolution/density" not in keys  # no density items
    assert np.all((0 <= pair["overlap"]) & (pair["overlap"] <= 1 + 1e-12)) and pair["principal_angles"].shape == (4,)
    np.testing.assert_allclose(compare(V30, V30)["overlap"], np.eye(4), atol=STORED_ORTHONORMAL_ATOL)
    np.testing.assert_allclose(principal_angles(V30, V30), 0.0, atol=STORED_ORTHONORMAL_ATOL)
    capsys.readouterr()
    assert _main("evolution", res, "--pairs", "all") == 0
    assert "3 overlap item(s) computed, 3 already complete" in capsys.readouterr().out


def test_evolution_bad_input(eigen_all_steps, tmp_path, capsys):
    res = _copy(eigen_all_steps[0], tmp_path)
    assert _main("evolution", res, "--steps", "15") != 0
    assert "step 15 is not saved" in capsys.readouterr().err
    assert _main("evolution", res, "--subspace-k", "9") != 0
    assert "--subspace-k 9" in capsys.readouterr().err


def test_evolution_figures_draw_from_stored_results(eigen_all_steps, tmp_path):
    import matplotlib.pyplot as plt

    from analyses.plots import MissingData, all_figures
    from landscape.io import step_key
    from landscape.io import ResultsFile

    res = _copy(eigen_all_steps[0], tmp_path)
    with ResultsFile(res, "a") as r:  # SLQ-like nodes/weights for two steps: the density table appears
        for s in (0, 30):
            r.write_item(step_key("hessian", s, "density"),
                         {"nodes": np.array([[0.1, 1.0 + s / 30]]), "weights": np.array([[0.9, 0.1]])})
    assert _main("evolution", res) == 0
    figures = all_figures()
    with ResultsFile(res) as r:
        d, _ = r.read_item("evolution/density")
        assert d["steps"].tolist() == [0, 30]
        assert np.trapezoid(d["density"], d["grid"], axis=1) == pytest.approx([1, 1], abs=1e-3)
        for name in ("eigen_overlaps", "eigenvalue_trajectories", "density_evolution"):
            drawn = figures[name].draw(r, None)
            assert len(drawn) == 1 and drawn[0][1].axes, name
            plt.close(drawn[0][1])
    with pytest.raises(MissingData, match="no results file"):
        figures["eigen_overlaps"].draw(None, None)
