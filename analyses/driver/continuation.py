"""Continued training for the analyses: the trainer's continuation (:mod:`checkpoints.continuation`) behind one callable.

Analyses never import the trainer; a command hands them a :class:`Continuer`, which runs
:func:`checkpoints.continuation.continue_training` from a checkpoint of the opened run, plain or
with an :class:`~checkpoints.continuation.EigenShaper` built from the analysis's rule.
"""

from __future__ import annotations

import numpy as np
import torch


class Continuer:
    """Runs continuations of ``inputs.run`` (see the module docstring).

    Args:
        inputs: the driver's :class:`~analyses.driver.inputs.RunInputs`.
        subset: training example indices the shaper's Hessian is of (None: all).
        bn: BatchNorm mode of the shaper's Hessian.
        seed: seed of the shaper's Lanczos starts.
        progress: show the trainer's progress bar.
    """

    def __init__(self, inputs, *, subset: np.ndarray | None, bn: str, seed: int = 0, progress: bool = False):
        self.inputs, self.bn, self.seed, self.progress = inputs, bn, seed, progress
        self.subset = None if subset is None else torch.as_tensor(np.asarray(subset), dtype=torch.long)

    def lr_at(self, step: int) -> float:
        """The run's learning rate η_step (its schedule at that step)."""
        from checkpoints.schedules import make_schedule

        return float(make_schedule(self.inputs.run.config)(int(step)))

    def __call__(self, step: int, *, steps: int, lr: float, per_example: bool, eval_every: int, rule=None,
                 k: int = 0, every: int = 1, tol: float = 1e-3, v0=None):
        """``(Continuation, refresh log)`` of ``steps`` updates from ``step`` (shaped when ``rule`` is given)."""
        from checkpoints.continuation import ContinuationConfig, EigenShaper, continue_training

        shaper = None
        if rule is not None:
            shaper = EigenShaper(rule, k=k, every=every, subset=self.subset, bn=self.bn, tol=tol, seed=self.seed,
                                 v0=None if v0 is None else torch.as_tensor(v0))
        cfg = ContinuationConfig(steps=int(steps), lr=float(lr), per_example=per_example, eval_every=int(eval_every))
        result = continue_training(self.inputs.run, int(step), cfg, shaper=shaper, progress=self.progress)
        return result, ([] if shaper is None else shaper.log)
