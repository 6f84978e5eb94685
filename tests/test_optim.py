"""landscape.optim: the one update rule, with number and with tensor hyperparameters."""

import pytest
import torch

from landscape.optim import sgd_update

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
