"""Batched full-batch gradient descent on narrow deep nets: many (η, init) runs as one tensor.

Every step is :func:`landscape.optim.sgd_update` (the trainer's update rule, here with a
per-row learning-rate tensor, no momentum, no weight decay) applied to ``W (B, D)`` with the
closed-form gradient of :mod:`.product`. Learning times, divergence and racing are kept by
:class:`.tracker.Tracker`; optionally λ_max of the exact Hessian is computed at chosen steps
(for the regime labels) and every iterate is kept (small problems).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from analyses.deeplinear import product as PR
from analyses.deeplinear.data import DTYPE, Moments
from analyses.deeplinear.tracker import Tracker
from landscape.optim import sgd_update


@dataclass
class Descent:
    """What :func:`descend` returns (numpy)."""

    record_steps: np.ndarray     # (S,)
    loss: np.ndarray             # (B, S) NaN after divergence or stop
    learned_at: np.ndarray       # (B,) learning time (see tracker.py), −1 if never
    diverged_at: np.ndarray      # (B,) first step of divergence, −1 if never
    stopped_at: np.ndarray       # (B,) step a losing racer was stopped, −1 if never
    final: np.ndarray            # (B, D) weights at the end (frozen rows: where they stopped)
    curvature_steps: np.ndarray  # (C,)
    lam: np.ndarray              # (B, C) λ_max at curvature_steps (NaN where not running)
    path: np.ndarray | None      # (B, T+1, D) every iterate when asked
    steps_run: int               # steps actually taken (≤ steps)


def log_steps(steps: int, num: int) -> np.ndarray:
    """0 and about ``num − 1`` log-spaced steps in [1, steps], unique, ascending."""
    s = np.unique(np.round(np.geomspace(1, steps, max(num - 1, 1))).astype(np.int64))
    return np.concatenate([[0], s[s <= steps]])


def descend(W0: Tensor, lrs: Tensor, m: Moments, steps: int, *, threshold: float = 0.0,
            record_steps=None, curvature_steps=(), groups: Tensor | None = None, race: bool = False,
            keep_path: bool = False) -> Descent:
    """Run up to ``steps`` full-batch GD steps from every row of ``W0 (B, D)`` at its own ``lrs[b]``.

    Args:
        W0: initial weights ``(B, D)``.
        lrs: ``(B,)`` learning rates η > 0.
        m: the data moments.
        steps: most steps per run.
        threshold: excess loss L − L* that counts as learned.
        record_steps: steps at which the loss is stored (default every step).
        curvature_steps: steps at which λ_max(H) is stored (running rows only).
        groups: ``(B,)`` int group ids for ``race`` (default one group).
        race: stop the losers of each group (see :mod:`.tracker`); the loop ends early.
        keep_path: store every iterate, ``(B, steps + 1, D)``.
    """
    W_all = W0.to(DTYPE).clone()
    W = W_all.clone()
    rec = np.arange(steps + 1) if record_steps is None else record_steps
    tr = Tracker(W.shape[0], m.loss_min + threshold, m.yy, rec, groups)
    curv = np.asarray(curvature_steps, dtype=np.int64)
    cslot = {int(s): i for i, s in enumerate(curv)}
    lam = torch.full((W.shape[0], len(curv)), float("nan"), dtype=DTYPE)
    lr, path, t = lrs.to(DTYPE)[:, None], [W.clone()] if keep_path else None, 0
    for t in range(steps + 1):
        L, g = PR.loss_and_grad(W, m)
        tr.book(t, L)
        if t in cslot:
            _curvature(lam, cslot[t], W, tr, m)
        if tr.check(t, race) or t == steps:
            break
        W = torch.where(tr.running(2), sgd_update(W, g, None, tr.rates(lr), 0.0, False, 0.0)[0], W)
        if keep_path:
            path.append(W.clone())
        elif t % 32 == 0:
            W, lr = _compact(tr, W_all, W, lr)
    W_all[tr.rows] = W
    r = tr.results()
    return Descent(r["record_steps"], r["loss"], r["learned_at"], r["diverged_at"], r["stopped_at"],
                   W_all.numpy(), curv, lam.numpy(), None if path is None else torch.stack(path, 1).numpy(), t)


def _compact(tr: Tracker, W_all: Tensor, W: Tensor, lr: Tensor) -> tuple[Tensor, Tensor]:
    """Keep computing only on running rows (dead rows' last weights go back to ``W_all``)."""
    rows = tr.rows
    keep = tr.compact()
    if keep is None:
        return W, lr
    W_all[rows] = W
    return W[keep], lr[keep]


def _curvature(lam: Tensor, col: int, W: Tensor, tr: Tracker, m: Moments) -> None:
    run = tr.running()
    if bool(run.any()):
        lam[tr.rows[run], col] = PR.lambda_max(W[run], m)
