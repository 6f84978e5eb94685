"""What the trainer records and when: snapshot steps, evaluation steps, online sharpness.

Step numbering (the run file's): update t maps θ_t to θ_{t+1}; "step s" of a snapshot,
an evaluation or a sharpness measurement is θ_s, **before** update s; step T (after the
last update) is the final state. Snapshots are always taken at 0 and T.

Online sharpness (Cohen et al. 2021, "Gradient descent on neural networks typically occurs
at the edge of stability"): every k steps the top Hessian eigenvalues of the training loss
on a fixed subset of the training set, from :func:`landscape.eigsh` warm-started at the
previous eigenvectors, logged next to the learning rate so that λ_max can be compared with
2/η (gradient descent) or (2 + 2β)/η (heavy-ball momentum β).
"""

from __future__ import annotations

import copy
import signal
import threading

import numpy as np
import torch

from checkpoints.augment import derive_seed


def snapshot_steps(cfg, T: int) -> np.ndarray:
    """The sorted steps in [0, T] at which θ, buffers and momentum are saved.

    The union of {0, T}, every ``save_every`` steps, ``save_steps`` and ``save_log``
    log-spaced steps (rounded ``geomspace(1, T, save_log)``, duplicates merged).
    """
    steps = {0, T}
    if cfg.save_every:
        steps.update(range(0, T + 1, cfg.save_every))
    steps.update(s for s in cfg.save_steps if s <= T)
    if cfg.save_log:
        steps.update(int(round(s)) for s in np.geomspace(1, T, cfg.save_log))
    return np.array(sorted(steps), dtype=np.int64)


def every(k: int, T: int) -> set[int]:
    """{0, k, 2k, …} ∪ {T} when k > 0, else {0, T} (evaluations) — see :func:`eval_steps`."""
    return set(range(0, T + 1, k)) | {T} if k else {0, T}


def eval_steps(cfg, T: int) -> set[int]:
    """Steps of the full train/test evaluations: every ``eval_every`` steps, plus 0 and T."""
    return every(cfg.eval_every, T)


def sharpness_steps(cfg, T: int) -> set[int]:
    """Steps of the online sharpness measurements (none when ``sharpness_every`` is 0)."""
    return every(cfg.sharpness_every, T) if cfg.sharpness_every else set()


def fixed_subset(seed: int, N: int, n: int) -> torch.Tensor:
    """min(n, N) sorted example indices drawn without replacement by a generator seeded from ``seed``."""
    g = torch.Generator(device="cpu").manual_seed(derive_seed(seed, 0, "sharpness-subset"))
    return torch.randperm(N, generator=g)[:min(int(n), N)].sort().values


class SharpnessMonitor:
    """Top-k Hessian eigenvalues of the training loss on a fixed subset, warm-started.

    Args:
        stepper: the trainer's :class:`~checkpoints.step.Stepper` (model, data, loss).
        cfg: the config (``sharpness_k``, ``sharpness_subset``, ``sharpness_bn``, ``sharpness_tol``,
            ``sharpness_max_matvecs``, ``seed``).
    """

    def __init__(self, stepper, cfg):
        self.stepper, self.cfg = stepper, cfg
        self.subset = fixed_subset(cfg.seed, stepper.data.x_train.shape[0], cfg.sharpness_subset)
        self.v0 = None  # (k, P) eigenvectors of the previous measurement

    def objective(self, state):
        """The :class:`landscape.Objective` on the subset at the state's BN buffers."""
        from landscape.objective import Objective

        probe = copy.deepcopy(self.stepper.model).eval()
        with torch.no_grad():
            for name, buf in probe.named_buffers():
                buf.copy_(state.buffers[name])
        idx = self.subset.to(self.stepper.data.x_train.device)
        x, y = self.stepper.data.x_train[idx], self.stepper.y_train[idx]
        return Objective(probe, x, y, loss=self.cfg.loss, bn=self.cfg.sharpness_bn,
                         batch_size=self.cfg.eval_batch_size)

    def measure(self, state) -> np.ndarray:
        """The top ``sharpness_k`` eigenvalues (descending) of the subset Hessian at θ_t."""
        from landscape.solvers import eigsh

        H = self.objective(state).hessian(state.theta)
        res = eigsh(H, k=self.cfg.sharpness_k, which="LA", tol=self.cfg.sharpness_tol,
                    max_matvecs=self.cfg.sharpness_max_matvecs, seed=self.cfg.seed, v0=self.v0)
        self.v0 = res.eigenvectors
        return np.sort(np.asarray(res.eigenvalues, dtype=np.float64))[::-1].copy()


class StopRequest:
    """SIGTERM (and SIGUSR1) → ``requested`` becomes True; the loop stops at the next step boundary.

    Installed only in the main thread (Python delivers signals there); the previous handlers
    are restored on exit.
    """

    SIGNALS = ("SIGTERM", "SIGUSR1")

    def __init__(self):
        self.requested, self.signal_name, self._old = False, None, {}

    def _handle(self, signum, frame):
        self.requested, self.signal_name = True, signal.Signals(signum).name

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for name in self.SIGNALS:
                sig = getattr(signal, name, None)
                if sig is not None:
                    self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False
