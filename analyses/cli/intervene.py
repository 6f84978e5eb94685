"""``landscape intervene RUN.h5 --steps SPEC --out RESULTS.h5``: interventions in the Hessian eigenbasis.

Needs the top eigenpairs of each chosen step, stored by ``landscape hessian`` as
``hessian/step_XXXXXXXX/eigen`` (in ``--eigen FILE``, default the ``--out`` file); the loss they are
of (training subset, BatchNorm mode, parameters, dtype) is taken from that item. Writes
``intervene/step_XXXXXXXX/<quantity>`` (``--do``, default all):

* ``newton`` — θ − Σ_{i≤m} (gᵀv_i/λ_i) v_i for m = 0 … M (positive λ only; the skipped rows are
  stored) and the moves to each direction's line-search minimum; train/test loss and accuracy
  against m and the λ threshold, and the quadratic model's predicted change −½Σ(gᵀv_i)²/λ_i;
* ``noise`` — Gaussian noise of scale σ per direction in bands of eigendirections (``--band-splits``)
  and in the bulk (complement) and everywhere, ``--draws`` draws per σ: mean, spread, standard error;
* ``noise_learned`` — the band scales σ_b learned by SGD on a validation half of the test split;
* ``continued_<variant>`` — continued training from the step with the update shaped in the top-k
  basis (inverse-λ, the stationary-variance rule, Dom-SGD, Bulk-SGD) and the batch-size-1 epoch,
  each on the plain-SGD control's batch plan; the basis refreshed every ``--refresh`` updates.

A rerun skips finished items; other options for a finished item are refused (use another --out).
The work is :class:`analyses.interventions.InterventionWork`; formulas and papers: docs/interventions.md.
"""

from __future__ import annotations

import argparse
from functools import partial

from analyses.cli.args import (
    add_progress_args,
    add_recompute_arg,
    add_run_args,
    command_config,
    floats,
    names,
    report,
)
from analyses.driver.continuation import Continuer
from analyses.driver.eigen import check_eigen_steps, open_eigen_and_out, read_eigen
from analyses.driver.inputs import default_device, open_run_inputs
from analyses.driver.progress import showing
from analyses.driver.runner import Item, run_items
from analyses.driver.settings import check_settings, normal, stored_settings
from analyses.interventions import (
    QUANTITIES,
    InterventionConfig,
    InterventionWork,
    item_quantities,
)
from analyses.interventions.continued import VARIANTS
from landscape.errors import InputError
from landscape.io import step_key

NAME = "intervene"
HELP = ("interventions in the Hessian eigenbasis: Newton in the top subspace, noise per eigen-band (and learned), "
        "continued training shaped in the top-k basis")
EIGEN_OPTIONS = ("bn", "subset", "params", "dtype")   # the objective the eigenpairs are of


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise InputError(f"cannot read {text!r} as comma-separated ranks (e.g. 3 or 2,5)") from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_run_args(p, steps="last")
    p.add_argument("--eigen", default=None, metavar="RESULTS.h5",
                   help="results file holding hessian/step_*/eigen (default: the --out file)")
    p.add_argument("--do", default=",".join(QUANTITIES), help=f"which interventions: {','.join(QUANTITIES)} (default all)")
    p.add_argument("--device", default=default_device(), help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--batch-size", type=int, default=1024, metavar="B", help="examples per forward pass; default 1024")
    p.add_argument("--seed", type=int, default=0, help="seed of noise draws, the validation split and Lanczos; default 0")
    n = p.add_argument_group("Newton in the top subspace")
    n.add_argument("--m-max", type=int, default=None, help="directions moved (default: every positive λ stored)")
    n.add_argument("--linesearch", default="auto", help="line-search minima: auto (stored if usable), stored, compute, none")
    n.add_argument("--ls-points", type=int, default=41, help="grid points per computed line search; default 41")
    n.add_argument("--ls-span", type=float, default=3.0, help="grid half-width in units of the Newton step; default 3")
    n.add_argument("--ls-floor", type=float, default=1e-3, help="smallest grid unit (θ units); default 1e-3")
    z = p.add_argument_group("noise per eigen-band")
    z.add_argument("--band-splits", type=_ints, default=None, metavar="A[,B...]",
                   help="ranks cutting the eigenvectors into bands (one split: top/middle); default k//2")
    z.add_argument("--noise-scales", type=floats, default=(0.003, 0.01, 0.03, 0.1),
                   help="σ per direction, ≥ 0; default 0.003,0.01,0.03,0.1")
    z.add_argument("--draws", type=int, default=20, help="draws per (band, σ); default 20")
    z.add_argument("--learn-steps", type=int, default=30, help="SGD steps on log σ_b (0: none); default 30")
    z.add_argument("--learn-lr", type=float, default=0.1, help="step size on log σ_b; default 0.1")
    z.add_argument("--learn-optimizer", choices=("adam", "sgd"), default="adam",
                   help="adam (stochastic gradients, per-band normalised steps; default) or plain sgd")
    z.add_argument("--learn-init", type=float, default=0.01, help="σ_b at the start; default 0.01")
    z.add_argument("--learn-pairs", type=int, default=2, help="antithetic draws per SGD step; default 2")
    z.add_argument("--val-fraction", type=float, default=0.5, help="share of the test split used for validation")
    c = p.add_argument_group("continued training shaped in the top-k basis")
    c.add_argument("--variants", default=",".join(VARIANTS), help=f"{','.join(VARIANTS)} (default all)")
    c.add_argument("--continue-steps", type=int, default=None, help="updates (default: one epoch of the run)")
    c.add_argument("--continue-lr", type=float, default=None, help="constant η (default: the run's η at the step)")
    c.add_argument("--refresh", type=int, default=10, metavar="R", help="updates between eigenbasis refreshes; default 10")
    c.add_argument("--shape-k", type=int, default=None, help="eigenvectors shaping the update (default: all positive)")
    c.add_argument("--eval-every", type=int, default=None, help="updates between evaluations (default: steps // 8)")
    c.add_argument("--b1-lr", type=float, default=None, help="η of the batch-size-1 epoch (default: η / B)")
    c.add_argument("--refresh-tol", type=float, default=1e-3, help="relative residual of refreshed eigenpairs")
    add_recompute_arg(p)
    add_progress_args(p)


def config_from_args(args) -> InterventionConfig:
    fields = {f: getattr(args, f) for f in ("m_max", "linesearch", "ls_points", "ls_span", "ls_floor", "band_splits",
                                            "noise_scales", "draws", "learn_steps", "learn_lr", "learn_optimizer", "learn_init",
                                            "learn_pairs", "val_fraction", "continue_steps", "continue_lr", "refresh",
                                            "shape_k", "eval_every", "b1_lr", "refresh_tol", "seed")}
    return InterventionConfig(**fields, variants=tuple(names(args.variants, VARIANTS, "--variants")))


def stored_minima(results, step: int, options: dict) -> dict:
    """``{row: (min_t, bracketed)}`` of the stored line searches at ``step`` made on the eigenpairs' own loss."""
    key = step_key("linesearch", step, "curves")
    if not results.is_complete(key):
        return {}
    settings = stored_settings(results, key)
    if any(normal(settings.get(k)) != normal(v) for k, v in options.items()):
        return {}
    a = results.read_item(key)[0]
    return {int(r): (float(t), bool(b)) for r, t, b in zip(a["directions"], a["min_t"], a["bracketed"])}


def _inputs_for(inp, eig, batch_size: int):
    """(inputs over the whole training split, inputs over the eigenpairs' own examples) with their options."""
    options = {k: eig.config.get(k) for k in EIGEN_OPTIONS if k in eig.config}
    options.setdefault("dtype", "float32")
    options["bn"] = options.get("bn") or "eval"
    full = inp.replace(**{**options, "subset": None, "batch_size": batch_size})
    fit = full.replace(subset=options["subset"]) if options.get("subset") else full
    return full, fit


def _work(inp, eig_file, results, step: int, cfg: InterventionConfig, args) -> InterventionWork:
    eig0 = read_eigen(eig_file, step, param_sha256=inp.param_sha256(step))
    full, fit = _inputs_for(inp, eig0, args.batch_size)
    eig = read_eigen(eig_file, step, param_sha256=inp.param_sha256(step), names=full.spec.names)
    subset = fit.indices if fit is not full else None
    continuer = Continuer(full, subset=subset, bn=full.options.bn, seed=cfg.seed, progress=showing())
    return InterventionWork(full, fit, eig, cfg, stored_minima=stored_minima(results, step, fit.options.settings()),
                            continue_fn=continuer)


def run(args) -> int:
    cfg = config_from_args(args)
    quantities = item_quantities(cfg, names(args.do, QUANTITIES, "--do"))
    if not quantities:
        raise InputError("--do names no intervention; choose from " + ", ".join(QUANTITIES))
    with open_run_inputs(args.run, args.steps, device=args.device) as inp, \
            open_eigen_and_out(args.eigen, args.out, inp.run_id) as (eig_file, results):
        check_eigen_steps(eig_file, inp.steps)
        works = [_work(inp, eig_file, results, s, cfg, args) for s in inp.steps]       # every check before any work
        wanted = {w.key(q): (w, q) for w in works for q in quantities}
        settings = {key: normal({**w.fit_inputs.options.settings(), **cfg.settings(q), "quantity": q})
                    for key, (w, q) in wanted.items()}
        if not args.recompute:
            check_settings(results, settings)
        items = [Item(key, partial(w.compute, q, settings[key]), label=key) for key, (w, q) in wanted.items()]
        source = {**inp.source, "eigen": eig_file.path}
        summary = run_items(results, items, config=command_config(args), source=source, device=inp.device,
                            recompute=args.recompute)
    report(summary, args.out)
    return 0

