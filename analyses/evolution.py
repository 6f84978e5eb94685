"""How the Hessian spectrum and its eigenvectors change over training (user guide: docs/analyses-eigen.md).

For checkpoints a, b with eigenvectors V_a ``(k_a, P)`` and V_b ``(k_b, P)`` (rows
orthonormal), the overlap matrix

    O_ab = |V_a V_bᵀ|  ∈ [0, 1]^{k_a × k_b}

holds |cos| of the angle between every pair of eigenvectors; the maximum of row i
says how well v_i(a) is matched by a single eigenvector at b (1: the same direction;
1/√P: a random one), and its column says which. A direction that rotates within a
nearly degenerate group spreads over several columns, so we also report the
principal angles θ_1 ≤ … ≤ θ_k between the top-k subspaces (Björck & Golub 1973)
and the subspace overlap (1/k) Σ cos²θ_j = ‖Q_a Q_bᵀ‖²_F / k (Gur-Ari, Roberts &
Dyer 2018, "Gradient descent happens in a tiny subspace").

The spectral density at each step is the Gaussian-broadened SLQ quadrature
(Ghorbani, Krishnan & Xiao 2019): φ(x) = (1/n_v) Σ_v Σ_j w_vj N(x; ν_vj, σ²).

This module uses numpy only (no torch), so plot code may import it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.linalg import subspace_angles

from analyses.driver.records import Record
from landscape.errors import InputError

PAIR_MODES = ("consecutive", "first", "last", "all")


def eigenvalue_table(eigenvalues: Sequence[np.ndarray]) -> np.ndarray:
    """Stack per-step eigenvalue vectors into ``(n_steps, k_max)``, NaN where a step has fewer."""
    k = max((len(e) for e in eigenvalues), default=0)
    table = np.full((len(eigenvalues), k), np.nan)
    for row, lam in zip(table, eigenvalues):
        row[:len(lam)] = lam
    return table


def _unit_rows(V: np.ndarray) -> np.ndarray:
    V = np.asarray(V, dtype=np.float64)
    if V.ndim != 2:
        raise InputError(f"eigenvectors must be a (k, P) block, got shape {V.shape}")
    return V / np.linalg.norm(V, axis=1, keepdims=True)


def overlap(Va: np.ndarray, Vb: np.ndarray) -> np.ndarray:
    """O = |V_a V_bᵀ| ``(k_a, k_b)`` in float64 (rows normalised first, so float32 storage drift does not count)."""
    if np.shape(Va)[-1] != np.shape(Vb)[-1]:
        raise InputError(f"eigenvectors of different length: {np.shape(Va)} and {np.shape(Vb)}; "
                         "both checkpoints must come from the same model and parameter subset")
    return np.abs(_unit_rows(Va) @ _unit_rows(Vb).T)


def principal_angles(Va: np.ndarray, Vb: np.ndarray, k: int | None = None) -> np.ndarray:
    """Principal angles (radians, ascending) between span(V_a[:k]) and span(V_b[:k]).

    Uses :func:`scipy.linalg.subspace_angles` (orthonormalises both bases; the sine
    formula keeps small angles accurate).
    """
    k = min(len(Va), len(Vb)) if k is None else k
    if not 1 <= k <= min(len(Va), len(Vb)):
        raise InputError(f"subspace dimension k={k} must be in 1 … {min(len(Va), len(Vb))} (the eigenvectors stored)")
    A, B = np.asarray(Va[:k], dtype=np.float64).T, np.asarray(Vb[:k], dtype=np.float64).T
    return np.sort(subspace_angles(A, B))


def compare(Va: np.ndarray, Vb: np.ndarray, k_subspace: int | None = None) -> dict:
    """Everything stored for one pair of checkpoints.

    Returns:
        ``overlap (k_a, k_b)``, ``row_max``/``row_argmax (k_a,)`` (best match of each v_i(a)),
        ``col_max (k_b,)``, ``principal_angles (k,)``, ``subspace_overlap`` (mean cos²θ) and
        ``diagonal (min(k_a, k_b),)`` = |v_i(a)·v_i(b)| (same index at both steps).
    """
    O = overlap(Va, Vb)
    angles = principal_angles(Va, Vb, k_subspace)
    return {"overlap": O, "row_max": O.max(axis=1), "row_argmax": O.argmax(axis=1).astype(np.int64),
            "col_max": O.max(axis=0), "diagonal": np.diagonal(O).copy(), "principal_angles": angles,
            "subspace_overlap": float(np.mean(np.cos(angles) ** 2))}


def step_pairs(steps: Sequence[int], mode: str = "consecutive") -> list[tuple[int, int]]:
    """Pairs (a, b) of steps to compare: consecutive, each against the first/last, or all a < b."""
    steps = sorted(int(s) for s in steps)
    if mode not in PAIR_MODES:
        raise InputError(f"unknown pairing {mode!r}; use one of {', '.join(PAIR_MODES)}")
    if mode == "consecutive":
        return list(zip(steps[:-1], steps[1:]))
    if mode == "first":
        return [(steps[0], s) for s in steps[1:]]
    if mode == "last":
        return [(s, steps[-1]) for s in steps[:-1]]
    return [(a, b) for i, a in enumerate(steps) for b in steps[i + 1:]]


def density_on_grid(nodes: np.ndarray, weights: np.ndarray, grid: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-broadened SLQ density φ(x) on ``grid`` from nodes/weights ``(n_v, m)``; integrates to 1."""
    if sigma <= 0:
        raise InputError(f"the kernel width sigma must be positive, got {sigma}")
    nodes, weights = np.atleast_2d(nodes), np.atleast_2d(weights)
    z = (np.asarray(grid, dtype=np.float64)[:, None, None] - nodes[None]) / sigma
    kernel = np.exp(-0.5 * z * z) / (sigma * np.sqrt(2 * np.pi))
    return (kernel * weights[None]).sum(axis=(1, 2)) / nodes.shape[0]


def density_grid(all_nodes: Sequence[np.ndarray], num: int = 512, pad: float = 0.05) -> np.ndarray:
    """A common grid covering every step's nodes, padded by ``pad`` of the range on each side."""
    lo = min(float(np.min(n)) for n in all_nodes)
    hi = max(float(np.max(n)) for n in all_nodes)
    width = max(hi - lo, 1e-12)
    return np.linspace(lo - pad * width, hi + pad * width, num)


def density_evolution(all_nodes: Sequence[np.ndarray], all_weights: Sequence[np.ndarray], *,
                      num: int = 512, sigma_fraction: float = 0.01) -> dict:
    """Densities of every step on one grid, kernel width σ = ``sigma_fraction`` × the grid's range.

    Returns:
        ``grid (G,)``, ``density (n_steps, G)`` and ``sigma``.
    """
    grid = density_grid(all_nodes, num)
    sigma = sigma_fraction * float(grid[-1] - grid[0])
    dens = np.stack([density_on_grid(n, w, grid, sigma) for n, w in zip(all_nodes, all_weights)])
    return {"grid": grid, "density": dens, "sigma": sigma}


def pair_record(ea, eb, k: int | None) -> Record:
    """The comparison of the stored eigenpairs of two steps (``ea``, ``eb``: :class:`~analyses.driver.eigen.Eigen`)."""
    kmax = min(len(ea.eigenvalues), len(eb.eigenvalues))
    if k is not None and not 1 <= k <= kmax:
        raise InputError(f"--subspace-k {k}: steps {ea.step} and {eb.step} store {kmax} eigenvectors in common; "
                         f"use 1 … {kmax}")
    arrays = compare(ea.eigenvectors, eb.eigenvectors, k)
    return Record({**arrays, "eigenvalues_a": ea.eigenvalues, "eigenvalues_b": eb.eigenvalues},
                  {"step_a": int(ea.step), "step_b": int(eb.step)})


def eigenvalue_record(eigens: Sequence) -> Record:
    """Steps, eigenvalues and residuals ``(n, k_max)`` (NaN-padded) of the stored eigenpairs."""
    return Record({"steps": np.asarray([e.step for e in eigens], dtype=np.int64),
                   "eigenvalues": eigenvalue_table([e.eigenvalues for e in eigens]),
                   "residuals": eigenvalue_table([e.residuals for e in eigens])})


def density_record(densities: dict[int, dict], *, num: int, sigma_fraction: float) -> Record | None:
    """Every stored SLQ density (step → its ``nodes``/``weights``) on one grid; None when there are none."""
    if not densities:
        return None
    steps = sorted(densities)
    out = density_evolution([densities[s]["nodes"] for s in steps], [densities[s]["weights"] for s in steps],
                            num=num, sigma_fraction=sigma_fraction)
    return Record({"steps": np.asarray(steps, dtype=np.int64), **out})
