"""The step map's spectral radius against dense Jacobians and a direct eigsh on J = I − ηA."""

from __future__ import annotations

import math

import pytest
import torch

import landscape.hyper as lh
from landscape.hyper.chaos import StepJacobian, momentum_radius, step_stability
from landscape.hyper.hyperparams import lr_at, momentum_at, weight_decay
from landscape.optim import sgd_update
from landscape.solvers import eigsh
from tests.hyper.cases import problem

# ρ from two Lanczos eigenvalues certified to EIG_TOL·‖B‖ (1e-4 by default; 1e-9 asked here) against
# a dense float64 eigendecomposition.
RHO_RTOL = 1e-6


def dense_step_jacobian(prob, hyper, t, theta):
    """∂(θ_{t+1}, m_{t+1})/∂(θ_t, m_t) by torch.func.jacrev, (2P, 2P)."""
    P = prob.P

    def step(state):
        th, m = state[:P], state[P:]
        g = torch.func.grad(lambda p: prob.batch_loss(p, t, prob.x_train))(th)
        out = sgd_update(th, g, m, lr_at(prob, hyper, t), momentum_at(prob, hyper, t), False,
                         weight_decay(prob, hyper))
        return torch.cat(out)

    return torch.func.jacrev(step)(torch.cat([theta, torch.randn_like(theta)]))


CASES = [dict(id="gd", momentum=0.0, lr=0.3, wd=0.0), dict(id="heavy-ball", momentum=0.9, lr=0.3, wd=1e-2),
         dict(id="heavy-ball-large-lr", momentum=0.5, lr=5.0, wd=0.0)]


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_spectral_radius_matches_the_dense_step_jacobian(case):
    prob = problem(hidden=(3,), momentum=case["momentum"], lr=case["lr"], weight_decay=case["wd"])
    theta = prob.theta_base
    got = step_stability(prob, {}, 2, theta, tol=1e-9, max_matvecs=2000)
    J = dense_step_jacobian(prob, {}, 2, theta)
    if case["momentum"] == 0:   # m does not enter: the θ block alone
        J = J[:prob.P, :prob.P]
    want = float(torch.linalg.eigvals(J).abs().max())
    assert got.rho == pytest.approx(want, rel=RHO_RTOL)
    assert got.threshold == 2 * (1 + got.beta)


def test_gd_radius_equals_eigsh_on_the_step_jacobian_operator():
    prob = problem(hidden=(4,), momentum=0.0, lr=2.0)
    theta = lh.train(prob, {}, 5)["theta"]
    J = StepJacobian(prob, {}, 5, theta)
    direct = eigsh(J, k=1, which="LM", tol=1e-10, seed=0)
    got = step_stability(prob, {}, 5, theta, tol=1e-10, max_matvecs=3000)
    assert got.rho == pytest.approx(float(direct.eigenvalues.abs()[0]), rel=RHO_RTOL)
    assert got.b_max == pytest.approx(2.0 * got.lambda_max, rel=1e-12)


def test_momentum_radius_closed_form():
    for beta in (0.0, 0.5, 0.9):
        assert momentum_radius(2 * (1 + beta), beta) == pytest.approx(1.0)       # the edge
        assert momentum_radius(2 * (1 + beta) * 1.01, beta) > 1 > momentum_radius(2 * (1 + beta) * 0.99, beta)
        assert momentum_radius(0.0, beta) == pytest.approx(1.0)                    # flat direction
    assert momentum_radius(1.0, 0.9) == pytest.approx(math.sqrt(0.9))            # complex pair
