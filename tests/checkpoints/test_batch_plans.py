"""Batch plans are stateless: the same (seed, step) gives the same batch in any order or process."""

import numpy as np
import pytest
import torch

from checkpoints.batches import FullBatchPlan, ReplayPlan, SGDPlan
from landscape.errors import InputError


def test_each_epoch_is_a_permutation_without_repeats():
    plan = SGDPlan(num_train=103, batch_size=10, seed=0)
    assert plan.steps_per_epoch == 10
    epoch0 = torch.cat([plan.indices(t) for t in range(10)])
    assert len(set(epoch0.tolist())) == 100 and epoch0.max() < 103
    epoch1 = torch.cat([plan.indices(t) for t in range(10, 20)])
    assert not torch.equal(epoch0, epoch1)


def test_random_access_equals_sequential():
    seq = SGDPlan(100, 7, seed=3)
    expected = [seq.batch(t) for t in range(60)]
    rnd = SGDPlan(100, 7, seed=3)
    for t in np.random.default_rng(0).permutation(60):
        idx, s = rnd.batch(int(t))
        assert torch.equal(idx, expected[t][0]) and s == expected[t][1], f"step {t} differs"


def test_seed_changes_order_and_global_rng_untouched():
    before = torch.get_rng_state()
    a, b = SGDPlan(100, 10, seed=0).indices(0), SGDPlan(100, 10, seed=1).indices(0)
    assert not torch.equal(a, b)
    assert torch.equal(before, torch.get_rng_state())


def test_batch_larger_than_data_is_an_error():
    with pytest.raises(InputError, match="exceeds the 10 training examples"):
        SGDPlan(10, 11, seed=0)


def test_full_batch_plan_logs_no_indices():
    plan = FullBatchPlan(50, seed=2)
    assert plan.batch(3)[0] is None and plan.batch(3)[1] == SGDPlan(50, 5, seed=2).aug_seed(3)


class LoggedRun:
    """A stand-in for a RunFile's batch log, built from an SGDPlan (the data a run file holds)."""

    def __init__(self, plan, num_steps):
        self.full_batch, self.batch_size, self.num_steps = False, plan.batch_size, num_steps
        self.idx = np.stack([plan.indices(t).numpy() for t in range(num_steps)])
        self.seeds = np.array([plan.aug_seed(t) for t in range(num_steps)])

    def batch_indices_range(self, a, b):
        return self.idx[a:b]

    def aug_seeds(self, a, b):
        return self.seeds[a:b]


def test_replay_plan_reproduces_the_logged_batches():
    plan = SGDPlan(64, 8, seed=5)
    replay = ReplayPlan(LoggedRun(plan, 30))
    for t in (29, 0, 17):
        idx, s = replay.batch(t)
        assert torch.equal(idx, plan.indices(t)) and s == plan.aug_seed(t)
    with pytest.raises(InputError, match="beyond the 30 steps logged"):
        replay.batch(30)
