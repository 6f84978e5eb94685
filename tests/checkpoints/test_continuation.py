"""Continued training from a checkpoint: the trainer's loop on the run's batch plan, plain or shaped."""

import numpy as np
import pytest
import torch

from checkpoints import open_run, train
from checkpoints.continuation import (
    ContinuationConfig,
    EigenShaper,
    ExamplePlan,
    OffsetPlan,
    continue_training,
    run_plan,
)
from landscape.errors import InputError
from landscape.optim import SubspaceShape

# An identity shape computes V(Vᵀd) + (d − V(Vᵀd)) in float32: a few ulps of ‖d‖ per step, over 20 steps.
IDENTITY_SHAPE_ATOL = 1e-5


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A 30-step run (BN, momentum, weight decay, augmentation) and the same run trained to 40 steps."""
    from trainer_helpers import TINY

    from checkpoints import TrainConfig

    d = tmp_path_factory.mktemp("continuation")
    torch.set_num_threads(1)
    out = {}
    for steps in (30, 40):
        train(TrainConfig(**{**TINY, "steps": steps}), d / f"run{steps}.h5", progress=False, fsync=False)
        out[steps] = d / f"run{steps}.h5"
    return out


def test_plain_continuation_is_the_run_itself(runs):
    """From step 10 with the run's learning rate, 20 updates reach the run's θ_30 bitwise, with its evaluations."""
    with open_run(runs[30]) as run:
        c = continue_training(run, 10, ContinuationConfig(steps=20, eval_every=10))
        assert np.array_equal(c.theta, run.file.params(30))
        ev = run.file.eval_metrics()
        logged = {int(s): (a, b) for s, a, b in zip(ev["step"], ev["train_loss"], ev["test_loss"])}
    assert c.eval_steps.tolist() == [0, 10, 20] and c.status == "complete" and c.batch_size == 16
    for s, tr, te in zip(c.eval_steps, c.train_loss, c.test_loss):
        assert (tr, te) == logged[int(s) + 10]


def test_continuation_beyond_the_run_regenerates_its_plan(runs):
    """Past the logged steps the plan is regenerated: continuing the 30-step run gives the 40-step run's θ_40."""
    with open_run(runs[30]) as run:
        c = continue_training(run, 30, ContinuationConfig(steps=10))
    with open_run(runs[40]) as longer:
        assert np.array_equal(c.theta, longer.file.params(40))


def test_example_plan_visits_the_batches_examples_in_order(runs):
    with open_run(runs[30]) as run:
        base = OffsetPlan(run_plan(run), 5)
        plan = ExamplePlan(base, 16)
        for j in range(3):
            idx, seed = base.batch(j)
            got = torch.cat([plan.batch(16 * j + r)[0] for r in range(16)])
            assert torch.equal(got, idx) and plan.batch(16 * j)[1] == seed


def test_per_example_continuation_runs_at_batch_size_one(runs):
    with open_run(runs[30]) as run:
        c = continue_training(run, 30, ContinuationConfig(steps=32, lr=1e-4, per_example=True, eval_every=16))
    assert c.batch_size == 1 and len(c.step_loss) == 32 and c.eval_steps.tolist() == [0, 16, 32]
    assert c.lr == pytest.approx(1e-4)


def _identity(obj, theta, eig):
    return SubspaceShape(eig.eigenvectors, torch.ones(len(eig.eigenvalues), dtype=theta.dtype), 1.0)


def test_identity_shaper_matches_plain_and_refreshes_every_r(runs):
    with open_run(runs[30]) as run:
        plain = continue_training(run, 10, ContinuationConfig(steps=20))
        shaper = EigenShaper(_identity, k=2, every=8, subset=run.subset(32), max_matvecs=60)
        shaped = continue_training(run, 10, ContinuationConfig(steps=20), shaper=shaper)
    np.testing.assert_allclose(shaped.theta, plain.theta, rtol=0, atol=IDENTITY_SHAPE_ATOL)
    assert [e["step"] for e in shaper.log] == [0, 8, 16]
    assert all(len(e["eigenvalues"]) == 2 and e["num_matvecs"] > 0 for e in shaper.log)


def test_dom_sgd_moves_only_in_the_top_subspace(runs, tiny, tmp_path):
    """Without momentum and with one refresh, θ_T − θ_s lies in the span of the basis computed at s."""
    path = tmp_path / "plain.h5"
    train(tiny(momentum=0.0, weight_decay=0.0, augment=False), path, progress=False, fsync=False)
    with open_run(path) as run:
        shaper = EigenShaper(lambda o, t, e: SubspaceShape.onto(e.eigenvectors), k=3, every=100,
                             subset=run.subset(32), max_matvecs=80)
        c = continue_training(run, 30, ContinuationConfig(steps=5), shaper=shaper)
        start = run.file.params(30)
    V = shaper.v0.double().numpy()
    step = (c.theta - start).astype(np.float64)
    residual = step - V.T @ (V @ step)
    assert np.linalg.norm(step) > 0 and np.linalg.norm(residual) <= 1e-4 * np.linalg.norm(step)


def test_bad_continuations_are_refused(runs):
    with pytest.raises(InputError, match="at least one update"):
        ContinuationConfig(steps=0)
    with pytest.raises(InputError, match="learning rate"):
        ContinuationConfig(steps=3, lr=float("nan"))
    with pytest.raises(InputError, match="k ≥ 1"):
        EigenShaper(_identity, k=0, every=1)
    with open_run(runs[30]) as run, pytest.raises(InputError, match="outside the run"):
        continue_training(run, 99, ContinuationConfig(steps=1))


def test_adamw_continuation_is_the_run_and_refuses_a_shaper(tiny, tmp_path):
    """AdamW's bias corrections count on from the checkpoint: the plain continuation is the run bitwise."""
    path = tmp_path / "adamw.h5"
    train(tiny(optimizer="adamw", lr=1e-3, momentum=0.0, weight_decay=1e-2), path, progress=False, fsync=False)
    with open_run(path) as run:
        c = continue_training(run, 10, ContinuationConfig(steps=20))
        assert np.array_equal(c.theta, run.file.params(30))
        shaper = EigenShaper(_identity, k=1, every=5, subset=run.subset(16), max_matvecs=20)
        with pytest.raises(InputError, match="AdamW"):
            continue_training(run, 10, ContinuationConfig(steps=2), shaper=shaper)
