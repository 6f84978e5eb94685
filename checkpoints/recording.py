"""What the trainer records and when: snapshot steps, evaluation steps, online sharpness.

Step numbering (the run file's): update t maps θ_t to θ_{t+1}; "step s" of a snapshot,
an evaluation or a sharpness measurement is θ_s, **before** update s; step T (after the
last update) is the final state. Snapshots are always taken at 0 and T.

Online sharpness (Cohen et al. 2021, "Gradient descent on neural networks typically occurs
at the edge of stability"): every k steps the top Hessian eigenvalues of the training loss
on a fixed subset of the training set, from :func:`landscape.eigsh` warm-started at the
previous eigenvectors, logged next to the learning rate so that λ_max can be compared with
2/η (gradient descent) or (2 + 2β)/η (heavy-ball momentum β).

For AdamW the logged value is the *preconditioned* sharpness λ_max(P⁻¹H) (Cohen et al. 2022,
"Adaptive gradient methods at the edge of stability"), P = diag(√v̂_t + ε) built from the
second moment v_t stored with the state at step t (the preconditioner of the last update,
:func:`landscape.optim.adam_preconditioner`), computed as the top eigenvalue of the symmetric
D H D with D = P^{-1/2} (the same spectrum as P⁻¹H). Its threshold is (2 + 2β₁)/((1 − β₁)η)
= 38/η for β₁ = 0.9 (:mod:`landscape.stability`). At step 0 no second moment exists yet
(v_0 = 0): the row holds NaN.
"""

from __future__ import annotations

import copy
import signal
import threading

import numpy as np
import torch

from checkpoints.augment import derive_seed
from landscape.operators import LinearOperator


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


def subset_objective(stepper, state, subset: torch.Tensor | None, *, bn: str):
    """The :class:`landscape.Objective` of the training loss on ``subset`` (None: all examples)
    at the state's BN buffers (θ is passed to its methods; ``obj.theta`` is not θ_t)."""
    from landscape.objective import Objective

    probe = copy.deepcopy(stepper.model).eval()
    with torch.no_grad():
        for name, buf in probe.named_buffers():
            buf.copy_(state.buffers[name])
    x, y = stepper.data.x_train, stepper.y_train
    if subset is not None:
        idx = subset.to(x.device)
        x, y = x[idx], y[idx]
    return Objective(probe, x, y, loss=stepper.cfg.loss, bn=bn, batch_size=stepper.cfg.eval_batch_size)


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
        return subset_objective(self.stepper, state, self.subset, bn=self.cfg.sharpness_bn)

    def measure(self, state) -> np.ndarray:
        """The top ``sharpness_k`` eigenvalues (descending) of the subset Hessian at θ_t.

        AdamW: of the preconditioned Hessian D H D (module docstring); NaN before the first update.
        """
        from landscape.solvers import eigsh

        H = self.objective(state).hessian(state.theta)
        if self.cfg.optimizer == "adamw":
            t = state.step + self.stepper.update_offset
            if t < 1:
                return np.full(self.cfg.sharpness_k, np.nan)
            H = PreconditionedOperator(H, preconditioner_scaling(state.second_moment, t, self.cfg))
        res = eigsh(H, k=self.cfg.sharpness_k, which="LA", tol=self.cfg.sharpness_tol,
                    max_matvecs=self.cfg.sharpness_max_matvecs, seed=self.cfg.seed, v0=self.v0)
        self.v0 = res.eigenvectors
        return np.sort(np.asarray(res.eigenvalues, dtype=np.float64))[::-1].copy()


def preconditioner_scaling(v: torch.Tensor, t: int, cfg) -> torch.Tensor:
    """D = P^{-1/2} ``(P,)`` for AdamW's P = √v̂ + ε after t updates (float64 for the products)."""
    from landscape.optim import adam_preconditioner

    return adam_preconditioner(v.double(), t, cfg.betas, cfg.eps).rsqrt()


class PreconditionedOperator(LinearOperator):
    """D H D for a Hessian operator H and a diagonal D ``(P,)``: the spectrum of P⁻¹H when D = P^{-1/2}.

    Products are taken in H's dtype on H's device (D is cast to them).
    """

    def __init__(self, H, d: torch.Tensor):
        super().__init__(H.shape[0], H.dtype, H.device)
        self.H, self.d = H, d.to(H.device, H.dtype)

    def _matvec(self, v: torch.Tensor) -> torch.Tensor:
        return self.d * self.H.matvec(self.d * v)

    def _matmat(self, V: torch.Tensor) -> torch.Tensor:
        return self.d * self.H.matmat(self.d * V)


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
