"""Thick-restart Lanczos with locking and a randomized check for missed eigenvalues.

The engine behind :func:`landscape.solvers.eigsh`: a float64 Krylov basis that grows one
Lanczos vector at a time with full reorthogonalization (:class:`KrylovBasis`) and the
loop that judges the Ritz pairs after every step and restarts, locks or stops
(:class:`ThickRestart`). References: Wu & Simon (2000), "Thick-restart Lanczos method
for large symmetric eigenvalue problems", SIAM J. Matrix Anal. Appl. 22(2);
Kuczyński & Woźniakowski (1992) for the probabilistic check.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from scipy.linalg import eigh as scipy_eigh
from torch import Tensor

from landscape.operators import LinearOperator, apply_float64
from landscape.solvers.lanczos import BREAKDOWN_RTOL, gram_schmidt
from landscape.solvers.sampling import Seed, make_generator, random_unit_vector

# Verification: accepted probability that Lanczos from a random start misses an
# eigenvalue beyond the k found ones (Kuczyński & Woźniakowski 1992 bound).
VERIFY_FAILURE_PROB = 1e-3

# Share of the non-wanted Ritz vectors kept at a thick restart (Wu & Simon 2000 keep
# "about half"); on the oracle matrices 0.25–0.5 took the fewest matvecs, 0 and 0.75 more.
KEEP_FRACTION = 0.5


class KrylovBasis:
    """Growing orthonormal float64 basis with its Rayleigh quotient, for thick-restart Lanczos.

    Holds rows V (n, P), the open vector v_{n+1} = ``V[n]`` and T = V A Vᵀ (n, n) such that

        A Vᵀ = Vᵀ T + β v_{n+1} e_nᵀ + E,   ‖E e_i‖ ≤ leak_i,

    where ``leak`` records couplings dropped on purpose (at a breakdown, or when
    converged vectors are locked and a fresh random direction replaces v_{n+1}).
    Each new column of T is the full projection c = V A v_n of two Gram–Schmidt
    passes, so after a thick restart (Wu & Simon 2000) the "arrow" couplings of
    the kept Ritz vectors appear in T without special cases. A Ritz pair (θ, Vᵀu)
    of T then has residual ‖A y − θ y‖ ≤ |β u_n| + Σ_i leak_i |u_i| (up to rounding).
    """

    def __init__(self, op: LinearOperator, capacity: int, device: torch.device, seed: Seed,
                 breakdown_rtol: float = BREAKDOWN_RTOL):
        self.op, self.capacity, self.breakdown_rtol = op, capacity, breakdown_rtol
        self.V = torch.zeros(capacity + 1, op.dim, dtype=torch.float64, device=device)
        self.T = torch.zeros(capacity, capacity, dtype=torch.float64)
        self.leak = torch.zeros(capacity, dtype=torch.float64)
        self.size, self.beta, self.has_open = 0, 0.0, False
        self.num_matvecs, self.scale = 0, 0.0
        self.generator = make_generator(seed)

    @property
    def complete(self) -> bool:
        """The basis spans R^P (or an invariant space with no room to grow): Ritz pairs are exact."""
        return not self.has_open

    def open(self, q: Tensor) -> bool:
        """Make ``q``, orthogonalized against the basis, the open vector; False if nothing is left."""
        for _ in range(3 if self.size < self.op.dim else 0):  # retry only if q lay inside the basis
            w, _ = gram_schmidt(self.V[: self.size], q.to(self.V.device, torch.float64))
            norm = float(torch.linalg.norm(w))
            if norm > 1e-8 * float(torch.linalg.norm(q)):
                self.V[self.size], self.has_open = w / norm, True
                return True
            q = self._random()
        self.has_open = False
        return False

    def _random(self) -> Tensor:
        return random_unit_vector(self.op.dim, seed=self.generator, device=self.V.device)

    def step(self) -> None:
        """Apply A to the open vector, add it to the basis and open the next one."""
        j = self.size
        w, c = gram_schmidt(self.V[: j + 1], apply_float64(self.op, self.V[j]))
        self.num_matvecs += 1
        c = c.cpu()
        self.T[j, : j + 1], self.T[: j + 1, j] = c, c
        beta = float(torch.linalg.norm(w))
        self.size, self.scale = j + 1, max(self.scale, abs(float(c[j])), beta)
        if beta > self.breakdown_rtol * self.scale and self.size < self.op.dim:
            self.V[self.size], self.beta, self.has_open = w / beta, beta, True
        else:  # invariant subspace: drop β (≤ tolerance), go on with a fresh direction
            self.leak[j] += beta
            self.beta = 0.0
            self.open(self._random())

    def ritz(self) -> tuple[Tensor, Tensor, Tensor]:
        """Ritz values θ (n,) ascending, vectors U (n, n) of T, and residual bounds (n,)."""
        n = self.size
        theta, U = map(torch.from_numpy, scipy_eigh(self.T[:n, :n].numpy(), driver="evd"))
        self.scale = max(self.scale, float(theta.abs().max()))
        bounds = self.beta * U[n - 1].abs() + self.leak[:n] @ U.abs()
        return theta, U, bounds

    def restart(self, U: Tensor, theta: Tensor, lock: bool = False) -> None:
        """Keep the Ritz vectors Vᵀ U (columns of ``U``) with values ``theta``.

        The open vector stays (its couplings β U[n−1] to the kept vectors reappear in T
        at the next step), unless ``lock``: then those couplings go into ``leak`` and a
        random direction orthogonal to the kept vectors is opened instead.
        """
        n, l = self.size, U.shape[1]
        s = self.beta * U[n - 1].abs()
        leak = self.leak[:n] @ U.abs() + (s if lock else 0.0)
        self.V[:l] = U.T.to(self.V.device) @ self.V[:n]
        self.T.zero_()
        self.leak.zero_()
        self.T[:l, :l], self.leak[:l], self.size = torch.diag(theta), leak, l
        if lock or not self.has_open:
            self.beta = 0.0
            self.open(self._random())
        else:  # self.beta is stale until the next step() refreshes it; ritz() only follows a step
            self.V[l] = self.V[n]


class ThickRestart:
    """The restart loop, judged after every step: stop, restart, or lock-and-probe.

    Modes: *normal* (thick restart until every wanted pair has converged) and *probe*
    (the k converged pairs are locked and the basis grows from a random vector
    orthogonal to them; a probe value that beats a locked one by more than the
    tolerance sends it back to normal mode; otherwise it stops once the
    Kuczyński–Woźniakowski bound makes a hidden better value unlikely, or after
    m − k probe steps).
    """

    def __init__(self, basis: KrylovBasis, k: int, which: str, tol: float, m: int, budget: int,
                 callback: Callable[[dict], None] | None, verify: bool):
        self.basis, self.k, self.which, self.tol, self.m = basis, k, which, tol, m
        self.budget, self.callback, self.verify = budget, callback, verify
        self.n_keep = min(k + int(KEEP_FRACTION * (m - k)), m - 1)  # wanted + a share of the rest
        self.restarts, self.locked, self.probe_steps = 0, 0, 0  # locked > 0: probe mode, V[:locked] locked

    def run(self) -> tuple[Tensor, Tensor]:
        """Iterate; return the wanted Ritz values (k,) and vectors (k, P) float64."""
        while True:
            action = self._cycle()
            if action == "stop":
                break
            keep = self.wanted if action == "probe" else self.order[: self.n_keep]
            self.basis.restart(self.U[:, keep], self.theta[keep], lock=action == "probe")
            self.locked, self.probe_steps = (self.k, 0) if action == "probe" else (self.locked, self.probe_steps)
            self.restarts += 1
        V = self.basis.V
        if self.locked:  # the probe found nothing new: the answer is the locked vectors
            return self.basis.T.diagonal()[: self.k].clone(), V[: self.k].clone()
        return self.theta[self.wanted], self.U[:, self.wanted].T.to(V.device) @ V[: self.basis.size]

    def _cycle(self) -> str:
        """Grow the basis one vector at a time until there is something to do."""
        while True:
            can_grow = self.basis.has_open and self.basis.num_matvecs < self.budget
            if can_grow:
                self.basis.step()
                self.probe_steps += 1
            if self.basis.size > self.k or not can_grow:
                action = self._judge(can_grow)
                if action is not None:
                    return action

    def _judge(self, can_grow: bool) -> str | None:
        self.theta, self.U, bounds = self.basis.ritz()
        tol = self.tol * self.basis.scale
        self.order = priority(self.theta, self.which)
        self.wanted = self.order[: self.k]
        converged = bounds[self.wanted] <= tol
        self._report(bounds[self.wanted], converged)
        if self.basis.complete:  # the Krylov space is invariant and has no room left: exact
            self.locked = 0
            return "stop"
        if self.locked:
            verdict = self._probe_verdict(tol)
            if verdict == "new":
                self.locked = 0  # back to normal mode, the new value among the wanted
            elif verdict == "settled" or self.probe_steps >= self.m - self.k:
                return "stop"
        if not self.locked and bool(converged.all()):
            return "probe" if self.verify else "stop"
        if not can_grow:  # budget spent; in probe mode the locked pairs are the (converged) answer
            return "stop"
        return "restart" if self.basis.size >= self.m else None

    def _probe_verdict(self, tol: float) -> str | None:
        """"new" if a probe value belongs among the wanted, "settled" if none is likely to, else None.

        The probe block T[k:, k:] is (up to couplings ≤ tol) the Rayleigh quotient of the
        operator deflated by the locked vectors; its values are compared with the locked
        values diag T[:k, :k], handicapped by ``tol`` so that ties do not count as new.
        """
        k, n, T = self.k, self.basis.size, self.basis.T
        locked, free = T.diagonal()[:k], torch.from_numpy(scipy_eigh(T[k:n, k:n].numpy(), eigvals_only=True))
        values = torch.cat([locked, free])
        is_free = torch.arange(n) >= k
        values = torch.where(is_free, handicap(values, self.which, tol), values)
        if bool((priority(values, self.which)[:k] >= k).any()):
            return "new"
        return "settled" if self._settled(free, locked.sort().values, tol) else None

    def _settled(self, free: Tensor, locked: Tensor, tol: float) -> bool:
        """Is it unlikely (≤ 2δ) that the probe hides a value beyond the locked ones by more than ``tol``?

        With ε from :func:`kw_epsilon`, λ_max − θ_top ≤ ε S and θ_bottom − λ_min ≤ ε S each fail
        with probability ≤ δ, where S = λ_max − λ_min of the deflated operator; hence
        S ≤ R / (1 − 2ε) with R the range of the probe's Ritz values ``free``.
        """
        eps = kw_epsilon(self.probe_steps - 1, self.basis.op.dim - self.k, VERIFY_FAILURE_PROB)
        if free.numel() < 2 or eps >= 0.5:
            return False
        reach = eps * float(free.max() - free.min()) / (1 - 2 * eps)
        top, bottom = float(free.max()) + reach, float(free.min()) - reach
        if self.which == "LA":
            return top < float(locked[0]) + tol
        if self.which == "SA":
            return bottom > float(locked[-1]) - tol
        if self.which == "LM":
            floor = float(locked.abs().min())
            return top < floor + tol and bottom > -floor - tol
        n_bottom = self.k // 2
        top_ok = top < float(locked[n_bottom]) + tol
        return top_ok and (n_bottom == 0 or bottom > float(locked[n_bottom - 1]) - tol)

    def _report(self, bounds: Tensor, converged: Tensor) -> None:
        if self.callback is not None:
            scale = self.basis.scale or 1.0
            self.callback({"num_matvecs": self.basis.num_matvecs, "max_residual": float(bounds.max()) / scale,
                           "num_converged": int(converged.sum()), "num_restarts": self.restarts})


def priority(theta: Tensor, which: str) -> Tensor:
    """Indices of the Ritz values ``theta`` in order of preference for ``which``."""
    if which == "LA":
        return torch.argsort(theta, descending=True, stable=True)
    if which == "SA":
        return torch.argsort(theta, stable=True)
    if which == "LM":
        return torch.argsort(theta.abs(), descending=True, stable=True)
    top, bottom = torch.argsort(theta, descending=True, stable=True), torch.argsort(theta, stable=True)
    seen, order = set(), []
    for i in torch.stack([top, bottom], dim=1).reshape(-1).tolist():  # BE: top, bottom, top, ...
        if i not in seen:
            seen.add(i)
            order.append(i)
    return torch.tensor(order, dtype=torch.long)


def handicap(theta: Tensor, which: str, margin: float) -> Tensor:
    """``theta`` made less wanted by ``margin`` (never crossing the point it is judged from).

    LA/SA move values down/up; LM shrinks |θ| toward 0; BE moves values toward the
    middle of their range. Ties then go to the values that were not handicapped.
    """
    if which == "LA":
        return theta - margin
    if which == "SA":
        return theta + margin
    center = 0.0 if which == "LM" else float(theta.max() + theta.min()) / 2
    d = theta - center
    return center + torch.sign(d) * (d.abs() - margin).clamp(min=0.0)


def kw_epsilon(num_matvecs: int, n: int, delta: float) -> float:
    """Relative accuracy ε that Lanczos from a random start reaches with probability ≥ 1 − δ.

    Kuczyński & Woźniakowski (1992), "Estimating the largest eigenvalue by the power
    and Lanczos algorithms with a random start", SIAM J. Matrix Anal. Appl. 13(4):
    for a symmetric positive semidefinite n × n matrix and a start vector uniform on
    the sphere, q ≥ 2 matvecs give θ < (1 − ε) λ_max with probability at most
    1.648 √n e^{−√ε (2q − 1)}. Applied to A − λ_min I, "relative" means relative to
    the spectral range λ_max − λ_min. Returns ``inf`` for q < 2.
    """
    if num_matvecs < 2:
        return math.inf
    return (math.log(1.648 * math.sqrt(max(n, 1)) / delta) / (2 * num_matvecs - 1)) ** 2
