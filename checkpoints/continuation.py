"""Continued training from a saved step: the trainer's own loop, restarted at S_s.

:func:`continue_training` takes the state S_s = (θ_s, m_s, b_s) of a run at step s (saved or
replayed, :meth:`~checkpoints.replay.Run.state`) and runs the trainer's :class:`~checkpoints.train.Loop`
on it for T more updates with a constant learning rate, on **the run's own batch plan continued
from s** (update t of the continuation uses the batch of the run's step s + t: the logged one
where the run has it, the regenerated one beyond; plans are stateless, see
:mod:`checkpoints.batches`). Nothing is written to disk: evaluations and per-step losses are kept
in memory and returned. So two continuations from the same checkpoint — a control and a variant
— see the same examples in the same order, and differ only in what the variant changes:

* the update, reshaped in a subspace by a ``shaper`` (:class:`EigenShaper`: the top-k Hessian
  eigenbasis refreshed every R updates by warm-started Lanczos, mapped to a
  :class:`landscape.optim.SubspaceShape` by a rule; the one update rule
  :func:`landscape.optim.sgd_update` applies it);
* ``per_example=True``: batch size 1, visiting the examples of the run's batches one by one in
  their order (the seed 003 "final epoch at batch size 1 with a tiny learning rate").

Example::

    with open_run("run.h5") as run:
        control = continue_training(run, 186, ContinuationConfig(steps=31, lr=0.01, eval_every=8))
        dom = continue_training(run, 186, ContinuationConfig(steps=31, lr=0.01, eval_every=8),
                                shaper=EigenShaper(lambda obj, th, eig: SubspaceShape.onto(eig.eigenvectors),
                                                   k=10, every=5))
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from checkpoints.batches import ReplayPlan, make_plan
from checkpoints.recording import subset_objective
from checkpoints.schedules import make_schedule
from checkpoints.setup import NoRunFile, RunSetup
from checkpoints.step import Stepper, TrainState, deterministic_mode
from checkpoints.train import Loop
from landscape.errors import InputError


@dataclass(frozen=True)
class ContinuationConfig:
    """How a continuation runs (the run's optimiser — momentum, Nesterov, weight decay — is kept)."""

    steps: int                  # updates after the checkpoint
    lr: float | None = None     # constant learning rate η (None: the run's η at the checkpoint's step)
    per_example: bool = False   # batch size 1 over the examples of the run's batches, in order
    eval_every: int = 0         # full train/test evaluation every k updates (and at 0 and the end)

    def __post_init__(self):
        if not isinstance(self.steps, int) or self.steps < 1:
            raise InputError(f"a continuation needs at least one update, got steps={self.steps!r}")
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr > 0):
            raise InputError(f"the continuation's learning rate must be positive and finite, got {self.lr}")
        if not isinstance(self.eval_every, int) or self.eval_every < 0:
            raise InputError(f"eval_every must be an integer ≥ 0, got {self.eval_every!r}")


@dataclass
class Continuation:
    """What a continuation did (steps counted from the checkpoint: 0 is θ_s).

    Attributes:
        eval_steps: ``(E,)`` the updates after which the full evaluations ran.
        train_loss, train_acc, test_loss, test_acc: ``(E,)`` (BatchNorm in eval mode).
        step_loss: ``(T,)`` the minibatch loss of every update (at θ before it).
        lr: the constant learning rate used.
        batch_size: examples per update.
        theta: the final θ ``(P,)`` (float32, CPU).
        status: ``complete`` or ``stopped`` (SIGTERM).
        wall_time: seconds in the loop.
    """

    eval_steps: np.ndarray
    train_loss: np.ndarray
    train_acc: np.ndarray
    test_loss: np.ndarray
    test_acc: np.ndarray
    step_loss: np.ndarray
    lr: float
    batch_size: int
    theta: np.ndarray
    status: str
    wall_time: float


class MemoryRecorder(NoRunFile):
    """The loop's writer for a continuation: keeps evaluations, step losses and the last θ in memory."""

    def __init__(self):
        self.evals, self.losses, self.theta = [], [], None

    def append_steps(self, steps, idx, seeds, losses, lrs):
        self.losses.append(np.asarray(losses, dtype=np.float64))

    def append_eval(self, step, train_loss, train_acc, test_loss, test_acc):
        self.evals.append((step, train_loss, train_acc, test_loss, test_acc))

    def append_snapshot(self, step, theta, *rest, **kwargs):
        self.theta = np.asarray(theta)


class OffsetPlan:
    """The batches of ``base`` from step ``offset`` on: ``batch(t) = base.batch(offset + t)``."""

    def __init__(self, base, offset: int):
        self.base, self.offset = base, int(offset)

    def batch(self, t: int):
        return self.base.batch(self.offset + int(t))


class ExamplePlan:
    """Batch size 1 over the examples of ``base``'s batches in their order (step t: example t mod B of batch t div B).

    A full-batch ``base`` (indices None) visits the N examples in their stored order.
    """

    def __init__(self, base, batch_size: int):
        self.base, self.width = base, int(batch_size)

    def batch(self, t: int):
        j, r = divmod(int(t), self.width)
        idx, seed = self.base.batch(j)
        idx = torch.arange(self.width) if idx is None else idx
        return idx[r:r + 1], seed


def run_plan(run):
    """The run's batch plan for any step: regenerated (stateless) unless it replayed another run's batches."""
    if run.config.batches_from is None:
        return make_plan(run.config, run.dataset.num_train)
    return ReplayPlan(run.file)


def _config(run, step: int, cfg: ContinuationConfig):
    base = run.config
    lr = cfg.lr if cfg.lr is not None else float(make_schedule(base)(step))
    width = run.dataset.num_train if base.full_batch else base.batch_size
    changes = dict(schedule="constant", lr=lr, warmup_steps=0, steps=cfg.steps, epochs=None, save_every=0,
                   save_steps=(), save_log=0, eval_every=cfg.eval_every, sharpness_every=0, init_from=None,
                   batches_from=None)
    if cfg.per_example:
        changes.update(batch_size=1, full_batch=False)
    return base.replace(**changes), width


def _initial_state(run, step: int) -> TrainState:
    s = run.state(step)
    m = None if s.momentum is None else s.momentum.clone()
    v = None if s.second_moment is None else s.second_moment.clone()
    return TrainState(0, s.theta.clone(), m, {k: b.clone() for k, b in s.buffers.items()}, v)


def continue_training(run, step: int, cfg: ContinuationConfig, *, shaper=None,
                      progress: bool = False) -> Continuation:
    """Run the trainer's loop from S_step for ``cfg.steps`` updates (see the module docstring).

    Args:
        run: an opened :class:`~checkpoints.replay.Run`.
        step: the checkpoint (any step 0 … num_steps; unsaved steps are replayed).
        cfg: the continuation's length, learning rate, batch size and evaluations.
        shaper: reshapes each update (``shaper(state, stepper) -> SubspaceShape | None``), e.g. an
            :class:`EigenShaper`; None is plain SGD (the control).
        progress: show the trainer's progress bar.

    Raises:
        InputError: a step outside the run, or batches beyond those a replayed run logged.
    """
    tcfg, width = _config(run, step, cfg)
    plan = OffsetPlan(run_plan(run), step)
    if cfg.per_example:
        plan = ExamplePlan(plan, width)
    stepper = Stepper(copy.deepcopy(run.model), run.dataset, tcfg, shaper=shaper)
    stepper.update_offset = run.stepper.update_offset + int(step)   # AdamW's bias corrections count on
    writer = MemoryRecorder()
    setup = RunSetup(tcfg, None, stepper, plan, _initial_state(run, step), cfg.steps, writer,
                     None if tcfg.full_batch else tcfg.batch_size)
    with deterministic_mode(tcfg):
        result = Loop(setup, progress, fsync=False).run()
    ev = np.array(writer.evals, dtype=np.float64).reshape(-1, 5)
    return Continuation(ev[:, 0].astype(np.int64), ev[:, 1], ev[:, 2], ev[:, 3], ev[:, 4],
                        np.concatenate(writer.losses) if writer.losses else np.zeros(0), tcfg.lr,
                        1 if cfg.per_example else width, writer.theta, result.status, result.wall_time)


@dataclass
class EigenShaper:
    """Shape every update in the top-k Hessian eigenbasis, refreshed every ``every`` updates.

    Before the first update and every ``every`` updates after it, the top-k eigenpairs of the
    Hessian of the training loss on ``subset`` (BatchNorm mode ``bn``, the state's buffers) at the
    current θ come from :func:`landscape.eigsh`, warm-started at the previous eigenvectors (the first
    time at ``v0``, e.g. stored eigenpairs of the checkpoint); ``rule(objective, theta, eig) ->
    SubspaceShape`` turns them into the shape used until the next refresh.

    Attributes:
        log: one dict per refresh: ``step``, ``eigenvalues``, ``residuals``, ``num_matvecs``,
            ``converged``, ``scales``, ``rest``.
    """

    rule: object
    k: int
    every: int
    subset: torch.Tensor | None = None   # training example indices (None: all)
    bn: str = "eval"
    tol: float = 1e-3
    max_matvecs: int | None = None
    seed: int = 0
    v0: torch.Tensor | None = None       # (j, P) warm start of the first refresh
    log: list = field(default_factory=list)
    _shape: object = field(default=None, init=False, repr=False)
    _last: int = field(default=0, init=False, repr=False)

    def __post_init__(self):
        if self.k < 1 or self.every < 1:
            raise InputError(f"an eigenbasis shaper needs k ≥ 1 and a refresh interval ≥ 1, got k={self.k}, "
                             f"every={self.every}")

    def __call__(self, state, stepper):
        if self._shape is None or state.step - self._last >= self.every:
            self._refresh(state, stepper)
        return self._shape

    def _refresh(self, state, stepper) -> None:
        from landscape.solvers import eigsh

        obj = subset_objective(stepper, state, self.subset, bn=self.bn)
        theta = state.theta.detach()
        v0 = None if self.v0 is None else self.v0.to(theta)
        eig = eigsh(obj.hessian(theta), k=self.k, which="LA", tol=self.tol, max_matvecs=self.max_matvecs,
                    seed=self.seed, v0=v0)
        self._shape, self._last, self.v0 = self.rule(obj, theta, eig), state.step, eig.eigenvectors
        self.log.append({"step": state.step, "eigenvalues": np.asarray(eig.eigenvalues, np.float64),
                         "residuals": np.asarray(eig.residuals, np.float64), "num_matvecs": int(eig.num_matvecs),
                         "converged": bool(eig.converged),
                         "scales": self._shape.scales.detach().double().cpu().numpy(), "rest": float(self._shape.rest)})
