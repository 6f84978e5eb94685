"""Stochastic trace estimators: Hutchinson and Hutch++.

* Hutchinson (1989): for Rademacher z (E[z zᵀ] = I), zᵀ A z is an unbiased estimate of
  tr(A) with variance 2(‖A‖_F² − Σ A_ii²). n probes: value = mean of the samples,
  stderr = sample std / √n.
* Hutch++ (Meyer, Musco, Musco & Woodruff 2021, "Hutch++: optimal stochastic trace
  estimation", SOSA): spend a third of the budget on Y = A S (S random signs), take
  Q = orth(Y), add the exact tr(Qᵀ A Q) (another third), and estimate the rest,
  tr((I − QQᵀ) A (I − QQᵀ)), by Hutchinson with the last third. When A has a few
  dominant eigenvalues (a Hessian) the residual is small and so is the variance:
  error O(1/m) instead of O(1/√m) for PSD A. ``stderr`` and ``samples`` are those of
  the Hutchinson part; the low-rank part has no sampling error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from landscape.errors import InputError
from landscape.operators import LinearOperator, apply_float64, as_operator
from landscape.solvers.sampling import Seed, make_generator, probe_vectors

METHODS = ("hutch++", "hutchinson")


@dataclass(frozen=True)
class TraceEstimate:
    """A trace estimate with its uncertainty.

    Attributes:
        value: the estimate of tr(A).
        stderr: standard error of ``value`` (sample std / √n of the Hutchinson part).
        samples: ``(n,)`` float64 samples zᵀ A z of the Hutchinson part (of the deflated
            operator for Hutch++).
        method: ``"hutchinson"`` or ``"hutch++"``.
        num_matvecs: products with A.
        low_rank_part: tr(Qᵀ A Q) for Hutch++, 0 for Hutchinson.
    """

    value: float
    stderr: float
    samples: Tensor
    method: str
    num_matvecs: int
    low_rank_part: float = 0.0

    def as_dict(self) -> dict:
        """Arrays and scalars to store."""
        return {"value": self.value, "stderr": self.stderr, "samples": self.samples.numpy(),
                "method": self.method, "num_matvecs": self.num_matvecs, "low_rank_part": self.low_rank_part}


def trace(A, num_matvecs: int = 300, method: str = "hutch++", *, seed: Seed = 0,
          distribution: str = "rademacher", dim: int | None = None, block_size: int | None = None) -> TraceEstimate:
    """Estimate tr(A) with ``num_matvecs`` products.

    Args:
        A: operator, dense symmetric tensor, or matvec callable (then pass ``dim``).
        num_matvecs: the budget m (Hutchinson: m probes; Hutch++: m/3 + m/3 + rest).
        method: ``"hutch++"`` (default) or ``"hutchinson"``.
        seed: int or generator.
        distribution: ``"rademacher"`` (default) or ``"gaussian"`` probes.
        dim: P, for a matvec callable.
        block_size: rows per ``matmat`` call.

    Raises:
        InputError: an unknown method, or a budget too small for a standard error.
        NonFiniteError: the operator returned NaN or Inf.

    Example:
        >>> import torch
        >>> est = trace(torch.diag(torch.arange(1.0, 11.0, dtype=torch.float64)), 30, "hutchinson")
        >>> est.value, est.stderr   # a diagonal matrix: every Rademacher sample is exact
        (55.0, 0.0)
    """
    if method not in METHODS:
        raise InputError(f"method={method!r} is not one of {METHODS}")
    if method == "hutchinson":
        return hutchinson_trace(A, num_matvecs, seed=seed, distribution=distribution, dim=dim, block_size=block_size)
    return hutchpp_trace(A, num_matvecs, seed=seed, distribution=distribution, dim=dim, block_size=block_size)


def hutchinson_trace(A, num_matvecs: int = 300, *, seed: Seed = 0, distribution: str = "rademacher",
                     dim: int | None = None, block_size: int | None = None) -> TraceEstimate:
    """Hutchinson's estimator: mean of zᵀ A z over ``num_matvecs`` probes z (see module docstring)."""
    op = as_operator(A, dim)
    if num_matvecs < 2:
        raise InputError(f"Hutchinson needs num_matvecs >= 2 to report a standard error, got {num_matvecs}")
    Z = probe_vectors(num_matvecs, op.dim, distribution, seed=make_generator(seed), device=op.device)
    samples = _quadratic_forms(op, Z, block_size)
    return _estimate(samples, 0.0, "hutchinson", num_matvecs)


def hutchpp_trace(A, num_matvecs: int = 300, *, seed: Seed = 0, distribution: str = "rademacher",
                  dim: int | None = None, block_size: int | None = None) -> TraceEstimate:
    """Hutch++ (Meyer et al. 2021, Algorithm 1) with budget m: m//3 sketch, m//3 exact, rest Hutchinson."""
    op = as_operator(A, dim)
    if num_matvecs < 4:
        raise InputError(f"Hutch++ needs num_matvecs >= 4 (sketch, exact part, >= 2 probes), got {num_matvecs}")
    generator = make_generator(seed)
    r = min(num_matvecs // 3, op.dim)
    S = probe_vectors(r, op.dim, distribution, seed=generator, device=op.device)
    Q = torch.linalg.qr(apply_float64(op, S, block_size=block_size).T).Q  # (P, r) orthonormal
    low_rank = float(_quadratic_forms(op, Q.T, block_size).sum())
    if r == op.dim:  # Q spans R^P: the trace is exact and needs no probes
        return TraceEstimate(low_rank, 0.0, torch.zeros(0, dtype=torch.float64), "hutch++", 2 * r, low_rank)
    G = probe_vectors(num_matvecs - 2 * r, op.dim, distribution, seed=generator, device=op.device)
    G = G - (G @ Q) @ Q.T  # probes of the deflated operator (I − QQᵀ) A (I − QQᵀ)
    return _estimate(_quadratic_forms(op, G, block_size), low_rank, "hutch++", num_matvecs)


def _quadratic_forms(op: LinearOperator, Z: Tensor, block_size: int | None) -> Tensor:
    """zᵀ A z for each row z of Z, in float64 on the CPU."""
    return (Z * apply_float64(op, Z, block_size=block_size)).sum(dim=1).cpu()


def _estimate(samples: Tensor, low_rank: float, method: str, num_matvecs: int) -> TraceEstimate:
    n = samples.shape[0]
    stderr = float(samples.std(correction=1)) / math.sqrt(n) if n > 1 else math.inf
    return TraceEstimate(low_rank + float(samples.mean()), stderr, samples, method, num_matvecs, low_rank)
