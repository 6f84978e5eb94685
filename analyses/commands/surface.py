"""``landscape surface RUN.h5 --steps last --out RESULTS.h5 --directions filter,filter``: loss surfaces.

1-D (one direction) or 2-D (two) loss and accuracy surfaces around θ_step, stored as
``surface/step_XXXXXXXX/<name>`` and written row block by row block, so a killed job
resumes at the first missing block. Directions (``--directions A[,B]``):

* ``filter`` (alias ``random``), ``gaussian``, ``adaptive`` — seeded random directions
  (filter-normalized as in Li et al. 2018 by default for surfaces);
* ``eigen:J`` — the J-th stored Hessian eigenvector (1 = top; from ``--eigen`` or ``--out``);
* ``gradient`` — the full-batch gradient (unit length);
* ``step:S`` — θ_S − θ_step (another checkpoint of the run; x = 1 reaches it);
* ``run:PATH[@S]`` — θ_S of another run of the same model (default its last snapshot) − θ_step;
* ``pca:J`` — the J-th principal component of the saved trajectory (Li et al. 2018, §7).

A 2-D surface also stores the saved trajectory projected onto its plane. Before
computing, one forward pass is timed and a grid that would exceed ``--max-minutes`` is
refused with the estimate.
"""

from __future__ import annotations

import argparse
import re
from functools import partial

import numpy as np
import torch

from analyses import surfaces as SU
from analyses.commands._common import (add_device_args, add_objective_args, add_run_args, open_inputs,
                                       open_results, progress)
from analyses.commands.gradproj import read_eigen
from analyses.commands.sharpness import StepObjectives, check_settings, common_settings, vars_config
from analyses.runner import Item, Record, run_items, step_key
from landscape import directions as D
from landscape.errors import ConfigMismatchError, InputError
from landscape.params import ParamSpec

NAME = "surface"
HELP = "1-D/2-D loss and accuracy surfaces along chosen directions, with the projected trajectory (resumable)"
SIMPLE = ("filter", "random", "gaussian", "adaptive", "gradient")
PREFIXED = ("eigen", "step", "run", "pca")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_run_args(p, steps="last")
    add_objective_args(p)
    add_device_args(p)
    p.add_argument("--directions", default="filter,filter",
                   help="one (1-D) or two (2-D) of: filter|random, gaussian, adaptive, gradient, eigen:J, "
                        "step:S, run:PATH[@S], pca:J; default filter,filter")
    p.add_argument("--grid", default="21", help="points per axis: G or GX,GY; default 21")
    p.add_argument("--span", default="1", help="coordinates per axis: S (−S…S) or A:B, comma-separated per "
                                              "axis (write --span=-0.5:1.5 for a negative start); default 1")
    p.add_argument("--name", default=None, help="item name (default: from the directions)")
    p.add_argument("--eigen", default=None, metavar="RESULTS.h5", help="file with hessian/step_*/eigen (default --out)")
    p.add_argument("--keep-biasbn", action="store_true", help="filter directions: 1-D parameters follow θ")
    p.add_argument("--eta", type=float, default=0.0, help="adaptive directions: |θ| + η; default 0")
    p.add_argument("--no-trajectory", action="store_true", help="do not project the saved trajectory (2-D)")
    p.add_argument("--block-rows", type=int, default=1, help="grid rows per stored block; default 1")
    p.add_argument("--points-per-call", type=int, default=16, help="grid points per batched forward; default 16")
    p.add_argument("--max-minutes", type=float, default=60.0, help="refuse grids estimated to take longer")
    p.add_argument("--seed", type=int, default=0, help="seed of random directions; default 0")


def parse_tokens(text: str) -> list[str]:
    tokens = [t.strip() for t in text.split(",") if t.strip()]
    if not 1 <= len(tokens) <= 2:
        raise InputError(f"--directions {text!r}: give one (1-D surface) or two (2-D) directions")
    for t in tokens:
        head = t.split(":", 1)[0]
        if t not in SIMPLE and not (head in PREFIXED and ":" in t and t.split(":", 1)[1]):
            raise InputError(f"--directions: unknown direction {t!r}; use {', '.join(SIMPLE)}, eigen:J, step:S, "
                             "run:PATH[@S] or pca:J")
    return tokens


def parse_axes(grid: str, span: str, dims: int) -> list[np.ndarray]:
    """Coordinates per axis from ``--grid`` and ``--span``."""
    try:
        counts = [int(g) for g in grid.split(",")]
        spans = [tuple(float(x) for x in s.split(":")) if ":" in s else (-float(s), float(s))
                 for s in span.split(",")]
    except ValueError:
        raise InputError(f"--grid {grid!r} / --span {span!r}: use e.g. --grid 21,11 --span 1,0.5") from None
    counts, spans = (counts * dims)[:dims], (spans * dims)[:dims]
    axes = [np.linspace(lo, hi, g) if g >= 2 and len((lo, hi)) == 2 else None for g, (lo, hi) in zip(counts, spans)]
    if any(a is None for a in axes) or any(len(s) != 2 for s in spans):
        raise InputError(f"--grid needs ≥ 2 points per axis and --span S or A:B per axis; got {grid!r}, {span!r}")
    SU.check_grid(axes[0], axes[1] if dims == 2 else None)
    return axes


def default_name(tokens: list[str]) -> str:
    parts = [re.sub(r"[^A-Za-z0-9_.+=-]", "_", t.replace("run:", "run_").replace(":", "")) for t in tokens]
    return "-".join(p.rsplit("/", 1)[-1] for p in parts).lstrip("_.") or "surface"


class DirectionBuilder:
    """Turns direction tokens into ``(P,)`` vectors at one step (θ covering ``spec``)."""

    def __init__(self, inp, args, spec: ParamSpec, eigen_source):
        self.inp, self.args, self.spec, self.eigen_source = inp, args, spec, eigen_source

    def theta_of(self, run, step: int) -> torch.Tensor:
        """θ of ``run`` at ``step`` restricted to this objective's parameters."""
        full = ParamSpec.from_module(run.model)
        if [(n, s) for n, s in zip(full.names, full.shapes) if n in self.spec.names] != list(
                zip(self.spec.names, self.spec.shapes)):
            raise ConfigMismatchError(f"{run.file.path} is a run of another model; directions between runs need "
                                      "the same architecture")
        return self.spec.flatten(full.unflatten(run.theta(step)))

    def build(self, token: str, axis: int, step: int, obj) -> torch.Tensor:
        head, _, arg = token.partition(":")
        theta = obj.theta
        if head in ("filter", "random", "gaussian", "adaptive"):
            kind = "filter" if head == "random" else head
            return D.random_directions(kind, theta, self.spec, 1, seed=self.args.seed, offset=axis,
                                       eta=self.args.eta, ignore_biasbn=not self.args.keep_biasbn)[0]
        if head == "gradient":
            return D.gradient_direction(obj.grad(theta))[0]
        if head == "eigen":
            j = _index(arg, token)
            _, V, _ = read_eigen(self.eigen_source, step, j, self.spec.names, self.inp.run.file.param_sha256(step))
            return D.unit_rows(torch.as_tensor(V[j - 1]).to(theta))[0]
        if head == "step":
            return D.difference(theta, self.theta_of(self.inp.run, int(_index(arg, token, 0))).to(theta))[0]
        if head == "run":
            return self._other_run(arg, theta)
        return self._pca(_index(arg, token), theta)

    def _other_run(self, arg: str, theta: torch.Tensor) -> torch.Tensor:
        from checkpoints.replay import open_run

        path, _, s = arg.partition("@")
        with open_run(path, device=self.inp.device) as other:
            step = int(s) if s else int(other.saved_steps[-1])
            return D.difference(theta, self.theta_of(other, step).to(theta))[0]

    def trajectory(self, theta: torch.Tensor) -> tuple[np.ndarray, list[torch.Tensor]]:
        steps = np.asarray(self.inp.run.saved_steps)
        return steps, [self.theta_of(self.inp.run, int(s)).to(theta) for s in steps]

    def _pca(self, j: int, theta: torch.Tensor) -> torch.Tensor:
        _, thetas = self.trajectory(theta)
        comps, _ = D.trajectory_pca(torch.stack(thetas), j, origin=theta)
        return comps[j - 1]


def _index(arg: str, token: str, lowest: int = 1) -> int:
    try:
        j = int(arg)
    except ValueError:
        j = lowest - 1
    if j < lowest:
        raise InputError(f"--directions {token!r}: the number must be an integer ≥ {lowest}")
    return j


class SurfaceWork(StepObjectives):
    """Computes one surface item, row block by row block."""

    def __init__(self, inp, args, results, eigen_source, tokens, axes):
        super().__init__(inp, args)
        self.results, self.tokens, self.axes = results, tokens, axes
        self.eigen_source = eigen_source

    def compute(self, step: int, key: str, settings: dict) -> Record:
        obj, _ = self.at(step)
        builder = DirectionBuilder(self.inp, self.args, obj.spec, self.eigen_source)
        Dm = torch.stack([builder.build(t, i, step, obj) for i, t in enumerate(self.tokens)])
        xs, ys = self.axes[0], (self.axes[1] if len(self.axes) == 2 else None)
        self._fill(step, key, obj, Dm, xs, ys, settings)
        arrays = {"xs": xs, "direction_norms": Dm.double().norm(dim=1).cpu().numpy(),
                  "center_loss": float(obj.loss(obj.theta))}
        if ys is not None:
            arrays["ys"] = ys
            if not self.args.no_trajectory:
                steps, thetas = builder.trajectory(obj.theta)
                coords, dist = SU.project_trajectory(thetas, obj.theta, Dm)
                arrays.update(trajectory_steps=steps, trajectory_coords=coords, trajectory_distance=dist)
        attrs = self.attrs(step, settings)
        attrs.update(x_label=self.tokens[0], y_label=self.tokens[-1] if ys is not None else "")
        return Record(arrays, attrs)

    def _fill(self, step, key, obj, Dm, xs, ys, settings) -> None:
        rows, G = SU.grid_shape(xs, ys)
        block = max(1, self.args.block_rows)
        finger = {"param_sha256": self.inp.run.file.param_sha256(step), **settings}
        for name in ("loss", "acc"):
            self.results.create_block_dataset(key, name, (rows, G), np.float64, block, attrs=finger)
        todo = np.flatnonzero(~self.results.blocks_done(key, "loss") | ~self.results.blocks_done(key, "acc"))
        remaining = sum(min(block, rows - b * block) for b in todo) * G
        SU.check_budget(remaining, SU.estimate_seconds(obj, obj.theta), self.args.max_minutes, (rows, G))
        with progress(remaining, f"step {step} surface", unit="pt") as bar:
            for b in todo:
                start, stop = int(b) * block, min(rows, (int(b) + 1) * block)
                loss, acc = SU.evaluate_rows(obj, obj.theta, Dm, xs, ys, start=start, stop=stop,
                                             points_per_call=self.args.points_per_call)
                self.results.write_block(key, "loss", start, loss)
                self.results.write_block(key, "acc", start, acc)
                bar.update(loss.size)


def run(args) -> int:
    tokens = parse_tokens(args.directions)
    axes = parse_axes(args.grid, args.span, len(tokens))
    name = args.name or default_name(tokens)
    from landscape.io import ResultsFile

    with open_inputs(args) as inp, open_results(args.out, inp) as results:
        same = args.eigen is None or args.eigen == args.out
        source = results if same else ResultsFile(args.eigen, "r")
        try:
            settings = {**common_settings(args), "directions": tokens, "axes": [a.tolist() for a in axes],
                        "seed": args.seed, "keep_biasbn": args.keep_biasbn, "eta": args.eta}
            keys = {step_key(NAME, s, name): s for s in inp.steps}
            check_settings(results, {key: settings for key in keys})
            work = SurfaceWork(inp, args, results, source, tokens, axes)
            items = [Item(key, partial(work.compute, s, key, settings), label=key) for key, s in keys.items()]
            summary = run_items(results, items, config=vars_config(args), source=inp.source, device=inp.device)
        finally:
            if not same:
                source.close()
    print(f"{len(summary.computed)} item(s) computed, {len(summary.skipped)} already complete; results in {args.out}")
    return 0
