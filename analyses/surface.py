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

from analyses.driver.records import Record
from landscape import directions as D
from landscape.errors import ConfigMismatchError, InputError
from landscape.params import ParamSpec

RANDOM = ("filter", "random", "gaussian", "adaptive")   # ``random`` is an alias of ``filter``
SIMPLE = RANDOM + ("gradient",)
PREFIXED = ("eigen", "step", "run", "pca")


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


def parse_tokens(text: str) -> list[str]:
    """``--directions`` → one (1-D) or two (2-D) direction tokens, each checked."""
    tokens = [t.strip() for t in text.split(",") if t.strip()]
    if not 1 <= len(tokens) <= 2:
        raise InputError(f"--directions {text!r}: give one (1-D surface) or two (2-D) directions")
    for t in tokens:
        head = t.split(":", 1)[0]
        if t not in SIMPLE and not (head in PREFIXED and ":" in t and t.split(":", 1)[1]):
            raise InputError(f"--directions: unknown direction {t!r}; use {', '.join(SIMPLE)}, eigen:J, step:S, "
                             "run:PATH[@S] or pca:J")
        if head in ("eigen", "pca", "step"):
            _index(t.split(":", 1)[1], t, 0 if head == "step" else 1)
    return tokens


def _index(arg: str, token: str, lowest: int = 1) -> int:
    try:
        j = int(arg)
    except ValueError:
        j = lowest - 1
    if j < lowest:
        raise InputError(f"--directions {token!r}: the number must be an integer ≥ {lowest}")
    return j


class DirectionBuilder:
    """Turns direction tokens into ``(P,)`` vectors at one step (θ covering ``spec``).

    Args:
        run: the opened run (θ at its other steps, the trajectory).
        spec: the parameters the objective covers.
        eigen_at: ``eigen_at(step)`` → the checked stored eigenpairs at ``step``.
        open_run: ``open_run(path)`` → another opened run (a context manager), for ``run:PATH``.
        seed, eta, keep_biasbn: options of the random directions.
    """

    def __init__(self, run, spec: ParamSpec, eigen_at, open_run, *, seed: int = 0, eta: float = 0.0,
                 keep_biasbn: bool = False):
        self.run, self.spec, self.eigen_at, self.open_run = run, spec, eigen_at, open_run
        self.seed, self.eta, self.keep_biasbn = seed, eta, keep_biasbn

    def theta_of(self, run, step: int) -> Tensor:
        """θ of ``run`` at ``step`` restricted to this objective's parameters."""
        full = ParamSpec.from_module(run.model)
        if [(n, s) for n, s in zip(full.names, full.shapes) if n in self.spec.names] != list(
                zip(self.spec.names, self.spec.shapes)):
            raise ConfigMismatchError(f"{run.file.path} is a run of another model; directions between runs need "
                                      "the same architecture")
        return self.spec.flatten(full.unflatten(run.theta(step)))

    def build(self, token: str, axis: int, step: int, obj) -> Tensor:
        head, _, arg = token.partition(":")
        theta = obj.theta
        if head in RANDOM:
            kind = "filter" if head == "random" else head
            return D.random_directions(kind, theta, self.spec, 1, seed=self.seed, offset=axis,
                                       eta=self.eta, ignore_biasbn=not self.keep_biasbn)[0]
        if head == "gradient":
            return D.gradient_direction(obj.grad(theta))[0]
        if head == "eigen":
            j = _index(arg, token)
            eig = self.eigen_at(step)
            if j > len(eig.eigenvalues):
                raise InputError(f"--directions {token!r}: step {step} has {len(eig.eigenvalues)} stored eigenvectors")
            return D.unit_rows(torch.as_tensor(eig.eigenvectors[j - 1]).to(theta))[0]
        if head == "step":
            return D.difference(theta, self.theta_of(self.run, int(_index(arg, token, 0))).to(theta))[0]
        if head == "run":
            return self._other_run(arg, theta)
        return self._pca(_index(arg, token), theta)

    def _other_run(self, arg: str, theta: Tensor) -> Tensor:
        path, _, s = arg.partition("@")
        with self.open_run(path) as other:
            step = int(s) if s else int(other.saved_steps[-1])
            return D.difference(theta, self.theta_of(other, step).to(theta))[0]

    def trajectory(self, theta: Tensor) -> tuple[np.ndarray, list[Tensor]]:
        """The saved steps of the run and θ at each (on θ's device and dtype)."""
        steps = np.asarray(self.run.saved_steps)
        return steps, [self.theta_of(self.run, int(s)).to(theta) for s in steps]

    def _pca(self, j: int, theta: Tensor) -> Tensor:
        _, thetas = self.trajectory(theta)
        comps, _ = D.trajectory_pca(torch.stack(thetas), j, origin=theta)
        return comps[j - 1]


class SurfaceWork:
    """Computes one surface item, row block by row block, into the results file's block datasets.

    Args:
        inputs: the driver's :class:`~analyses.driver.inputs.RunInputs`.
        store: the open results file (block datasets: create, write, which are done).
        builder: the :class:`DirectionBuilder` of this run.
        tokens, axes: the directions and the coordinates per axis.
        block_rows, points_per_call, max_minutes, trajectory: options of the command.
        progress: ``progress(total, desc)`` → a progress bar.
    """

    def __init__(self, inputs, store, builder: DirectionBuilder, tokens, axes, *, block_rows: int = 1,
                 points_per_call: int = 16, max_minutes: float = 60.0, trajectory: bool = True, progress=None):
        self.inputs, self.store, self.builder, self.tokens, self.axes = inputs, store, builder, tokens, axes
        self.block_rows, self.points_per_call, self.max_minutes = max(1, block_rows), points_per_call, max_minutes
        self.with_trajectory, self.progress = trajectory, progress

    def compute(self, step: int, key: str, settings: dict) -> Record:
        obj = self.inputs.objective(step)
        Dm = torch.stack([self.builder.build(t, i, step, obj) for i, t in enumerate(self.tokens)])
        xs, ys = self.axes[0], (self.axes[1] if len(self.axes) == 2 else None)
        self._fill(step, key, obj, Dm, xs, ys, settings)
        arrays = {"xs": xs, "direction_norms": Dm.double().norm(dim=1).cpu().numpy(),
                  "center_loss": float(obj.loss(obj.theta))}
        if ys is not None:
            arrays["ys"] = ys
            if self.with_trajectory:
                steps, thetas = self.builder.trajectory(obj.theta)
                coords, dist = project_trajectory(thetas, obj.theta, Dm)
                arrays.update(trajectory_steps=steps, trajectory_coords=coords, trajectory_distance=dist)
        attrs = {**self.inputs.item_attrs(step), "settings": settings,
                 "x_label": self.tokens[0], "y_label": self.tokens[-1] if ys is not None else ""}
        return Record(arrays, attrs)

    def _fill(self, step, key, obj, Dm, xs, ys, settings) -> None:
        rows, G = grid_shape(xs, ys)
        block = self.block_rows
        finger = {"param_sha256": self.inputs.param_sha256(step), **settings}
        for name in ("loss", "acc"):
            self.store.create_block_dataset(key, name, (rows, G), np.float64, block, attrs=finger)
        todo = np.flatnonzero(~self.store.blocks_done(key, "loss") | ~self.store.blocks_done(key, "acc"))
        remaining = sum(min(block, rows - b * block) for b in todo) * G
        check_budget(remaining, estimate_seconds(obj, obj.theta), self.max_minutes, (rows, G))
        with self.progress(remaining, f"step {step} surface") as bar:
            for b in todo:
                start, stop = int(b) * block, min(rows, (int(b) + 1) * block)
                loss, acc = evaluate_rows(obj, obj.theta, Dm, xs, ys, start=start, stop=stop,
                                          points_per_call=self.points_per_call)
                self.store.write_block(key, "loss", start, loss)
                self.store.write_block(key, "acc", start, acc)
                bar.update(loss.size)
