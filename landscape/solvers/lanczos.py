"""Lanczos tridiagonalization in float64 with full reorthogonalization.

For a symmetric A (P × P) and a unit start vector v₁, m steps build an orthonormal
basis V = [v₁ … v_m] of the Krylov space K_m(A, v₁) and the tridiagonal

    T_m = Vᵀ A V = tridiag(β, α, β),   A V = V T_m + β_m v_{m+1} e_mᵀ        (Lanczos 1950).

The eigenvalues of T_m (Ritz values) approximate the extreme eigenvalues of A first;
with m = P they are all of them. In floating point the plain three-term recurrence
loses orthogonality as soon as a Ritz value converges and then reports "ghost"
copies of it (Paige 1971); here every new vector is orthogonalized against the whole
basis with two passes of classical Gram–Schmidt ("twice is enough", Giraud et al.
2005), and the recurrence and the basis are float64 whatever the operator's dtype.

Breakdown: β_j ≤ ``BREAKDOWN_RTOL`` · ‖A‖_est means the Krylov space is invariant
(its Ritz values are exact eigenvalues); the run stops there instead of dividing by
a rounding-level β.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.linalg import eigh as scipy_eigh
from scipy.linalg import eigh_tridiagonal
from torch import Tensor

from landscape.errors import InputError, NonFiniteError
from landscape.operators import LinearOperator, apply_float64, as_operator
from landscape.solvers.sampling import Seed, random_unit_vector

# β_j below this fraction of the largest |α|, β seen (a lower bound of ‖A‖₂) is a
# breakdown. With full reorthogonalization in float64 the residual of an exhausted
# Krylov space is ~1e-16·√P·‖A‖ (rounding), far below 1e-10; a genuine β this small
# only leaves out directions whose weight in the start vector is below 1e-20.
BREAKDOWN_RTOL = 1e-10


@dataclass(frozen=True)
class LanczosResult:
    """Raw output of :func:`lanczos`.

    Attributes:
        alphas: ``(m,)`` float64, diagonal of T_m.
        betas: ``(m-1,)`` float64, off-diagonal of T_m.
        basis: ``(m, P)`` float64 Lanczos vectors (rows), or None if not kept.
        num_matvecs: products with A (= m).
        breakdown: the run stopped because β fell below ``BREAKDOWN_RTOL``·‖A‖_est.
        last_beta: β_m = ‖A v_m − V T_m e_m‖, the coupling to the next vector
            (0 at breakdown). A Ritz pair (θ, V s) has residual |β_m s_m|.
    """

    alphas: Tensor
    betas: Tensor
    basis: Tensor | None
    num_matvecs: int
    breakdown: bool
    last_beta: float

    def tridiagonal(self) -> Tensor:
        """T_m as a dense ``(m, m)`` float64 tensor."""
        return torch.diag(self.alphas) + torch.diag(self.betas, 1) + torch.diag(self.betas, -1)

    def ritz(self) -> tuple[Tensor, Tensor]:
        """Eigen-decomposition of T_m: Ritz values θ ``(m,)`` ascending, eigenvectors S ``(m, m)`` (columns)."""
        theta, S = eigh_tridiagonal(self.alphas.numpy(), self.betas.numpy())
        return torch.from_numpy(theta), torch.from_numpy(S)

    def ritz_values(self) -> Tensor:
        """Ritz values θ ``(m,)`` ascending (eigenvalues of T_m, ``scipy.linalg.eigh_tridiagonal``)."""
        return torch.from_numpy(eigh_tridiagonal(self.alphas.numpy(), self.betas.numpy(), eigvals_only=True))

    def ritz_residuals(self) -> Tensor:
        """‖A y − θ y‖ = β_m |s_m| for each Ritz pair, in the order of :meth:`ritz`."""
        return self.last_beta * self.ritz()[1][-1].abs()

    def as_dict(self) -> dict:
        """Storable arrays and scalars (the basis is left out: it is P-sized)."""
        return {"alphas": self.alphas.numpy(), "betas": self.betas.numpy(), "num_matvecs": self.num_matvecs,
                "breakdown": int(self.breakdown), "last_beta": self.last_beta}


def lanczos(A, num_iters: int, *, v0: Tensor | None = None, seed: Seed = 0, reorth: bool = True,
            basis_device: torch.device | str | None = None, keep_basis: bool = True,
            dim: int | None = None) -> LanczosResult:
    """Run ``num_iters`` Lanczos steps on a symmetric operator.

    Args:
        A: operator, dense symmetric tensor, or matvec callable (then pass ``dim``).
        num_iters: m, the number of steps (= matvecs); capped at P when ``reorth``.
        v0: ``(P,)`` start vector (normalized here); default a seeded Gaussian one.
        seed: int or generator for the default start vector.
        reorth: full reorthogonalization (two Gram–Schmidt passes). ``False`` runs the
            plain three-term recurrence, which reports ghost eigenvalues; for study only.
        basis_device: where the float64 basis lives (default the operator's device;
            ``"cpu"`` for large P).
        keep_basis: return the basis (it is built anyway when ``reorth``).
        dim: P, for a matvec callable.

    Returns:
        :class:`LanczosResult`; fewer than ``num_iters`` steps at breakdown.

    Raises:
        InputError: ``num_iters < 1`` or a bad ``v0``.
        NonFiniteError: the operator returned NaN or Inf.

    Example:
        >>> import torch
        >>> res = lanczos(torch.diag(torch.arange(1.0, 6.0)), 5)
        >>> [round(float(x), 10) for x in res.ritz_values()]
        [1.0, 2.0, 3.0, 4.0, 5.0]
    """
    op = as_operator(A, dim)
    if int(num_iters) < 1:
        raise InputError(f"num_iters must be >= 1, got {num_iters}")
    m = min(int(num_iters), op.dim) if reorth else int(num_iters)
    device = torch.device(basis_device) if basis_device is not None else op.device
    v = start_vector(op.dim, v0, seed, device)
    if reorth:
        return _lanczos_reorth(op, v, m, keep_basis)
    return _lanczos_plain(op, v, m, keep_basis)


def start_vector(P: int, v0: Tensor | None, seed: Seed, device: torch.device) -> Tensor:
    """The unit float64 start vector: ``v0`` normalized, or a seeded Gaussian one."""
    if v0 is None:
        return random_unit_vector(P, seed=seed, device=device)
    v = torch.as_tensor(v0).to(device, torch.float64).reshape(-1)
    if v.shape[0] != P:
        raise InputError(f"v0 must have shape ({P},), got {tuple(torch.as_tensor(v0).shape)}")
    if not torch.isfinite(v).all():
        raise NonFiniteError("v0 holds NaN or Inf entries")
    norm = float(torch.linalg.norm(v))
    if norm == 0.0:
        raise InputError("v0 is the zero vector; pass a nonzero start vector or v0=None for a random one")
    return v / norm


def gram_schmidt(V: Tensor, w: Tensor) -> tuple[Tensor, Tensor]:
    """Orthogonalize ``w`` against the orthonormal rows of ``V`` with two CGS passes.

    Returns:
        ``(w − Vᵀc, c)`` with c = Vw accumulated over both passes (``c`` stays on the device).
    """
    c = V @ w
    w = w - c @ V
    c2 = V @ w
    return w - c2 @ V, c + c2


def _lanczos_reorth(op: LinearOperator, v: Tensor, m: int, keep_basis: bool) -> LanczosResult:
    V = torch.empty(m, op.dim, dtype=torch.float64, device=v.device)
    alphas, betas, scale, beta = [], [], 0.0, 0.0
    for j in range(m):
        V[j] = v
        w, c = gram_schmidt(V[: j + 1], apply_float64(op, v))
        alpha, beta = float(c[j]), float(torch.linalg.norm(w))
        alphas.append(alpha)
        scale = max(scale, abs(alpha), beta)
        if beta <= BREAKDOWN_RTOL * scale:
            return _result(alphas, betas, V[: j + 1] if keep_basis else None, True, 0.0)
        if j < m - 1:
            betas.append(beta)
            v = w / beta
    return _result(alphas, betas, V if keep_basis else None, False, beta)


def _lanczos_plain(op: LinearOperator, v: Tensor, m: int, keep_basis: bool) -> LanczosResult:
    V = torch.empty(m, op.dim, dtype=torch.float64, device=v.device) if keep_basis else None
    alphas, betas, scale, beta, v_prev = [], [], 0.0, 0.0, torch.zeros_like(v)
    for j in range(m):
        if V is not None:
            V[j] = v
        w = apply_float64(op, v) - beta * v_prev
        alpha = float(v @ w)
        w = w - alpha * v
        beta = float(torch.linalg.norm(w))
        alphas.append(alpha)
        scale = max(scale, abs(alpha), beta)
        if beta <= BREAKDOWN_RTOL * scale:
            return _result(alphas, betas, V[: j + 1] if V is not None else None, True, 0.0)
        if j < m - 1:
            betas.append(beta)
            v_prev, v = v, w / beta
    return _result(alphas, betas, V, False, beta)


def _result(alphas: list, betas: list, V: Tensor | None, breakdown: bool, last_beta: float) -> LanczosResult:
    return LanczosResult(torch.tensor(alphas, dtype=torch.float64), torch.tensor(betas, dtype=torch.float64),
                         V, len(alphas), breakdown, float(last_beta))


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
        from landscape.solvers.sampling import make_generator

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
        for _ in range(3):  # a second try only if q lay (numerically) inside the basis
            w, _ = gram_schmidt(self.V[: self.size], q.to(self.V.device, torch.float64))
            norm = float(torch.linalg.norm(w))
            if self.size < self.op.dim and norm > 1e-8 * float(torch.linalg.norm(q)):
                self.V[self.size], self.has_open = w / norm, True
                return True
            q = self._random()
        self.has_open = False
        return False

    def _random(self) -> Tensor:
        return random_unit_vector(self.op.dim, seed=self.generator, device=self.V.device)

    def expand(self, target: int, budget: int) -> None:
        """Lanczos steps until the basis has ``target`` vectors or ``budget`` matvecs are spent."""
        while self.size < min(target, self.capacity) and self.has_open and self.num_matvecs < budget:
            self.step()

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
        else:
            self.V[l] = self.V[n]
