"""The data sets: y = a·x + ε for the narrow nets, and an exact SVD target for the wide ones.

For a scalar net f(x) = p·x every loss value depends on the data only through the moments
⟨x²⟩, ⟨xy⟩, ⟨y²⟩ (means over the N examples)::

    L(p) = ⟨(y − p x)²⟩ = ⟨y²⟩ − 2p⟨xy⟩ + p²⟨x²⟩,   minimised at p = â = ⟨xy⟩/⟨x²⟩,
    L* = ⟨y²⟩ − ⟨xy⟩²/⟨x²⟩.

For a wide linear net with whitened inputs (Σ_xx = ⟨x xᵀ⟩ = I) the same holds with the
input–output correlation Σ_yx = ⟨y xᵀ⟩ = U S Vᵀ (Saxe, McClelland & Ganguli 2014).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from landscape.errors import InputError

DTYPE = torch.float64   # every study runs in float64: the closed forms are checked to ~1e-10


@dataclass(frozen=True)
class Moments:
    """⟨x²⟩, ⟨xy⟩, ⟨y²⟩ of a scalar data set (float64) and N."""

    xx: float
    xy: float
    yy: float
    n: int

    @property
    def a_hat(self) -> float:
        """â = ⟨xy⟩/⟨x²⟩, the least-squares slope (the product p at every minimum)."""
        return self.xy / self.xx

    @property
    def loss_min(self) -> float:
        """L* = ⟨y²⟩ − ⟨xy⟩²/⟨x²⟩ (≥ 0 up to rounding)."""
        return max(self.yy - self.xy ** 2 / self.xx, 0.0)

    def as_dict(self) -> dict:
        return {"xx": self.xx, "xy": self.xy, "yy": self.yy, "n": self.n,
                "a_hat": self.a_hat, "loss_min": self.loss_min}


@dataclass(frozen=True)
class ScalarData:
    """Inputs and targets ``(N, 1)`` float64 and their moments."""

    x: Tensor
    y: Tensor
    moments: Moments


def scalar_data(cfg) -> ScalarData:
    """Draw x ~ N(0, x_std²) and y = a·x + N(0, noise²) with ``cfg.seed`` (a DataConfig).

    Raises:
        InputError: the x values have zero variance (N = 1 or x_std = 0): then the loss does
            not determine the weights' product and nothing here is defined.
    """
    g = torch.Generator().manual_seed(int(cfg.seed))
    x = cfg.x_std * torch.randn(cfg.num_points, 1, generator=g, dtype=DTYPE)
    y = cfg.slope * x + cfg.noise * torch.randn(cfg.num_points, 1, generator=g, dtype=DTYPE)
    if cfg.num_points < 2 or float(x.var()) <= 0.0:
        raise InputError(f"the data set has zero variance in x (num_points={cfg.num_points}, "
                         f"x_std={cfg.x_std}); use --num-points ≥ 2 and --x-std > 0")
    return ScalarData(x, y, moments_of(x, y))


def moments_of(x: Tensor, y: Tensor) -> Moments:
    """The moments of ``(N, 1)`` inputs and targets (float64 means)."""
    x, y = x.reshape(-1).to(DTYPE), y.reshape(-1).to(DTYPE)
    return Moments(float((x * x).mean()), float((x * y).mean()), float((y * y).mean()), x.numel())


@dataclass(frozen=True)
class WideData:
    """Whitened inputs ``X (N, n_in)``, targets ``Y = X Wᵀ`` and the SVD of Σ_yx = W = U S Vᵀ.

    ``U (n_out, r)``, ``V (n_in, r)``, ``s (r,)`` descending; ``yy`` = ⟨‖y‖²⟩ = Σ s² (no noise).
    """

    X: Tensor
    Y: Tensor
    U: Tensor
    s: Tensor
    V: Tensor

    @property
    def target(self) -> Tensor:
        """Σ_yx = U diag(s) Vᵀ, ``(n_out, n_in)``."""
        return self.U @ torch.diag(self.s) @ self.V.T

    @property
    def yy(self) -> float:
        return float((self.Y * self.Y).sum(1).mean())


def _orthonormal(rows: int, cols: int, g: torch.Generator) -> Tensor:
    """``(rows, cols)`` with orthonormal columns (QR of a Gaussian matrix, signs fixed)."""
    q, r = torch.linalg.qr(torch.randn(rows, cols, generator=g, dtype=DTYPE))
    return q * torch.sign(torch.diagonal(r))


def wide_data(cfg) -> WideData:
    """Inputs whitened exactly (Σ_xx = I to rounding) and Y = X Σ_yxᵀ with Σ_yx = U S Vᵀ (a SaxeConfig)."""
    g = torch.Generator().manual_seed(int(cfg.seed))
    s = torch.tensor(sorted(cfg.singular_values, reverse=True), dtype=DTYPE)
    U, V = _orthonormal(cfg.out_dim, len(s), g), _orthonormal(cfg.in_dim, len(s), g)
    X = _orthonormal(cfg.num_examples, cfg.in_dim, g) * np.sqrt(cfg.num_examples)   # XᵀX/N = I
    Y = X @ (U @ torch.diag(s) @ V.T).T
    return WideData(X, Y, U, s, V)


def check_whitened(X: Tensor, atol: float) -> None:
    """Refuse inputs whose Σ_xx departs from I by more than ``atol`` (max entry)."""
    dev = float((X.T @ X / X.shape[0] - torch.eye(X.shape[1], dtype=X.dtype)).abs().max())
    if dev > atol:
        raise InputError(f"the inputs are not whitened (max |Σ_xx − I| = {dev:.2e}); whiten them first")
