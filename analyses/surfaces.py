"""1-D and 2-D loss and accuracy surfaces around θ (Li et al. 2018, "Visualizing the Loss Landscape").

A 1-D surface is L(θ + x d) on a grid of x; a 2-D one is L(θ + x d₁ + y d₂) on a
Gy × Gx grid, row j holding y = ys[j]. Every grid point is one full-data forward
pass, batched over many points at once by :meth:`Objective.losses_at`, so a G × G
surface costs exactly G² forward passes. Rows are computed in blocks (the command
stores them with the results file's block datasets, so a killed job resumes at the
first missing block). :func:`estimate_seconds` times one forward pass and
:func:`check_budget` refuses a grid that would exceed a time budget, saying how long
it would take.

The saved trajectory is placed on the plane by least squares,
c_t = argmin_c ‖θ_t − θ − cᵀD‖ (the directions need not be orthogonal), with the
distance of each snapshot from the plane.

Along a unit eigenvector v with eigenvalue λ, L(θ + x v) = L(θ) + x g·v + ½λx² + O(x³):
:func:`fitted_curvature` (the second coefficient of a least-squares quadratic, doubled)
recovers λ on a small symmetric grid.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import Tensor

from landscape.errors import InputError


def check_grid(xs, ys=None) -> tuple[np.ndarray, np.ndarray | None]:
    """Validate grid coordinates: finite, at least 2 points per axis, strictly increasing."""
    out = []
    for name, c in (("x", xs), ("y", ys)):
        if c is None:
            out.append(None)
            continue
        c = np.asarray(c, dtype=np.float64)
        if c.ndim != 1 or c.size < 2 or not np.all(np.isfinite(c)) or np.any(np.diff(c) <= 0):
            raise InputError(f"the {name} grid must hold ≥ 2 finite, increasing coordinates; got {c.tolist()[:8]}")
        out.append(c)
    return out[0], out[1]


def grid_shape(xs, ys=None) -> tuple[int, int]:
    """(rows, columns): (1, Gx) for a 1-D surface, (Gy, Gx) for a 2-D one."""
    return (1 if ys is None else len(ys), len(xs))


def _check_directions(D: Tensor, theta: Tensor, ys) -> Tensor:
    D = D.unsqueeze(0) if D.ndim == 1 else D
    want = 1 if ys is None else 2
    if D.ndim != 2 or D.shape[0] != want or D.shape[1] != theta.numel():
        raise InputError(f"a {want}-D surface needs directions of shape ({want}, {theta.numel()}), "
                         f"got {tuple(D.shape)}")
    return D.to(theta)


def evaluate_rows(obj, theta: Tensor, D: Tensor, xs, ys=None, *, start: int = 0, stop: int | None = None,
                  points_per_call: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Loss and accuracy on grid rows ``start … stop−1``: two ``(rows, Gx)`` float64 arrays."""
    xs, ys = check_grid(xs, ys)
    D = _check_directions(D, theta, ys)
    stop = grid_shape(xs, ys)[0] if stop is None else stop
    X = torch.as_tensor(xs, dtype=theta.dtype, device=theta.device)
    loss, acc = [], []
    for j in range(start, stop):
        row = theta + X[:, None] * D[0]                                   # (Gx, P)
        if ys is not None:
            row = row + float(ys[j]) * D[1]
        for chunk in row.split(points_per_call):
            lo, ac = obj.losses_at(chunk)
            loss.append(lo.detach().double().cpu().numpy())
            acc.append(ac.detach().double().cpu().numpy())
    n = stop - start
    return np.concatenate(loss).reshape(n, len(xs)), np.concatenate(acc).reshape(n, len(xs))


def estimate_seconds(obj, theta: Tensor) -> float:
    """Wall time of one forward pass over the objective's data at θ (one grid point)."""
    if theta.is_cuda:
        torch.cuda.synchronize(theta.device)
    start = time.perf_counter()
    obj.losses_at(theta[None])
    if theta.is_cuda:
        torch.cuda.synchronize(theta.device)
    return time.perf_counter() - start


def _fmt(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def check_budget(num_points: int, seconds_per_point: float, max_minutes: float, shape=None) -> float:
    """Refuse ``num_points`` forward passes that would take longer than ``max_minutes``.

    Returns:
        The estimated seconds.

    Raises:
        InputError: the estimate exceeds the budget; the message says how long it would take.
    """
    estimate = num_points * seconds_per_point
    if estimate > 60 * max_minutes:
        grid = f"a {shape[0]}×{shape[1]} grid" if shape else "the grid"
        raise InputError(f"{grid} needs {num_points} forward passes, about {_fmt(estimate)} at "
                         f"{seconds_per_point:.3g} s per pass (measured), more than --max-minutes "
                         f"{max_minutes:g}; use a coarser grid or fewer examples, or raise --max-minutes")
    return estimate


def project_trajectory(thetas: Tensor, origin: Tensor, D: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares coordinates ``(T, d)`` of snapshots on the plane θ + span(D), and their distances ``(T,)``."""
    Dd = D.double()
    gram = Dd @ Dd.T
    coords, dist = [], []
    for th in thetas:
        delta = (th - origin).double()
        c = torch.linalg.solve(gram, Dd @ delta)
        coords.append(c)
        dist.append((delta - c @ Dd).norm())
    return torch.stack(coords).cpu().numpy(), torch.stack(dist).cpu().numpy()


def fitted_curvature(xs, losses) -> float:
    """d²L/dx² of the least-squares quadratic through ``(xs, losses)`` (1-D surface)."""
    xs, _ = check_grid(xs)
    return float(2 * np.polyfit(xs, np.asarray(losses, dtype=np.float64), 2)[0])
