"""Directions in parameter space: random, normalized, curvature, gradient, difference, PCA.

Every direction is a flat vector; a set of k directions is a row block ``(k, P)``
(the layout of stored eigenvectors). Nothing here mutates a model: the parameter
layout comes from a :class:`landscape.params.ParamSpec` (names, shapes, offsets).

* :func:`gaussian` — rows i.i.d. N(0, I/P), so E‖u‖² = 1 and a step ``r·u`` has
  expected length r. Row j is drawn from its own stream (``SeedSequence(seed)``
  child j), so direction j is the same whatever k, ``offset`` or chunking.
* :func:`filter_normalize` — Li et al. 2018, "Visualizing the Loss Landscape of
  Neural Nets", §4: for every weight with ≥ 2 dimensions (linear, conv), each output
  filter d_i (the slice along dim 0) is rescaled to the norm of the same filter of θ,
  d_i ← d_i · ‖θ_i‖ / ‖d_i‖. One-dimensional parameters (biases, BatchNorm scales and
  shifts) are *zeroed* by default — the paper's "ignore biasbn" option; with
  ``ignore_biasbn=False`` they are set to θ itself, as the reference code does
  (a step of size α then rescales them by 1 + α). Applied once, never repeatedly.
* :func:`adaptive_scale` — Kwon et al. 2021, "ASAM": the element-wise map
  T_θ = diag(|θ| + η), so the ball ‖T_θ⁻¹ δ‖ ≤ r is scale-invariant per parameter.
* :func:`unit_rows`, :func:`gradient_direction` — eigenvectors and the gradient as unit rows.
* :func:`difference` — θ_b − θ_a (two checkpoints or two runs; step 1 reaches θ_b).
* :func:`trajectory_pca` — top principal components of a saved trajectory (Li et al. 2018, §7).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from landscape.errors import InputError

FILTER_EPS = 1e-10  # guards ‖d_i‖ = 0 in filter normalization (the value of Li et al.'s code)
# A PCA variance below this fraction of the largest is rounding of the float64 Gram
# matrix (~1e-16 relative per entry, times T), not a direction of the trajectory.
PCA_RANK_RTOL = 1e-12
RANDOM_KINDS = ("gaussian", "filter", "adaptive")


def _stream_seeds(seed: int, offset: int, k: int) -> list[int]:
    children = np.random.SeedSequence(int(seed)).spawn(offset + k)[offset:]
    return [int(c.generate_state(1, dtype=np.uint64)[0] >> 1) for c in children]


def gaussian(P: int, k: int = 1, *, seed: int, offset: int = 0, dtype: torch.dtype = torch.float32,
             device: torch.device | str = "cpu") -> Tensor:
    """Rows ``offset … offset+k−1`` of a seeded sequence of N(0, I/P) directions.

    Args:
        P: the dimension.
        k: how many directions.
        seed: the seed of the whole sequence.
        offset: index of the first direction returned (for chunked generation).

    Returns:
        ``(k, P)``; each row has E‖u‖² = 1. Drawn on the CPU in float32, so the
        same seed gives the same directions on every device.
    """
    if P < 1 or k < 1:
        raise InputError(f"gaussian directions need P ≥ 1 and k ≥ 1, got P={P}, k={k}")
    rows = []
    for s in _stream_seeds(seed, offset, k):
        gen = torch.Generator().manual_seed(s)
        rows.append(torch.randn(P, generator=gen, dtype=torch.float32))
    return (torch.stack(rows) / P ** 0.5).to(device=device, dtype=dtype)


def _as_block(D: Tensor, P: int, what: str) -> Tensor:
    D = D.unsqueeze(0) if D.ndim == 1 else D
    if D.ndim != 2 or D.shape[1] != P:
        raise InputError(f"{what}: expected directions of shape (k, {P}), got {tuple(D.shape)}")
    return D


def _layout(spec) -> list[tuple[slice, tuple[int, ...]]]:
    slices = spec.slices()
    return [(slices[name], tuple(shape)) for name, shape in zip(spec.names, spec.shapes)]


def filter_normalize(D: Tensor, theta: Tensor, spec, *, ignore_biasbn: bool = True) -> Tensor:
    """Li et al. (2018) filter normalization of each row of ``D`` against θ.

    Args:
        D: directions ``(k, P)`` (or one ``(P,)``).
        theta: the parameters ``(P,)`` whose filter norms the directions take.
        spec: the :class:`~landscape.params.ParamSpec` of θ.
        ignore_biasbn: zero 1-D parameters (default); else set them to θ.

    Returns:
        A new ``(k, P)`` block; ``D`` is not modified.
    """
    D = _as_block(D, theta.numel(), "filter_normalize").clone()
    for sl, shape in _layout(spec):
        if len(shape) <= 1:
            D[:, sl] = 0.0 if ignore_biasbn else theta[sl]
            continue
        d = D[:, sl].reshape(D.shape[0], shape[0], -1)            # (k, filters, fan_in)
        w = theta[sl].reshape(1, shape[0], -1)
        scale = w.norm(dim=2, keepdim=True) / (d.norm(dim=2, keepdim=True) + FILTER_EPS)
        D[:, sl] = (d * scale).reshape(D.shape[0], -1)
    return D


def adaptive_scale(D: Tensor, theta: Tensor, *, eta: float = 0.0) -> Tensor:
    """Kwon et al. (2021) adaptive scaling: rows of ``D`` multiplied by |θ| + η element-wise."""
    if eta < 0:
        raise InputError(f"adaptive scaling needs η ≥ 0, got {eta}")
    return _as_block(D, theta.numel(), "adaptive_scale") * (theta.abs() + eta)


def random_directions(kind: str, theta: Tensor, spec, k: int, *, seed: int, offset: int = 0,
                      eta: float = 0.0, ignore_biasbn: bool = True) -> Tensor:
    """k seeded random directions of one ``kind``: gaussian, filter or adaptive.

    ``gaussian``: N(0, I/P) (radius = expected Euclidean length); ``filter``: the
    same draws filter-normalized (radius relative to filter norms); ``adaptive``:
    the draws times |θ| + η (radius in the adaptive norm ‖T_θ⁻¹δ‖).
    """
    if kind not in RANDOM_KINDS:
        raise InputError(f"unknown random direction kind {kind!r}; use one of {', '.join(RANDOM_KINDS)}")
    U = gaussian(theta.numel(), k, seed=seed, offset=offset, dtype=theta.dtype, device=theta.device)
    if kind == "filter":
        return filter_normalize(U, theta, spec, ignore_biasbn=ignore_biasbn)
    if kind == "adaptive":
        return adaptive_scale(U, theta, eta=eta)
    return U


def unit_rows(V: Tensor) -> Tensor:
    """Rows of ``V`` scaled to unit norm (eigenvectors as stored may drift from 1)."""
    V = V.unsqueeze(0) if V.ndim == 1 else V
    norms = V.norm(dim=1, keepdim=True)
    if (norms == 0).any():
        raise InputError("a direction is the zero vector; it cannot be normalized")
    return V / norms


def gradient_direction(g: Tensor) -> Tensor:
    """The gradient as a unit row ``(1, P)``; refuses a zero gradient."""
    return unit_rows(g)


def difference(theta_a: Tensor, theta_b: Tensor) -> Tensor:
    """θ_b − θ_a as a row ``(1, P)`` (not normalized: a step of 1 from θ_a reaches θ_b)."""
    if theta_a.shape != theta_b.shape:
        raise InputError(f"cannot take the difference of parameters of shapes {tuple(theta_a.shape)} "
                         f"and {tuple(theta_b.shape)}: the two checkpoints are of different models")
    D = (theta_b - theta_a).unsqueeze(0)
    if not D.any():
        raise InputError("the two parameter vectors are identical; their difference is no direction")
    return D


def trajectory_pca(thetas: Tensor, k: int = 2, *, origin: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Top-k principal components of a trajectory (Li et al. 2018, §7).

    The rows θ_t − origin (origin: the last snapshot by default) are centred on
    their mean — as the reference code's PCA does — and decomposed via the T×T Gram
    matrix in float64 (T snapshots ≪ P).

    Args:
        thetas: ``(T, P)`` snapshots.
        k: number of components (≤ T − 1).
        origin: ``(P,)``; defaults to ``thetas[-1]``.

    Returns:
        ``(components (k, P) orthonormal, in θ's dtype; explained_variance_ratio (k,) float64)``.
    """
    T = thetas.shape[0]
    if not 1 <= k <= T - 1:
        raise InputError(f"PCA of a trajectory of {T} snapshots gives at most {T - 1} components, asked {k}")
    origin = thetas[-1] if origin is None else origin
    X = (thetas - origin).double()
    X = X - X.mean(dim=0)
    evals, evecs = torch.linalg.eigh(X @ X.T)                     # ascending
    evals, evecs = evals.flip(0).clamp_min(0), evecs.flip(1)
    if evals[k - 1] <= PCA_RANK_RTOL * evals[0]:
        raise InputError(f"the trajectory spans fewer than {k} dimensions; ask for fewer components")
    comps = (evecs[:, :k].T @ X) / evals[:k, None].sqrt()
    return comps.to(thetas.dtype), evals[:k] / evals.sum()
