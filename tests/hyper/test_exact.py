"""Fixed-point vectors and the information buffer: exact inverses, bit counts, range errors."""

from __future__ import annotations

import math

import pytest
import torch

from landscape.errors import NonFiniteError
from landscape.hyper.exact import SCALE, ExactVector, InfoBuffer, from_fixed, to_fixed
from landscape.optim import sgd_revert_exact, sgd_update, sgd_update_exact

BETAS = [0.5, 0.9, 0.99, 0.1]


def numerator(beta: float) -> int:
    return round(beta * 2 ** 16)


@pytest.mark.parametrize("beta", BETAS)
def test_mul_then_div_is_the_identity_bit_for_bit(beta):
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(257, generator=g, dtype=torch.float64) * 3
    buf = InfoBuffer(257)
    v = ExactVector(x0, buf)
    start = v.ints.clone()
    n = numerator(beta)
    steps = math.ceil(80 / math.log2(2 ** 16 / n))   # ≈ 80 bits per weight: at least one spilled word
    adds = [torch.randn(257, generator=g, dtype=torch.float64) * 0.01 for _ in range(steps)]
    for a in adds:
        v.mul(n).add(a)
    assert buf.words, f"expected spilled words after {steps} products"
    for a in reversed(adds):
        v.sub(a).div(n)
    assert torch.equal(v.ints, start) and buf.is_empty()


@pytest.mark.parametrize("beta", BETAS)
def test_buffer_holds_about_log2_one_over_beta_bits_per_step(beta):
    buf = InfoBuffer(10)
    v = ExactVector(torch.ones(10, dtype=torch.float64), buf)
    steps = 2000
    for _ in range(steps):
        v.mul(numerator(beta))
    per_step = buf.bits / (10 * steps)
    ideal = math.log2(2 ** 16 / numerator(beta))
    # the bound on each top is data-independent: at most one word plus the top's bits above the ideal
    assert ideal <= per_step <= ideal + (32 + 48) / steps


def test_product_is_beta_times_x_to_within_n_units():
    x = torch.linspace(-5, 5, 101, dtype=torch.float64)
    n = numerator(0.9)
    v = ExactVector(x, InfoBuffer(101)).mul(n)
    assert (v.value() - x * n / 2 ** 16).abs().max() <= n / SCALE


def test_fixed_point_range_is_checked():
    with pytest.raises(NonFiniteError, match="fixed-point range"):
        to_fixed(torch.tensor([1.0, 2048.0], dtype=torch.float64))
    with pytest.raises(NonFiniteError, match="fixed-point range"):
        to_fixed(torch.tensor([float("nan")], dtype=torch.float64))
    assert torch.equal(from_fixed(to_fixed(torch.tensor([0.5, -0.25]))), torch.tensor([0.5, -0.25], dtype=torch.float64))


def test_exact_update_follows_the_trainers_rule_and_reverts():
    """sgd_update_exact = sgd_update to fixed-point rounding; sgd_revert_exact undoes it exactly."""
    g = torch.Generator().manual_seed(1)
    theta0 = torch.randn(50, generator=g, dtype=torch.float64)
    grads = [torch.randn(50, generator=g, dtype=torch.float64) for _ in range(5)]
    n, lr, wd = numerator(0.9), 0.3, 1e-2
    th, m = ExactVector(theta0), ExactVector(torch.zeros(50, dtype=torch.float64), InfoBuffer(50))
    ref_th, ref_m = theta0.clone(), torch.zeros(50, dtype=torch.float64)
    for gt in grads:
        sgd_update_exact(th, gt, m, lr, n, wd)
        ref_th, ref_m = sgd_update(ref_th, gt, ref_m, lr, n / 2 ** 16, False, wd)
    # each product is exact to n units of 2^-52 (the popped low digits); 5 steps, |η| < 1
    tol = 5 * (n + 2) / SCALE / (1 - 0.9)
    assert (th.value() - ref_th).abs().max() < tol and (m.value() - ref_m).abs().max() < tol
    for gt in reversed(grads):
        sgd_revert_exact(th, m, lr, n, wd, lambda _value, gt=gt: gt)
    assert torch.equal(th.ints, to_fixed(theta0)) and not m.ints.any() and m.buffer.is_empty()
