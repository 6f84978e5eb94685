"""``landscape hessian RUN.h5 --steps SPEC --out RESULTS.h5``: Hessian quantities over checkpoints.

One results item per (step, quantity) — ``hessian/step_00000100/eigen``, ``…/density``,
``…/trace``, ``…/dense`` — written through :func:`analyses.driver.runner.run_items`, so a
killed job rerun with the same command skips finished items and loses at most the
one in progress (a dense Hessian resumes from its last finished block of rows).

Under ``torchrun --nproc-per-node G -m landscape hessian ...`` each process holds a
contiguous shard of the examples, HVPs are all-reduced (:mod:`analyses.driver.distributed`),
and rank 0 alone writes the results file.
"""

from __future__ import annotations

import argparse
from functools import partial


from analyses.cli.args import (add_device_args, add_objective_args, add_progress_args, add_recompute_arg,
                               add_run_args, report)
from analyses.driver.distributed import RankResults, init_from_env, shutdown
from analyses.driver.eigen import warm_starts
from analyses.driver.inputs import ObjectiveOptions, check_device, open_results, open_run_inputs
from analyses.driver.progress import progress
from analyses.driver.runner import Item, run_items
from analyses.driver.settings import check_settings
from analyses.hessian import HessianJobConfig, HessianWork, check_config
from landscape.errors import InputError

NAME = "hessian"
HELP = "eigenpairs, spectral density, trace and dense Hessian at saved steps of a run (resumable)"

WHICH = ("LA", "SA", "LM", "BE")
TRACE_METHODS = ("hutch++", "hutchinson")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_run_args(p, steps="last")
    add_objective_args(p)
    add_device_args(p)
    e = p.add_argument_group("eigenpairs (stored: eigenvalues, eigenvectors k × P, residuals, HVP counts)")
    e.add_argument("--k", type=int, default=10, help="eigenpairs per step (0: none); default 10")
    e.add_argument("--which", type=str.upper, choices=WHICH, default="LA",
                   help="largest/smallest algebraic, largest magnitude, both ends; default LA")
    e.add_argument("--tol", type=float, default=1e-4, help="residual ‖Hv−λv‖ / ‖H‖ to reach; default 1e-4")
    e.add_argument("--max-matvecs", type=int, default=None, metavar="N", help="HVP budget per eigensolve")
    e.add_argument("--no-warm-start", action="store_true",
                   help="start each eigensolve at random, not from the previous step's eigenvectors")
    q = p.add_argument_group("density, trace, dense Hessian")
    q.add_argument("--density", nargs="*", type=int, default=None, metavar="N",
                   help="SLQ spectral density: --density [PROBES [ITERS]] (default 10 100)")
    q.add_argument("--trace", nargs="*", default=None, metavar="ARG",
                   help="trace estimate: --trace [MATVECS [METHOD]] (default 300 hutch++; or hutchinson)")
    q.add_argument("--dense", action="store_true", help="the full dense Hessian (P HVPs) and all its eigenvalues")
    q.add_argument("--dense-block", type=int, default=64, metavar="ROWS",
                   help="rows of H per stored block (the unit a killed job resumes from); default 64")
    q.add_argument("--dense-max-params", type=int, default=10_000, metavar="P",
                   help="refuse --dense above this many parameters; default 10000")
    p.add_argument("--seed", type=int, default=0, help="seed of the random starts and probes; default 0")
    add_recompute_arg(p)
    add_progress_args(p)


def _density(values: list[int] | None) -> dict:
    if values is None:
        return {"density": False}
    if len(values) > 2 or any(v < 1 for v in values):
        raise InputError(f"--density {' '.join(map(str, values))}: give up to two positive integers, "
                         "PROBES and ITERS (e.g. --density 10 100)")
    probes, iters = (list(values) + [10, 100][len(values):])
    return {"density": True, "density_probes": probes, "density_iters": iters}


def _trace(values: list[str] | None) -> dict:
    if values is None:
        return {"trace": False}
    if len(values) > 2 or (values and not values[0].isdigit()) or (len(values) == 2 and values[1] not in TRACE_METHODS):
        raise InputError(f"--trace {' '.join(values)}: give --trace [MATVECS [METHOD]] with a positive "
                         f"integer and a method in {', '.join(TRACE_METHODS)} (e.g. --trace 300 hutch++)")
    matvecs = int(values[0]) if values else 300
    if matvecs < 1:
        raise InputError("--trace MATVECS must be ≥ 1")
    return {"trace": True, "trace_matvecs": matvecs, "trace_method": values[1] if len(values) == 2 else "hutch++"}


def job_config(args) -> HessianJobConfig:
    """The :class:`HessianJobConfig` the arguments describe (validated)."""
    if args.k < 0 or args.tol <= 0 or args.tol >= 1 or args.dense_block < 1:
        raise InputError("--k must be ≥ 0, --tol in (0, 1), --dense-block ≥ 1")
    return HessianJobConfig(k=args.k, which=args.which, tol=args.tol, max_matvecs=args.max_matvecs,
                            warm_start=not args.no_warm_start, dense=args.dense, dense_block=args.dense_block,
                            dense_max_params=args.dense_max_params, seed=args.seed,
                            **_density(args.density), **_trace(args.trace))


def item_config(args, cfg: HessianJobConfig) -> dict:
    """The configuration stored with every item."""
    options = ObjectiveOptions.from_args(args)
    return {**cfg.as_dict(), **options.settings(), "batch_size": options.batch_size}


def run(args) -> int:
    """Compute the missing items; under torchrun, as one rank of the data-parallel group."""
    cfg = job_config(args)
    ctx = init_from_env(check_device(args.device))
    ok = False
    try:
        with open_run_inputs(args.run, args.steps, device=ctx.device, options=ObjectiveOptions.from_args(args),
                             ctx=ctx) as inp:
            rc = _run(args, cfg, inp)
        ok = True
        return rc
    finally:
        shutdown(ctx, ok=ok)


def _run(args, cfg: HessianJobConfig, inp) -> int:
    check_config(cfg, inp.spec.numel)
    ctx = inp.ctx
    results = open_results(args.out, inp) if ctx.is_writer else None
    try:
        if results is not None:
            asked = set() if not args.recompute else {k for s in inp.steps for k in cfg.keys(s)}
            check_settings(results, family_settings(results, cfg, inp, replaced=asked))
        bars = lambda total, desc, unit="HVP": progress(total, desc, enabled=ctx.is_writer, unit=unit)  # noqa: E731
        store = RankResults(ctx, results)
        work = HessianWork(inp, cfg, store, warm_starts(store), bars)
        items = [Item(key, partial(work.compute, step, q), label=key)
                 for step in inp.steps for q, key in zip(cfg.quantities(), cfg.keys(step))]
        log = print if ctx.is_writer else (lambda _msg: None)
        summary = run_items(work.store, items, config=item_config(args, cfg), source=inp.source, device=ctx.device,
                            log=log, recompute=args.recompute)
    finally:
        if results is not None:
            results.close()
    if ctx.is_writer:
        report(summary, args.out)
    return 0


def family_settings(results, cfg: HessianJobConfig, inp, *, replaced=frozenset()) -> dict:
    """Per quantity, the first stored item of that quantity (any step) → the settings asked now.

    Hessian items of one quantity are compared across steps (a density at step 100 and one
    at step 200 must use the same probes to be comparable), so one stored item per quantity
    stands for all; items about to be ``replaced`` (``--recompute``) do not count. Dense blocks
    carry their own fingerprint.
    """
    wanted = {}
    for q in cfg.quantities():
        stored = [key for _, key in results.items("hessian", q) if key not in replaced]
        if stored and q != "dense":
            wanted[stored[0]] = {**inp.options.settings(), **cfg.settings(q)}
    return wanted


# Job arrays (``landscape jobs submit RUN.h5 ...``): one task per chunk of steps.
JOB_ARRAY = {"command": ("hessian",), "unit_option": "--steps", "unit": "step", "job_name": "landscape-hessian"}


def job_args(argv: list[str]):
    """``(argv, args)``: the hessian arguments parsed, the run file made absolute (tasks start elsewhere)."""
    import os

    parser = argparse.ArgumentParser(prog="landscape jobs submit ... (hessian arguments)")
    add_arguments(parser)
    args = parser.parse_args(argv)
    argv = list(argv)
    argv[argv.index(args.run)] = os.path.abspath(args.run)
    return argv, args


def job_finalize(argv, args, out):
    """Nothing to do after merging the parts."""
    return None


def pending_units(args) -> list[int]:
    return pending_steps(args)


def pending_steps(args) -> list[int]:
    """The chosen steps whose items are not all complete in ``--out`` yet (for job arrays)."""
    import os

    from analyses.driver.steps import parse_steps
    from landscape.io import ResultsFile, RunFile

    cfg = job_config(args)
    with RunFile(args.run) as run:
        steps, run_id = parse_steps(args.steps, run.saved_steps), {"path": run.path, "run_sha256": run.file_sha256}
    if not os.path.exists(args.out):
        return steps
    with ResultsFile(args.out, "r", run_id=run_id) as results:
        return [s for s in steps if not all(results.is_complete(k) for k in cfg.keys(s))]
