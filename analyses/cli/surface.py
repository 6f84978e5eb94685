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
import contextlib
import re
from functools import partial

import numpy as np

from analyses import surface as SU
from analyses.cli.args import (add_device_args, add_objective_args, add_progress_args, add_recompute_arg,
                               add_run_args, command_config, report)
from analyses.driver.eigen import open_eigen_and_out, read_eigen
from analyses.driver.inputs import ObjectiveOptions, open_results, open_run_inputs
from analyses.driver.progress import progress
from analyses.driver.runner import Item, run_items
from analyses.driver.settings import check_settings
from landscape.errors import InputError
from landscape.io import step_key

NAME = "surface"
HELP = "1-D/2-D loss and accuracy surfaces along chosen directions, with the projected trajectory (resumable)"


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
    add_recompute_arg(p)
    add_progress_args(p)


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


def _results(args, inp, tokens):
    """``(eigen source or None, out)``: the eigen file is opened only when a direction needs it."""
    if any(t.startswith("eigen:") for t in tokens):
        return open_eigen_and_out(args.eigen, args.out, inp.run_id)
    return contextlib.nullcontext((None, open_results(args.out, inp)))


def run(args) -> int:
    from checkpoints.replay import open_run

    tokens = SU.parse_tokens(args.directions)
    axes = parse_axes(args.grid, args.span, len(tokens))
    name = args.name or default_name(tokens)
    options = ObjectiveOptions.from_args(args)
    with open_run_inputs(args.run, args.steps, device=args.device, options=options) as inp:
        eig_and_out = _results(args, inp, tokens)
        with eig_and_out as (eig_file, results), contextlib.closing(results):
            settings = {**options.settings(), "directions": tokens, "axes": [a.tolist() for a in axes],
                        "seed": args.seed, "keep_biasbn": args.keep_biasbn, "eta": args.eta}
            keys = {step_key(NAME, s, name): s for s in inp.steps}
            if not args.recompute:
                check_settings(results, {key: settings for key in keys})
            spec = inp.spec
            builder = SU.DirectionBuilder(
                inp.run, spec, lambda step: read_eigen(eig_file, step, param_sha256=inp.param_sha256(step),
                                                       names=spec.names),
                lambda path: open_run(path, device=inp.device), seed=args.seed, eta=args.eta,
                keep_biasbn=args.keep_biasbn)
            work = SU.SurfaceWork(inp, results, builder, tokens, axes, block_rows=args.block_rows,
                                  points_per_call=args.points_per_call, max_minutes=args.max_minutes,
                                  trajectory=not args.no_trajectory,
                                  progress=lambda total, desc: progress(total, desc, unit="pt"))
            items = [Item(key, partial(work.compute, s, key, settings), label=key) for key, s in keys.items()]
            summary = run_items(results, items, config=command_config(args), source=inp.source, device=inp.device,
                                recompute=args.recompute)
    report(summary, args.out)
    return 0
