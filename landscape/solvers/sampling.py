"""Random probe and start vectors, always drawn from an explicit seed or generator.

Draws happen on the CPU with a ``torch.Generator`` (so the same seed gives the same
vectors on every device) and are then moved to the requested device and dtype.

* Rademacher vectors z ∈ {−1, +1}^P: E[z zᵀ] = I, and among such probes they
  minimize the variance of zᵀAz (Hutchinson 1989).
* Gaussian vectors z ~ N(0, I): rotation invariant; normalized, uniform on the sphere.
"""

from __future__ import annotations

import torch
from torch import Tensor

from landscape.errors import InputError

DISTRIBUTIONS = ("rademacher", "gaussian")

Seed = int | torch.Generator


def make_generator(seed: Seed) -> torch.Generator:
    """Return ``seed`` if it is a generator, else a CPU generator seeded with it."""
    if isinstance(seed, torch.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InputError(f"seed must be an int or a torch.Generator, got {type(seed).__name__}")
    return torch.Generator().manual_seed(seed)


def probe_vectors(num: int, dim: int, distribution: str = "rademacher", *, seed: Seed = 0,
                  normalize: bool = False, dtype: torch.dtype = torch.float64,
                  device: torch.device | str = "cpu") -> Tensor:
    """Draw ``num`` probe vectors of dimension P = ``dim`` as rows of a ``(num, P)`` block.

    Args:
        num: number of vectors.
        dim: P.
        distribution: ``"rademacher"`` (±1 entries) or ``"gaussian"`` (N(0, 1) entries).
        seed: int or ``torch.Generator`` (a generator advances, so successive calls differ).
        normalize: scale each row to unit Euclidean norm.
        dtype, device: of the returned block.

    Raises:
        InputError: an unknown distribution or a non-positive size.
    """
    if distribution not in DISTRIBUTIONS:
        raise InputError(f"distribution={distribution!r} is not one of {DISTRIBUTIONS}")
    if num < 0 or dim < 1:
        raise InputError(f"need num >= 0 and dim >= 1 probe vectors, got num={num}, dim={dim}")
    g = make_generator(seed)
    if distribution == "rademacher":
        Z = torch.randint(0, 2, (num, dim), generator=g, dtype=torch.int8).to(torch.float64) * 2 - 1
    else:
        Z = torch.randn(num, dim, generator=g, dtype=torch.float64)
    if normalize:
        Z = Z / torch.linalg.norm(Z, dim=1, keepdim=True)
    return Z.to(device, dtype)


def random_unit_vector(dim: int, *, seed: Seed = 0, dtype: torch.dtype = torch.float64,
                       device: torch.device | str = "cpu") -> Tensor:
    """A Gaussian vector of dimension P = ``dim`` scaled to unit norm (uniform on the sphere)."""
    return probe_vectors(1, dim, "gaussian", seed=seed, normalize=True, dtype=dtype, device=device)[0]
