"""Thick-restart Lanczos with locking and a randomized probe for missed eigenvalues.

The loop behind :func:`landscape.solvers.eigsh`, on a :class:`~landscape.solvers.krylov.KrylovBasis`.
It judges the Ritz pairs after every step (or block of steps) and grows, restarts, locks
or stops (Wu & Simon 2000, "Thick-restart Lanczos method for large symmetric eigenvalue
problems", SIAM J. Matrix Anal. Appl. 22(2)). Two modes:

* *main*: grow the basis; when it is full, keep the wanted Ritz vectors and a share of the
  rest (a thick restart); when every wanted pair meets the accuracy rule
  (:class:`~landscape.solvers.certify.Accuracy`), stop, or lock them and probe;
* *probe*: the wanted pairs are locked and the basis grows from fresh random vectors
  orthogonal to them (:mod:`landscape.solvers.probe`); a probe value that belongs among
  the wanted sends the loop back to main mode (the new value's vector is already in the
  basis, so nothing is rebuilt); otherwise it stops once missed values are unlikely, or at
  the probe's cap.

Residuals and eigenvalue errors are judged from the Lanczos relation alone
(:meth:`~landscape.solvers.krylov.KrylovBasis.residual_norms`): judging costs no products.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from scipy.linalg import eigvalsh
from torch import Tensor

from landscape.solvers.certify import Accuracy, eigenvalue_errors
from landscape.solvers.krylov import KrylovBasis
from landscape.solvers.order import priority
from landscape.solvers.probe import Probe, margin_steps, miss_margin

# Share of the non-wanted Ritz vectors kept at a thick restart (Wu & Simon 2000 keep
# "about half"); on the oracle matrices 0.25–0.5 took the fewest matvecs, 0 and 0.75 more.
KEEP_FRACTION = 0.5


@dataclass
class Answer:
    """What the loop found: values (k,), their vectors as coefficients U (n, k) over the basis,
    their positions among the Ritz values of the final basis (``index``; the locked rows'
    positions when ``locked``), whether they are the probe's locked rows (then ``errors``: their
    eigenvalue error bounds when they were locked), and the probe's outcome."""

    theta: Tensor
    U: Tensor
    index: Tensor
    locked: bool
    errors: Tensor | None
    miss_bound: float
    miss_margin: float
    probe_matvecs: int


class ThickRestart:
    """The restart loop, judged after every step (or block): stop, restart, or lock-and-probe.

    Args:
        basis: the Krylov basis (opened or seeded).
        k, which: how many pairs, and which end.
        accuracy: the stopping rule.
        m: the basis size.
        budget: the most products for the loop.
        callback: called in main mode after every judged step (see :func:`eigsh`).
        probe: the probe's rules, or None for no probe.
        block: products per step (a batched call); the probe's chains.
        random_chains: how many start vectors have a uniformly random part (0: none, e.g. a
            block warm start): with k = 1 per end, a main run of at least the probe's length from
            random starts is itself the probe (:meth:`_shared_probe`).
        share: the weight of that random part (1: uniformly random starts; < 1: a randomized
            warm start, :func:`~landscape.solvers.probe.failure`).
        probe_steps: the user's probe length, which then also caps the shared probe (None: the
            length the probe's bound needs).
    """

    def __init__(self, basis: KrylovBasis, k: int, which: str, accuracy: Accuracy, m: int, budget: int,
                 callback: Callable[[dict], None] | None, probe: Probe | None, block: int = 1,
                 random_chains: int = 0, share: float = 1.0, probe_steps: int | None = None):
        self.basis, self.k, self.which, self.accuracy, self.m = basis, k, which, accuracy, m
        self.budget, self.callback, self.probe, self.block = budget, callback, probe, max(1, block)
        self.random_chains, self.share, self.probe_steps_asked = random_chains, share, probe_steps
        self.n_keep = min(k + int(KEEP_FRACTION * (m - k)), m - 1)  # wanted + a share of the rest
        self.restarts, self.locked, self.probe_steps, self.probe_matvecs = 0, 0, 0, 0
        self.miss_bound = self.miss_margin = math.inf if probe else math.nan

    def run(self) -> Answer:
        """Iterate until done; return the wanted values and their coefficient vectors."""
        while True:
            action = self._cycle()
            if action == "stop":
                return self._answer()
            if action == "probe":
                self._lock()
            else:
                self.basis.restart(self.U[:, self.order[: self.n_keep]], self.theta[self.order[: self.n_keep]])
                self.restarts += 1

    def _answer(self) -> Answer:
        if self.locked:  # the probe found nothing new: the answer is the locked rows
            n = self.basis.size
            U = torch.eye(n, self.k, dtype=torch.float64)
            return Answer(self.basis.T.diagonal()[: self.k].clone(), U, torch.arange(self.k), True, self.lock_errors,
                          self.miss_bound, self.miss_margin, self.probe_matvecs)
        return Answer(self.theta[self.wanted], self.U[:, self.wanted], self.wanted, False, None, self.miss_bound,
                      self.miss_margin, self.probe_matvecs)

    def _lock(self) -> None:
        """Lock the wanted pairs and open the probe's random vectors (orthogonal to them)."""
        self.lock_errors = self.errors.clone()  # in the order of the locked rows
        self.basis.restart(self.U[:, self.wanted], self.theta[self.wanted], lock=True)
        for _ in range(self.block - 1):
            self.basis.open(self.basis.random())
        self.locked, self.probe_steps = self.k, 0
        self.restarts += 1

    def _cycle(self) -> str:
        """Grow the basis until there is something to do."""
        while True:
            room = self.budget - self.basis.num_matvecs
            can_grow = self.basis.has_open and room > 0 and self.basis.size < self.basis.capacity
            if can_grow:
                used = self.basis.step_block(min(self.block, room))
                if self.locked:
                    self.probe_steps += 1
                    self.probe_matvecs += used
            if self.basis.size > self.k or not can_grow:
                action = self._judge_probe(can_grow) if self.locked else self._judge(can_grow)
                if action is not None:
                    return action

    def _judge(self, can_grow: bool) -> str | None:
        """Main mode: are the wanted pairs accurate? Then probe or stop; else grow or restart."""
        b = self.basis
        self.theta, self.U = b.ritz()
        self.order = priority(self.theta, self.which)
        self.wanted = self.order[: self.k]
        n, scale = b.size, b.scale
        rho = b.residual_norms(self.U, self.theta) + self.accuracy.floor(scale, n)
        tau = self.accuracy.tolerance(self.theta[self.wanted], scale, n)
        errors = eigenvalue_errors(self.theta, rho, self.wanted, tau)
        self.errors = errors
        converged = self.accuracy.converged(errors, rho[self.wanted], self.theta[self.wanted], scale, n)
        self._report(rho[self.wanted], converged)
        if b.complete:  # the Krylov space is invariant and has no room left: exact
            return "stop"
        if bool(converged.all()):
            shared = self._shared_probe(can_grow) if self.probe is not None else "stop"
            if shared is not None:
                return None if shared == "grow" else "stop"
            return "probe"
        if not can_grow:
            return "stop"
        return "restart" if b.size >= self.m else None

    def _judge_probe(self, can_grow: bool) -> str | None:
        """Probe mode: a new value among the wanted (back to main mode), settled, or at the cap."""
        b, k = self.basis, self.k
        locked = b.T.diagonal()[:k].clone()
        free = torch.from_numpy(eigvalsh(b.T[k: b.size, k: b.size].numpy())) if b.size > k else locked[:0]
        margin = float(self.accuracy.tolerance(locked, b.scale, b.size).min())
        verdict, self.miss_bound = self.probe.verdict(locked, free, self.probe_steps, margin)
        if b.complete:  # exact: every value of the deflated operator is known
            self.locked, self.miss_bound, self.miss_margin = 0, 0.0, 0.0
            self.theta, self.U = b.ritz()
            self.order = priority(self.theta, self.which)
            self.wanted = self.order[: self.k]
            return "stop"
        if verdict == "new":
            self.locked = 0
            return self._judge(can_grow)
        if verdict == "settled":
            self.miss_margin = 0.0
            return "stop"
        if self.probe_steps >= self.probe.cap or not can_grow:
            self.miss_margin = miss_margin(self.probe_steps, self.probe.n, self.probe.delta, self.probe.chains)
            return "stop"
        return None

    def _shared_probe(self, can_grow: bool) -> str | None:
        """k = 1 per end and random starts, no restart yet: the main run is the probe.

        Its Krylov space is then K_s(A, x) for x with a random part (uniform on the sphere, or a
        share of a randomized warm start), exactly what a probe grows, for the operator itself
        rather than a deflated one; with one wanted value per end a repeated eigenvalue cannot
        change the answer. So the run stops once it has as many steps as the probe would take
        ("stop"), goes on growing until then ("grow", the extra steps also refine the answer),
        or leaves it to a separate probe (None) where the basis is full first. Both ends share
        δ for LM and BE.
        """
        per_end = self.k == 1 or (self.which == "BE" and self.k == 2)
        if not (per_end and self.random_chains and self.restarts == 0):
            return None
        ends = 2 if self.which in ("LM", "BE") else 1
        P, delta = self.basis.op.dim, self.probe.delta / ends
        need = margin_steps(P, delta, self.random_chains, share=self.share)
        if self.probe_steps_asked is not None:
            need = int(self.probe_steps_asked)
        steps = self.basis.num_matvecs // self.block
        if steps < need:
            return "grow" if can_grow and self.basis.size + self.block <= self.m else None
        main = Probe(self.which, self.k, P, delta, need, self.random_chains, self.share)
        low, high = main.spectrum_bounds(self.theta, steps)
        self.miss_bound = max(0.0, main.excess(self.theta[self.wanted], low, high))
        self.miss_margin = miss_margin(steps, P, delta, self.random_chains, self.share)
        return "stop"

    def _report(self, rho: Tensor, converged: Tensor) -> None:
        if self.callback is not None:
            scale = self.basis.scale or 1.0
            self.callback({"num_matvecs": self.basis.num_matvecs, "max_residual": float(rho.max()) / scale,
                           "num_converged": int(converged.sum()), "num_restarts": self.restarts})
