"""Thick-restart Lanczos with locking and a randomized check for missed eigenvalues.

The engine behind :func:`landscape.solvers.eigsh`: a float64 Krylov basis that grows one
Lanczos vector at a time with full reorthogonalization (:class:`KrylovBasis`) and the
loop that judges the Ritz pairs after every step and restarts, locks or stops
(:class:`ThickRestart`). References: Wu & Simon (2000), "Thick-restart Lanczos method
for large symmetric eigenvalue problems", SIAM J. Matrix Anal. Appl. 22(2);
Kuczyński & Woźniakowski (1992) for the probabilistic check; Ruhe (1979) for the band
Lanczos steps that follow a warm start from a nearly invariant block (:meth:`KrylovBasis.seed`).
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

    Holds the basis rows V[:n], a queue of r open vectors V[n:n+r] (orthonormal, ⊥ the
    basis), T = V A Vᵀ (n, n) and the couplings C (n, r) of the basis to the queue, with

        A V[:n]ᵀ = V[:n]ᵀ T + V[n:n+r]ᵀ Cᵀ + E,   ‖E e_i‖ ≤ leak_i,

    where ``leak`` records couplings dropped on purpose (at a breakdown, or when
    converged vectors are locked and a fresh random direction replaces the queue).
    Each step applies A to the oldest open vector, which joins the basis: its column of
    T is the full projection c = V A v of two Gram–Schmidt passes, so after a thick
    restart (Wu & Simon 2000) the "arrow" couplings of the kept Ritz vectors appear in
    T without special cases, and the part of A v outside basis and queue joins the
    queue. From one start vector r = 1 and C = β e_nᵀ: the Lanczos relation. From a
    nearly invariant block (:meth:`seed`) r is the rank of the block's residuals and the
    steps are those of band Lanczos (Ruhe 1979, "Implementation aspects of band Lanczos
    algorithms for computation of eigenvalues of large sparse symmetric matrices",
    Math. Comp. 33), block Lanczos one vector at a time. A Ritz pair (θ, y = Vᵀu) of T
    has residual, up to rounding,

        ‖A y − θ y‖ ≤ ‖Cᵀ u‖ + Σ_i leak_i |u_i|   (|β u_n| + … when r = 1).
    """

    def __init__(self, op: LinearOperator, capacity: int, device: torch.device, seed: Seed,
                 breakdown_rtol: float = BREAKDOWN_RTOL):
        self.op, self.capacity, self.breakdown_rtol = op, capacity, breakdown_rtol
        self.V = torch.zeros(capacity + 1, op.dim, dtype=torch.float64, device=device)
        self.T = torch.zeros(capacity, capacity, dtype=torch.float64)
        self.C = torch.zeros(capacity, 1, dtype=torch.float64)
        self.leak = torch.zeros(capacity, dtype=torch.float64)
        self.size, self.width = 0, 0  # n basis rows, r open vectors
        self.num_matvecs, self.scale = 0, 0.0
        self.generator = make_generator(seed)

    @property
    def has_open(self) -> bool:
        """There is an open vector to apply A to."""
        return self.width > 0

    @property
    def complete(self) -> bool:
        """The basis spans R^P (or an invariant space with no room to grow): Ritz pairs are exact."""
        return not self.has_open

    def open(self, q: Tensor) -> bool:
        """Queue ``q``, orthogonalized against basis and queue; False if nothing is left."""
        end = self.size + self.width
        for _ in range(3 if end < self.op.dim else 0):  # retry only if q lay inside the basis
            w, _ = gram_schmidt(self.V[:end], q.to(self.V.device, torch.float64))
            norm = float(torch.linalg.norm(w))
            if norm > 1e-8 * float(torch.linalg.norm(q)):
                self.V[end], self.C[:, self.width] = w / norm, 0.0
                self.width += 1
                return True
            q = self._random()
        return False

    def _random(self) -> Tensor:
        return random_unit_vector(self.op.dim, seed=self.generator, device=self.V.device)

    def step(self, product: Tensor | None = None) -> None:
        """Apply A to the oldest open vector (or take its ``product``, already counted) and add it."""
        n, r = self.size, self.width
        if product is None:
            product = apply_float64(self.op, self.V[n])
            self.num_matvecs += 1
        w, c = gram_schmidt(self.V[: n + r], product)
        c = c.cpu()
        self.T[n, : n + 1], self.T[: n + 1, n] = c[: n + 1], c[: n + 1]
        beta = float(torch.linalg.norm(w))
        self.size, self.scale = n + 1, max(self.scale, abs(float(c[n])), beta)
        self.C[:n, : r - 1] = self.C[:n, 1:r].clone()  # column 0, the stepped vector, is now in T
        self.C[n, : r - 1], self.C[:, r - 1] = c[n + 1: n + r], 0.0
        if beta > self.breakdown_rtol * self.scale and n + r < self.op.dim:
            self.V[n + r], self.C[n, r - 1] = w / beta, beta
        else:  # invariant subspace: drop β (≤ tolerance), go on with the queue or a fresh direction
            self.leak[n] += beta
            self.width = r - 1
            if self.width == 0:
                self.open(self._random())

    def seed(self, Q: Tensor, which: str, n_keep: int, near: float) -> None:
        """Start from the block ``Q`` (j, P) with orthonormal rows, at the cost of at most j products.

        The first product is A b for b ∝ Σ_i q_i. If span Q is far from invariant,
        η = ‖(I − QᵀQ) A b‖ / ‖A b‖ > ``near``, that product is the first Lanczos step
        and the run is plain Lanczos from b. Otherwise the other j − 1 products complete
        A Qᵀ and the basis starts from the Ritz pairs of span Q (:meth:`_seed_ritz`).
        """
        q = Q.sum(dim=0)
        self.open(q / float(torch.linalg.norm(q)))  # normalized twice, exactly as a (P,) v0 would be
        b = self.V[0]
        Ab = apply_float64(self.op, b)
        self.num_matvecs += 1
        outside = Ab - (Ab @ Q.T) @ Q
        if float(torch.linalg.norm(outside)) > near * float(torch.linalg.norm(Ab)):
            self.step(Ab)
            return
        c = torch.full((Q.shape[0], 1), Q.shape[0] ** -0.5, dtype=torch.float64, device=Q.device)
        H = torch.linalg.qr(torch.cat([c, torch.eye(Q.shape[0], dtype=torch.float64, device=Q.device)], 1))[0]
        rest = H[:, 1: Q.shape[0]].T @ Q  # orthonormal rows spanning span Q ⊖ b
        W = torch.cat([Ab.unsqueeze(0), apply_float64(self.op, rest)])
        self.num_matvecs += rest.shape[0]
        self.width = 0
        self._seed_ritz(torch.cat([b.unsqueeze(0), rest]), W, which, n_keep)

    def _seed_ritz(self, Q: Tensor, W: Tensor, which: str, n_keep: int) -> None:
        """Basis from the Ritz pairs of span Q given W = A Qᵀ (rows), as after a thick restart.

        Q A Qᵀ = Y Θ Yᵀ; the ``n_keep`` Ritz vectors Z = Yᵀ Q most wanted by ``which``
        are kept with T = diag Θ. Their residuals R = A Zᵀ − Zᵀ Θ (⊥ span Q) span up to
        j directions, not the one open vector of a thick restart, so all of them are
        queued, by decreasing singular value of R, with their couplings C: the relation
        stays exact and the run goes on as band Lanczos. Directions with singular value
        below the breakdown threshold go into ``leak``; if none is left (Q spans an
        invariant subspace), the basis grows from a random vector, as at a breakdown.
        """
        G = (Q @ W.T).cpu()
        theta, Y = map(torch.from_numpy, scipy_eigh(((G + G.T) / 2).numpy(), driver="evd"))
        keep = priority(theta, which)[:n_keep]
        theta, Y = theta[keep], Y[:, keep].to(Q.device)
        Z = Y.T @ Q
        R = Y.T @ W - theta.to(Q.device).unsqueeze(1) * Z
        for _ in range(2):  # ⊥ Z to rounding (G was symmetrized; a float32 operator is not exactly)
            R = R - (R @ Z.T) @ Z
        Us, s, Wh = torch.linalg.svd(R, full_matrices=False)  # R = Us diag(s) Wh
        l, Us, s = len(keep), Us.cpu(), s.cpu()
        self.scale = max(self.scale, float(theta.abs().max()), float(s.max()))
        big = s > self.breakdown_rtol * self.scale
        r = int(big.sum())
        self.V = torch.zeros(self.capacity + max(r, 1), self.op.dim, dtype=torch.float64, device=Q.device)
        self.C = torch.zeros(self.capacity, max(r, 1), dtype=torch.float64)
        self.V[:l], self.T[:l, :l], self.size = Z, torch.diag(theta), l
        self.leak[:l] += torch.linalg.norm(Us[:, ~big] * s[~big], dim=1)
        self.V[l: l + r], self.C[:l, :r], self.width = Wh[big.to(Wh.device)], Us[:, big] * s[big], r
        if r == 0:
            self.open(self._random())

    def ritz(self) -> tuple[Tensor, Tensor, Tensor]:
        """Ritz values θ (n,) ascending, vectors U (n, n) of T, and residual bounds (n,)."""
        n = self.size
        theta, U = map(torch.from_numpy, scipy_eigh(self.T[:n, :n].numpy(), driver="evd"))
        self.scale = max(self.scale, float(theta.abs().max()))
        bounds = self._outside(U) + self.leak[:n] @ U.abs()
        return theta, U, bounds

    def _outside(self, U: Tensor) -> Tensor:
        """‖Cᵀ u‖ for each column u of ``U``: the norm of (I − VᵀV) A Vᵀ u, the leak aside."""
        return torch.linalg.norm(self.C[: self.size, : self.width].T @ U, dim=0)

    def restart(self, U: Tensor, theta: Tensor, lock: bool = False) -> None:
        """Keep the Ritz vectors Vᵀ U (columns of ``U``) with values ``theta``.

        The queue stays, with couplings Uᵀ C (they reappear in T as its vectors are
        stepped), unless ``lock``: then those couplings go into ``leak`` and a random
        direction orthogonal to the kept vectors is opened instead.
        """
        n, r, l = self.size, self.width, U.shape[1]
        leak = self.leak[:n] @ U.abs() + (self._outside(U) if lock else 0.0)
        C = U.T @ self.C[:n, :r]
        self.V[:l] = U.T.to(self.V.device) @ self.V[:n]
        self.T.zero_()
        self.leak.zero_()
        self.C.zero_()
        self.T[:l, :l], self.leak[:l], self.size = torch.diag(theta), leak, l
        if lock or r == 0:
            self.width = 0
            self.open(self._random())
        else:
            self.V[l: l + r], self.C[:l, :r] = self.V[n: n + r].clone(), C


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
