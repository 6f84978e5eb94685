"""Memory of the routes, the reversibility check, and bad input (one clear error each)."""

from __future__ import annotations

import math

import pytest
import torch

import landscape.hyper as lh
from landscape.errors import InputError, NonFiniteError
from landscape.hyper.reverse import segment_length, stored_states
from landscape.models import build_model
from tests.hyper.cases import DTYPE, data, problem


@pytest.mark.parametrize("T", [1, 2, 10, 37, 100, 1000, 10_000])
def test_checkpointing_stores_at_most_two_root_T_states(T):
    k = segment_length(T)
    assert stored_states(T, k) <= max(2 * math.sqrt(T), 1)


def test_budget_trades_memory_for_recomputation():
    assert segment_length(100, budget=100) == 100           # everything kept: no recomputation
    assert stored_states(100, segment_length(100, budget=25)) <= 25
    with pytest.raises(InputError, match="at least 19"):
        segment_length(100, budget=5)


def test_checkpointed_route_reports_its_states_and_meets_the_budget():
    prob = problem(steps=40)
    hyper = lh.default_hyper(prob, ["log_lr"], 40)
    out = lh.hypergradient(prob, hyper, 40, ["log_lr"], route="checkpointed", budget=20)
    ref = lh.hypergradient(prob, hyper, 40, ["log_lr"], route="checkpointed")
    assert out.memory["stored_states"] <= 20 and ref.memory["stored_states"] <= 2 * math.sqrt(40)
    assert float(out.grads["log_lr"]) == pytest.approx(float(ref.grads["log_lr"]), rel=1e-12)


def test_reversible_memory_is_a_small_fraction_of_stored_states():
    prob = problem(steps=40, momentum=0.9)
    out = lh.hypergradient(prob, lh.default_hyper(prob, ["log_lr"], 40), 40, ["log_lr"], route="reversible")
    assert out.info["exact_return"]
    assert out.info["ratio_to_storing_states"] <= 1 / 20
    assert out.memory["buffer_bits"] > 0


@pytest.mark.parametrize("momentum", [0.0])
def test_reversible_refuses_momentum_without_a_bit_budget(momentum):
    prob = problem(momentum=momentum)
    with pytest.raises(InputError, match="no finite bit budget"):
        lh.hypergradient(prob, lh.default_hyper(prob, ["log_lr"], 5), 5, ["log_lr"], route="reversible")


def test_reversible_refuses_momentum_one_and_nesterov():
    prob = problem()
    with pytest.raises(InputError, match="no finite bit budget.*β = 1 never forgets"):
        lh.hypergradient(prob, {"momentum": torch.tensor(1.0, dtype=DTYPE)}, 5, ["momentum"], route="reversible")
    with pytest.raises(InputError, match="momentum must lie in"):   # the other routes: a plain range error
        lh.hypergradient(prob, {"momentum": torch.tensor(1.0, dtype=DTYPE)}, 5, ["momentum"], route="forward")
    with pytest.raises(InputError, match="Nesterov"):
        nprob = problem(nesterov=True)
        lh.hypergradient(nprob, lh.default_hyper(nprob, ["log_lr"], 5), 5, ["log_lr"], route="reversible")


def test_non_deterministic_gradients_are_caught_by_the_return_check(monkeypatch):
    prob = problem()
    hyper = lh.default_hyper(prob, ["log_lr"], 5)
    calls = {"n": 0}
    original = prob.batch_loss

    def flaky(theta, t, x):   # the reverse pass sees a gradient one rounding away from the forward's
        calls["n"] += 1
        loss = original(theta, t, x)
        return loss * (1 + 1e-13) if calls["n"] > 5 else loss

    monkeypatch.setattr(prob, "batch_loss", flaky)
    with pytest.raises(lh.ReversibilityError, match="did not retrace"):
        lh.hypergradient(prob, hyper, 5, ["log_lr"], route="reversible")


BAD = [
    dict(id="unknown-group", hyper=lambda p: {"lr": torch.tensor(0.1)}, T=5, match="unknown hyperparameter"),
    dict(id="bad-shape", hyper=lambda p: {"log_lr": torch.zeros(3, 3)}, T=5, match="allowed"),
    dict(id="T-zero", hyper=lambda p: {}, T=0, match="positive integer"),
    dict(id="T-negative", hyper=lambda p: {}, T=-3, match="positive integer"),
    dict(id="beyond-the-plan", hyper=lambda p: {}, T=41, match="covers 40 steps"),
    dict(id="non-finite", hyper=lambda p: {"log_lr": torch.tensor(float("nan"))}, T=5, match="non-finite"),
]


@pytest.mark.parametrize("case", BAD, ids=[c["id"] for c in BAD])
def test_bad_input_is_one_clear_error(case):
    prob = problem(steps=40)
    for route in lh.ROUTES:
        with pytest.raises(InputError, match=case["match"]):
            lh.hypergradient(prob, case["hyper"](prob), case["T"], ["log_lr"], route=route)


def test_unknown_route_and_missing_group():
    prob = problem()
    with pytest.raises(InputError, match="unknown route"):
        lh.hypergradient(prob, {}, 3, ["log_lr"], route="sideways")
    for route in lh.ROUTES:
        with pytest.raises(InputError, match="not among the hyperparameters"):
            lh.hypergradient(prob, {}, 3, ["log_lr"], route=route)
    with pytest.raises(InputError, match="unknown hyperparameter group"):
        lh.default_hyper(prob, ["lr"], 3)


def test_nan_meta_loss_is_an_error_in_every_route():
    prob = problem(lr=1e6, momentum=0.9)
    hyper = lh.default_hyper(prob, ["log_lr"], 20)
    for route in lh.ROUTES:
        with pytest.raises(NonFiniteError, match="diverged"):
            lh.hypergradient(prob, hyper, 20, ["log_lr"], route=route)


def test_batchnorm_models_are_refused():
    ds = data()
    net = build_model("cnn1d", seed=0, channels=[2], kernel_size=3, norm="bn").to(DTYPE)
    with pytest.raises(InputError, match="BatchNorm"):
        lh.TrainingProblem(net, ds.x_train, ds.y_train, ds.x_test, ds.y_test, batches=None)


def test_quantile_knots_reproduce_the_initial_values():
    prob = problem()
    from landscape.hyper.hyperparams import initial_theta
    for K in (2, 16, 64):
        knots = lh.quantile_knots(prob, K)
        got = initial_theta(prob, {"init_quantiles": knots})
        # Q interpolates the empirical quantile function between knots: off by at most one knot gap
        for layer, sl in enumerate(prob.spec.slices().values()):
            gap = float(knots[layer].diff().max())
            assert float((got[sl] - prob.theta_base[sl]).abs().max()) <= gap + 1e-15
            assert float(got[sl].min()) == float(prob.theta_base[sl].min())   # the ends are knots
            assert float(got[sl].max()) == pytest.approx(float(prob.theta_base[sl].max()), rel=1e-15)


def test_momentum_is_rounded_to_sixteen_bits_like_the_reversible_route():
    from landscape.hyper.hyperparams import momentum_at, quantize_momentum
    prob = problem(momentum=0.9)
    assert quantize_momentum(0.9) == 58982 / 65536
    assert momentum_at(prob, {}, 0) == 58982 / 65536
    beta = torch.tensor(0.9, dtype=DTYPE, requires_grad=True)
    q = momentum_at(prob, {"momentum": beta}, 0)
    (d,) = torch.autograd.grad(q, beta)
    assert float(q.detach()) == 58982 / 65536 and float(d) == 1.0     # straight-through derivative
