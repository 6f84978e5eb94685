"""``landscape gradproj RUN.h5 --steps SPEC --out RESULTS.h5``: per-example gradients in the eigenbasis.

Needs the top eigenvectors of each chosen step, stored by ``landscape hessian`` as
``hessian/step_XXXXXXXX/eigen`` (in ``--eigen FILE``, default the ``--out`` file). Writes
``gradproj/step_XXXXXXXX/projections``: the N × k projections g_i·v_j (forward-mode JVPs,
never N × P), per-example gradient norms, |cos|, per-class means and the fraction of
the full gradient inside the top-k subspace (see :mod:`analyses.gradproj`).
"""

from __future__ import annotations

import argparse
from functools import partial

from analyses.cli.args import (add_device_args, add_objective_args, add_progress_args, add_recompute_arg,
                               add_run_args, command_config, report)
from analyses.driver.eigen import eigen_key, open_eigen_and_out, read_eigen
from analyses.driver.inputs import ObjectiveOptions, open_run_inputs
from analyses.driver.runner import Item, run_items
from analyses.driver.settings import check_settings
from analyses.gradproj import GradProjWork
from landscape.errors import InputError
from landscape.io import step_key

NAME = "gradproj"
HELP = "per-example gradient projections onto stored Hessian eigenvectors (|cos|, class means, top-k fraction)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_run_args(p, steps="last")
    add_objective_args(p)
    add_device_args(p)
    p.add_argument("--eigen", default=None, metavar="RESULTS.h5",
                   help="results file holding hessian/step_*/eigen (default: the --out file)")
    p.add_argument("--k", type=int, default=None, help="use the top k stored eigenvectors (default: all)")
    add_recompute_arg(p)
    add_progress_args(p)


def run(args) -> int:
    if args.k is not None and args.k < 1:
        raise InputError(f"--k {args.k}: use at least one eigenvector")
    options = ObjectiveOptions.from_args(args)
    with open_run_inputs(args.run, args.steps, device=args.device, options=options) as inp, \
            open_eigen_and_out(args.eigen, args.out, inp.run_id) as (eig_file, results):
        names = inp.spec.names

        def eigen_at(step):
            return read_eigen(eig_file, step, param_sha256=inp.param_sha256(step), names=names).top(args.k)

        for step in inp.steps:                                  # fail before any work
            eigen_at(step)
        work = GradProjWork(inp, eigen_at, lambda step: {"file": eig_file.path, "key": eigen_key(step)})
        settings = {**options.settings(), "k": args.k}
        keys = {step_key(NAME, s, "projections"): s for s in inp.steps}
        if not args.recompute:
            check_settings(results, {key: settings for key in keys})
        items = [Item(key, partial(work.compute, s, settings), label=key) for key, s in keys.items()]
        summary = run_items(results, items, config=command_config(args), source=inp.source, device=inp.device,
                            recompute=args.recompute)
    report(summary, args.out)
    return 0
