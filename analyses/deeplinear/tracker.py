"""Per-run bookkeeping of batched gradient descent: learning time, divergence, racing.

B runs advance together (one row each). At every step the caller hands the losses
``L (B,)`` to :meth:`Tracker.book`, which records:

* the learning time: the first step t from which on L − L* ≤ threshold held at every later
  step so far (reset to −1 when the loss leaves the threshold again), so a large η that
  passes the threshold by luck on its way to divergence or oscillation does not count;
* divergence: L non-finite or above ``DIVERGED_FACTOR`` × max(L₀, ⟨y²⟩); the run is frozen
  (its rate set to 0) and its later losses are NaN;
* the loss at the chosen ``record_steps``.

Racing (:meth:`Tracker.race`): the rows of a group (same problem, different η) race to the
threshold. A row that has stayed below it since step t* for max(``MIN_CONFIRM``,
``CONFIRM_FRACTION``·t*) steps is *confirmed*; the rows of its group that were not below it
by t* are then stopped (censored: their learning time is only known to exceed t*; stored
as −1, with ``stopped_at``). The best η of a sweep thus costs about 1.5·t* steps.

Compaction: the engines compute only on the *active* rows ``Tracker.rows``; once fewer than
``COMPACT_BELOW`` of them are still running (the others diverged or were stopped),
:meth:`Tracker.compact` drops the dead ones, so a sweep whose large rates blew up early does
not keep paying for them.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from analyses.deeplinear.data import DTYPE

DIVERGED_FACTOR = 1e6   # a loss this many times max(L₀, ⟨y²⟩) counts as divergence
CHECK_EVERY = 32        # steps between host-side checks (race, all done)
MIN_CONFIRM = 100       # a racer must stay below the threshold this many steps to win ...
CONFIRM_FRACTION = 0.5  # ... or this fraction of the steps it took to get there, if longer
COMPACT_BELOW = 0.75    # drop dead rows once fewer than this fraction of the active rows run
NEVER = -1


class Tracker:
    """The state of B runs; see the module docstring.

    Args:
        B: number of runs.
        level: the loss at or below which a run counts as learned (L* + threshold).
        floor: ⟨y²⟩ (the loss of the zero map), for the divergence cap.
        record_steps: steps at which losses are stored.
        groups: ``(B,)`` group ids for racing (default: one group).
    """

    def __init__(self, B: int, level: float, floor: float, record_steps, groups: Tensor | None = None):
        self.level, self.floor = level, floor
        self.alive = torch.ones(B, dtype=torch.bool)
        self.learned = torch.full((B,), NEVER, dtype=torch.int64)
        self.diverged = torch.full((B,), NEVER, dtype=torch.int64)
        self.stopped = torch.full((B,), NEVER, dtype=torch.int64)
        self.record_steps = np.asarray(record_steps, dtype=np.int64)
        self._slot = {int(s): i for i, s in enumerate(self.record_steps)}
        self.loss = torch.full((B, len(self.record_steps)), float("nan"), dtype=DTYPE)
        self.groups = torch.zeros(B, dtype=torch.int64) if groups is None else groups
        self.cap = None
        self.rows = torch.arange(B)   # the rows the engine computes on (all alive ones among them)

    def book(self, t: int, L_rows: Tensor) -> None:
        """Divergence, learning time and the recorded loss at step t, from the losses of ``rows``."""
        L = torch.full(self.alive.shape, float("nan"), dtype=DTYPE)
        L[self.rows] = L_rows.to(DTYPE)
        if self.cap is None:
            self.cap = DIVERGED_FACTOR * torch.clamp(L, min=self.floor)
        bad = self.alive & (~torch.isfinite(L) | (L > self.cap))
        self.diverged[bad] = t
        self.alive &= ~bad
        below = self.alive & (L <= self.level)
        self.learned = torch.where(below, torch.where(self.learned < 0, t, self.learned), NEVER)
        if t in self._slot:
            self.loss[:, self._slot[t]] = torch.where(self.alive, L, torch.full_like(L, float("nan")))

    def running(self, ndim: int = 1) -> Tensor:
        """Which of ``rows`` still run, shaped ``(len(rows), 1, …)`` with ``ndim`` dimensions."""
        return self.alive[self.rows].reshape((-1,) + (1,) * (ndim - 1))

    def rates(self, lr: Tensor) -> Tensor:
        """The rates of ``rows`` (``lr`` holds one per row of ``rows``) with frozen rows at 0."""
        return torch.where(self.running(lr.ndim), lr, torch.zeros((), dtype=lr.dtype))

    def compact(self) -> Tensor | None:
        """Drop dead rows from ``rows`` when few still run: the keep-mask over the old ``rows``, or None."""
        keep = self.alive[self.rows]
        if int(keep.sum()) >= COMPACT_BELOW * len(self.rows):
            return None
        self.rows = self.rows[keep]
        return keep

    def confirmed(self, t: int) -> Tensor:
        """Rows that have stayed below the threshold long enough to win their group's race."""
        held = t - self.learned
        need = torch.clamp(CONFIRM_FRACTION * self.learned, min=MIN_CONFIRM)
        return self.alive & (self.learned >= 0) & (held >= need)

    def race(self, t: int) -> None:
        """Stop the rows of each group that can no longer beat its best confirmed row."""
        conf = self.confirmed(t)
        if not bool(conf.any()):
            return
        big = torch.iinfo(torch.int64).max
        best = torch.full((int(self.groups.max()) + 1,), big, dtype=torch.int64)
        best.scatter_reduce_(0, self.groups[conf], self.learned[conf], reduce="amin")
        bar = best[self.groups]
        losers = self.alive & ~conf & (bar < big) & ((self.learned < 0) | (self.learned > bar))
        self.stopped[losers] = t
        self.learned[losers] = NEVER
        self.alive &= ~losers

    def done(self, t: int, racing: bool) -> bool:
        """No row left running (racing: no row running that is not a confirmed winner)."""
        running = self.alive & ~self.confirmed(t) if racing else self.alive
        return not bool(running.any())

    def check(self, t: int, racing: bool) -> bool:
        """Every ``CHECK_EVERY`` steps: race (if racing) and say whether the loop may end."""
        if t % CHECK_EVERY:
            return False
        if racing:
            self.race(t)
        return self.done(t, racing)

    def results(self) -> dict[str, np.ndarray]:
        return {"learned_at": self.learned.numpy(), "diverged_at": self.diverged.numpy(),
                "stopped_at": self.stopped.numpy(), "loss": self.loss.numpy(),
                "record_steps": self.record_steps}
