"""``landscape jobs submit|merge``: a job array over checkpoint steps (Slurm via submitit).

    landscape jobs submit [JOB OPTIONS] RUN.h5 --steps all --out RESULTS.h5 [HESSIAN OPTIONS]
    landscape jobs submit [JOB OPTIONS] hyper scan [RUN.h5] --out SCAN.h5 [SCAN OPTIONS]
    landscape jobs submit --dry-run ...          # print the sbatch scripts, submit nothing
    landscape jobs submit --executor local ...   # the same array, as processes on this machine
    landscape jobs merge RESULTS.h5 [PARTS...]   # copy RESULTS.partN.h5 items into RESULTS.h5

Everything after the job options is a ``landscape hessian`` command line (each array task
runs it for its chunk of steps into ``RESULTS.partN.h5``), or ``hyper scan ...`` (each task
computes a chunk of grid points, ``--steps-per-task`` points per task; after the merge, the
merge job writes the scan's summary). Steps or points whose items are all complete in
``RESULTS.h5`` are not submitted again.
"""

from __future__ import annotations

import argparse
import os
import shlex
from pathlib import Path

from analyses.cli import command
from analyses.driver.jobs import slurm
from analyses.driver.jobs.merge import merge_results
from landscape.errors import InputError

NAME = "jobs"
HELP = "submit `landscape hessian` (over steps) or `hyper scan` (over grid points) as a job array, or merge"


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="jobs_command", metavar="ACTION", required=True)
    s = sub.add_parser("submit", help="submit a job array over steps", description=__doc__, allow_abbrev=False,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("--executor", choices=("slurm", "local"), default="slurm",
                   help="slurm (sbatch) or local (processes here, waits, then merges); default slurm")
    s.add_argument("--dry-run", action="store_true", help="print the sbatch scripts and task commands only")
    s.add_argument("--folder", default=None, help="submitit logs and job files (default RESULTS.jobs/ beside --out)")
    s.add_argument("--steps-per-task", type=int, default=1, metavar="N",
                   help="consecutive steps per array task (>1 keeps the eigensolver's warm start); default 1")
    d = slurm.SlurmOptions()
    s.add_argument("--partition", default=d.partition)
    s.add_argument("--account", default=d.account)
    s.add_argument("--qos", default=d.qos)
    s.add_argument("--time-min", type=int, default=d.time_min, help=f"minutes per task; default {d.time_min}")
    s.add_argument("--gpus-per-node", type=int, default=d.gpus_per_node, help="GPUs per task; default 0")
    s.add_argument("--cpus-per-task", type=int, default=d.cpus_per_task)
    s.add_argument("--mem-gb", type=float, default=d.mem_gb)
    s.add_argument("--array-parallelism", type=int, default=d.array_parallelism, help="tasks running at once")
    s.add_argument("--nproc-per-node", type=int, default=d.nproc_per_node,
                   help="torchrun processes per task (data-parallel HVPs, e.g. one per GPU); default 1")
    s.add_argument("--setup", action="append", default=[], metavar="LINE",
                   help="shell line run before each task (repeatable), e.g. 'source .venv/bin/activate'")
    s.add_argument("hessian_args", nargs=argparse.REMAINDER, metavar="RUN.h5 ... | hyper scan ...",
                   help="the `landscape hessian` arguments, or `hyper scan` and its arguments")
    m = sub.add_parser("merge", help="merge RESULTS.partN.h5 files into RESULTS.h5")
    m.add_argument("out", metavar="RESULTS.h5")
    m.add_argument("parts", nargs="*", metavar="PART.h5", help="default: RESULTS.partN.h5 beside RESULTS.h5")
    m.add_argument("--remove-parts", action="store_true", help="delete parts whose items are all merged")


def run(args) -> int:
    if args.jobs_command == "merge":
        merge_results(args.out, args.parts or None, remove_parts=args.remove_parts)
        return 0
    return _submit(args)


def _target(rest: list[str]):
    """The command the array runs and its arguments: ``hyper scan ...``, or (by default) ``hessian``.

    A command runnable as a job array defines ``JOB_ARRAY`` (its words, the option selecting a
    task's units, the unit's name), ``job_args(argv) -> (argv, args)``, ``pending_units(args)`` and
    ``job_finalize(argv, args, out)`` (a ``landscape`` argv the merge job runs after merging, or None).
    """
    rest = rest[1:] if rest[:1] == ["--"] else rest
    if rest[:2] == ["hyper", "scan"]:
        return command("hyper"), rest[2:]
    if not rest:
        raise InputError("give the `landscape hessian` arguments after the job options, e.g. "
                         "landscape jobs submit --dry-run RUN.h5 --steps all --out RESULTS.h5 --k 10")
    return command("hessian"), rest


def _options(args) -> slurm.SlurmOptions:
    return slurm.SlurmOptions(partition=args.partition, time_min=args.time_min, gpus_per_node=args.gpus_per_node,
                              cpus_per_task=args.cpus_per_task, mem_gb=args.mem_gb,
                              array_parallelism=args.array_parallelism, nproc_per_node=args.nproc_per_node,
                              account=args.account, qos=args.qos, setup=tuple(args.setup))


def _submit(args) -> int:
    import dataclasses

    module, rest = _target(list(args.hessian_args))
    job = module.JOB_ARRAY
    argv, cargs = module.job_args(rest)
    units = module.pending_units(cargs)
    if not units:
        print(f"nothing to submit: every chosen {job['unit']} is complete in {cargs.out}")
        return 0
    out = os.path.abspath(cargs.out)
    finalize = module.job_finalize(argv, cargs, out)
    folder = args.folder or str(Path(out).with_suffix(".jobs"))
    opts = dataclasses.replace(_options(args), job_name=job["job_name"])
    plans = slurm.plan_tasks(argv, units, out, args.steps_per_task, command=job["command"],
                             unit_option=job["unit_option"])
    if args.dry_run:
        _print_dry_run(slurm.dry_run(plans, folder, opts), opts, job["unit"])
        if finalize:
            print("# ---- after merging, the merge job runs ----\n" + shlex.join(["landscape", *finalize]))
        return 0
    executor = slurm.make_executor(args.executor, folder, opts)
    done = slurm.submit(plans, executor, out, opts, wait=args.executor == "local", finalize=finalize)
    print(f"{len(plans)} task(s) over {len(units)} {job['unit']}(s): job(s) {', '.join(done.job_ids)}"
          + (f"; merge job {done.merge_job_id}" if done.merge_job_id else f"; merged into {out}"))
    return 0


def _print_dry_run(sub: slurm.Submission, opts: slurm.SlurmOptions, unit: str) -> None:
    print(f"# dry run: {len(sub.plans)} array task(s); nothing submitted\n")
    print("# ---- sbatch script of the job array ----")
    print(sub.scripts["array"])
    print("# ---- what each array task runs ($SLURM_ARRAY_TASK_ID → command) ----")
    for plan in sub.plans:
        print(f"# task {plan.index}: {unit}s {','.join(map(str, plan.steps))}")
        print(plan.command_line(opts.nproc_per_node))
    print("\n# ---- sbatch script of the merge job (runs after the array) ----")
    print(sub.scripts["merge"])
