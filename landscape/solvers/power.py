"""Deflated power iteration: the PyHessian baseline, kept for benchmarks.

PyHessian (Yao et al. 2020, ``pyhessian/hessian.py: eigenvalues``) finds the top-k
eigenpairs of the Hessian one at a time: v ← A v / ‖A v‖, with v re-orthogonalized
against the eigenvectors already found, until the Rayleigh quotient changes by less
than ``tol`` relative — a stopping rule, not an error bound. It converges to the
largest-*magnitude* eigenvalues at the rate |λ_{i+1}/λ_i| per step. Use :func:`eigsh`
for real work; this exists to compare against it on equal terms. Unlike PyHessian,
the result carries the true residuals ‖Av − λv‖ (of the last iterate, at no extra cost).
"""

from __future__ import annotations

import torch
from torch import Tensor

from landscape.errors import InputError
from landscape.operators import LinearOperator, apply_float64, as_operator
from landscape.solvers.eigsh import EigshResult
from landscape.solvers.sampling import Seed, make_generator, random_unit_vector


def power_iteration(A, k: int = 1, *, max_iters: int = 100, tol: float = 1e-3, seed: Seed = 0,
                    dim: int | None = None) -> EigshResult:
    """Top-k (largest magnitude) eigenpairs by deflated power iteration, PyHessian style.

    Args:
        A: operator, dense symmetric tensor, or matvec callable (then pass ``dim``).
        k: number of eigenpairs, found one after the other.
        max_iters: products per eigenpair at most.
        tol: stop an eigenpair when |λ_new − λ_old| / (|λ_old| + 1e-6) < tol (PyHessian's rule).
        seed: int or generator for the Gaussian start vectors.
        dim: P, for a matvec callable.

    Returns:
        :class:`EigshResult` with ``which="LM"`` in the order found (≈ descending |λ|),
        ``residuals`` ‖A v − λ v‖, and ``converged`` = every eigenpair met the stopping rule.

    Raises:
        InputError: k ≥ P, k < 1 or max_iters < 1.
        NonFiniteError: the operator returned NaN or Inf.
    """
    op = as_operator(A, dim)
    if not 1 <= k < op.dim or max_iters < 1:
        raise InputError(f"need 1 <= k < P and max_iters >= 1, got k={k}, P={op.dim}, max_iters={max_iters}")
    generator, found, lams, res, stopped, matvecs = make_generator(seed), [], [], [], [], 0
    for _ in range(k):
        v, lam, r, ok, n = _one_pair(op, torch.stack(found) if found else None, generator, max_iters, tol)
        found.append(v)
        lams.append(lam)
        res.append(r)
        stopped.append(ok)
        matvecs += n
    V = torch.stack(found).to(op.dtype)
    scale = max(abs(x) for x in lams)
    return EigshResult(torch.tensor(lams, dtype=torch.float64), V, torch.tensor(res, dtype=torch.float64),
                       matvecs, all(stopped), "LM", float(tol), scale, 0)


def _one_pair(op: LinearOperator, found: Tensor | None, generator: torch.Generator, max_iters: int,
              tol: float) -> tuple[Tensor, float, float, bool, int]:
    """Iterate on one vector (orthogonal to ``found``); return v, λ, ‖Av − λv‖, stopped, matvecs."""
    v = _deflate(random_unit_vector(op.dim, seed=generator, device=op.device), found)
    lam, r = None, float("nan")
    for i in range(1, max_iters + 1):
        w = apply_float64(op, v)
        lam_new = float(v @ w)
        r = float(torch.linalg.norm(w - lam_new * v))
        if lam is not None and abs(lam_new - lam) / (abs(lam) + 1e-6) < tol:
            return v, lam_new, r, True, i
        lam = lam_new
        v_next = _deflate(w, found)
        if float(torch.linalg.norm(v_next)) == 0.0:  # A v = 0 on the deflated space: v is an eigenvector
            return v, lam_new, r, True, i
        v = v_next
    return v, lam, r, False, max_iters


def _deflate(v: Tensor, found: Tensor | None) -> Tensor:
    """v orthogonalized against the rows of ``found`` (twice) and normalized."""
    if found is not None:
        for _ in range(2):
            v = v - (found @ v) @ found
    norm = torch.linalg.norm(v)
    return v / norm if float(norm) > 0 else v
