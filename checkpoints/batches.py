"""Batch plans: which training examples (and which augmentation seed) step t uses.

A plan is stateless: ``plan.batch(t)`` depends only on the plan's inputs and t, so a resumed
or replayed run draws exactly the batches of the original, and no global RNG is touched.

* :class:`SGDPlan`: epoch e visits the examples in the order of a permutation π_e drawn
  from a generator seeded with a hash of (seed, e); step t is batch j = t mod S of epoch
  e = t div S, i.e. π_e[jB : (j+1)B], with S = ⌊N/B⌋ steps per epoch (the last N mod B
  examples of each permutation are left out, so every batch has exactly B examples).
* :class:`FullBatchPlan`: gradient descent; every step uses the whole training set, and no
  indices are logged (``indices`` is ``None``).
* :class:`ReplayPlan`: the batches and augmentation seeds logged in another run file
  (``--batches-from``), read in blocks.

The augmentation seed of step t is :func:`checkpoints.augment.aug_seed` (seed, t) for the
first two plans.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from checkpoints.augment import aug_seed, derive_seed
from landscape.errors import InputError

REPLAY_BLOCK = 1024  # steps of logged indices read from a parent run file at a time


class SGDPlan:
    """Stateless minibatch plan: permutation π_e = f(seed, e), batch t = slice of π_{t div S}."""

    def __init__(self, num_train: int, batch_size: int, seed: int):
        if batch_size > num_train:
            raise InputError(f"batch_size {batch_size} exceeds the {num_train} training examples; "
                             "use a smaller --batch-size or --full-batch")
        self.num_train, self.batch_size, self.seed = int(num_train), int(batch_size), int(seed)
        self.steps_per_epoch = self.num_train // self.batch_size
        self.num_steps = None  # unbounded
        self._epoch, self._perm = None, None

    def permutation(self, epoch: int) -> Tensor:
        """π_e: a permutation of range(N) (int64, CPU) from a generator seeded by (seed, e)."""
        g = torch.Generator(device="cpu").manual_seed(derive_seed(self.seed, epoch, "permutation"))
        return torch.randperm(self.num_train, generator=g)

    def indices(self, t: int) -> Tensor:
        """The B example indices of step t (int64, CPU)."""
        epoch, j = divmod(int(t), self.steps_per_epoch)
        if epoch != self._epoch:
            self._epoch, self._perm = epoch, self.permutation(epoch)
        return self._perm[j * self.batch_size:(j + 1) * self.batch_size]

    def aug_seed(self, t: int) -> int:
        return aug_seed(self.seed, t)

    def batch(self, t: int) -> tuple[Tensor, int]:
        """(indices (B,), augmentation seed) of step t."""
        return self.indices(t), self.aug_seed(t)


class FullBatchPlan:
    """Gradient descent: every step uses all N examples, in their stored order."""

    def __init__(self, num_train: int, seed: int):
        self.num_train, self.seed = int(num_train), int(seed)
        self.batch_size = self.num_train
        self.num_steps = None

    def indices(self, t: int) -> None:
        return None

    def aug_seed(self, t: int) -> int:
        return aug_seed(self.seed, t)

    def batch(self, t: int) -> tuple[None, int]:
        return None, self.aug_seed(t)


class ReplayPlan:
    """The batches of another run: indices and augmentation seeds read from its run file.

    Args:
        run: a :class:`landscape.io.RunFile` (anything with ``full_batch``, ``batch_size``,
            ``num_steps``, ``batch_indices_range(a, b)`` and ``aug_seeds(a, b)``).
    """

    def __init__(self, run):
        self.run = run
        self.full_batch, self.batch_size = bool(run.full_batch), int(run.batch_size)
        self.num_steps = int(run.num_steps)
        self._start, self._idx, self._seeds = None, None, None

    def _load(self, t: int) -> None:
        if not 0 <= t < self.num_steps:
            raise InputError(f"step {t} is beyond the {self.num_steps} steps logged in the run whose "
                             "batches are replayed (--batches-from); train at most that many steps")
        a = (t // REPLAY_BLOCK) * REPLAY_BLOCK
        b = min(a + REPLAY_BLOCK, self.num_steps)
        self._seeds = np.asarray(self.run.aug_seeds(a, b), dtype=np.int64)
        self._idx = None if self.full_batch else torch.from_numpy(
            np.asarray(self.run.batch_indices_range(a, b), dtype=np.int64))
        self._start = a

    def batch(self, t: int) -> tuple[Tensor | None, int]:
        if self._start is None or not self._start <= t < self._start + len(self._seeds):
            self._load(t)
        i = t - self._start
        return (None if self._idx is None else self._idx[i]), int(self._seeds[i])

    def indices(self, t: int) -> Tensor | None:
        return self.batch(t)[0]

    def aug_seed(self, t: int) -> int:
        return self.batch(t)[1]


def make_plan(cfg, num_train: int, parent_run=None):
    """The plan for a config: replayed from ``parent_run`` if given, else full-batch or SGD."""
    if parent_run is not None:
        return ReplayPlan(parent_run)
    if cfg.full_batch:
        return FullBatchPlan(num_train, cfg.seed)
    return SGDPlan(num_train, cfg.batch_size, cfg.seed)
