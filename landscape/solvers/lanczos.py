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

import torch
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
        >>> res = lanczos(torch.diag(torch.arange(1.0, 6.0, dtype=torch.float64)), 5)
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

