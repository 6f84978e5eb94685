"""Linear operators: the one interface every solver sees.

Notation (fixed for the whole package): P is the dimension of the operator (the
number of parameters), k a number of vectors. Vectors are 1-D tensors of shape
``(P,)``; a block of k vectors is stored **row-wise** as ``(k, P)`` — the same
layout as stored eigenvectors — so ``A.matmat(V)`` returns the rows ``A v_i``.

An operator has ``shape``, ``dtype``, ``device``, ``matvec`` and ``matmat`` and
supports ``A @ v`` (1-D) and ``A @ V`` (``(k, P)``, row-wise). Solvers accept an
operator, a dense symmetric tensor, or a plain matvec callable with its dimension
(:func:`as_operator`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from landscape.errors import InputError


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
