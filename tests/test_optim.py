"""landscape.optim: the one update rule, with number and with tensor hyperparameters."""

import pytest
import torch

from landscape.optim import adamw_update, sgd_update

# Tensor hyperparameters run mul-then-add where numbers run torch's fused add(alpha=):
# the two differ by float64 rounding, a few ulps of |θ| + η|d| per step over 5 steps.
SAME_RULE_RTOL = 1e-13
OPTIMISERS = [(0.0, False, 0.0), (0.9, False, 0.0), (0.9, True, 5e-4), (0.5, False, 1e-2)]


def _run(lr, momentum, nesterov, weight_decay, steps=5):
    gen = torch.Generator().manual_seed(1)
    theta = torch.randn(50, generator=gen, dtype=torch.float64)
    m = torch.zeros_like(theta)
    for _ in range(steps):
        g = torch.randn(50, generator=gen, dtype=torch.float64)
        theta, m = sgd_update(theta, g, m, lr, momentum, nesterov, weight_decay)
    return theta


@pytest.mark.parametrize("momentum,nesterov,weight_decay", OPTIMISERS)
def test_tensor_hyperparameters_give_the_number_rule(momentum, nesterov, weight_decay):
    as_numbers = _run(0.1, momentum, nesterov, weight_decay)
    t = lambda x: torch.tensor(x, dtype=torch.float64)  # noqa: E731
    as_tensors = _run(t(0.1), t(momentum), nesterov, t(weight_decay))
    torch.testing.assert_close(as_tensors, as_numbers, rtol=SAME_RULE_RTOL, atol=0)


def test_rule_is_differentiable_in_the_learning_rate():
    """dθ_1/dη = −g for one plain step from m = 0, through forward and reverse mode."""
    theta, g = torch.ones(3, dtype=torch.float64), torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)
    step = lambda lr: sgd_update(theta, g, None, lr, 0.0, False, 0.0)[0]  # noqa: E731
    lr = torch.tensor(0.1, dtype=torch.float64)
    _, tangent = torch.func.jvp(step, (lr,), (torch.ones((), dtype=torch.float64),))
    assert torch.equal(tangent, -g)
    assert torch.equal(torch.func.jacrev(step)(lr), -g)


def test_per_weight_rates_and_penalties_broadcast():
    theta, g = torch.ones(4, dtype=torch.float64), torch.zeros(4, dtype=torch.float64)
    lr = torch.tensor([0.0, 0.1, 0.2, 0.3], dtype=torch.float64)
    wd = torch.full((4,), 2.0, dtype=torch.float64)
    new, _ = sgd_update(theta, g, None, lr, 0.0, False, wd)
    assert torch.equal(new, 1 - 2 * lr)


# --- AdamW --------------------------------------------------------------------------------------
ADAMW = [((0.9, 0.999), 1e-8, 0.0), ((0.9, 0.99), 1e-8, 0.05), ((0.5, 0.9), 1e-3, 1e-2)]


def _params(shapes, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(*s, generator=gen)) for s in shapes]


@pytest.mark.parametrize("betas,eps,weight_decay", ADAMW)
@pytest.mark.parametrize("shapes", [[(37,)], [(5, 7), (7,), (3, 5, 2), (1,)]], ids=["flat", "module"])
def test_adamw_update_is_torch_adamw_bitwise(shapes, betas, eps, weight_decay):
    """The rule on the flat θ equals torch.optim.AdamW (for-loop) on the separate tensors, bit for bit."""
    params = _params(shapes)
    opt = torch.optim.AdamW(params, lr=1e-2, betas=betas, eps=eps, weight_decay=weight_decay, foreach=False)
    theta = torch.cat([p.detach().reshape(-1) for p in params])
    m, v = torch.zeros_like(theta), torch.zeros_like(theta)
    gen = torch.Generator().manual_seed(3)
    for t in range(1, 9):
        grads = [torch.randn(*s, generator=gen) for s in shapes]
        for p, g in zip(params, grads):
            p.grad = g.clone()
        opt.step()
        theta, m, v = adamw_update(theta, torch.cat([g.reshape(-1) for g in grads]), m, v, t, 1e-2, betas, eps,
                                   weight_decay)
    assert torch.equal(theta, torch.cat([p.detach().reshape(-1) for p in params]))
    assert torch.equal(v, torch.cat([opt.state[p]["exp_avg_sq"].reshape(-1) for p in params]))


@pytest.mark.parametrize("betas,eps,weight_decay", ADAMW)
def test_adamw_tensor_hyperparameters_give_the_number_rule(betas, eps, weight_decay):
    gen = torch.Generator().manual_seed(1)
    t64 = lambda x: torch.tensor(x, dtype=torch.float64)  # noqa: E731
    runs = []
    for hyper in ((0.1, betas, weight_decay), (t64(0.1), tuple(map(t64, betas)), t64(weight_decay))):
        gen.manual_seed(1)
        theta = torch.randn(40, generator=gen, dtype=torch.float64)
        m, v = torch.zeros_like(theta), torch.zeros_like(theta)
        for t in range(1, 6):
            theta, m, v = adamw_update(theta, torch.randn(40, generator=gen, dtype=torch.float64), m, v, t,
                                       hyper[0], hyper[1], eps, hyper[2])
        runs.append(theta)
    torch.testing.assert_close(runs[1], runs[0], rtol=SAME_RULE_RTOL, atol=0)


def test_adamw_first_step_is_sign_descent_and_differentiable_in_lr():
    """From m = v = 0 the first step is θ − η·g/(|g| + ε/…) ≈ θ − η·sign(g); dθ/dη = −m̂/(√v̂ + ε)."""
    theta, g = torch.zeros(3, dtype=torch.float64), torch.tensor([2.0, -0.5, 1e-3], dtype=torch.float64)
    zeros = torch.zeros(3, dtype=torch.float64)
    new, _, _ = adamw_update(theta, g, zeros, zeros, 1, 0.1, (0.9, 0.999), 1e-12, 0.0)
    torch.testing.assert_close(new, -0.1 * torch.sign(g), rtol=1e-8, atol=0)
    step = lambda lr: adamw_update(theta, g, zeros, zeros, 1, lr, (0.9, 0.999), 1e-12, 0.0)[0]  # noqa: E731
    torch.testing.assert_close(torch.func.jacrev(step)(torch.tensor(0.1, dtype=torch.float64)), -torch.sign(g),
                               rtol=1e-8, atol=0)


# ---- the update shaped in a subspace ---------------------------------------------------------------
from landscape.errors import InputError  # noqa: E402
from landscape.optim import SubspaceShape  # noqa: E402

# Shaped and plain rules differ by the rounding of V(Vᵀd) in float64 (a few ulps of ‖d‖).
SHAPED_RTOL = 1e-12


def _orthonormal(k, P, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.linalg.qr(torch.randn(P, k, generator=gen, dtype=torch.float64))[0].T.contiguous()


def test_identity_shape_is_the_plain_rule():
    """s = 1 and ρ = 1 reshape nothing: the same steps as without a shape, to rounding."""
    V = _orthonormal(4, 50)
    shape = SubspaceShape(V, torch.ones(4, dtype=torch.float64), 1.0)
    gen = torch.Generator().manual_seed(2)
    theta, g = torch.randn(50, generator=gen, dtype=torch.float64), torch.randn(50, generator=gen, dtype=torch.float64)
    m = torch.randn(50, generator=gen, dtype=torch.float64)
    plain = sgd_update(theta, g, m, 0.1, 0.9, True, 1e-3)
    shaped = sgd_update(theta, g, m, 0.1, 0.9, True, 1e-3, shape)
    for a, b in zip(shaped, plain):
        torch.testing.assert_close(a, b, rtol=SHAPED_RTOL, atol=SHAPED_RTOL)


def test_dom_and_bulk_split_the_step():
    """Dom-SGD moves only inside span(V), Bulk-SGD only outside; their steps add up to the plain one."""
    V = _orthonormal(3, 40)
    gen = torch.Generator().manual_seed(3)
    theta, g = torch.randn(40, generator=gen, dtype=torch.float64), torch.randn(40, generator=gen, dtype=torch.float64)
    plain, _ = sgd_update(theta, g, None, 0.2, 0.0, False, 0.0)
    dom, _ = sgd_update(theta, g, None, 0.2, 0.0, False, 0.0, SubspaceShape.onto(V))
    bulk, _ = sgd_update(theta, g, None, 0.2, 0.0, False, 0.0, SubspaceShape.out_of(V))
    step_dom, step_bulk = dom - theta, bulk - theta
    torch.testing.assert_close(step_dom - V.T @ (V @ step_dom), torch.zeros(40, dtype=torch.float64), rtol=0, atol=1e-14)
    torch.testing.assert_close(V @ step_bulk, torch.zeros(3, dtype=torch.float64), rtol=0, atol=1e-14)
    torch.testing.assert_close(step_dom + step_bulk, plain - theta, rtol=SHAPED_RTOL, atol=1e-15)


def test_inverse_curvature_scales_are_newton_in_the_subspace():
    """On a quadratic ½θᵀAθ with exact eigenvectors, s_i = 1/(η λ_i), ρ = 0 reaches the subspace minimum in one step."""
    lam = torch.tensor([5.0, 2.0, 0.5, 0.1], dtype=torch.float64)
    U = _orthonormal(4, 4, seed=5)
    A = U.T @ torch.diag(lam) @ U
    theta = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    V, lr = U[:2], 0.01
    new, _ = sgd_update(theta, A @ theta, None, lr, 0.0, False, 0.0, SubspaceShape(V, 1 / (lr * lam[:2]), 0.0))
    torch.testing.assert_close(V @ new, torch.zeros(2, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(U[2:] @ new, U[2:] @ theta, rtol=0, atol=1e-12)


def test_shape_with_tensor_hyperparameters_matches_numbers():
    V = _orthonormal(2, 30)
    shape = SubspaceShape(V, torch.tensor([0.5, 2.0], dtype=torch.float64), 0.3)
    gen = torch.Generator().manual_seed(4)
    theta, g = torch.randn(30, generator=gen, dtype=torch.float64), torch.randn(30, generator=gen, dtype=torch.float64)
    m = torch.zeros(30, dtype=torch.float64)
    a = sgd_update(theta, g, m, 0.1, 0.9, False, 1e-2, shape)
    t = lambda x: torch.tensor(x, dtype=torch.float64)  # noqa: E731
    b = sgd_update(theta, g, m, t(0.1), t(0.9), False, t(1e-2), shape)
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, rtol=SAME_RULE_RTOL, atol=1e-15)


def test_bad_shapes_are_refused():
    V = _orthonormal(2, 10)
    with pytest.raises(InputError, match="basis"):
        SubspaceShape(V, torch.ones(3, dtype=torch.float64))
    with pytest.raises(InputError, match="finite"):
        SubspaceShape(V, torch.tensor([1.0, float("nan")], dtype=torch.float64))


def test_bulk_shape_never_moves_in_the_subspace_even_with_a_carried_momentum():
    """The shape acts on the step: a momentum buffer full of span(V) directions moves θ only outside span(V)."""
    V = _orthonormal(3, 40)
    gen = torch.Generator().manual_seed(6)
    theta = torch.randn(40, generator=gen, dtype=torch.float64)
    m = V.T @ torch.randn(3, generator=gen, dtype=torch.float64) * 10          # all inside span(V)
    for nesterov in (False, True):
        th, mm = theta, m
        for _ in range(3):
            g = torch.randn(40, generator=gen, dtype=torch.float64)
            th, mm = sgd_update(th, g, mm, 0.1, 0.9, nesterov, 1e-3, SubspaceShape.out_of(V))
        torch.testing.assert_close(V @ th, V @ theta, rtol=0, atol=1e-12)
