"""Argument groups and parsers that several commands share (not a command itself).

A command that analyses saved checkpoints typically does::

    def add_arguments(p):
        add_run_args(p)            # RUN.h5, --steps, --out
        add_objective_args(p)      # --subset, --bn, --params, --batch-size
        add_device_args(p)         # --device, --dtype

    def run(args):
        cfg = SomeConfig(...)                                   # arguments → config
        with open_run_inputs(args.run, args.steps, device=args.device,
                             options=ObjectiveOptions.from_args(args)) as inp:
            ...                                                 # → the driver
"""

from __future__ import annotations

import argparse
import contextlib

from analyses.driver.inputs import BN_MODES, DTYPES, default_device
from landscape.errors import InputError


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
    p.add_argument("--subset", type=subset_size, default=None, metavar="N",
                   help="use N training examples (the run's fixed seeded subset) or 'all'; default: all "
                        "(analyses of stored eigenpairs: the eigenpairs' own subset)")
    p.add_argument("--bn", choices=BN_MODES, default="eval",
                   help="BatchNorm statistics: running (eval, a fixed function of θ) or per batch (train)")
    p.add_argument("--params", default=None, metavar="PATTERN",
                   help="comma-separated glob patterns on parameter names (e.g. 'fc.*'): the Hessian "
                        "of those parameters only (a per-layer Hessian); default: all")
    p.add_argument("--batch-size", type=int, default=1024, metavar="B",
                   help="examples per forward pass (results do not depend on it); default 1024")


def subset_size(text: str):
    """``--subset``: a positive number of examples, or ``all``."""
    if text.strip().lower() == "all":
        return "all"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of examples or 'all', got {text!r}") from None


def add_device_args(p: argparse.ArgumentParser) -> None:
    """``--device`` (default cuda if available) and ``--dtype``."""
    p.add_argument("--device", default=default_device(),
                   help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="float32",
                   help="dtype of the model and the products (Lanczos itself runs in float64)")


def add_progress_args(p: argparse.ArgumentParser) -> None:
    """``--progress`` / ``--no-progress`` (default: bars only when stderr is a terminal)."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("--progress", dest="progress", action="store_const", const=True, default=None,
                   help="show progress bars even when stderr is not a terminal (default: only on a terminal)")
    g.add_argument("--no-progress", dest="progress", action="store_const", const=False,
                   help="no progress bars")


def add_threads_arg(p: argparse.ArgumentParser) -> None:
    """``--threads N`` (default 1) for studies of tiny tensors, where extra threads only contend."""
    p.add_argument("--threads", type=positive_int, default=1,
                   help="torch threads (default 1: the tensors are tiny and extra threads only contend)")


def positive_int(text: str) -> int:
    """argparse type: an integer ≥ 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer ≥ 1, got {text!r}")
    return value


@contextlib.contextmanager
def torch_threads(n: int):
    """Run the block with ``torch.set_num_threads(n)``, restoring the previous count after."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def add_recompute_arg(p: argparse.ArgumentParser) -> None:
    """``--recompute``: replace stored items instead of skipping them (or refusing other settings)."""
    p.add_argument("--recompute", action="store_true",
                   help="recompute the asked items even if the results file holds them (replacing them, "
                        "also when they were computed with other options); default: skip finished items")


def floats(text: str) -> tuple[float, ...]:
    """``"0.01,0.05"`` → ``(0.01, 0.05)``; InputError naming the bad entry."""
    try:
        return tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise InputError(f"cannot read {text!r} as comma-separated numbers (e.g. 0.01,0.05,0.1)") from None


def names(text: str, allowed: tuple[str, ...], option: str) -> list[str]:
    """Comma-separated choices; ``none`` or empty → []."""
    chosen = [t.strip() for t in text.split(",") if t.strip() and t.strip() != "none"]
    bad = [c for c in chosen if c not in allowed]
    if bad:
        raise InputError(f"{option}: unknown {', '.join(bad)}; choose from {', '.join(allowed)} (or none)")
    return chosen


def json_object(text: str) -> dict:
    """``--model-kwargs '{"width": 64}'`` → a dict (argparse type)."""
    import json

    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not valid JSON ({err.msg}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object like '{{\"width\": 64}}', got {text!r}")
    return value


def command_config(args) -> dict:
    """The command line as a JSON-able dict (stored with every item as its ``config``)."""
    return {k: v for k, v in vars(args).items() if not k.startswith("_") and k != "command"}


def report(summary, out: str) -> None:
    """The closing line of a command that ran items."""
    print(f"{len(summary.computed)} item(s) computed, {len(summary.skipped)} already complete; results in {out}")
