"""Job arrays over checkpoint steps with submitit: Slurm, a dry run, or this machine.

One array task per chunk of consecutive steps runs ``landscape hessian`` for
those steps into **its own results file** ``RESULTS.partN.h5``; a final merge
(:func:`analyses.driver.jobs.merge.merge_results`, ``landscape jobs merge``) copies the
complete items into ``RESULTS.h5``. HDF5 allows one writer per file, so tasks
never share one: no locks to hold across preemptions, no retries, and a killed
task leaves only its own part file to resume. Consecutive steps in one task keep
the eigensolver's warm start (each step starts from the previous step's
eigenvectors in the same part file).

What submitit pickles for each task is a function reference and a list of
strings (the ``landscape`` argument vector): file paths, never tensors or models.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from landscape.errors import InputError, LandscapeError

EXECUTORS = ("slurm", "local", "dry-run")


@dataclass(frozen=True)
class SlurmOptions:
    """Resources of each array task (Slurm names in comments)."""

    partition: str | None = None     # --partition
    time_min: int = 240              # --time, minutes per array task
    gpus_per_node: int = 0           # --gpus-per-node
    cpus_per_task: int = 4           # --cpus-per-task
    mem_gb: float = 16.0             # --mem, GB per task
    array_parallelism: int = 64      # the %N of --array: tasks running at once
    nproc_per_node: int = 1          # torchrun processes per task (data-parallel HVPs)
    account: str | None = None       # --account
    qos: str | None = None           # --qos
    setup: tuple[str, ...] = ()      # shell lines before the task (module load, activate venv)
    job_name: str = "landscape-hessian"


@dataclass(frozen=True)
class TaskPlan:
    """One array task: its steps, its own results file and the ``landscape`` argv it runs."""

    index: int
    steps: tuple[int, ...]
    out: str
    argv: tuple[str, ...]

    def command_line(self, nproc_per_node: int = 1) -> str:
        """The shell command equivalent to what the task runs."""
        return shlex.join(_task_command(list(self.argv), nproc_per_node))


@dataclass(frozen=True)
class Submission:
    """What :func:`submit` did: the plans, job ids, and the scripts of a dry run."""

    plans: list[TaskPlan]
    job_ids: list[str] = field(default_factory=list)
    merge_job_id: str | None = None
    scripts: dict[str, str] = field(default_factory=dict)


def part_path(out: str | Path, index: int) -> Path:
    """``RESULTS.h5`` → ``RESULTS.part{index}.h5`` beside it."""
    out = Path(out)
    return out.with_name(f"{out.stem}.part{index}{out.suffix or '.h5'}")


def chunk_steps(steps: Sequence[int], steps_per_task: int) -> list[list[int]]:
    """Consecutive chunks of ``steps_per_task`` steps (the last may be shorter)."""
    if steps_per_task < 1:
        raise InputError(f"--steps-per-task must be ≥ 1, got {steps_per_task}")
    steps = list(steps)
    return [steps[i:i + steps_per_task] for i in range(0, len(steps), steps_per_task)]


def plan_tasks(hessian_argv: Sequence[str], steps: Sequence[int], out: str | Path,
               steps_per_task: int = 1, *, command: Sequence[str] = ("hessian",),
               unit_option: str = "--steps") -> list[TaskPlan]:
    """One :class:`TaskPlan` per chunk of steps (or of other units of work).

    Args:
        hessian_argv: the ``landscape hessian`` arguments (run file first); ``--steps``
            and ``--out`` are appended per task, and argparse keeps the last value given.
        steps: the steps still to compute, ascending (for ``hyper scan``: grid indices).
        out: the merged results file; task ``i`` writes :func:`part_path` ``(out, i)``.
        steps_per_task: consecutive steps per array task (> 1 keeps the warm start).
        command: the ``landscape`` subcommand the tasks run (``("hyper", "scan")``).
        unit_option: the option that selects a task's chunk (``--points`` for ``hyper scan``).
    """
    plans = []
    for i, chunk in enumerate(chunk_steps(steps, steps_per_task)):
        part = str(part_path(out, i))
        argv = (*command, *hessian_argv, unit_option, ",".join(map(str, chunk)), "--out", part)
        plans.append(TaskPlan(i, tuple(chunk), part, argv))
    return plans


def _task_command(argv: list[str], nproc_per_node: int) -> list[str]:
    if nproc_per_node > 1:
        return [sys.executable, "-m", "torch.distributed.run", "--standalone",
                f"--nproc-per-node={nproc_per_node}", "-m", "landscape", *argv]
    return [sys.executable, "-m", "landscape", *argv]


def run_task(argv: list[str], nproc_per_node: int = 1) -> int:
    """Body of one array task: run ``python -m landscape ARGV`` (under torchrun when asked).

    The command line runs in its own process, exactly as a user would start it, so the
    task's log holds what the user would see and the driver never reaches up into the CLI.

    Raises:
        RuntimeError: the command failed (submitit then marks the task failed and
            keeps its log); the part file keeps every item finished before.
    """
    rc = subprocess.run(_task_command(argv, nproc_per_node), check=False).returncode
    if rc != 0:
        raise RuntimeError(f"`landscape {shlex.join(argv)}` exited with status {rc}")
    return rc


def run_merge(out: str, parts: list[str], finalize: list[str] | None = None) -> int:
    """Body of the merge job: copy complete items of ``parts`` into ``out``, then run ``landscape
    FINALIZE`` if given (e.g. ``hyper scan --summary-only``: the summary across all grid points)."""
    from analyses.driver.jobs.merge import merge_results
    merge_results(out, parts)
    if finalize:
        run_task(list(finalize))
    return 0


def slurm_parameters(opts: SlurmOptions) -> dict:
    """submitit ``update_parameters`` keywords for :class:`SlurmOptions`."""
    params = dict(job_name=opts.job_name, time=opts.time_min, cpus_per_task=opts.cpus_per_task,
                  mem=f"{int(opts.mem_gb * 1024)}MB", array_parallelism=opts.array_parallelism,
                  ntasks_per_node=1)
    optional = dict(partition=opts.partition, account=opts.account, qos=opts.qos,
                    gpus_per_node=opts.gpus_per_node or None, setup=list(opts.setup) or None)
    params.update({k: v for k, v in optional.items() if v is not None})
    return params


def _submitit():
    try:
        import submitit
    except ImportError:
        raise InputError("landscape jobs needs submitit; install it with "
                         "`pip install 'landscape[jobs]'` (or `pip install submitit`)") from None
    return submitit


def _dry_run_executor_class():
    submitit = _submitit()

    class DryRunSlurmExecutor(submitit.SlurmExecutor):
        """A SlurmExecutor that renders sbatch scripts without needing ``srun`` or ``sbatch``."""

        @classmethod
        def affinity(cls) -> int:
            return 2

    return DryRunSlurmExecutor


def make_executor(kind: str, folder: str | Path, opts: SlurmOptions):
    """A submitit executor: ``"slurm"`` (sbatch), ``"local"`` (processes here) or ``"dry-run"``."""
    if kind not in EXECUTORS:
        raise InputError(f"--executor {kind!r}: choose one of {', '.join(EXECUTORS)}")
    submitit = _submitit()
    if kind == "local":
        executor = submitit.LocalExecutor(folder=str(folder))
        executor.update_parameters(timeout_min=opts.time_min, gpus_per_node=opts.gpus_per_node)
        return executor
    cls = _dry_run_executor_class() if kind == "dry-run" else submitit.SlurmExecutor
    try:
        executor = cls(folder=str(folder))
    except RuntimeError as err:  # no srun: not on a Slurm cluster
        raise InputError(f"cannot submit to Slurm here ({err}); use --dry-run to see the scripts "
                         "or --executor local to run the array on this machine") from None
    executor.update_parameters(**slurm_parameters(opts))
    return executor


def merge_parameters(opts: SlurmOptions, array_job_id: str) -> dict:
    """Parameters of the merge job: one CPU, no GPU, after the whole array has ended."""
    params = {k: v for k, v in slurm_parameters(opts).items()
              if k not in ("gpus_per_node", "array_parallelism")}
    params.update(dependency=f"afterany:{array_job_id}", job_name=f"{opts.job_name}-merge",
                  cpus_per_task=1)
    return params


def sbatch_script(executor, num_tasks: int | None) -> str:
    """The sbatch file submitit writes for an array of ``num_tasks`` (None: a single job)."""
    clone = type(executor)(folder=executor.folder)
    clone.update_parameters(**executor.parameters)
    if num_tasks is not None:
        clone.parameters["map_count"] = num_tasks   # what submitit sets for map_array
    return clone._make_submission_file_text(clone._submitit_command_str, "dry-run")


def dry_run(plans: list[TaskPlan], folder: str | Path, opts: SlurmOptions) -> Submission:
    """Render the array's sbatch script and the merge job's; submit nothing, write nothing."""
    array = make_executor("dry-run", folder, opts)
    merge = _dry_run_executor_class()(folder=str(folder))
    merge.update_parameters(**merge_parameters(opts, "<ARRAY_JOB_ID>"))
    return Submission(plans, scripts={"array": sbatch_script(array, len(plans)),
                                      "merge": sbatch_script(merge, None)})


def submit(plans: list[TaskPlan], executor, out: str, opts: SlurmOptions, *,
           wait: bool = False, finalize: list[str] | None = None) -> Submission:
    """Submit the array (and, on Slurm, a merge job that runs after it).

    With ``wait`` (the local executor), block until every task ends and merge
    here; a failed task raises after the others' items are merged. ``finalize``:
    a ``landscape`` argv the merge runs after merging (see :func:`run_merge`).
    """
    argvs = [list(p.argv) for p in plans]
    jobs = executor.map_array(run_task, argvs, [opts.nproc_per_node] * len(plans))
    ids = [str(j.job_id) for j in jobs]
    parts = [p.out for p in plans]
    if wait:
        failures = _wait(jobs)
        run_merge(out, parts, None if failures else finalize)
        if failures:
            raise LandscapeError(f"{len(failures)} of {len(jobs)} task(s) failed ({'; '.join(failures)}); "
                                 "their finished items were merged; rerun the same command to finish")
        return Submission(plans, ids)
    merger = make_executor("slurm", executor.folder, opts)
    merger.update_parameters(**merge_parameters(opts, ids[0].split("_")[0]))
    merge_job = merger.submit(run_merge, out, parts, finalize) if finalize else merger.submit(run_merge, out, parts)
    return Submission(plans, ids, str(merge_job.job_id))


def _wait(jobs) -> list[str]:
    failures = []
    for job in jobs:
        try:
            job.result()
        except Exception as err:  # submitit re-raises the task's error with its traceback and log paths
            failures.append(f"job {job.job_id}: {_reason(err)}")
    return failures


def _reason(err: Exception) -> str:
    """The task's own error line and its stderr log, out of submitit's long failure message."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    cause = next((line for line in reversed(lines) if "Error:" in line), lines[0] if lines else repr(err))
    log = next((line.lstrip("- ") for line in lines if line.endswith("_log.err")), "")
    return cause[:300] + (f" (log: {log})" if log else "")
