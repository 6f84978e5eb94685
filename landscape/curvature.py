"""Curvature matrices of an :class:`~landscape.objective.Objective` as linear operators.

* :class:`HessianOperator` — H(θ) = ∇²L(θ), products by forward-over-reverse HVPs
  (Pearlmutter 1994), blocks vmapped.
* :class:`GGNOperator` — the generalised Gauss–Newton matrix G(θ) = (1/N) Σ_i J_iᵀ H_ℓ,i J_i
  (Schraudolph 2002; Martens 2020, "New insights and perspectives on the natural gradient
  method"): positive semi-definite for losses convex in the outputs, equal to H where the
  network is linear in θ (e.g. linear regression).
* :func:`dense_hessian` — the dense Hessian from HVPs with unit vectors, for small models:
  the oracle the tests and the solvers are checked against.

Example::

    >>> import torch, landscape as ls
    >>> X, y = torch.randn(20, 3, dtype=torch.float64), torch.randn(20, dtype=torch.float64)
    >>> obj = ls.Objective(torch.nn.Linear(3, 1, bias=False).double(), X, y, loss="mse")
    >>> H = dense_hessian(obj, obj.theta)
    >>> torch.allclose(H, 2 * X.T @ X / 20) and torch.allclose(obj.ggn(obj.theta) @ H, H @ H)
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from landscape.errors import InputError
from landscape.operators import LinearOperator

if TYPE_CHECKING:  # the objective imports this module; no import cycle at run time
    from landscape.objective import Objective

DENSE_MAX_BYTES = 2 * 2**30  # refuse a dense block bigger than this: ask for columns= blocks instead
DENSE_CHUNK = 64  # unit vectors per batched HVP pass in dense_hessian


class _CurvatureOperator(LinearOperator):
    """A symmetric operator at a fixed θ, in θ's dtype on the objective's device."""

    def __init__(self, objective: Objective, theta: Tensor):
        P = objective.spec.numel
        if not isinstance(theta, Tensor) or theta.shape != (P,):
            got = tuple(theta.shape) if isinstance(theta, Tensor) else type(theta).__name__
            raise InputError(f"θ must have shape ({P},) for this objective, got {got}")
        super().__init__(P, theta.dtype, objective.device)
        self.objective = objective
        self.theta = theta.detach().to(objective.device)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(P={self.dim}, dtype={self.dtype}, objective={self.objective!r})"


class HessianOperator(_CurvatureOperator):
    """H(θ) of the objective's full-dataset mean loss; ``H @ v`` is one HVP pass over the data."""

    def provenance(self) -> dict[str, str]:
        """``{"hvp_route": ...}``: how the objective computes its HVPs (see ``Objective.hvp_route``)."""
        return {"hvp_route": self.objective.hvp_route}

    def _matvec(self, v: Tensor) -> Tensor:
        return self.objective.hvp(self.theta, v)

    def _matmat(self, V: Tensor) -> Tensor:
        return self.objective.hvp(self.theta, V)


class GGNOperator(_CurvatureOperator):
    """G(θ) = (1/N) Σ_i J_iᵀ H_ℓ,i J_i: JVP through the network, loss Hessian, VJP back."""

    def _matvec(self, v: Tensor) -> Tensor:
        return self.objective.ggnvp(self.theta, v)

    def _matmat(self, V: Tensor) -> Tensor:
        return self.objective.ggnvp(self.theta, V)


def dense_hessian(objective: Objective, theta: Tensor, *, columns: Sequence[int] | Tensor | None = None,
                  chunk_size: int = DENSE_CHUNK) -> Tensor:
    """The dense Hessian H(θ) ``(P, P)``, or its columns ``H[:, columns]`` ``(P, len(columns))``.

    Column j is the HVP H e_j; unit vectors go through the objective in batched passes of
    ``chunk_size``. Asking for blocks (``columns=range(a, b)``) lets a long job write and
    resume block by block. The result is not symmetrised: its asymmetry measures rounding.

    Args:
        objective: the objective.
        theta: ``(P,)``; the result has θ's dtype (use float64 for an oracle).
        columns: indices of the columns to compute (default: all P).
        chunk_size: unit vectors per HVP pass (memory grows linearly in it).

    Raises:
        InputError: bad indices, or a result larger than ``DENSE_MAX_BYTES``.
    """
    P = objective.spec.numel
    cols = _columns(columns, P)
    if P * cols.numel() * theta.element_size() > DENSE_MAX_BYTES:
        raise InputError(f"a dense ({P}, {cols.numel()}) block needs more than {DENSE_MAX_BYTES / 2**30:.0f} GiB; "
                         "ask for fewer columns at a time with columns=range(a, b)")
    blocks = [objective.hvp(theta, _unit_rows(c, P, theta)) for c in cols.split(chunk_size)]
    return torch.cat(blocks).T.contiguous()


def _columns(columns, P: int) -> Tensor:
    if columns is None:
        return torch.arange(P)
    cols = torch.as_tensor(list(columns) if isinstance(columns, range) else columns, dtype=torch.long)
    if cols.ndim != 1 or cols.numel() == 0 or cols.min() < 0 or cols.max() >= P:
        raise InputError(f"columns must be a non-empty 1-D sequence of indices in [0, {P})")
    return cols


def _unit_rows(cols: Tensor, P: int, like: Tensor) -> Tensor:
    E = torch.zeros(cols.numel(), P, dtype=like.dtype, device=like.device)
    E[torch.arange(cols.numel()), cols.to(like.device)] = 1
    return E
