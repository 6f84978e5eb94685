"""The three routes (and naive unrolling) against each other and against central differences."""

from __future__ import annotations

import pytest
import torch

import landscape.hyper as lh
from tests.hyper.cases import CASES, FD_RTOL, ROUTE_RTOL, build, case_ids, problem

REVERSE_ROUTES = ("checkpointed", "reversible", "unrolled")


def rel_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


@pytest.fixture(scope="module", params=CASES, ids=case_ids(CASES))
def solved(request):
    case = request.param
    prob, hyper = build(case)
    out = {route: lh.hypergradient(prob, hyper, case["T"], case["wrt"], route=route) for route in REVERSE_ROUTES}
    return case, prob, hyper, out


def test_reverse_routes_agree(solved):
    case, _, _, out = solved
    ref = out["unrolled"]
    for route in ("checkpointed", "reversible"):
        assert out[route].meta_loss == pytest.approx(ref.meta_loss, rel=ROUTE_RTOL)
        for name in case["wrt"]:
            err = rel_error(out[route].grads[name], ref.grads[name])
            assert err < ROUTE_RTOL, f"{route} vs unrolled, {name}: relative error {err:.2e}"


def test_forward_mode_agrees_along_random_directions(solved):
    """⟨∇h, ḣ⟩ from one forward pass equals the reverse gradient projected on ḣ."""
    case, prob, hyper, out = solved
    g = torch.Generator().manual_seed(3)
    tangent = {name: torch.randn(hyper[name].shape, generator=g, dtype=hyper[name].dtype) for name in case["wrt"]}
    fwd = lh.directional(prob, hyper, tangent, [case["T"]])
    want = sum(float((out["checkpointed"].grads[n] * tangent[n]).sum()) for n in case["wrt"])
    assert fwd.derivative[0] == pytest.approx(want, rel=ROUTE_RTOL)
    assert fwd.meta_loss[0] == pytest.approx(out["checkpointed"].meta_loss, rel=1e-12)


def test_central_differences_along_random_direction(solved):
    case, prob, hyper, out = solved
    g = torch.Generator().manual_seed(4)
    tangent = {n: torch.randn(hyper[n].shape, generator=g, dtype=hyper[n].dtype) for n in case["wrt"]
               if n != "momentum"}
    eps = 1e-5
    plus = {k: v + eps * tangent[k] if k in tangent else v for k, v in hyper.items()}
    minus = {k: v - eps * tangent[k] if k in tangent else v for k, v in hyper.items()}
    T = case["T"]
    fd = (lh.train(prob, plus, T)["metrics"][T][0] - lh.train(prob, minus, T)["metrics"][T][0]) / (2 * eps)
    want = sum(float((out["reversible"].grads[n] * tangent[n]).sum()) for n in tangent)
    assert fd == pytest.approx(want, rel=FD_RTOL)


def test_momentum_derivative_by_central_differences():
    """β is quantised to 2^-16; steps of whole quanta see the exact β ± ε."""
    prob = problem()
    T = 10
    hyper = lh.default_hyper(prob, ["momentum"], T)
    eps = 2.0 ** -16
    losses = [lh.train(prob, {"momentum": hyper["momentum"] + s * eps}, T)["metrics"][T][0] for s in (1, -1)]
    fd = (losses[0] - losses[1]) / (2 * eps)
    got = lh.hypergradient(prob, hyper, T, ["momentum"], route="reversible").grads["momentum"]
    assert float(got) == pytest.approx(fd, rel=1e-4)  # O(ε²) truncation with ε = 1.5e-5 on a curved loss


def test_forward_route_gives_full_gradient_of_few_scalars():
    prob = problem()
    hyper = lh.default_hyper(prob, ["log_lr", "log_init_scale"], 8)
    fwd = lh.hypergradient(prob, hyper, 8, ["log_lr", "log_init_scale"], route="forward")
    rev = lh.hypergradient(prob, hyper, 8, ["log_lr", "log_init_scale"], route="checkpointed")
    for name in ("log_lr", "log_init_scale"):
        assert rel_error(fwd.grads[name], rev.grads[name]) < ROUTE_RTOL
    assert len(fwd.info["tangent_norms"]) == 9


def test_one_forward_pass_serves_every_horizon():
    prob = problem()
    hyper = lh.default_hyper(prob, ["log_lr"], 9)
    fwd = lh.directional(prob, hyper, {"log_lr": torch.ones((), dtype=torch.float64)}, [3, 9, 0])
    assert fwd.horizons == [0, 3, 9] and fwd.derivative[0] == 0.0
    for T, d, loss in zip(fwd.horizons[1:], fwd.derivative[1:], fwd.meta_loss[1:]):
        rev = lh.hypergradient(prob, hyper, T, ["log_lr"], route="checkpointed")
        assert d == pytest.approx(float(rev.grads["log_lr"]), rel=ROUTE_RTOL)
        assert loss == pytest.approx(rev.meta_loss, rel=1e-12)


def test_plain_sgd_without_momentum():
    prob = problem(momentum=0.0)
    hyper = lh.default_hyper(prob, ["log_lr"], 6)
    a = lh.hypergradient(prob, hyper, 6, ["log_lr"], route="checkpointed")
    b = lh.hypergradient(prob, hyper, 6, ["log_lr"], route="unrolled")
    c = lh.hypergradient(prob, hyper, 6, ["log_lr"], route="forward")
    assert rel_error(a.grads["log_lr"], b.grads["log_lr"]) < ROUTE_RTOL
    assert rel_error(c.grads["log_lr"], b.grads["log_lr"]) < ROUTE_RTOL


def test_nesterov_forward_checkpointed_and_unrolled_agree():
    prob = problem(nesterov=True)
    hyper = lh.default_hyper(prob, ["log_lr", "momentum"], 6)
    a = lh.hypergradient(prob, hyper, 6, ["log_lr", "momentum"], route="checkpointed")
    b = lh.hypergradient(prob, hyper, 6, ["log_lr", "momentum"], route="unrolled")
    c = lh.hypergradient(prob, hyper, 6, ["log_lr", "momentum"], route="forward")
    for name in ("log_lr", "momentum"):
        assert rel_error(a.grads[name], b.grads[name]) < ROUTE_RTOL
        assert rel_error(c.grads[name], b.grads[name]) < ROUTE_RTOL
