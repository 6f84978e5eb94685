"""``landscape hessian RUN.h5 --steps SPEC --out RESULTS.h5``: Hessian quantities over checkpoints.

One results item per (step, quantity) — ``hessian/step_00000100/eigen``, ``…/density``,
``…/trace``, ``…/dense`` — written through :func:`analyses.runner.run_items`, so a
killed job rerun with the same command skips finished items and loses at most the
one in progress (a dense Hessian resumes from its last finished block of rows).

Under ``torchrun --nproc-per-node G -m landscape hessian ...`` each process holds a
contiguous shard of the examples, HVPs are all-reduced (:mod:`analyses.distributed`),
and rank 0 alone writes the results file.
"""

from __future__ import annotations

import argparse
from functools import partial

import numpy as np

from analyses import hessian_job as hj
from analyses.commands._common import (add_device_args, add_objective_args, add_run_args, check_device,
                                       objective_at, open_inputs, open_results, param_patterns, progress,
                                       subset_indices)
from analyses.distributed import RankResults, all_reduce_sum, init_from_env, shard, shutdown
from analyses.hessian_job import HessianJobConfig, check_config, incompatible_fields
from analyses.runner import Item, Record, run_items, step_key
from landscape.errors import ConfigMismatchError, InputError, NonFiniteError

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
    return {**cfg.as_dict(), "bn": args.bn, "subset": args.subset, "params": args.params,
            "dtype": args.dtype, "batch_size": args.batch_size}


def item_keys(cfg: HessianJobConfig, step: int) -> list[str]:
    """The results keys ``hessian/step_…/<quantity>`` one step produces."""
    return [step_key("hessian", step, q) for q in cfg.quantities()]


def run(args) -> int:
    """Compute the missing items; under torchrun, as one rank of the data-parallel group."""
    cfg = job_config(args)
    ctx = init_from_env(check_device(args.device))
    ok = False
    try:
        with open_inputs(args, device=ctx.device) as inp:
            rc = _run(args, cfg, ctx, inp)
        ok = True
        return rc
    finally:
        shutdown(ctx, ok=ok)


def _run(args, cfg, ctx, inp) -> int:
    from landscape.params import ParamSpec

    P = ParamSpec.from_module(inp.run.model, include=param_patterns(args.params)).numel
    check_config(cfg, P)
    config = item_config(args, cfg)
    results = open_results(args.out, inp) if ctx.is_writer else None
    try:
        if results is not None:
            check_compatible(results, config, cfg.quantities())
        work = StepWork(inp, args, cfg, ctx, RankResults(ctx, results), subset_indices(inp, args.subset))
        items = [Item(key, partial(work.compute, step, key.rsplit("/", 1)[1]), label=key)
                 for step in inp.steps for key in item_keys(cfg, step)]
        log = print if ctx.is_writer else (lambda _msg: None)
        summary = run_items(work.results, items, config=config, source=inp.source, device=ctx.device, log=log)
    finally:
        if results is not None:
            results.close()
    log(f"{len(summary.computed)} item(s) computed, {len(summary.skipped)} already complete; results in {args.out}")
    return 0


def check_compatible(results, config: dict, quantities) -> None:
    """Refuse to add items to a results file whose items of the same quantity used other options.

    Raises:
        ConfigMismatchError: naming the options that differ and the values on each side.
    """
    for q in quantities:
        keys = [k for k in results.keys("hessian/") if k.endswith("/" + q)]
        if not keys or q == "dense":   # dense blocks carry their own fingerprint
            continue
        _, attrs = results.read_item(keys[0])
        diff = incompatible_fields(attrs.get("config", {}), config, q)
        if diff:
            shown = ", ".join(f"{n}: stored {a!r}, asked {b!r}" for n, (a, b) in diff.items())
            raise ConfigMismatchError(f"{results.path} holds {q} items computed with other options ({shown}); "
                                      "use the same options or another --out")


def _step_of(key: str) -> int:
    return int(key.split("/")[1].removeprefix("step_"))


def previous_eigen_key(results, step: int) -> str | None:
    """The complete eigen item of the latest step before ``step`` (the warm start), or None."""
    keys = [k for k in results.keys("hessian/") if k.endswith("/eigen") and _step_of(k) < step]
    return max(keys, key=_step_of) if keys else None


def read_block_dataset(results, key: str, name: str) -> np.ndarray:
    """All rows of the finished block dataset ``name`` of the (not yet complete) item ``key``."""
    reader = getattr(results, "read_block_dataset", None)
    if reader is not None:
        return reader(key, name)
    from landscape.io import _items  # until landscape.io offers a public reader (see docs/hessian-jobs.md)
    return _items.read_arrays(results._item(key))[name]


class StepWork:
    """Computes the (step, quantity) items; keeps the objective of the current step.

    Args:
        inp: the opened inputs; args: the parsed command line; cfg: what to compute;
        ctx: the process's place in the data-parallel group; results: the shared view
        of the results file; indices: the training examples used (all ranks together).
    """

    def __init__(self, inp, args, cfg: HessianJobConfig, ctx, results: RankResults, indices: np.ndarray):
        self.inp, self.args, self.cfg, self.ctx, self.results = inp, args, cfg, ctx, results
        self.indices = indices
        self._step, self._obj = None, None

    def objective(self, step: int):
        """The objective at ``step`` over this rank's shard (built once per step)."""
        if self._step != step:
            self._obj = objective_at(self.inp, step, self.args, indices=shard(self.indices, self.ctx),
                                     all_reduce=all_reduce_sum(self.ctx))
            self._step = step
        return self._obj

    def compute(self, step: int, quantity: str) -> Record:
        """The record of one item, with the step's identifying attributes."""
        obj = self.objective(step)
        try:
            rec = getattr(self, f"_{quantity}")(step, obj)
        except NonFiniteError as err:
            raise NonFiniteError(f"step {step}, {quantity}: {err}. Items finished before are kept in "
                                 f"{self.args.out}; rerunning the command resumes there") from None
        rec.attrs.update(step=int(step), param_sha256=self.inp.run.file.param_sha256(step), P=obj.spec.numel,
                         N=int(len(self.indices)), param_names=list(obj.spec.names), world_size=self.ctx.world_size)
        if self.args.subset is not None:
            rec.arrays["subset_indices"] = self.indices
        return rec

    def _bar(self, step: int, quantity: str, total: int | None):
        return progress(total, f"step {step} {quantity}", enabled=self.ctx.is_writer)

    def _eigen(self, step: int, obj) -> Record:
        key = self.results.shared(lambda r: _key_array(previous_eigen_key(r, step)))
        prev = None if key is None else self.results.shared(
            lambda r: r.read_item(_key_str(key))[0]["eigenvectors"])
        v0 = hj.warm_start_vectors(None if prev is None else {"eigenvectors": prev}, obj.spec.numel, self.cfg)
        with self._bar(step, "eigen", hj.eigen_budget(self.cfg, obj.spec.numel)) as bar:
            rec = hj.eigen_record(obj.hessian(obj.theta), self.cfg, v0=v0, on_matvec=_ticker(bar),
                                  on_cycle=lambda info: bar.set_postfix(res=f"{info['max_residual']:.1e}"))
        rec.attrs["warm_start_step"] = _step_of(_key_str(key)) if v0 is not None else -1
        return rec

    def _density(self, step: int, obj) -> Record:
        with self._bar(step, "density", self.cfg.density_probes * self.cfg.density_iters) as bar:
            return hj.density_record(obj.hessian(obj.theta), self.cfg, on_matvec=_ticker(bar))

    def _trace(self, step: int, obj) -> Record:
        with self._bar(step, "trace", self.cfg.trace_matvecs) as bar:
            return hj.trace_record(obj.hessian(obj.theta), self.cfg, on_matvec=_ticker(bar))

    def _dense(self, step: int, obj) -> Record:
        P, rows, key = obj.spec.numel, self.cfg.dense_block, step_key("hessian", step, "dense")
        hj.check_dense_size(P, self.cfg)
        fingerprint = {"param_sha256": self.inp.run.file.param_sha256(step), **item_config(self.args, self.cfg)}
        self.results.create_block_dataset(key, "hessian", (P, P), np.float64, rows, attrs=fingerprint)
        todo = np.flatnonzero(~self.results.blocks_done(key, "hessian"))
        with self._bar(step, "dense", sum(min(rows, P - b * rows) for b in todo)) as bar:
            for b in todo:
                start, stop = int(b) * rows, min(P, (int(b) + 1) * rows)
                block = hj.dense_rows(obj, obj.theta, start, stop, on_matvec=bar.update)
                self.results.write_block(key, "hessian", start, block)
        if not self.ctx.is_writer:
            return Record({}, {})
        rec = hj.dense_spectrum(read_block_dataset(self.results.results, key, "hessian"))
        rec.attrs.update(block_rows=rows, blocks_resumed=int(-(-P // rows) - len(todo)))
        return rec


def _ticker(bar):
    """``on_matvec(total_so_far)`` → advance the bar to that count."""
    return lambda n: bar.update(n - bar.n)


def _key_array(key: str | None) -> np.ndarray | None:
    return None if key is None else np.frombuffer(key.encode(), dtype=np.uint8).astype(np.int64)


def _key_str(a: np.ndarray | None) -> str:
    return "" if a is None else bytes(np.asarray(a, dtype=np.uint8)).decode()
