"""Helpers shared by the analysis commands: arguments, inputs, objectives, progress.

A command that analyses saved checkpoints typically does::

    def add_arguments(p):
        add_run_args(p)            # RUN.h5, --steps, --out
        add_objective_args(p)      # --subset, --bn, --params, --batch-size
        add_device_args(p)         # --device, --dtype

    def run(args):
        with open_inputs(args) as inp:                      # the run, the chosen steps
            with open_results(args.out, inp.run) as results:
                obj = objective_at(inp, step, args)          # θ_step, data, BN mode, dtype
                ...

Errors are :mod:`landscape.errors` exceptions naming the problem and the fix; the
CLI prints them as one line.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from analyses.steps import parse_steps
from landscape.errors import InputError

DTYPES = {"float32": torch.float32, "float64": torch.float64}
BN_MODES = ("eval", "train")


def default_device() -> str:
    """``"cuda"`` when a GPU is visible, else ``"cpu"``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def add_run_args(p: argparse.ArgumentParser, *, steps: str = "last", out: bool = True) -> None:
    """``RUN.h5``, ``--steps SPEC`` and (optionally) ``--out RESULTS.h5``."""
    p.add_argument("run", metavar="RUN.h5", help="the run file written by `landscape train`")
    p.add_argument("--steps", default=steps, metavar="SPEC",
                   help="saved steps: a list (0,100), ranges (100:2000), 'all', 'last', 'first' or "
                        f"every n-th saved step (every:5); default {steps!r}")
    if out:
        p.add_argument("--out", required=True, metavar="RESULTS.h5",
                       help="results file (created, or extended: finished items are skipped)")


def add_objective_args(p: argparse.ArgumentParser) -> None:
    """``--subset``, ``--bn``, ``--params``, ``--batch-size``: which loss the Hessian is of."""
    p.add_argument("--subset", type=int, default=None, metavar="N",
                   help="use N training examples (the run's fixed seeded subset; default: all)")
    p.add_argument("--bn", choices=BN_MODES, default="eval",
                   help="BatchNorm statistics: running (eval, a fixed function of θ) or per batch (train)")
    p.add_argument("--params", default=None, metavar="PATTERN",
                   help="comma-separated glob patterns on parameter names (e.g. 'fc.*'): the Hessian "
                        "of those parameters only (a per-layer Hessian); default: all")
    p.add_argument("--batch-size", type=int, default=1024, metavar="B",
                   help="examples per forward pass (results do not depend on it); default 1024")


def add_device_args(p: argparse.ArgumentParser) -> None:
    """``--device`` (default cuda if available) and ``--dtype``."""
    p.add_argument("--device", default=default_device(),
                   help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="float32",
                   help="dtype of the model and the products (Lanczos itself runs in float64)")


def torch_dtype(name: str) -> torch.dtype:
    """``"float32"`` → ``torch.float32``."""
    if name not in DTYPES:
        raise InputError(f"--dtype {name!r}: choose one of {', '.join(sorted(DTYPES))}")
    return DTYPES[name]


def param_patterns(spec: str | None) -> list[str] | None:
    """``"fc.*,conv1.*"`` → ``["fc.*", "conv1.*"]``; None or empty → None (all parameters)."""
    if not spec:
        return None
    return [s.strip() for s in spec.split(",") if s.strip()] or None


def check_device(device: str) -> str:
    """Refuse a CUDA device on a machine without one (one clear line instead of a traceback)."""
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise InputError(f"--device {device!r} is not a torch device; use e.g. cpu, cuda, cuda:1") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {device}: no CUDA device is visible here; use --device cpu")
    return device


@dataclass
class Inputs:
    """An opened run (:class:`checkpoints.replay.Run`), the chosen steps and where to compute."""

    run: object
    steps: list[int]
    device: str
    dtype: torch.dtype

    @property
    def source(self) -> dict:
        """Provenance of the inputs: the run file and its identifying checksum."""
        return {"run": self.run.file.path, "run_sha256": self.run.file.file_sha256}


@contextlib.contextmanager
def open_inputs(args, *, device: str | None = None) -> Iterator[Inputs]:
    """Open ``args.run`` read-only and resolve ``args.steps`` against its saved steps.

    Raises:
        FileFormatError/CheckpointCorruptError: a missing, damaged or incomplete run file.
        InputError: a step that is not saved (the message lists those that are).
    """
    from checkpoints.replay import open_run

    device = check_device(device or args.device)
    with open_run(args.run, device=device) as run:
        steps = parse_steps(args.steps, run.saved_steps)
        yield Inputs(run, steps, device, torch_dtype(args.dtype))


def open_results(path: str, inputs: Inputs):
    """The results file ``path`` (mode ``"a"``), bound to the run (another run's file is refused)."""
    from landscape.io import ResultsFile

    return ResultsFile(path, "a", run_id={"path": inputs.run.file.path,
                                          "run_sha256": inputs.run.file.file_sha256})


def subset_indices(inputs: Inputs, subset: int | None) -> np.ndarray:
    """Indices of the training examples used: the run's fixed seeded subset of ``subset``, or all."""
    N = int(inputs.run.dataset.num_train)
    if subset is None:
        return np.arange(N, dtype=np.int64)
    if subset < 1 or subset > N:
        raise InputError(f"--subset {subset}: choose 1 ≤ N ≤ {N} (the run has {N} training examples)")
    return inputs.run.subset(subset).cpu().numpy().astype(np.int64)


def objective_at(inputs: Inputs, step: int, args, *, indices: np.ndarray,
                 all_reduce: Callable | None = None):
    """The :class:`landscape.Objective` at ``step`` over the training examples ``indices``.

    The model holds θ_step and the BN buffers at that step; ``--bn``, ``--params``,
    ``--batch-size`` and ``--dtype`` come from ``args``; ``all_reduce`` sums partial
    results across data-parallel processes (each holding its shard of ``indices``).
    """
    from landscape.objective import Objective

    run = inputs.run
    idx = torch.as_tensor(indices, dtype=torch.long, device=run.dataset.x_train.device)
    x, y = run.dataset.x_train[idx], run.stepper.y_train[idx]
    return Objective(run.model_at(step), x, y, loss=run.config.loss, bn=args.bn,
                     batch_size=args.batch_size, params=param_patterns(args.params),
                     all_reduce=all_reduce, dtype=inputs.dtype, device=inputs.device)


def progress(total: int | None, desc: str, *, enabled: bool = True, unit: str = "HVP"):
    """A tqdm bar on stderr (rate in ``unit``/s and ETA); a silent one when not ``enabled``."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=not enabled,
                dynamic_ncols=True, leave=False, mininterval=0.5)
