"""``landscape linesearch RUN.h5 --steps SPEC --out RESULTS.h5``: loss along Hessian eigenvectors.

Per step, items ``linesearch/step_XXXXXXXX/<quantity>``:

* ``curves`` — L and accuracy at θ ± t v_i on the t-grid, g·v_i, λ_i; with
  ``--minibatch-size`` also the minibatch curves (from the same forward passes) and the
  distribution of their minimum locations and curvatures;
* ``fits`` — small-t quadratic (curvature vs λ_i), quadratic and quartic fits, an optional
  ``--form`` expression, the relative distance from λt²/2 and where it exceeds ``--departure-tol``;
* ``zoom`` (``--zoom N``) — thousands of points around the first N curves' minima and their
  roughness across scales (float32, and float64 with ``--zoom-float64``);
* ``quadratic_check`` (``--random-directions N``) — random directions: truth vs the uᵀHu quadratic
  vs the sum of eigendirection line searches.

The eigenvectors come from ``--eigen`` (default: ``--out``), written by ``landscape hessian``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from dataclasses import asdict

from analyses.cli.args import (add_device_args, add_objective_args, add_progress_args, add_recompute_arg,
                               add_run_args, report)
from analyses.driver.eigen import check_eigen_steps, open_eigen_and_out, read_eigen
from analyses.driver.inputs import ObjectiveOptions, open_run_inputs
from analyses.driver.runner import run_items
from analyses.driver.settings import check_settings
from analyses.linesearch import ITEM_FIELDS, LineSearchConfig, LineSearchWork, parse_form, subset_mismatch

NAME = "linesearch"
HELP = "loss along Hessian eigenvectors: full-data and minibatch curves, fits, dense zoom, random-direction check"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_run_args(p, steps="last")
    p.add_argument("--eigen", default=None, metavar="RESULTS.h5",
                   help="results file with the eigenvectors (from `landscape hessian`); default: --out")
    add_objective_args(p)
    add_device_args(p)
    g = p.add_argument_group("directions and t-grid (θ + t v_i, ‖v_i‖ = 1)")
    g.add_argument("--directions", default="all", help="top:n, bottom:n, all, or stored row indices 0,3,7")
    g.add_argument("--t-max", type=float, default=1.0, help="largest |t|; default 1")
    g.add_argument("--num-t", type=int, default=41, help="grid points; default 41")
    g.add_argument("--spacing", choices=("linear", "log"), default="linear", help="grid spacing; default linear")
    g.add_argument("--t-min", type=float, default=1e-3, help="smallest |t| > 0 of a log grid; default 1e-3")
    g.add_argument("--chunk", type=int, default=32, help="parameter vectors per forward call; default 32")
    m = p.add_argument_group("minibatch curves (from the same forward passes)")
    m.add_argument("--minibatch-size", type=int, default=0, metavar="B", help="0: none (default)")
    m.add_argument("--num-minibatches", type=int, default=None, metavar="N", help="default: all N // B disjoint ones")
    m.add_argument("--seed", type=int, default=0, help="seed of the minibatch partition and random directions")
    f = p.add_argument_group("fits")
    f.add_argument("--fit-window", type=float, default=None, help="|t| range of the small-t quadratic; default t_max/4")
    f.add_argument("--form", default="", metavar="EXPR",
                   help="a form to fit, in t and named parameters, e.g. 'a + b*t**2 + c*abs(t)**p'")
    f.add_argument("--form-p0", default="", metavar="a=1,p=3", help="initial parameter values (default 1)")
    f.add_argument("--departure-tol", type=float, default=0.1, help="relative deviation from λt²/2 reported; default 0.1")
    z = p.add_argument_group("dense zoom around the minimum")
    z.add_argument("--zoom", type=int, default=0, metavar="N", help="zoom into the first N directions; default 0")
    z.add_argument("--zoom-points", type=int, default=2001, help="points per zoom; default 2001")
    z.add_argument("--zoom-width", type=float, default=None, help="half-width of the zoom; default 1e-3 t_max")
    z.add_argument("--zoom-float64", action="store_true", help="also evaluate the zoom in float64")
    q = p.add_argument_group("quadratic-independence check in random directions")
    q.add_argument("--random-directions", type=int, default=0, metavar="N", help="default 0 (none)")
    q.add_argument("--parting-rtol", type=float, default=0.1, help="relative error where predictions part")
    add_recompute_arg(p)
    add_progress_args(p)


def config_from_args(args) -> LineSearchConfig:
    names = {f.name for f in dataclasses.fields(LineSearchConfig)}
    cfg = LineSearchConfig(**{n: getattr(args, n) for n in names if hasattr(args, n)})
    cfg.check()
    return cfg


def run(args) -> int:
    cfg = config_from_args(args)
    form = parse_form(cfg.form, cfg.form_p0) if cfg.form else None
    with open_run_inputs(args.run, args.steps, device=args.device, options=ObjectiveOptions.from_args(args)) as inp, \
            open_eigen_and_out(args.eigen, args.out, inp.run_id) as (eig_file, out):
        check_eigen_steps(eig_file, inp.steps)
        load = lambda key: out.read_item(key)[0]  # noqa: E731
        eigens = [read_eigen(eig_file, s, param_sha256=inp.param_sha256(s)) for s in inp.steps]
        for warning in filter(None, (subset_mismatch(cfg.subset, e) for e in eigens)):
            print(f"landscape linesearch: warning: {warning}", file=sys.stderr)
        works = [LineSearchWork(inp, cfg, e, load, form) for e in eigens]
        if not args.recompute:
            check_settings(out, {w.key(q): w.settings(q) for w in works for q in ITEM_FIELDS})
        items = [item for w in works for item in w.items()]
        source = {**inp.source, "eigen": eig_file.path}
        summary = run_items(out, items, config=asdict(works[0].cfg), source=source, device=inp.device,
                            recompute=args.recompute)
    report(summary, args.out)
    return 0
