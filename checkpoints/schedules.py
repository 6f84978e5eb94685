"""Learning-rate schedules: pure functions of the step, η(t), in Python floats.

A schedule is a frozen dataclass with ``__call__(t) -> float`` for the step t = 0, 1, …
(the learning rate used by update t, the one that maps θ_t to θ_{t+1}). Because it is a pure
function of t, a resumed or replayed run uses exactly the same rates as the original.

* :class:`Constant`: η(t) = η₀.
* :class:`StepDecay`: η(t) = η₀ γ^{#{m ∈ milestones : m ≤ t}} (the usual "divide by 10 at
  epochs 100 and 150", in steps).
* :class:`Cosine`: η(t) = η_min + (η₀ − η_min)(1 + cos(π min(t, T)/T))/2 (Loshchilov & Hutter
  2017, SGDR, without restarts); η(t) = η_min for t ≥ T.
* :class:`Piecewise`: an explicit list of (step, η) pairs, first step 0; η(t) is the value of
  the last pair whose step is ≤ t (piecewise constant).
* :class:`Warmup`: linear warm-up composed with any of the above: η(t) = min(1, (t+1)/W) ·
  inner(t) (Goyal et al. 2017); the first update uses η/W, update W−1 and later use inner(t).

Example::

    >>> s = Warmup(StepDecay(0.1, (100, 200), 0.1), 10)
    >>> s(0), s(9), s(150), s(250)
    (0.01, 0.1, 0.010000000000000002, 0.0010000000000000002)
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass


from landscape.errors import InputError


@dataclass(frozen=True)
class Constant:
    """η(t) = lr."""

    lr: float

    def __call__(self, t: int) -> float:
        return float(self.lr)


@dataclass(frozen=True)
class StepDecay:
    """η(t) = lr · gamma^(number of milestones ≤ t)."""

    lr: float
    milestones: tuple
    gamma: float = 0.1

    def __call__(self, t: int) -> float:
        return self.lr * self.gamma ** bisect.bisect_right(self.milestones, t)


@dataclass(frozen=True)
class Cosine:
    """η(t) = min_lr + (lr − min_lr)(1 + cos(π min(t, T)/T))/2 with T = ``total_steps``."""

    lr: float
    total_steps: int
    min_lr: float = 0.0

    def __call__(self, t: int) -> float:
        frac = min(t, self.total_steps) / self.total_steps
        return self.min_lr + (self.lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * frac))


@dataclass(frozen=True)
class Piecewise:
    """η(t) = the lr of the last (step, lr) pair with step ≤ t; the first step must be 0."""

    points: tuple

    def __post_init__(self):
        if not self.points or self.points[0][0] != 0:
            raise InputError("a piecewise schedule needs (step, lr) pairs starting at step 0")

    def __call__(self, t: int) -> float:
        steps = [s for s, _ in self.points]
        return float(self.points[bisect.bisect_right(steps, t) - 1][1])


@dataclass(frozen=True)
class Warmup:
    """η(t) = min(1, (t+1)/steps) · inner(t): linear warm-up on top of any schedule."""

    inner: object
    steps: int

    def __call__(self, t: int) -> float:
        base = self.inner(t)
        return base if t + 1 >= self.steps else base * (t + 1) / self.steps


def make_schedule(cfg) -> object:
    """The schedule a :class:`~checkpoints.config.TrainConfig` describes.

    ``cfg.cosine_steps`` must be set for a cosine schedule (``TrainConfig.resolved`` fills it).
    """
    if cfg.schedule == "constant":
        s = Constant(cfg.lr)
    elif cfg.schedule == "step":
        s = StepDecay(cfg.lr, tuple(cfg.milestones), cfg.gamma)
    elif cfg.schedule == "cosine":
        if cfg.cosine_steps is None:
            raise InputError("a cosine schedule needs its length: set cosine_steps (or resolve the config)")
        s = Cosine(cfg.lr, cfg.cosine_steps, cfg.min_lr)
    elif cfg.schedule == "list":
        s = Piecewise(tuple(cfg.lr_points))
    else:
        raise InputError(f"unknown schedule {cfg.schedule!r}; choose constant, step, cosine or list")
    return Warmup(s, cfg.warmup_steps) if cfg.warmup_steps > 1 else s
