"""``landscape trajectory RUN.h5 --out RESULTS.h5``: the training trajectory in a reference eigenbasis.

Projects θ_t − θ_ref of every chosen saved step onto the eigenvectors stored at the
reference step (``--ref-step``, default: the last step with eigenvectors) and writes
``trajectory/step_REF/eigenbasis``: the coordinates (the signed distance along each
eigendirection, from θ_ref or, with ``--center linesearch``, from the minimum of the
full-data line search stored at the reference step), the settling step of each direction
(method: :mod:`analyses.trajectory`, which does the work), the oscillation amplitude overall and per
constant-learning-rate phase, and η·λ_i against the stability threshold of the run's
optimiser (2 for SGD, 2(1+β) for heavy ball, 2(1+β)/(1+2β) for Nesterov; weight decay
shifts λ). Reads parameters only: no forward passes.
"""

from __future__ import annotations

import argparse

import numpy as np

from analyses.cli.args import add_recompute_arg
from analyses.driver.eigen import check_eigen_steps, eigen_steps, open_eigen_and_out, read_eigen
from analyses.driver.runner import Item, run_items
from analyses.driver.settings import check_settings
from analyses.driver.steps import parse_steps
from analyses.linesearch.curves import select_directions
from analyses.trajectory import eigenbasis_record
from landscape.errors import InputError
from landscape.io import step_key

NAME = "trajectory"
HELP = "project the saved trajectory onto a checkpoint's Hessian eigenvectors: settling, oscillation, stability"
CENTERS = ("ref", "linesearch")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", metavar="RUN.h5", help="the run file written by `landscape train`")
    p.add_argument("--out", required=True, metavar="RESULTS.h5", help="results file (created or extended)")
    p.add_argument("--eigen", default=None, metavar="RESULTS.h5", help="file with the eigenvectors; default --out")
    p.add_argument("--steps", default="all", metavar="SPEC", help="saved steps to project; default all")
    p.add_argument("--ref-step", default=None, metavar="STEP",
                   help="reference checkpoint (saved, with eigenvectors); default: the last with eigenvectors")
    p.add_argument("--directions", default="all", help="top:n, bottom:n, all, or stored row indices")
    p.add_argument("--center", choices=CENTERS, default="ref",
                   help="distances from θ_ref, or from the full-data line-search minimum at the reference step")
    s = p.add_argument_group("settling test (see analyses/trajectory.py)")
    for name, default, kind, text in (("block", 0, int, "saved steps per block; 0: n/40"),
                                      ("tail-fraction", 0.25, float, "fraction first taken as stationary"),
                                      ("band", 2.0, float, "band half-width in block-mean stds"),
                                      ("persist", 3, int, "consecutive blocks inside the band"),
                                      ("alpha-drift", 0.01, float, "false-alarm rate of the drift test")):
        s.add_argument(f"--{name}", type=kind, default=default, help=f"{text}; default {default}")
    p.add_argument("--momentum", type=float, default=None, help="β for the threshold; default: the run's")
    add_recompute_arg(p)


def run(args) -> int:
    from landscape.io import RunFile

    with RunFile(args.run) as rf:
        run_id = {"path": rf.path, "run_sha256": rf.file_sha256}
        steps = parse_steps(args.steps, rf.saved_steps)
        with open_eigen_and_out(args.eigen, args.out, run_id) as (eig_file, out):
            ref = _ref_step(args.ref_step, eig_file, rf.saved_steps)
            eig = read_eigen(eig_file, ref, param_sha256=rf.param_sha256(ref))
            idx = select_directions(args.directions, eig.eigenvalues)
            centre = _centre(out, eig_file, ref, idx) if args.center == "linesearch" else np.zeros(len(idx))
            config = _config(args, rf, ref, steps)
            key = step_key(NAME, ref, "eigenbasis")
            if not args.recompute:
                check_settings(out, {key: {k: v for k, v in config.items() if k != "ref_step"}})
            item = Item(key, lambda: eigenbasis_record((rf.params(s) for s in steps), rf.params(ref), eig, idx,
                                                       steps, rf.step_metrics(), centre, config))
            run_items(out, [item], config=config, source={**run_id, "eigen": eig_file.path}, recompute=args.recompute)
    return 0


def _ref_step(spec: str | None, eig_file, saved: np.ndarray) -> int:
    have = eigen_steps(eig_file)
    if spec is None:
        usable = [s for s in have if s in set(saved.tolist())]
        if not usable:
            raise InputError(f"no saved step has eigenvectors in {eig_file.path} (steps with eigenvectors: "
                             f"{have or 'none'}); run `landscape hessian` first")
        return usable[-1]
    ref = parse_steps(spec, saved)
    if len(ref) != 1:
        raise InputError(f"--ref-step {spec!r} names {len(ref)} steps; give one saved step")
    check_eigen_steps(eig_file, ref)
    return ref[0]


def _centre(out, eig_file, ref: int, idx: np.ndarray) -> np.ndarray:
    """The full-data line-search minimum t*_i of each chosen direction at the reference step."""
    key = step_key("linesearch", ref, "curves")
    holder = out if out.is_complete(key) else eig_file
    if not holder.is_complete(key):
        raise InputError(f"--center linesearch needs {key}; run `landscape linesearch RUN.h5 --steps {ref} ...` first")
    arrays = holder.read_item(key)[0]
    where = {int(d): t for d, t in zip(arrays["directions"], arrays["min_t"])}
    missing = [int(i) for i in idx if int(i) not in where]
    if missing:
        raise InputError(f"the line search at step {ref} lacks direction(s) {missing}; rerun it with those directions")
    return np.array([where[int(i)] for i in idx])


def _config(args, rf, ref: int, steps: list[int]) -> dict:
    cfg = rf.config
    return {"ref_step": ref, "steps": steps, "directions": args.directions, "center": args.center,
            "block": args.block, "tail_fraction": args.tail_fraction, "band": args.band, "persist": args.persist,
            "alpha_drift": args.alpha_drift,
            "momentum": args.momentum if args.momentum is not None else float(cfg.get("momentum", 0.0)),
            "nesterov": bool(cfg.get("nesterov", False)), "weight_decay": float(cfg.get("weight_decay", 0.0)),
            **({"optimizer": cfg["optimizer"], "beta1": float(cfg.get("betas", (0.9,))[0])}
               if cfg.get("optimizer", "sgd") != "sgd" else {})}
