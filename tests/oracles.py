"""Oracles for the numerical tests: matrices with known spectra, and independent checks.

Every factory returns a :class:`KnownSpectrum` built as M = Q diag(λ) Qᵀ with a seeded
Haar-random orthogonal Q, in float64, so eigenvalues and eigenvectors are exact by
construction and products are dense. ``SPECTRUM_CASES`` lists them as data (factory,
seed, readable id) for ``pytest.mark.parametrize``; other test packages may reuse them
(e.g. a quadratic loss whose Hessian is ``case.matrix``). Factories are cached: treat
the returned tensors as read-only (clone before modifying).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor


@dataclass(frozen=True)
class KnownSpectrum:
    """A symmetric matrix with its exact eigen-decomposition.

    Attributes:
        name: readable id.
        matrix: ``(P, P)`` float64, symmetric.
        eigenvalues: ``(P,)`` float64 ascending.
        eigenvectors: ``(P, P)`` float64, row i is the eigenvector of ``eigenvalues[i]``.
    """

    name: str
    matrix: Tensor
    eigenvalues: Tensor
    eigenvectors: Tensor

    @property
    def P(self) -> int:
        return self.matrix.shape[0]

    @property
    def norm(self) -> float:
        """‖M‖₂ = max |λ|."""
        return float(self.eigenvalues.abs().max())

    def as_dtype(self, dtype: torch.dtype) -> Tensor:
        """The matrix in another dtype (rounded entry-wise, hence still symmetric)."""
        return self.matrix.to(dtype)

    def expected(self, k: int, which: str) -> Tensor:
        """The k eigenvalues ``which`` asks for, in the order eigsh reports them."""
        lam = self.eigenvalues
        if which == "LA":
            return lam.flip(0)[:k]
        if which == "SA":
            return lam[:k]
        if which == "LM":
            return lam[torch.argsort(lam.abs(), descending=True, stable=True)][:k]
        top, bottom = (k + 1) // 2, k // 2
        return torch.cat([lam[:bottom], lam[lam.shape[0] - top:]])


def random_orthogonal(P: int, seed: int) -> Tensor:
    """Haar-random orthogonal ``(P, P)`` float64 (QR of a Gaussian matrix, signs fixed)."""
    g = torch.Generator().manual_seed(seed)
    Q, R = torch.linalg.qr(torch.randn(P, P, generator=g, dtype=torch.float64))
    return Q * torch.sign(R.diagonal())


def with_spectrum(eigenvalues, seed: int, name: str = "custom") -> KnownSpectrum:
    """M = Q diag(λ) Qᵀ for the given eigenvalues and a seeded random Q."""
    lam = torch.sort(torch.as_tensor(np.asarray(eigenvalues, dtype=np.float64))).values
    Q = random_orthogonal(lam.shape[0], seed)  # column i is the eigenvector of lam[i]
    M = (Q * lam) @ Q.T
    return KnownSpectrum(name, (M + M.T) / 2, lam, Q.T.contiguous())


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


@lru_cache(maxsize=32)
def clustered(seed: int = 0, P: int = 200) -> KnownSpectrum:
    """Three clusters of 5 values (relative spread 1e-3) at 10, 5 and 2.5 over a bulk in [0, 1]."""
    clusters = [c * (1 + 1e-3 * np.linspace(-1, 1, 5)) for c in (10.0, 5.0, 2.5)]
    bulk = _rng(seed).uniform(0.0, 1.0, P - 15)
    return with_spectrum(np.concatenate(clusters + [bulk]), seed, "clustered")


@lru_cache(maxsize=32)
def repeated(seed: int = 0, P: int = 150) -> KnownSpectrum:
    """5 three times, 3 twice, −4 twice, over a bulk in [−1, 1]: exact multiplicities."""
    bulk = _rng(seed).uniform(-1.0, 1.0, P - 7)
    return with_spectrum(np.concatenate([[5, 5, 5, 3, 3, -4, -4], bulk]), seed, "repeated")


@lru_cache(maxsize=32)
def indefinite(seed: int = 0, P: int = 200) -> KnownSpectrum:
    """Values spread over [−3, 8], with the largest magnitudes at both ends (−3, 8, −2.9, 7.5)."""
    inner = _rng(seed).uniform(-2.5, 7.0, P - 4)
    return with_spectrum(np.concatenate([[-3.0, -2.9, 7.5, 8.0], inner]), seed, "indefinite")


@lru_cache(maxsize=32)
def rank_deficient(seed: int = 0, P: int = 100, rank: int = 3) -> KnownSpectrum:
    """Rank ``rank`` (values 9, 4, 1, …, the rest exactly 0): Lanczos breaks down after ``rank`` steps."""
    lam = np.zeros(P)
    lam[:rank] = 9.0 / np.arange(1, rank + 1) ** 2
    return with_spectrum(lam, seed, f"rank{rank}")


@lru_cache(maxsize=32)
def ghost_demo(seed: int = 0, P: int = 1000) -> KnownSpectrum:
    """Hessian-like: outliers 100, 60, 35, 20, 12; five small negatives; a bulk |N(0, 0.3²)|.

    The spectrum of ``shared/research/experiments/lanczos_ghost_demo.py``: plain Lanczos
    reports λ₁ = 100 many times over, full reorthogonalization exactly once.
    """
    top = [100.0, 60.0, 35.0, 20.0, 12.0]
    neg = -np.linspace(0.05, 0.5, 5)
    bulk = np.abs(_rng(seed).normal(0.0, 0.3, P - 10))
    return with_spectrum(np.concatenate([top, neg, bulk]), seed, "ghost_demo")


@lru_cache(maxsize=32)
def wishart(seed: int = 0, P: int = 300, N: int = 600) -> KnownSpectrum:
    """XᵀX / N for Gaussian X (N × P): a Marchenko–Pastur bulk, eigenvalues from ``eigh``."""
    X = torch.from_numpy(_rng(seed).standard_normal((N, P)))
    M = X.T @ X / N
    lam, Q = torch.linalg.eigh((M + M.T) / 2)
    return KnownSpectrum("wishart", (M + M.T) / 2, lam, Q.T.contiguous())


@lru_cache(maxsize=32)
def small(seed: int = 0, P: int = 8) -> KnownSpectrum:
    """P = 8 with distinct values 1…8: Krylov spaces fill all of R^P."""
    return with_spectrum(np.arange(1.0, P + 1), seed, "small")


SPECTRUM_CASES = [
    {"id": "clustered", "factory": clustered, "seed": 0},
    {"id": "repeated", "factory": repeated, "seed": 1},
    {"id": "indefinite", "factory": indefinite, "seed": 2},
    {"id": "rank3", "factory": rank_deficient, "seed": 3},
    {"id": "ghost_demo", "factory": ghost_demo, "seed": 4},
    {"id": "wishart", "factory": wishart, "seed": 5},
    {"id": "small", "factory": small, "seed": 6},
]


def build(case: dict) -> KnownSpectrum:
    """Run a case's factory with its seed."""
    return case["factory"](seed=case["seed"])


def explicit_residuals(M: Tensor, eigenvalues, eigenvectors) -> np.ndarray:
    """‖M v − λ v‖ per row v, recomputed in NumPy float64 (independent of the solver's code path)."""
    M = np.asarray(M, dtype=np.float64)
    lam = np.asarray(torch.as_tensor(eigenvalues).to(torch.float64))
    V = np.asarray(torch.as_tensor(eigenvectors).detach().to("cpu", torch.float64))
    return np.linalg.norm(V @ M - lam[:, None] * V, axis=1)


def diff_report(actual, expected, what: str = "values") -> str:
    """A one-paragraph account of how two arrays differ (for assertion messages)."""
    a = np.asarray(torch.as_tensor(actual).to(torch.float64))
    e = np.asarray(torch.as_tensor(expected).to(torch.float64))
    if a.shape != e.shape:
        return f"{what}: shape {a.shape} != expected {e.shape}"
    d = np.abs(a - e)
    i = int(np.argmax(d)) if d.size else 0
    return (f"{what}: max |diff| = {d.max(initial=0):.3e} at index {i} (got {a.flat[i]:.12g}, expected "
            f"{e.flat[i]:.12g}); got {np.array2string(a, precision=10)}, expected {np.array2string(e, precision=10)}")
