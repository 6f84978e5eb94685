"""Trajectory in the eigenbasis: projections, the settling step on trajectories whose answer is known."""

import numpy as np
import pytest
from scipy.signal import lfilter

from analyses.trajectory import (SettlingConfig, lr_at_steps, lr_phases, phase_amplitudes, project,
                                 settling, stability, trajectory_analysis)
from landscape.errors import InputError

# The projection is V(θ − θ_ref) in float64 of float64 inputs: round-off only (P = 50 terms).
PROJECTION_RTOL = 1e-12
# The detected settling step lags the analytic one by block-mean noise: once the transient is inside the
# band, each block is inside with probability ≈ 0.95 and `persist` = 3 consecutive ones are needed, so the
# median lag over seeds is ≤ 1 block and a lag of more than 5 blocks has probability < 1e-3 per series.
SETTLE_MEDIAN_TOL_BLOCKS = 1
SETTLE_MAX_TOL_BLOCKS = 5
# Stationary std of an AR(1) estimated from ≥ 15000 correlated samples (≈ 75 independent for r = 0.995):
# relative error ≈ 1/√(2·75) = 8%; 3 standard errors.
AMPLITUDE_RTOL = 0.25


def noisy_quadratic_sgd(lams, lr, noise, x0, n, seed):
    """SGD on ½ Σ λ_i x_i² with additive gradient noise N(0, noise²): x_{t+1} = (1 − ηλ_i) x_t − η noise ξ_t."""
    rng = np.random.default_rng(seed)
    X = np.empty((n, len(lams)))
    for i, lam in enumerate(lams):
        r = 1.0 - lr * lam
        kicks = np.concatenate([[x0], -lr * noise * rng.standard_normal(n - 1)])
        X[:, i] = lfilter([1.0], [1.0, -r], kicks)  # x_0 = x0, x_{t+1} = r x_t + kick_{t+1}
    return X


def ar1_stationary_std(r, q):
    return q / np.sqrt(1 - r * r)


def ar1_block_std(r, q, B):
    """Std of the mean of B consecutive stationary AR(1) samples (closed form from the autocovariance)."""
    j = np.arange(1, B)
    return ar1_stationary_std(r, q) * np.sqrt((B + 2 * np.sum((B - j) * r ** j)) / B**2)


def expected_settle_block(r, q, x0, B, z):
    """First block whose deterministic block mean x0 r^{bB}(1 − r^B)/(B(1 − r)) is inside z σ_B (exact σ_B)."""
    b = 0
    while x0 * r ** (b * B) * (1 - r**B) / (B * (1 - r)) > z * ar1_block_std(r, q, B):
        b += 1
    return b


def test_settling_step_matches_noisy_quadratic_sgd():
    lams, lr, noise, n, block, cfg = np.array([0.05, 0.2, 1.0]), 0.1, 1.0, 20000, 100, SettlingConfig(block=100)
    want = np.array([expected_settle_block(1 - lr * lam, lr * noise, 30.0, block, cfg.band) for lam in lams])
    got, amps = [], []
    for seed in range(8):
        out = settling(noisy_quadratic_sgd(lams, lr, noise, 30.0, n, seed), np.arange(n), cfg)
        assert out["settled"].all(), f"seed {seed}: {out['settled']}, drifting {out['drifting']}"
        got.append(out["settle_step"] // block)
        amps.append(out["amplitude"])
    lag = np.array(got) - want
    assert np.all(np.abs(np.median(lag, axis=0)) <= SETTLE_MEDIAN_TOL_BLOCKS), f"lags (blocks):\n{lag}"
    assert np.all(np.abs(lag) <= SETTLE_MAX_TOL_BLOCKS), f"lags (blocks):\n{lag}"
    true_amp = ar1_stationary_std(1 - lr * lams, lr * noise)
    rel = np.abs(np.array(amps) / true_amp - 1)
    assert rel.max() <= AMPLITUDE_RTOL, f"amplitude relative errors:\n{rel}"


def test_settling_step_of_a_jump_to_white_noise():
    rng = np.random.default_rng(1)
    x = np.concatenate([np.full(3000, 40.0), rng.standard_normal(7000)])[:, None]
    out = settling(x, np.arange(10000) * 5, SettlingConfig(block=100))  # saved every 5 steps
    assert out["settled"][0]
    assert out["settle_step"][0] == 3000 * 5, out["settle_step"]


def test_a_drift_to_the_end_has_not_settled():
    rng = np.random.default_rng(2)
    x = (np.linspace(0, 50, 4000) + rng.standard_normal(4000))[:, None]
    out = settling(x, np.arange(4000))
    assert not out["settled"][0] and out["settle_step"][0] == -1


def test_too_few_steps_is_one_clear_error():
    with pytest.raises(InputError, match="blocks"):
        settling(np.zeros((3, 2)), np.arange(3))


def test_projection_recovers_coordinates():
    rng = np.random.default_rng(3)
    V = np.linalg.qr(rng.standard_normal((50, 4)))[0].T  # (k, P) orthonormal rows
    ref = rng.standard_normal(50)
    C = rng.standard_normal((6, 4))
    thetas = [ref + c @ V for c in C]
    np.testing.assert_allclose(project(thetas, ref, V), C, rtol=PROJECTION_RTOL, atol=PROJECTION_RTOL)
    with pytest.raises(InputError, match="do not match"):
        project(thetas, ref[:10], V)


def test_stability_thresholds_sgd_and_heavy_ball():
    s = stability(np.array([1.0, 19.0, 21.0, 39.0, 41.0]), lr=0.1)
    assert s["stable"].tolist() == [True, True, False, False, False] and s["lambda_crit"] == pytest.approx(20.0)
    m = stability(np.array([1.0, 19.0, 21.0, 37.0, 39.0]), lr=0.1, momentum=0.9)
    assert m["threshold"] == pytest.approx(3.8) and m["lambda_crit"] == pytest.approx(38.0)
    assert m["stable"].tolist() == [True, True, True, True, False]


@pytest.mark.parametrize("beta,nesterov", [(0.0, False), (0.9, False), (0.5, True), (0.9, True)])
def test_threshold_is_where_the_iteration_diverges(beta, nesterov):
    """Run PyTorch-form (Nesterov) heavy ball on ½λx² just below and above λ_crit: bounded vs growing."""
    lr = 0.1
    lam_crit = stability(np.ones(1), lr, beta, nesterov=nesterov)["lambda_crit"]
    for lam, bounded in ((0.99 * lam_crit, True), (1.01 * lam_crit, False)):
        x, b = 1.0, 0.0
        for _ in range(5000):
            g = lam * x
            b = beta * b + g
            x = x - lr * ((g + beta * b) if nesterov else b)
        assert (abs(x) < 1.0) == bounded, (lam, x)


def test_weight_decay_shifts_the_eigenvalues():
    s = stability(np.array([10.0, 19.5]), lr=0.1, weight_decay=1.0)
    assert s["stable"].tolist() == [True, False] and s["lambda_crit"] == pytest.approx(19.0)


def test_lr_phases_and_amplitudes():
    lr = np.array([0.1] * 20 + [0.01] * 3 + [0.001] * 10)
    assert lr_phases(lr, min_points=8) == [(0, 20), (23, 33)]
    C = np.vstack([np.tile([[1.0], [-1.0]], (10, 1)), np.zeros((3, 1)), np.tile([[0.1], [-0.1]], (5, 1))])
    amp = phase_amplitudes(C, lr)
    np.testing.assert_allclose(amp["phase_lr"], [0.1, 0.001])
    np.testing.assert_allclose(amp["phase_amplitude"][:, 0], [np.std([1, -1] * 5, ddof=1),
                                                              np.std([-0.1, 0.1, -0.1, 0.1, -0.1], ddof=1)])


def test_lr_at_steps_takes_the_update_applied_at_each_snapshot():
    np.testing.assert_allclose(lr_at_steps(np.array([0, 5, 10]), np.arange(10), np.arange(10) * 0.1),
                               [0.0, 0.5, 0.9])


def test_trajectory_analysis_bundles_everything():
    X = noisy_quadratic_sgd([0.5, 2.0], 0.1, 1.0, 10.0, 2000, seed=4)
    out = trajectory_analysis(X, np.arange(2000), np.array([0.5, 2.0]), np.full(2000, 0.1), momentum=0.0)
    assert out["settled"].all() and out["stability_stable"].all()
    assert out["tail_lr"] == pytest.approx(0.1) and out["phase_amplitude"].shape == (1, 2)


# ---- the command, end to end on a tiny MNIST-1D run -----------------------------------------------

# V(θ_t − θ_ref) from the command (float64 products of float32 vectors) vs the same recomputed here.
E2E_PROJECTION_ATOL = 1e-10


@pytest.fixture(scope="module")
def eigen_ref(tiny_run, tmp_path_factory):
    from eigen_results import write_dense_eigen

    path = tmp_path_factory.mktemp("trajectory") / "eigen.h5"
    write_dense_eigen(tiny_run.path, path, k=3, steps=[30])
    return path


def _main(*argv):
    from analyses.cli import main

    return main([str(a) for a in argv])


def test_trajectory_command_end_to_end(tiny_run, eigen_ref, tmp_path):
    import shutil

    from landscape.io import ResultsFile, RunFile

    res = tmp_path / "res.h5"
    shutil.copy(eigen_ref, res)
    assert _main("trajectory", tiny_run.path, "--out", res, "--block", "1") == 0
    with ResultsFile(res) as r:
        out, attrs = r.read_item("trajectory/step_00000030/eigenbasis")
        V = r.read_item("hessian/step_00000030/eigen")[0]["eigenvectors"].astype(np.float64)
    with RunFile(tiny_run.path) as rf:
        want = np.stack([V @ (rf.params(s).astype(np.float64) - rf.params(30)) for s in rf.saved_steps])
        lr = rf.step_metrics()["lr"]
    np.testing.assert_allclose(out["coordinates"], want, atol=E2E_PROJECTION_ATOL)
    assert out["steps"].tolist() == [0, 10, 20, 30] and np.all(out["coordinates"][-1] == 0)
    assert out["tail_lr"] == pytest.approx(lr[-1]) and out["stability_threshold"] == pytest.approx(2.0)
    assert attrs["config"]["momentum"] == 0.0
    _draws("trajectory_eigenbasis", res)
    assert _main("trajectory", tiny_run.path, "--out", res, "--block", "1", "--directions", "0") != 0


def _draws(name, path):
    import matplotlib.pyplot as plt

    from analyses.plots import all_figures
    from landscape.io import ResultsFile

    with ResultsFile(path) as r:
        drawn = all_figures()[name].draw(r, None)
    assert len(drawn) == 1 and drawn[0][1].axes
    plt.close(drawn[0][1])


@pytest.mark.parametrize("extra,match", [
    (["--ref-step", "15"], "step 15 is not saved"),
    (["--ref-step", "10"], "no eigenvectors for step(s) 10; steps with eigenvectors: 30"),
    (["--center", "linesearch"], "needs linesearch/step_00000030/curves"),
    (["--directions", "5"], "out of range")])
def test_trajectory_bad_input_is_one_clear_error(tiny_run, eigen_ref, tmp_path, capsys, extra, match):
    import shutil

    shutil.copy(eigen_ref, tmp_path / "res.h5")
    code = _main("trajectory", tiny_run.path, "--out", tmp_path / "res.h5", *extra)
    err = capsys.readouterr().err
    assert code != 0 and match in err and err.count("\n") == 1, err
