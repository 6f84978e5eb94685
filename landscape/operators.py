"""Linear operators: the one interface every solver sees.

Notation (fixed for the whole package): P is the dimension of the operator (the
number of parameters), k a number of vectors. Vectors are 1-D tensors of shape
``(P,)``; a block of k vectors is stored **row-wise** as ``(k, P)`` — the same
layout as stored eigenvectors — so ``A.matmat(V)`` returns the rows ``A v_i``.

An operator has ``shape``, ``dtype``, ``device``, ``matvec`` and ``matmat`` and
supports ``A @ v`` (1-D) and ``A @ V`` (``(k, P)``, row-wise). Solvers accept an
operator, a dense symmetric tensor, or a plain matvec callable with its dimension
(:func:`as_operator`). Views built here: :class:`DenseOperator` (the first test
double), :class:`ShiftedOperator` (A − σI), :class:`DeflatedOperator`
(A − Vᵀ diag(λ) V), :class:`NegatedOperator` (−A, so that "smallest algebraic"
becomes "largest algebraic"), :class:`LowRankOperator` (Dᵀ diag(w) D from r rows, with its
exact nonzero spectrum), :class:`DifferenceOperator` (A − B), :class:`ProjectedOperator` (A
compressed to the complement of a subspace) and :class:`CountingOperator` (counts products).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from landscape.errors import InputError, NonFiniteError, NotSymmetricError

# A matrix counts as symmetric when ‖M − Mᵀ‖_F ≤ SYMMETRY_ULPS · eps(dtype) · ‖M‖_F.
# A matrix symmetrized in float64 and then cast differs from its transpose by at most
# one ulp per entry; a float32 Hessian from autodiff (H_ij and H_ji summed in another
# order) by a few hundred ulps. A genuinely non-symmetric matrix is off by O(1).
SYMMETRY_ULPS = 1000.0

# Rows per call of ``matmat`` in :func:`apply_float64`: enough to amortize per-call
# overhead of a batched (vmap) product, small enough to keep its memory modest.
DEFAULT_BLOCK_SIZE = 8


class LinearOperator:
    """A symmetric linear map on R^P, applied to vectors ``(P,)`` or row blocks ``(k, P)``.

    Subclasses implement :meth:`_matvec`; :meth:`_matmat` defaults to a loop over
    rows and is overridden where a batched product is cheaper (e.g. ``vmap``).

    Attributes:
        shape: ``(P, P)``.
        dtype: dtype of the vectors the operator takes and returns.
        device: device of those vectors.
    """

    def __init__(self, dim: int, dtype: torch.dtype, device: torch.device | str):
        self.shape = (int(dim), int(dim))
        self.dtype = dtype
        self.device = torch.device(device)

    @property
    def dim(self) -> int:
        """P, the dimension."""
        return self.shape[0]

    def matvec(self, v: Tensor) -> Tensor:
        """Return ``A v`` for ``v`` of shape ``(P,)``."""
        if v.ndim != 1 or v.shape[0] != self.dim:
            raise InputError(f"matvec expects a vector of shape ({self.dim},), got {tuple(v.shape)}")
        return self._matvec(v.to(self.device, self.dtype))

    def matmat(self, V: Tensor) -> Tensor:
        """Return the rows ``A v_i`` for ``V`` of shape ``(k, P)`` (row-wise block)."""
        if V.ndim != 2 or V.shape[1] != self.dim:
            raise InputError(f"matmat expects a row block of shape (k, {self.dim}), got {tuple(V.shape)}")
        return self._matmat(V.to(self.device, self.dtype))

    def __matmul__(self, x: Tensor) -> Tensor:
        return self.matvec(x) if x.ndim == 1 else self.matmat(x)

    def _matvec(self, v: Tensor) -> Tensor:
        raise NotImplementedError

    def _matmat(self, V: Tensor) -> Tensor:
        return torch.stack([self._matvec(v) for v in V])

    def provenance(self) -> dict[str, str]:
        """How this operator computes its products, as strings to store beside a result
        (e.g. ``{"hvp_route": "double_backward"}``); empty unless a subclass says more."""
        return {}

    def to_scipy(self):
        """Return a float64 ``scipy.sparse.linalg.LinearOperator`` (for cross-checks).

        Vectors cross to this operator's device and dtype and come back as float64
        NumPy arrays, so ``scipy.sparse.linalg.eigsh(A.to_scipy(), k)`` works as is.
        """
        from scipy.sparse.linalg import LinearOperator as ScipyOperator

        def matmat(X: np.ndarray) -> np.ndarray:  # scipy blocks are column-wise (P, k)
            rows = torch.from_numpy(np.ascontiguousarray(np.asarray(X, dtype=np.float64).T))
            return self.matmat(rows).detach().to("cpu", torch.float64).numpy().T

        def matvec(x: np.ndarray) -> np.ndarray:
            return matmat(np.reshape(x, (-1, 1)))[:, 0]

        return ScipyOperator(self.shape, matvec=matvec, rmatvec=matvec, matmat=matmat,
                             rmatmat=matmat, dtype=np.float64)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(P={self.dim}, dtype={self.dtype}, device={self.device})"


class CallableOperator(LinearOperator):
    """Wrap a plain matvec callable ``f(v: (P,)) -> (P,)``."""

    def __init__(self, matvec: Callable[[Tensor], Tensor], dim: int,
                 dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu"):
        super().__init__(dim, dtype, device)
        self._f = matvec

    def _matvec(self, v: Tensor) -> Tensor:
        return self._f(v)


class DenseOperator(LinearOperator):
    """A dense symmetric matrix ``M`` (P, P) as an operator; the first test double.

    The stored matrix is ``(M + Mᵀ)/2`` so that products are exactly symmetric.

    Args:
        M: square tensor or NumPy array; its dtype and device become the operator's.
        check_symmetric: raise unless ‖M − Mᵀ‖_F ≤ rtol·‖M‖_F.
        rtol: symmetry tolerance; default ``SYMMETRY_ULPS · eps(dtype)``.

    Raises:
        NotSymmetricError: ``M`` is not square, or not symmetric within ``rtol``.
        NonFiniteError: ``M`` holds NaN or Inf.
    """

    def __init__(self, M: Tensor | np.ndarray, check_symmetric: bool = True, rtol: float | None = None):
        M = torch.as_tensor(M)
        if M.ndim != 2 or M.shape[0] != M.shape[1]:
            raise NotSymmetricError(f"DenseOperator needs a square (P, P) matrix, got shape {tuple(M.shape)}")
        if not M.is_floating_point():
            M = M.to(torch.float64)
        if not torch.isfinite(M).all():
            raise NonFiniteError(f"DenseOperator: the matrix holds {int((~torch.isfinite(M)).sum())} NaN/Inf "
                                 "entries; fix the computation that produced it")
        if check_symmetric:
            _check_symmetric(M, rtol)
        super().__init__(M.shape[0], M.dtype, M.device)
        self.matrix = (M + M.T) / 2

    def _matvec(self, v: Tensor) -> Tensor:
        return self.matrix @ v

    def _matmat(self, V: Tensor) -> Tensor:
        return V @ self.matrix  # rows (M v_i)ᵀ = v_iᵀ M, M symmetric


def _check_symmetric(M: Tensor, rtol: float | None) -> None:
    """Raise :class:`NotSymmetricError` naming the largest asymmetry of ``M``."""
    rtol = SYMMETRY_ULPS * torch.finfo(M.dtype).eps if rtol is None else rtol
    D = (M - M.T).to(torch.float64)
    rel = float(torch.linalg.norm(D) / max(float(torch.linalg.norm(M.to(torch.float64))), 1e-300))
    if rel > rtol:
        i, j = divmod(int(D.abs().argmax()), M.shape[0])
        raise NotSymmetricError(
            f"matrix is not symmetric: ‖M − Mᵀ‖/‖M‖ = {rel:.3g} > {rtol:.3g}; largest asymmetry "
            f"|M[{i},{j}] − M[{j},{i}]| = {abs(float(D[i, j])):.3g}. Pass (M + M.T)/2 if the asymmetry "
            "is rounding, or check_symmetric=False to skip this check")


def as_operator(A, dim: int | None = None, *, dtype: torch.dtype = torch.float64,
                device: torch.device | str = "cpu") -> LinearOperator:
    """Return ``A`` as a :class:`LinearOperator`.

    Args:
        A: an operator (returned as is), a dense symmetric tensor or ndarray
            (:class:`DenseOperator`), or a matvec callable ``f(v (P,)) -> (P,)``.
        dim: P; required for a callable, checked otherwise.
        dtype, device: of the vectors a callable takes (ignored for the other kinds).

    Raises:
        InputError: a callable without ``dim``, a mismatched ``dim``, or an unknown type.
    """
    if isinstance(A, LinearOperator):
        op = A
    elif isinstance(A, (Tensor, np.ndarray)):
        op = DenseOperator(A)
    elif callable(A):
        if dim is None:
            raise InputError("a matvec callable needs its dimension: pass dim=P (or wrap it with "
                             "landscape.operators.CallableOperator(f, P))")
        op = CallableOperator(A, dim, dtype, device)
    else:
        raise InputError(f"cannot use a {type(A).__name__} as an operator: pass a LinearOperator, "
                         "a dense symmetric tensor, or a matvec callable with dim=P")
    if dim is not None and op.dim != dim:
        raise InputError(f"dim={dim} does not match the operator's dimension P={op.dim}")
    return op


class _Wrapper(LinearOperator):
    """An operator built on another one, with its dtype and device."""

    def __init__(self, A: LinearOperator):
        A = as_operator(A)
        super().__init__(A.dim, A.dtype, A.device)
        self.base = A

    def provenance(self) -> dict[str, str]:
        """The wrapped operator's provenance."""
        return self.base.provenance()


def operator_provenance(A) -> dict[str, str]:
    """``A.provenance()`` for an operator that has one, else ``{}``."""
    fn = getattr(A, "provenance", None)
    return {str(k): str(v) for k, v in fn().items()} if callable(fn) else {}


class ShiftedOperator(_Wrapper):
    """``A − σI``: moves the spectrum by −σ (e.g. to make an interior end extremal)."""

    def __init__(self, A: LinearOperator, sigma: float):
        super().__init__(A)
        self.sigma = float(sigma)

    def _matvec(self, v: Tensor) -> Tensor:
        return self.base._matvec(v) - self.sigma * v

    def _matmat(self, V: Tensor) -> Tensor:
        return self.base._matmat(V) - self.sigma * V


class NegatedOperator(_Wrapper):
    """``−A``: its largest algebraic eigenpairs are the smallest algebraic of ``A``."""

    def _matvec(self, v: Tensor) -> Tensor:
        return -self.base._matvec(v)

    def _matmat(self, V: Tensor) -> Tensor:
        return -self.base._matmat(V)


class DeflatedOperator(_Wrapper):
    """``A − Vᵀ diag(λ) V`` (Hotelling deflation): removes known eigenpairs (λ_i, v_i).

    Args:
        A: the operator.
        V: ``(k, P)`` orthonormal rows (e.g. eigenvectors already found).
        lam: ``(k,)`` the values to subtract (e.g. their eigenvalues).
    """

    def __init__(self, A: LinearOperator, V: Tensor, lam: Tensor):
        super().__init__(A)
        V = torch.as_tensor(V)
        V = V.reshape(1, -1) if V.ndim == 1 else V
        lam = torch.as_tensor(lam).reshape(-1)
        if V.ndim != 2 or V.shape[1] != self.dim or lam.shape[0] != V.shape[0]:
            raise InputError(f"DeflatedOperator needs V of shape (k, {self.dim}) and lam of shape (k,), "
                             f"got V {tuple(V.shape)} and lam {tuple(lam.shape)}")
        self.V = V.to(self.device, self.dtype)
        self.lam = lam.to(self.device, self.dtype)

    def _matvec(self, v: Tensor) -> Tensor:
        return self.base._matvec(v) - (self.lam * (self.V @ v)) @ self.V

    def _matmat(self, X: Tensor) -> Tensor:
        return self.base._matmat(X) - ((X @ self.V.T) * self.lam) @ self.V


class LowRankOperator(LinearOperator):
    """``Dᵀ diag(w) D = Σ_j w_j d_j d_jᵀ`` from r rows d_j ``(r, P)`` (not necessarily orthogonal).

    Products cost two dense (r, P) multiplications and no pass over data. Its nonzero spectrum
    is that of the r × r Gram matrix W^½ D Dᵀ W^½ (:meth:`gram_eigenvalues`, exact in float64).

    Args:
        D: ``(r, P)`` rows.
        weights: ``(r,)`` finite weights w_j.
    """

    def __init__(self, D: Tensor, weights: Tensor):
        D = torch.as_tensor(D)
        weights = torch.as_tensor(weights).reshape(-1)
        if D.ndim != 2 or weights.shape[0] != D.shape[0]:
            raise InputError(f"LowRankOperator needs rows D (r, P) and weights (r,), got D {tuple(D.shape)} "
                             f"and weights {tuple(weights.shape)}")
        if not (torch.isfinite(D).all() and torch.isfinite(weights).all()):
            raise NonFiniteError("LowRankOperator: the rows or weights are not finite")
        super().__init__(D.shape[1], D.dtype, D.device)
        self.D, self.weights = D, weights.to(D)

    def _matvec(self, v: Tensor) -> Tensor:
        return (self.weights * (self.D @ v)) @ self.D

    def _matmat(self, X: Tensor) -> Tensor:
        return ((X @ self.D.T) * self.weights) @ self.D

    def gram_eigenvalues(self) -> np.ndarray:
        """The r eigenvalues of Dᵀ diag(w) D that can be nonzero: those of W^½ D Dᵀ W^½ ``(r,)``, descending (w ≥ 0)."""
        if bool((self.weights < 0).any()):
            raise InputError("gram_eigenvalues needs weights ≥ 0 (a positive semi-definite Dᵀ diag(w) D)")
        D, s = self.D.double(), self.weights.double().sqrt()
        gram = s[:, None] * (D @ D.T) * s[None, :]
        return torch.linalg.eigvalsh(gram).flip(0).cpu().numpy()


class DifferenceOperator(LinearOperator):
    """``A − B`` of two operators of the same dimension (a product costs one product of each)."""

    def __init__(self, A: LinearOperator, B: LinearOperator):
        if A.shape != B.shape:
            raise InputError(f"DifferenceOperator needs operators of one shape, got {A.shape} and {B.shape}")
        super().__init__(A.dim, A.dtype, A.device)
        self.A, self.B = A, B

    def _matvec(self, v: Tensor) -> Tensor:
        return self.A.matvec(v) - self.B.matvec(v).to(v)

    def _matmat(self, X: Tensor) -> Tensor:
        return self.A.matmat(X) - self.B.matmat(X).to(X)


class ProjectedOperator(_Wrapper):
    """``(I − QᵀQ) A (I − QᵀQ)``: A compressed to the orthogonal complement of span(Q) (Q ``(r, P)`` orthonormal rows).

    Its eigenvalues interlace A's (Cauchy): λ_max of the compression ≥ λ_{r+1}(A), so the eigenvalues of A
    above it number at most r.
    """

    def __init__(self, A: LinearOperator, Q: Tensor):
        super().__init__(A)
        Q = torch.as_tensor(Q)
        if Q.ndim != 2 or Q.shape[1] != self.dim:
            raise InputError(f"ProjectedOperator needs Q of shape (r, {self.dim}), got {tuple(Q.shape)}")
        self.Q = Q.to(self.device, self.dtype)

    def _out(self, X: Tensor) -> Tensor:
        return X - (X @ self.Q.T) @ self.Q

    def _matvec(self, v: Tensor) -> Tensor:
        return self._out(self.base._matvec(self._out(v)))

    def _matmat(self, X: Tensor) -> Tensor:
        return self._out(self.base._matmat(self._out(X)))


class CountingOperator(_Wrapper):
    """Counts products (a ``(k, P)`` block counts k) and reports each to ``callback``.

    Attributes:
        num_matvecs: products so far.
    """

    def __init__(self, A: LinearOperator, callback: Callable[[int], None] | None = None):
        super().__init__(A)
        self.callback = callback
        self.num_matvecs = 0

    def _count(self, n: int) -> None:
        self.num_matvecs += n
        if self.callback is not None:
            self.callback(self.num_matvecs)

    def _matvec(self, v: Tensor) -> Tensor:
        out = self.base._matvec(v)
        self._count(1)
        return out

    def _matmat(self, V: Tensor) -> Tensor:
        out = self.base._matmat(V)
        self._count(V.shape[0])
        return out


def apply_float64(A: LinearOperator, X: Tensor, *, block_size: int | None = None) -> Tensor:
    """Rows ``A x_i`` in float64 on ``X``'s device, checked for NaN/Inf.

    ``X`` (k, P) or (P,) is cast to the operator's dtype and device on the way in
    (this is where a float32 operator rounds its input) and the product is cast
    back to float64 on the way out; blocks of ``block_size`` rows go to ``matmat``.

    Raises:
        NonFiniteError: the operator returned NaN or Inf.
    """
    rows = X.reshape(1, -1) if X.ndim == 1 else X
    step = block_size or DEFAULT_BLOCK_SIZE
    blocks = [_apply_block(A, rows[i:i + step]) for i in range(0, rows.shape[0], step)]
    out = blocks[0] if len(blocks) == 1 else torch.cat(blocks)
    return out.to(X.device).reshape(X.shape)


def _apply_block(A: LinearOperator, X: Tensor) -> Tensor:
    Y = (A.matvec(X[0]).unsqueeze(0) if X.shape[0] == 1 else A.matmat(X)).to(torch.float64)
    if not bool(torch.isfinite(Y.sum())):  # one reduction; a float64 sum of finite products stays finite
        bad = int((~torch.isfinite(Y)).sum())
        raise NonFiniteError(f"the operator returned {bad} NaN/Inf entries for a finite input; check the "
                             "loss, parameters and data for non-finite values (or a diverged checkpoint)")
    return Y
