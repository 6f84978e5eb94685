"""Meta-optimisation pieces: parameterisations φ → h, per-block normalisation, the meta-step, θ_T of every route."""

from __future__ import annotations

import math

import pytest
import torch

import landscape.hyper as lh
from landscape.errors import InputError
from landscape.hyper.meta import (MetaOptimizer, Parameterization, interpolation_matrix, knot_steps, layer_blocks,
                                  normalize)
from tests.hyper.cases import problem

# float64 round trips (exp/log, cumsum of K terms, sigmoid/logit) lose a few ulps of the largest entry.
ROUNDTRIP_RTOL = 1e-12
# The meta-step against torch.optim: the same formulas in another operation order (Adam's bias corrections).
OPTIM_RTOL = 1e-12


def test_monotone_roundtrip_and_every_bin_keeps_mass():
    p = Parameterization("monotone")
    h = torch.sort(torch.randn(3, 7, dtype=torch.float64), dim=1).values
    torch.testing.assert_close(p.to_hyper(p.from_hyper(h)), h, rtol=ROUNDTRIP_RTOL, atol=1e-14)
    phi = torch.randn(3, 7, dtype=torch.float64) * 5          # any φ at all
    assert bool((p.to_hyper(phi).diff(dim=1) > 0).all())        # strictly increasing: finite positive density
    with pytest.raises(InputError, match="non-decreasing"):
        p.from_hyper(torch.tensor([[0.0, 1.0, 0.5]]))


def test_knots_interpolate_linearly_and_reduce_to_identity():
    T, n = 10, 4
    M = interpolation_matrix(T, n)
    torch.testing.assert_close(M.sum(1), torch.ones(T, dtype=torch.float64))
    assert knot_steps(T, n).tolist() == [0, 3, 6, 9]
    torch.testing.assert_close(interpolation_matrix(T, T), torch.eye(T, dtype=torch.float64))
    p = Parameterization("knots", steps=T)
    line = torch.linspace(-1, 2, T, dtype=torch.float64)[:, None].repeat(1, 2)   # linear in t: exact through knots
    torch.testing.assert_close(p.to_hyper(p.from_hyper(line, n)), line, rtol=ROUNDTRIP_RTOL, atol=1e-14)
    with pytest.raises(InputError, match="between 1 and 10 knots"):
        knot_steps(T, 11)


@pytest.mark.parametrize("kind,shape", [("monotone", (2, 5)), ("knots", (3, 2)), ("logit", (4,)), ("identity", (3,))])
def test_pull_is_the_jacobian_transpose(kind, shape):
    p = Parameterization(kind, steps=7)
    g = torch.Generator().manual_seed(0)
    phi = torch.randn(shape, generator=g, dtype=torch.float64)
    h = p.to_hyper(phi)
    cot = torch.randn(h.shape, generator=g, dtype=torch.float64)
    J = torch.autograd.functional.jacobian(p.to_hyper, phi).reshape(h.numel(), phi.numel())
    want = (J.T @ cot.reshape(-1)).reshape(shape)
    torch.testing.assert_close(p.pull(phi, cot), want, rtol=ROUNDTRIP_RTOL, atol=1e-14)


def test_normalize_gives_unit_rms_per_block():
    g = torch.tensor([1.0, 1.0, 100.0, -100.0, 0.0, 0.0], dtype=torch.float64)
    blocks = torch.tensor([0, 0, 1, 1, 2, 2])
    out, rms = normalize(g, blocks, "layer")
    torch.testing.assert_close(rms, torch.tensor([1.0, 100.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(out, torch.tensor([1.0, 1.0, 1.0, -1.0, 0.0, 0.0], dtype=torch.float64))
    whole, rms1 = normalize(g, blocks, "group")
    assert rms1.shape == (1,) and math.isclose(float(whole.square().mean().sqrt()), 1.0)
    raw, _ = normalize(g, blocks, "none")
    assert torch.equal(raw, g)
    with pytest.raises(InputError, match="unknown normalisation"):
        normalize(g, blocks, "batch")


def test_layer_blocks_follow_the_parameter_tensors():
    prob = problem(hidden=(8,))                      # W1 (8,40), b1, W2 (10,8), b2: L = 4
    L, P = 4, prob.P
    assert layer_blocks(prob, "log_lr", (5, L))[0].tolist() == [0, 1, 2, 3]
    assert layer_blocks(prob, "log_lr", (5, 1)).unique().tolist() == [0]
    assert layer_blocks(prob, "init_quantiles", (L, 6))[:, 0].tolist() == [0, 1, 2, 3]
    per_weight = layer_blocks(prob, "log_l2", (P,))
    assert torch.bincount(per_weight).tolist() == [320, 8, 80, 10]
    assert layer_blocks(prob, "train_inputs", tuple(prob.x_train.shape)).unique().tolist() == [0]


def _torch_step(opt_cls, phi, grads, steps, **kw):
    leaves = {k: v.clone().requires_grad_(True) for k, v in phi.items()}
    opt = opt_cls(list(leaves.values()), **kw)
    for g in grads[:steps]:
        for k, v in leaves.items():
            v.grad = g[k].clone()
        opt.step()
    return {k: v.detach() for k, v in leaves.items()}


@pytest.mark.parametrize("kind", ["adam", "sgd"])
def test_meta_step_is_torch_optim(kind):
    g = torch.Generator().manual_seed(0)
    phi = {"a": torch.randn(3, generator=g, dtype=torch.float64), "b": torch.randn(2, 2, generator=g, dtype=torch.float64)}
    grads = [{k: torch.randn(v.shape, generator=g, dtype=torch.float64) for k, v in phi.items()} for _ in range(4)]
    meta = MetaOptimizer(kind, {"a": 0.1, "b": 0.1}, momentum=0.9)
    state, ours = meta.init_state(phi), dict(phi)
    for grad in grads:
        ours, state = meta.step(ours, grad, state)
    ref = (_torch_step(torch.optim.Adam, phi, grads, 4, lr=0.1, eps=1e-8) if kind == "adam"
           else _torch_step(torch.optim.SGD, phi, grads, 4, lr=0.1, momentum=0.9))
    for k in phi:
        torch.testing.assert_close(ours[k], ref[k], rtol=OPTIM_RTOL, atol=1e-14)
    assert int(state["t"]) == 4


@pytest.mark.parametrize("lr", [0.0, -0.1, math.nan, math.inf])
def test_meta_learning_rate_must_be_positive_and_finite(lr):
    with pytest.raises(InputError, match="meta-learning rate of a must be a finite number > 0"):
        MetaOptimizer("adam", {"a": lr})


@pytest.mark.parametrize("route", ["forward", "checkpointed", "reversible", "unrolled"])
def test_every_route_returns_the_trained_parameters(route):
    prob = problem(hidden=(6,), steps=6)
    h = lh.default_hyper(prob, ["log_lr"], 6)
    res = lh.hypergradient(prob, h, 6, ["log_lr"], route=route)
    ref = lh.train(prob, h, 6)["theta"]
    # reversible: a fixed-point trajectory (≈ 2^-36 per step from the float one); others: the same float64 run
    torch.testing.assert_close(res.theta, ref, rtol=0, atol=1e-9 if route == "reversible" else 1e-13)


def test_scaled_monotone_moves_each_row_by_its_own_range():
    h = torch.tensor([[-1.0, 0.0, 1.0], [-0.01, 0.0, 0.01]], dtype=torch.float64)
    p = Parameterization.scaled(h)
    phi = p.from_hyper(h)
    torch.testing.assert_close(p.to_hyper(phi), h, rtol=ROUNDTRIP_RTOL, atol=1e-15)
    moved = p.to_hyper(phi + torch.tensor([0.1, 0.0, 0.0], dtype=torch.float64))   # shift the first knot by 0.1
    torch.testing.assert_close(moved - h, torch.tensor([[0.2] * 3, [0.002] * 3], dtype=torch.float64))
