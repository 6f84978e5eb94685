"""A growing float64 Krylov basis that keeps an exact record of its Lanczos relation.

The engine under :func:`landscape.solvers.eigsh`. With full reorthogonalization the
products the solver computed satisfy, to float64 rounding,

    A V[:n]ᵀ = V[:n]ᵀ (T + D) + Qᵀ Cᵀ + Hᵀ Fᵀ + E,    ‖E e_i‖ ≤ leak_i,              (1)

where V[:n] (rows) is the orthonormal basis, T = V A Vᵀ its symmetric Rayleigh quotient,
Q the r open ("queue") vectors (orthonormal, ⊥ basis) with couplings C (n, r), and H the
*held* directions (⊥ basis) with coefficients F (n, h): couplings that were taken out of
the queue on purpose — when converged vectors are locked before a probe, at a breakdown,
or below the breakdown threshold of a block seed — and are kept, not forgotten, so that
the relation stays exact. D records the relation's defect inside the basis: the
difference between A v_i's coefficient on a later basis vector v_j as the product of
v_i gave it and the symmetric value T[j, i] taken from the product of v_j (zero for an
exactly symmetric A; the float32 rounding of a float32 operator otherwise). ``leak``
bounds what a thick restart discards of D (rows no longer in the basis): rounding-sized;
its Frobenius total bounds E for any unit vector, so rotations cannot compound it.

Hence, for any unit y = V[:n]ᵀ u and any θ (Parlett 1998, §13; Stewart 2001, "A
Krylov–Schur algorithm for large eigenproblems"), without a product with A,

    A y − θ y = V[:n]ᵀ ((T + D) u − θ u) + Qᵀ Cᵀ u + Hᵀ Fᵀ u + E u,                  (2)

whose norm is computed exactly from small matrices (Q and H are ⊥ the basis, so only
the Gram matrix of [Q; H] is needed): :meth:`KrylovBasis.residual_norms`. For a Ritz
pair of T this is the familiar |β u_n| of Lanczos when r = 1 and nothing is held.

Steps: each step applies A to the oldest open vector (or a block of them in one call,
a batched product) and adds it to the basis; its column of T is the full projection of
two Gram–Schmidt passes, so after a thick restart (Wu & Simon 2000) the "arrow" couplings
of the kept Ritz vectors appear in T without special cases, and the part of A v outside
basis and queue joins the queue. From b start vectors the steps are those of band
Lanczos (Ruhe 1979), i.e. block Lanczos one vector at a time.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from scipy.linalg import eigh as scipy_eigh
from torch import Tensor

from landscape.operators import LinearOperator, apply_float64
from landscape.solvers.lanczos import BREAKDOWN_RTOL, gram_schmidt
from landscape.solvers.sampling import Seed, make_generator, random_unit_vector


class KrylovBasis:
    """Basis rows V[:n], queue V[n:n+r], T, D, C, held H and F, leak: relation (1) of the module.

    Args:
        op: the operator.
        capacity: the most basis rows (m).
        device: where the float64 basis lives.
        seed: generator (or int) for random directions (after breakdown or for a probe).
        breakdown_rtol: a new direction shorter than this × ‖A‖_est is not opened (it is held).
        max_width: initial room for open vectors (grown on demand).
    """

    def __init__(self, op: LinearOperator, capacity: int, device: torch.device, seed: Seed,
                 breakdown_rtol: float = BREAKDOWN_RTOL, max_width: int = 1):
        self.op, self.capacity, self.breakdown_rtol = op, capacity, breakdown_rtol
        self.V = torch.zeros(capacity + max_width, op.dim, dtype=torch.float64, device=device)
        self.T = torch.zeros(capacity, capacity, dtype=torch.float64)
        self.D = torch.zeros(capacity, capacity, dtype=torch.float64)
        self.C = torch.zeros(capacity, max_width, dtype=torch.float64)
        self.leak = torch.zeros(capacity, dtype=torch.float64)
        self.leak_total = 0.0  # ‖E‖_F ≥ every ‖E u‖ for a unit u: keeps rotated leaks from compounding
        self.H = torch.zeros(0, op.dim, dtype=torch.float64, device=device)
        self.F = torch.zeros(capacity, 0, dtype=torch.float64)
        self.size, self.width = 0, 0  # n basis rows, r open vectors
        self.num_matvecs, self.scale = 0, 0.0
        self.generator = make_generator(seed)

    # ---- state ----------------------------------------------------------------------------
    @property
    def has_open(self) -> bool:
        """There is an open vector to apply A to."""
        return self.width > 0

    @property
    def complete(self) -> bool:
        """The basis spans R^P (or an invariant space with no room to grow): Ritz pairs are exact."""
        return not self.has_open

    @property
    def queue(self) -> Tensor:
        """The open vectors Q, ``(r, P)``."""
        return self.V[self.size: self.size + self.width]

    def random(self) -> Tensor:
        """A unit vector uniform on the sphere, from the basis's generator."""
        return random_unit_vector(self.op.dim, seed=self.generator, device=self.V.device)

    def open(self, q: Tensor) -> bool:
        """Queue ``q``, orthogonalized against basis and queue; False if nothing is left."""
        end = self.size + self.width
        self._room(self.width + 1)
        for _ in range(3 if end < self.op.dim else 0):  # retry only if q lay inside the basis
            w, _ = gram_schmidt(self.V[:end], q.to(self.V.device, torch.float64))
            norm = float(torch.linalg.norm(w))
            if norm > 1e-8 * float(torch.linalg.norm(q)):
                self.V[end], self.C[:, self.width] = w / norm, 0.0
                self.width += 1
                return True
            q = self.random()
        return False

    def _room(self, width: int) -> None:
        """Grow V and C so that ``width`` open vectors fit."""
        if self.C.shape[1] < width:
            self.C = torch.cat([self.C, torch.zeros(self.capacity, width - self.C.shape[1], dtype=torch.float64)], 1)
        rows = self.capacity + width
        if self.V.shape[0] < rows:
            extra = torch.zeros(rows - self.V.shape[0], self.op.dim, dtype=torch.float64, device=self.V.device)
            self.V = torch.cat([self.V, extra])

    # ---- steps ------------------------------------------------------------------------------
    def step_block(self, count: int = 1) -> int:
        """Apply A to the ``count`` oldest open vectors in one (batched) call and add them; returns how many.

        The queue vectors are fixed until stepped, so their products can be formed together;
        adding them one after the other is exactly band Lanczos.
        """
        count = max(1, min(count, self.width, self.capacity - self.size))
        n = self.size
        products = apply_float64(self.op, self.V[n: n + count])
        self.num_matvecs += count
        for product in products:
            self.step(product)
        return count

    def step(self, product: Tensor | None = None) -> None:
        """Apply A to the oldest open vector (or take its ``product``, already counted) and add it."""
        n, r = self.size, self.width
        v = self.V[n]
        if product is None:
            product = apply_float64(self.op, v)
            self.num_matvecs += 1
        w, c = gram_schmidt(self.V[: n + r], product)
        c = c.cpu()
        self._absorb(n, v, c)
        self.T[n, : n + 1], self.T[: n + 1, n] = c[: n + 1], c[: n + 1]
        beta = float(torch.linalg.norm(w))
        self.size, self.scale = n + 1, max(self.scale, abs(float(c[n])), beta)
        self.C[:n, : r - 1] = self.C[:n, 1:r].clone()  # column 0, the stepped vector, is now in T
        self.C[n, : r - 1], self.C[:, r - 1] = c[n + 1: n + r], 0.0
        if beta > self.breakdown_rtol * self.scale and n + r < self.op.dim:
            self.V[n + r], self.C[n, r - 1] = w / beta, beta
        else:  # invariant subspace: hold the short remainder, go on with the queue or a fresh direction
            if beta > 0.0:
                coefficient = torch.zeros(n + 1, 1, dtype=torch.float64)
                coefficient[n, 0] = beta
                self.hold((w / beta).unsqueeze(0), coefficient)
            self.width = r - 1
            if self.width == 0:
                self.open(self.random())

    def _absorb(self, n: int, v: Tensor, c: Tensor) -> None:
        """v = V[n] joins the basis: record the defect row D[n, :n] and take v out of the held directions.

        Column i < n of (1) had v's coefficient C[i, 0] (v was open vector 0) plus the held part
        F_i · (H v); T[n, i] is set to the symmetric value c_i = v_i·A v from v's own product.
        """
        coef = self.C[:n, 0].clone()
        if self.H.shape[0]:
            hv = self.H @ v
            coef += self.F[:n] @ hv.cpu()
            self.H = self.H - hv.unsqueeze(1) * v.unsqueeze(0)
        self.D[n, :n] = coef - c[:n]

    def hold(self, directions: Tensor, coefficients: Tensor) -> None:
        """Keep ``directions`` (j, P) (⊥ basis) with coefficients (m ≤ n rows, j) in relation (1)."""
        F = torch.zeros(self.capacity, directions.shape[0], dtype=torch.float64)
        F[: coefficients.shape[0]] = coefficients
        self.H = torch.cat([self.H, directions.to(self.H.device, torch.float64)])
        self.F = torch.cat([self.F, F], 1)

    # ---- Ritz pairs and their residuals ---------------------------------------------------------
    def ritz(self) -> tuple[Tensor, Tensor]:
        """Ritz values θ (n,) ascending and vectors U (n, n) of T (``scipy.linalg.eigh``)."""
        n = self.size
        theta, U = map(torch.from_numpy, scipy_eigh(self.T[:n, :n].numpy(), driver="evd"))
        self.scale = max(self.scale, float(theta.abs().max()))
        return theta, U

    def residual_norms(self, U: Tensor, theta: Tensor) -> Tensor:
        """‖A y − θ y‖ for y = V[:n]ᵀ u, each column u of ``U`` with its θ, from relation (2): no product.

        Exact up to float64 rounding when ``leak`` is zero; ``leak`` adds a bound otherwise.
        """
        n, r, h = self.size, self.width, self.H.shape[0]
        inside = (self.T[:n, :n] + self.D[:n, :n]) @ U - U * theta.unsqueeze(0)
        outside = torch.cat([self.C[:n, :r].T @ U, self.F[:n].T @ U])  # (r + h, m) coefficients
        G = self._outside_gram(r, h)
        out2 = (outside * (G @ outside)).sum(0).clamp(min=0.0)
        return torch.sqrt((inside ** 2).sum(0) + out2) + self.leak_part(U)

    def leak_part(self, U: Tensor) -> Tensor:
        """Bound on ‖E u‖ for each column u of ``U``: min(Σ_i leak_i |u_i|, ‖E‖_F ‖u‖)."""
        n = self.size
        return torch.minimum(self.leak[:n] @ U.abs(), self.leak_total * torch.linalg.norm(U, dim=0))

    def _outside_gram(self, r: int, h: int) -> Tensor:
        """Gram matrix of the rows [Q; H] (orthonormal Q: identity unless something is held)."""
        if h == 0:
            return torch.eye(r, dtype=torch.float64)
        W = torch.cat([self.queue, self.H])
        return (W @ W.T).cpu()

    def residual_vectors(self, U: Tensor, theta: Tensor) -> Tensor:
        """The residual vectors A y − θ y of relation (2), ``(m, P)`` (leak aside)."""
        n, r = self.size, self.width
        inside = (self.T[:n, :n] + self.D[:n, :n]) @ U - U * theta.unsqueeze(0)
        dev = self.V.device
        out = inside.T.to(dev) @ self.V[:n] + (self.C[:n, :r].T @ U).T.to(dev) @ self.queue
        if self.H.shape[0]:
            out = out + (self.F[:n].T @ U).T.to(dev) @ self.H
        return out

    # ---- restarts ----------------------------------------------------------------------------------
    def restart(self, U: Tensor, theta: Tensor, lock: bool = False) -> None:
        """Keep the Ritz vectors V[:n]ᵀ U (columns of ``U``, orthonormal) with values ``theta``.

        The queue stays, with couplings Uᵀ C (they reappear in T as its vectors are stepped),
        unless ``lock``: then the queue is *held* (its couplings move to F) and a random
        direction orthogonal to the kept vectors is opened instead. D is rotated; the part of
        D U outside span U (discarded rows) is added to ``leak``.
        """
        n, r, l = self.size, self.width, U.shape[1]
        DU = self.D[:n, :n] @ U
        D_kept = U.T @ DU
        discarded = torch.linalg.norm(DU - U @ D_kept, dim=0)
        leak = self.leak_part(U) + discarded
        self.leak_total += float(torch.linalg.norm(discarded))
        C, F = U.T @ self.C[:n, :r], U.T @ self.F[:n]
        self.V[:l] = U.T.to(self.V.device) @ self.V[:n]
        for M in (self.T, self.D, self.C, self.F):
            M.zero_()
        self.leak.zero_()
        self.T[:l, :l], self.D[:l, :l], self.leak[:l], self.F[:l], self.size = torch.diag(theta), D_kept, leak, F, l
        if lock and r:
            self.hold(self.V[n: n + r].clone(), C)
        if lock or r == 0:
            self.width = 0
            self.open(self.random())
        else:
            self.V[l: l + r], self.C[:l, :r] = self.V[n: n + r].clone(), C

    # ---- warm start from a block ---------------------------------------------------------------------
    def seed(self, Q: Tensor, n_keep: int, near: float, priority: Callable[[Tensor], Tensor]) -> None:
        """Start from the block ``Q`` (j, P) with orthonormal rows, at the cost of at most j products.

        The first product is A b for b ∝ Σ_i q_i. If span Q is far from invariant,
        η = ‖(I − QᵀQ) A b‖ / ‖A b‖ > ``near``, that product is the first Lanczos step
        and the run is plain Lanczos from b. Otherwise the other j − 1 products (one batched
        call) complete A Qᵀ and the basis starts from the Ritz pairs of span Q (:meth:`_seed_ritz`).
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
        self._seed_ritz(torch.cat([b.unsqueeze(0), rest]), W, n_keep, priority)

    def _seed_ritz(self, Q: Tensor, W: Tensor, n_keep: int, priority: Callable[[Tensor], Tensor]) -> None:
        """Basis from the Ritz pairs of span Q given W = A Qᵀ (rows), as after a thick restart.

        Q A Qᵀ = Y Θ Yᵀ; the ``n_keep`` Ritz vectors Z = Yᵀ Q first in ``priority`` are kept with
        T = diag Θ. Their residuals R = A Zᵀ − Zᵀ Θ span up to j directions: their part inside
        span Z (rounding of a float32 operator) goes into D, the rest is queued by decreasing
        singular value with its couplings C (band Lanczos from there), and directions below the
        breakdown threshold are held; if none is queued (span Q is invariant), the basis grows
        from a random vector, as at a breakdown.
        """
        G = (Q @ W.T).cpu()
        theta, Y = map(torch.from_numpy, scipy_eigh(((G + G.T) / 2).numpy(), driver="evd"))
        keep = priority(theta)[:n_keep]
        theta, Y = theta[keep], Y[:, keep].to(Q.device)
        Z = Y.T @ Q
        R = Y.T @ W - theta.to(Q.device).unsqueeze(1) * Z
        M = torch.zeros(len(keep), len(keep), dtype=torch.float64, device=Q.device)
        for _ in range(2):  # the part of R inside span Z: (T + D)[j, i] = θ_i δ_ij + M[i, j]
            P = R @ Z.T
            R, M = R - P @ Z, M + P
        Us, s, Wh = torch.linalg.svd(R, full_matrices=False)  # R = Us diag(s) Wh
        l, Us, s, M = len(keep), Us.cpu(), s.cpu(), M.cpu()
        self.scale = max(self.scale, float(theta.abs().max()), float(s.max()))
        big = s > self.breakdown_rtol * self.scale
        r = int(big.sum())
        self._room(max(r, 1))
        self.V[:l], self.T[:l, :l], self.D[:l, :l], self.size = Z, torch.diag(theta), M.T, l
        self.V[l: l + r], self.C[:l, :r], self.width = Wh[big.to(Wh.device)], Us[:, big] * s[big], r
        small = ~big & (s > 0)
        if bool(small.any()):
            self.hold(Wh[small.to(Wh.device)], Us[:, small] * s[small])
        if r == 0:
            self.open(self.random())
