"""Learning-rate regimes, the depth and init sweeps, and the batched descent they run on."""

import numpy as np
import pytest
import torch

import landscape as ls
from analyses.deeplinear import config as C
from analyses.deeplinear import data as Dd
from analyses.deeplinear import depth as DP
from analyses.deeplinear import records as R
from analyses.deeplinear import regimes as RG
from analyses.deeplinear.descent import descend, log_steps
from analyses.deeplinear.tracker import Tracker
from landscape.models import build_model

# float64 GD paths of a few dozen steps: the batched closed-form engine and the Objective
# differ only by rounding (~1e-15 per step, amplified at most mildly by the contraction).
PATH_RTOL = 1e-10


@pytest.fixture(scope="module")
def m():
    return Dd.scalar_data(C.DataConfig()).moments


@pytest.mark.parametrize("rho_end,rho_max,want", [
    (1e-4, 1e-4, "too small"), (0.01, 0.05, "slightly small"), (0.3, 0.4, "about right"),
    (0.7, 0.8, "oscillating"), (0.3, 1.5, "oscillating"), (1.2, 1.2, "divergent")])
def test_label_rule(rho_end, rho_max, want):
    rho = np.array([rho_max, (rho_max + rho_end) / 2, rho_end])
    assert RG.label(rho, 10.0, 1.0, False, steps=200) == want


def test_blow_up_or_rising_loss_is_divergent():
    rho = np.array([0.2, 0.2])
    assert RG.label(rho, 1.0, 2.0, False, 10) == "divergent"
    assert RG.label(np.array([0.2, np.nan]), 1.0, np.nan, True, 10) == "divergent"


def test_quadratic_regimes_follow_two_over_lambda(m):
    """Depth 1 is a quadratic with λ = 2⟨x²⟩ everywhere: the label is set by η·λ/2 alone."""
    lam = 2 * m.xx
    factors = np.array([1e-4, 0.03, 0.3, 0.8, 1.1])
    lrs = factors * 2 / lam
    r = descend(torch.full((5, 1), 0.1, dtype=torch.float64), torch.as_tensor(lrs), m, 100,
                curvature_steps=np.arange(101))
    assert np.allclose(r.lam[np.isfinite(r.lam)], lam)
    labels = RG.labels(lrs, r.lam, r.loss, r.diverged_at >= 0, 100)
    assert labels == ["too small", "slightly small", "about right", "oscillating", "divergent"], labels


def test_default_regimes_show_all_five_in_order():
    rec = R.regimes(C.StudyConfig())
    idx = rec.arrays["label_index"]
    assert set(rec.arrays["label"]) == set(RG.REGIMES), rec.arrays["label"]
    assert (np.diff(idx) >= 0).all(), f"labels not ordered by η: {rec.arrays['label']}"
    assert rec.arrays["lam"].shape == rec.arrays["loss"].shape


def test_batched_descent_equals_gd_through_the_objective(m):
    data = Dd.scalar_data(C.DataConfig())
    net = build_model("deep_linear", seed=0, depth=4, width=1, in_dim=1, out_dim=1)
    obj = ls.Objective(net, data.x, data.y, loss="mse", batch_size=73, dtype=torch.float64)
    W0 = torch.tensor([[0.9, 1.1, 0.8, 1.2]], dtype=torch.float64)
    r = descend(W0, torch.tensor([0.01], dtype=torch.float64), m, 25, keep_path=True)
    theta = W0[0].clone()
    for _ in range(25):
        theta = theta - 0.01 * obj.grad(theta)
    assert np.abs(r.path[0, -1] - theta.numpy()).max() <= PATH_RTOL
    assert abs(r.loss[0, -1] - float(obj.loss(theta))) <= PATH_RTOL * abs(r.loss[0, -1])


def test_tracker_learning_time_resets_and_race():
    tr = Tracker(3, level=1.0, floor=1.0, record_steps=[0, 1, 2, 3], groups=torch.tensor([0, 0, 1]))
    for t, L in enumerate(([5, 5, 5], [0.5, 5, 5], [0.5, 0.5, 5], [2, 0.5, 5])):
        tr.book(t, torch.tensor(L, dtype=torch.float64))
    assert tr.learned.tolist() == [-1, 2, -1], "a run that leaves the threshold again is not learned"
    tr.race(200)          # row 1 has held since step 2 for ≥ 100 steps: it wins group 0; group 1 has no winner
    assert tr.alive.tolist() == [False, True, True] and tr.stopped.tolist() == [200, -1, -1]


def test_divergence_is_detected_and_frozen(m):
    r = descend(torch.full((2, 2), 1.0, dtype=torch.float64), torch.tensor([0.01, 5.0], dtype=torch.float64), m, 50)
    assert r.diverged_at[0] == -1 and r.diverged_at[1] > 0
    assert np.isnan(r.loss[1, -1]) and np.isfinite(r.loss[0, -1])


def test_best_rows_prefer_shortest_then_larger_eta():
    learned = np.array([[5, 3, 3, -1], [-1, -1, -1, -1], [2, 4, 6, 8]])
    assert DP.best_rows(learned).tolist() == [2, -1, 0]


def test_depth_lessons_on_a_small_sweep(m):
    """Learning time grows with depth at c = 0.9 and the best η falls with depth (the lecture)."""
    cfg = C.DepthConfig(depths=(2, 10, 30, 50), inits=(0.9,), lrs=C.log_grid(1e-3, 0.5, 13), max_steps=3000)
    out = DP.depth_sweep(m, cfg)
    t, eta = out["best_time"][:, 0], out["best_lr"][:, 0]
    assert (t[1:] >= 0).all() and (np.diff(t[1:]) > 0).all(), f"learning times {t}"
    assert (np.diff(eta) < 0).all(), f"best η {eta}"
    assert (eta <= out["critical_lr"] * (1 + 1e-12)).all(), "a stable best η sits below 2/λ at the minimum"


def test_init_sweep_products_and_rows(m):
    cfg = C.DepthConfig(init_depth=6, init_cs=(0.8, 1.0, 1.2), init_sigmas=(0.3,), init_seeds=2,
                        lrs=(0.01, 0.03), init_max_steps=300)
    out = DP.init_sweep(m, cfg)
    assert out["init_kind"].tolist() == [0, 0, 0, 1, 1]
    assert np.allclose(out["product0"][:3], np.array([0.8, 1.0, 1.2]) ** 6)
    assert np.allclose(out["product_table"][:, 5], np.array([0.8, 1.0, 1.2]) ** 6)
    assert out["learning_time"].shape == (5, 2)


def test_log_steps():
    s = log_steps(1000, 50)
    assert s[0] == 0 and s[-1] == 1000 and (np.diff(s) > 0).all()


def test_page_grid_shapes_and_labels():
    from analyses.deeplinear import page as PG

    cfg = C.PageConfig(depths=(1, 2, 8), lrs=(0.01, 0.05, 0.9), inits=(0.8, 1.0), steps=100, curve_points=20,
                       trajectory_steps=40, grid=11, curvature_points=8)
    out = PG.page_grid(Dd.scalar_data(C.DataConfig()), cfg)
    assert out["loss"].shape[:3] == (3, 2, 3) and out["label"].shape == (3, 2, 3)
    assert out["path"].shape == (2, 3, 41, 2) and out["surface"].shape == (11, 11)
    assert out["label"][0, 1, 0] == RG.REGIMES.index("slightly small")
    assert out["label"][0, 1, 2] == RG.REGIMES.index("oscillating")   # D = 1: ρ = 0.9·⟨x²⟩ ≈ 0.97
