"""Spectral density by stochastic Lanczos quadrature (SLQ).

For a symmetric A (P × P) with eigenpairs (λ_i, q_i), the spectral measure is
μ = (1/P) Σ_i δ(λ_i). For a random unit probe v with E[v vᵀ] = I/P,
vᵀ f(A) v = Σ_i (q_iᵀ v)² f(λ_i) is an unbiased estimate of ∫ f dμ. m Lanczos steps
from v give T_m = S diag(θ) Sᵀ, and the Gauss quadrature rule with nodes θ_j and
weights w_j = S_{1j}² is exact for polynomials of degree ≤ 2m − 1:

    vᵀ A^p v = Σ_j w_j θ_j^p,  p ≤ 2m − 1                       (Golub & Meurant 2010).

Averaging the rules of n_v probes and smoothing each node with a Gaussian kernel of
width σ gives the density estimate (Lin, Saad & Yang 2016, "Approximating spectral
densities of large matrices", SIAM Review 58(1); Ghorbani, Krishnan & Xiao 2019,
"An investigation into neural net optimization via Hessian eigenvalue density").
The nodes and weights are stored raw, so the density can be redrawn for any σ or
grid without new matvecs (:meth:`SpectralDensity.as_dict` / :meth:`from_dict`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from landscape.errors import InputError
from landscape.operators import as_operator
from landscape.solvers.lanczos import lanczos
from landscape.solvers.sampling import Seed, make_generator, probe_vectors


@dataclass(frozen=True)
class SpectralDensity:
    """Gauss quadrature rules of n_v probes: a discrete estimate of the spectral measure.

    Attributes:
        nodes: ``(n_v, m)`` float64 Ritz values θ (ascending per probe).
        weights: ``(n_v, m)`` float64, squared first components of T's eigenvectors; each
            row sums to 1. A probe whose Lanczos run broke down early is padded with
            zero-weight copies of its last node.
        dim: P.
        num_matvecs: products with A, over all probes.
    """

    nodes: Tensor
    weights: Tensor
    dim: int
    num_matvecs: int = 0

    @property
    def num_probes(self) -> int:
        """n_v."""
        return self.nodes.shape[0]

    def density_per_probe(self, grid, sigma: float) -> Tensor:
        """ρ_v(t) = Σ_j w_j N(t; θ_j, σ²) for each probe: ``(n_v, len(grid))``."""
        if not sigma > 0:
            raise InputError(f"sigma must be > 0, got {sigma}")
        t = torch.as_tensor(np.asarray(grid, dtype=np.float64))
        z = (t[None, None, :] - self.nodes[:, :, None]) / sigma
        kernel = torch.exp(-0.5 * z**2) / (sigma * math.sqrt(2 * math.pi))
        return (self.weights[:, :, None] * kernel).sum(dim=1)

    def density(self, grid, sigma: float) -> Tensor:
        """ρ(t), the mean over probes of :meth:`density_per_probe`: ``(len(grid),)``; ∫ρ = 1."""
        return self.density_per_probe(grid, sigma).mean(dim=0)

    def cdf(self, grid) -> Tensor:
        """F(t) = mean over probes of Σ_{θ_j ≤ t} w_j (the quadrature's distribution function)."""
        t = torch.as_tensor(np.asarray(grid, dtype=np.float64))
        below = (self.nodes[:, :, None] <= t[None, None, :]).to(torch.float64)
        return (self.weights[:, :, None] * below).sum(dim=1).mean(dim=0)

    def moments(self, p: int) -> Tensor:
        """Σ_j w_j θ_j^p per probe ``(n_v,)``; exact vᵀA^p v for p ≤ 2m − 1. Mean ≈ tr(A^p)/P."""
        return (self.weights * self.nodes**p).sum(dim=1)

    def grid(self, num_points: int = 1000, sigma: float = 0.0, pad: float = 0.05) -> Tensor:
        """Evenly spaced points covering all nodes, widened by ``pad`` of the range and 5σ."""
        lo, hi = float(self.nodes.min()), float(self.nodes.max())
        margin = pad * (hi - lo) + 5 * sigma
        return torch.linspace(lo - margin, hi + margin, num_points, dtype=torch.float64)

    def as_dict(self) -> dict:
        """Arrays and scalars to store; :meth:`from_dict` rebuilds the object."""
        return {"nodes": self.nodes.numpy(), "weights": self.weights.numpy(), "dim": self.dim,
                "num_matvecs": self.num_matvecs}

    @classmethod
    def from_dict(cls, d: dict) -> SpectralDensity:
        """Rebuild from :meth:`as_dict` output (e.g. read back from a results file)."""
        return cls(torch.as_tensor(np.asarray(d["nodes"], dtype=np.float64)),
                   torch.as_tensor(np.asarray(d["weights"], dtype=np.float64)), int(d["dim"]),
                   int(d.get("num_matvecs", 0)))


def spectral_density(A, num_probes: int = 10, num_iters: int = 100, *, seed: Seed = 0,
                     distribution: str = "rademacher", dim: int | None = None,
                     basis_device: torch.device | str | None = None) -> SpectralDensity:
    """Estimate the spectral density of a symmetric operator by SLQ.

    Args:
        A: operator, dense symmetric tensor, or matvec callable (then pass ``dim``).
        num_probes: n_v, independent probes (the density's variance falls as 1/n_v).
        num_iters: m, Lanczos steps per probe (full reorthogonalization, float64);
            capped at P. Cost: n_v · m matvecs.
        seed: int or generator for the probes.
        distribution: ``"rademacher"`` or ``"gaussian"`` probes, normalized to unit norm.
        dim: P, for a matvec callable.
        basis_device: where each probe's float64 Lanczos basis lives.

    Returns:
        :class:`SpectralDensity` with ``nodes`` and ``weights`` of shape ``(n_v, m)``.

    Raises:
        InputError: ``num_probes < 1`` or ``num_iters < 1``.
        NonFiniteError: the operator returned NaN or Inf.

    Example:
        >>> import torch
        >>> A = torch.diag(torch.arange(1.0, 11.0, dtype=torch.float64))
        >>> dens = spectral_density(A, num_probes=4, num_iters=10)
        >>> round(float(dens.moments(1).mean()), 8)   # vᵀAv with unit Rademacher v: tr(A)/P
        5.5
    """
    op = as_operator(A, dim)
    if num_probes < 1 or num_iters < 1:
        raise InputError(f"need num_probes >= 1 and num_iters >= 1, got {num_probes} and {num_iters}")
    generator = make_generator(seed)
    m = min(int(num_iters), op.dim)
    rules = [_probe_rule(op, m, generator, distribution, basis_device) for _ in range(num_probes)]
    nodes, weights, matvecs = zip(*rules)
    return SpectralDensity(torch.stack(nodes), torch.stack(weights), op.dim, sum(matvecs))


def _probe_rule(op, m: int, generator: torch.Generator, distribution: str,
                basis_device) -> tuple[Tensor, Tensor, int]:
    """Gauss quadrature nodes and weights of one probe, padded to length m."""
    v = probe_vectors(1, op.dim, distribution, seed=generator, normalize=True)[0]
    res = lanczos(op, m, v0=v, basis_device=basis_device, keep_basis=False)
    theta, S = res.ritz()
    w = S[0] ** 2
    pad = m - theta.shape[0]
    theta = torch.cat([theta, theta[-1:].expand(pad)])
    return theta, torch.cat([w, torch.zeros(pad, dtype=torch.float64)]), res.num_matvecs
