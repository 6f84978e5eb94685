"""``landscape gradproj RUN.h5 --steps SPEC --out RESULTS.h5``: per-example gradients in the eigenbasis.

Needs the top eigenvectors of each chosen step, stored by ``landscape hessian`` as
``hessian/step_XXXXXXXX/eigen`` (in ``--eigen FILE``, default the ``--out`` file). Writes
``gradproj/step_XXXXXXXX/projections``: the N × k projections g_i·v_j (forward-mode JVPs,
never N × P), per-example gradient norms, |cos|, per-class means and the fraction of
the full gradient inside the top-k subspace (see :mod:`analyses.gradient_projection`).
"""

from __future__ import annotations

import argparse
from functools import partial

import numpy as np
import torch

from analyses.commands._common import add_device_args, add_objective_args, add_run_args, open_inputs, open_results
from analyses.commands.sharpness import StepObjectives, check_settings, common_settings, vars_config
from analyses.gradient_projection import gradient_projections
from analyses.runner import Item, Record, run_items, step_key
from landscape.errors import ConfigMismatchError, InputError

NAME = "gradproj"
HELP = "per-example gradient projections onto stored Hessian eigenvectors (|cos|, class means, top-k fraction)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_run_args(p, steps="last")
    add_objective_args(p)
    add_device_args(p)
    p.add_argument("--eigen", default=None, metavar="RESULTS.h5",
                   help="results file holding hessian/step_*/eigen (default: the --out file)")
    p.add_argument("--k", type=int, default=None, help="use the top k stored eigenvectors (default: all)")


def eigen_key(step: int) -> str:
    return step_key("hessian", step, "eigen")


def read_eigen(source, step: int, k: int | None, names: tuple[str, ...], param_sha256: str) -> tuple:
    """``(eigenvalues (k,), eigenvectors (k, P), attrs)`` stored for ``step``, checked against the run.

    Raises:
        InputError: the step has no eigenvectors (the message says how to compute them) or
            fewer than k.
        ConfigMismatchError: they belong to other parameters (checksum or layout differs).
    """
    if not source.is_complete(eigen_key(step)):
        raise InputError(f"step {step} has no stored eigenvectors in {source.path}; compute them first with "
                         f"`landscape hessian RUN.h5 --steps {step} --k 10 --out {source.path}` (or pass --eigen FILE)")
    arrays, attrs = source.read_item(eigen_key(step))
    if attrs.get("param_sha256") not in (None, param_sha256):
        raise ConfigMismatchError(f"the eigenvectors of step {step} in {source.path} were computed at other "
                                  "parameters (checksum differs); recompute them for this run")
    if list(attrs.get("param_names", names)) != list(names):
        raise ConfigMismatchError(f"the eigenvectors of step {step} cover parameters {attrs.get('param_names')}, "
                                  f"not {list(names)}; pass the same --params as to `landscape hessian`")
    lam, V = np.asarray(arrays["eigenvalues"]), np.asarray(arrays["eigenvectors"])
    k = len(lam) if k is None else k
    if not 1 <= k <= len(lam):
        raise InputError(f"--k {k}: step {step} has {len(lam)} stored eigenvectors")
    return lam[:k], V[:k], attrs


class GradProjWork(StepObjectives):
    """Computes the projections item of one step."""

    def __init__(self, inp, args, source):
        super().__init__(inp, args)
        self.source = source

    def compute(self, step: int, settings: dict) -> Record:
        train, _ = self.at(step)
        lam, V, eig_attrs = read_eigen(self.source, step, self.args.k, train.spec.names,
                                       self.inp.run.file.param_sha256(step))
        V = torch.as_tensor(V).to(device=train.device, dtype=train.dtype)
        y = self.inp.run.dataset.y_train
        labels = y[torch.as_tensor(self.indices, device=y.device)].cpu().numpy()
        arrays = gradient_projections(train, train.theta, V, labels, num_classes=self.inp.run.dataset.num_classes)
        arrays.update(eigenvalues=lam, P=train.spec.numel)
        if self.args.subset is not None:
            arrays["example_indices"] = self.indices
        attrs = self.attrs(step, settings)
        attrs["eigen_source"] = {"file": self.source.path, "key": eigen_key(step),
                                 "config": eig_attrs.get("config", {})}
        return Record(arrays, attrs)


def run(args) -> int:
    if args.k is not None and args.k < 1:
        raise InputError(f"--k {args.k}: use at least one eigenvector")
    from landscape.io import ResultsFile

    with open_inputs(args) as inp, open_results(args.out, inp) as results:
        same = args.eigen is None or args.eigen == args.out
        source = results if same else ResultsFile(args.eigen, "r")
        try:
            for step in inp.steps:                                  # fail before any work
                read_eigen(source, step, args.k, _names(inp, args), inp.run.file.param_sha256(step))
            work = GradProjWork(inp, args, source)
            settings = {**common_settings(args), "k": args.k}
            keys = {step_key(NAME, s, "projections"): s for s in inp.steps}
            check_settings(results, {key: settings for key in keys})
            items = [Item(key, partial(work.compute, s, settings), label=key) for key, s in keys.items()]
            summary = run_items(results, items, config=vars_config(args), source=inp.source, device=inp.device)
        finally:
            if not same:
                source.close()
    print(f"{len(summary.computed)} item(s) computed, {len(summary.skipped)} already complete; results in {args.out}")
    return 0


def _names(inp, args) -> tuple[str, ...]:
    from analyses.commands._common import param_patterns
    from landscape.params import ParamSpec

    return ParamSpec.from_module(inp.run.model, include=param_patterns(args.params)).names
