"""``landscape papyan RUN.h5 --steps SPEC --out RESULTS.h5``: the class structure of the Hessian (Papyan 2019, 2020).

For a C-class cross-entropy classifier, splits the Gauss–Newton part G of the Hessian into
class-mean, cross-class and within-class parts (and Papyan's G₀) and writes, per step,

* ``papyan/step_XXXXXXXX/spectra`` — top eigenvalues (certified) of H, G, H − G and every part, the exact
  spectra of the low-rank parts, the outlier count of H, the overlap of H's top eigenspace with the
  class-mean part's, and the per-class mean gradients' Gram matrix;
* ``papyan/step_XXXXXXXX/density`` — SLQ densities of H, G, H − G and the within-class part.

The loss is chosen as for ``landscape hessian`` (``--subset``, ``--bn``, ``--params``, ``--dtype``).
A rerun skips finished items. The work is :class:`analyses.papyan.PapyanWork`.
"""

from __future__ import annotations

import argparse
from functools import partial

from analyses.cli.args import (
    add_device_args,
    add_objective_args,
    add_progress_args,
    add_recompute_arg,
    add_run_args,
    command_config,
    report,
)
from analyses.driver.inputs import ObjectiveOptions, open_results, open_run_inputs
from analyses.driver.runner import Item, run_items
from analyses.driver.settings import check_settings, normal
from analyses.papyan import QUANTITIES, PapyanConfig, PapyanWork
from landscape.errors import InputError

NAME = "papyan"
HELP = "Papyan's decomposition of the Hessian of a C-class classifier: class-mean, cross-class, within-class parts"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_run_args(p, steps="last")
    add_objective_args(p)
    add_device_args(p)
    p.add_argument("--k", type=int, default=None, help="top eigenvalues per operator (default 2C)")
    p.add_argument("--tol", type=float, default=1e-3, help="eigsh residual relative to ‖A‖; default 1e-3")
    p.add_argument("--max-matvecs", type=int, default=None, help="eigsh budget per operator (default: eigsh's)")
    p.add_argument("--density", type=int, nargs=2, default=(5, 60), metavar=("PROBES", "ITERS"),
                   help="SLQ probes and Lanczos steps (PROBES 0: no density item); default 5 60")
    p.add_argument("--seed", type=int, default=0, help="seed of every Lanczos start and probe; default 0")
    add_recompute_arg(p)
    add_progress_args(p)


def check_classifier(run) -> int:
    """C of a run trained as a C-class cross-entropy classifier; InputError otherwise (before any work)."""
    C = int(run.dataset.num_classes)
    if run.config.loss != "cross_entropy" or C < 2:
        raise InputError(f"landscape papyan needs a C-class classifier trained with cross-entropy; {run.file.path} "
                         f"was trained with --loss {run.config.loss} on {run.config.dataset} "
                         f"({C or 'no'} classes): Papyan's decomposition is of the softmax Gauss-Newton matrix")
    return C


def run(args) -> int:
    cfg = PapyanConfig(k=args.k, tol=args.tol, max_matvecs=args.max_matvecs, density_probes=args.density[0],
                       density_iters=args.density[1], seed=args.seed)
    quantities = [q for q in QUANTITIES if q != "density" or cfg.density_probes > 0]
    options = ObjectiveOptions.from_args(args)
    with open_run_inputs(args.run, args.steps, device=args.device, options=options) as inp:
        C = check_classifier(inp.run)
        probe = inp.objective(inp.steps[0])
        _check_outputs(probe, C)
        with open_results(args.out, inp) as results:
            work = PapyanWork(inp, cfg, C)
            wanted = {work.key(s, q): (s, q) for s in inp.steps for q in quantities}
            settings = {key: normal({**options.settings(), **cfg.settings(q)}) for key, (_, q) in wanted.items()}
            if not args.recompute:
                check_settings(results, settings)
            items = [Item(key, partial(work.compute, s, q, settings[key]), label=key) for key, (s, q) in wanted.items()]
            summary = run_items(results, items, config=command_config(args), source=inp.source, device=inp.device,
                                recompute=args.recompute)
    report(summary, args.out)
    return 0


def _check_outputs(objective, C: int) -> None:
    """One forward pass: the model must output C logits per example (InputError naming the shape otherwise)."""
    from landscape.papyan import check_classifier as check

    check(objective, C)
