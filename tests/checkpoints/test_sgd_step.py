"""The training step: torch.optim.SGD semantics bitwise, a pure function, no global RNG."""

import pytest
import torch

from checkpoints.setup import load_data
from checkpoints.step import Stepper
from landscape.models import build_model
from landscape.optim import sgd_update

# Batched float32 mean (torch) vs float64 sum of float32 per-example losses: a few float32 ulps.
EVAL_RTOL = 1e-6
OPTIMISERS = [  # (momentum, nesterov, weight_decay)
    (0.0, False, 0.0), (0.9, False, 0.0), (0.9, True, 5e-4), (0.0, False, 1e-3), (0.5, False, 1e-2)]


@pytest.mark.parametrize("momentum,nesterov,weight_decay", OPTIMISERS)
def test_update_is_torch_sgd_bitwise(momentum, nesterov, weight_decay):
    """Same arithmetic as torch.optim.SGD's single-tensor path (``torch.optim.sgd.sgd``, what
    ``SGD.step`` calls; the functional form avoids importing torch._dynamo): not a bit differs."""
    from torch.optim.sgd import sgd

    gen = torch.Generator().manual_seed(0)
    p, buf = torch.randn(500, generator=gen), [None]
    theta, m = p.clone(), torch.zeros(500) if momentum else None
    for _ in range(6):
        g = torch.randn(500, generator=gen)
        sgd([p], [g.clone()], buf, weight_decay=weight_decay, momentum=momentum, lr=0.1, dampening=0.0,
            nesterov=nesterov, maximize=False, foreach=False)
        theta, m = sgd_update(theta, g, m, 0.1, momentum, nesterov, weight_decay)
        assert torch.equal(theta, p), f"max |Δθ| = {(theta - p).abs().max()}"


@pytest.fixture
def stepper(tiny):
    cfg = tiny()
    return Stepper(build_model(cfg.model, seed=0, **cfg.model_kwargs), load_data(cfg), cfg)


def test_step_is_pure_and_replayable(stepper):
    s0 = stepper.initial_state()
    copies = (s0.theta.clone(), s0.momentum.clone(), {k: v.clone() for k, v in s0.buffers.items()})
    idx = torch.arange(16)
    a, loss_a = stepper.step(s0, idx, 123, 0.05)
    b, loss_b = stepper.step(s0, idx, 123, 0.05)
    assert torch.equal(a.theta, b.theta) and torch.equal(a.momentum, b.momentum) and torch.equal(loss_a, loss_b)
    assert all(torch.equal(a.buffers[k], b.buffers[k]) for k in a.buffers)
    assert torch.equal(s0.theta, copies[0]) and torch.equal(s0.momentum, copies[1])
    assert all(torch.equal(s0.buffers[k], copies[2][k]) for k in copies[2]), "the input state was modified"
    assert any(not torch.equal(a.buffers[k], s0.buffers[k]) for k in a.buffers), "BN running stats not updated"
    c, _ = stepper.step(s0, idx, 124, 0.05)
    assert not torch.equal(a.theta, c.theta), "another augmentation seed must change the step"


def test_step_leaves_global_rng_alone(stepper):
    torch.manual_seed(0)
    before = torch.get_rng_state()
    stepper.step(stepper.initial_state(), torch.arange(16), 5, 0.05)
    assert torch.equal(before, torch.get_rng_state())


def test_evaluate_matches_a_plain_forward(stepper):
    """Full-split loss/accuracy (BN eval mode) against the model's own forward on the same θ."""
    state = stepper.initial_state()
    loss, acc = stepper.evaluate(state, "test")
    model = stepper.model.eval()
    with torch.no_grad():
        out = model(stepper.data.x_test)
    model.train()
    ref = torch.nn.functional.cross_entropy(out, stepper.data.y_test).item()
    assert abs(loss - ref) <= EVAL_RTOL * max(1.0, abs(ref)), (loss, ref)
    assert acc == (out.argmax(1) == stepper.data.y_test).float().mean().item()
