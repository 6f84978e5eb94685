"""``landscape hyper ACTION``: hypergradients through training (``scan``, ``optimize``).

    landscape hyper scan [RUN.h5] --hyper lr --min 0.01 --max 1 --num 40 \\
        --horizons 10,50,200 --seeds 0,1,2 --out SCAN.h5 [--route forward] [--points 0:10]
    landscape hyper optimize --recipe schedule|init|ard|distill|distill_fixed --out OPT.h5 \\
        [--iterations 60] [--meta-lr 0.05] [--steps 200] [...any field of the recipe's config]

Each grid point is one results item ``hyper_scan/<hyper>/point_NNNNN`` (all seeds and horizons;
attrs ``index``, ``value``); once every point is in the file, ``hyper_scan/<hyper>/summary`` holds
the diagnostics across the grid and the transition (see :mod:`analyses.hyper_scan`). A rerun
skips finished points; a file holding a scan with other settings is refused. The training
problem is the run file's (model, data, optimiser, its logged batches and θ_0 for its own seed;
other seeds are drawn as the trainer would draw them), or one given by ``--model``,
``--dataset`` and the optimiser options. ``--points a:b`` computes a chunk of the grid (what
``landscape jobs submit ... hyper scan ...`` gives each array task).

``optimize`` runs a recipe of :mod:`analyses.hyper_optimize` (gradient descent on hyperparameters by
their hypergradients): one item ``hyperopt/<recipe>/iter_NNNNN`` per meta-iteration (its state: a
killed run continues from the last complete one; a file holding the recipe run with other settings is
refused), then ``hyperopt/<recipe>/evaluation`` (the comparison on held-out seeds).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from functools import partial

from analyses import hyper_optimize as HO
from analyses import hyper_scan as HS
from analyses.cli.args import add_progress_args, add_recompute_arg, add_threads_arg, torch_threads
from analyses.driver.inputs import check_device, default_device, torch_dtype
from analyses.driver.problems import ProblemSource
from analyses.driver.progress import progress, showing
from analyses.driver.records import Item, Record
from analyses.driver.runner import run_items, write_table
from analyses.driver.settings import check_settings, normal
from analyses.hyper_optimize.config import field_help
from landscape.errors import InputError, NonFiniteError

NAME = "hyper"
HELP = "hypergradients through training: scan the meta-loss and its hypergradient over a hyperparameter"
ACTIONS = ("scan", "optimize")


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="hyper_action", metavar="ACTION", required=True)
    s = sub.add_parser("scan", help="meta-loss, hypergradient and chaos diagnostics on a log-spaced grid",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_scan_arguments(s)
    o = sub.add_parser("optimize", help="optimise hyperparameters by their hypergradients (the seeds' recipes)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_optimize_arguments(o)


def add_scan_arguments(s: argparse.ArgumentParser) -> None:
    """The ``hyper scan`` options (also parsed by ``landscape jobs submit``)."""
    d = HS.ScanConfig.__dataclass_fields__
    s.add_argument("run", nargs="?", default=None, metavar="RUN.h5",
                   help="a run file: its model, data, optimiser, batches and θ_0 (default: --model/--dataset)")
    s.add_argument("--out", required=True, metavar="RESULTS.h5", help="results file (created or extended)")
    g = s.add_argument_group("the scan")
    g.add_argument("--hyper", default=d["hyper"].default, help=f"one of {', '.join(HS.SCAN_HYPERS)}; default lr")
    g.add_argument("--min", type=float, default=d["lo"].default, dest="lo", help="smallest value; default 0.01")
    g.add_argument("--max", type=float, default=d["hi"].default, dest="hi", help="largest value; default 1")
    g.add_argument("--num", type=int, default=d["num"].default, help="grid points (log-spaced); default 40")
    g.add_argument("--horizons", type=_ints, default=d["horizons"].default, help="steps T; default 10,50,200")
    g.add_argument("--seeds", type=_ints, default=d["seeds"].default, help="seeds; default 0,1,2")
    g.add_argument("--route", default=d["route"].default, help="forward | checkpointed | reversible; default forward")
    g.add_argument("--fd-step", type=float, default=d["fd_step"].default, help="δ in ln x; default 1e-3")
    g.add_argument("--jacobian-seeds", type=int, default=d["jacobian_seeds"].default,
                   help="seeds whose step maps get the spectral radius; default 1")
    g.add_argument("--eig-tol", type=float, default=d["eig_tol"].default, help="stability eigsh tolerance")
    g.add_argument("--points", default="all", help="grid indices to compute: all, a:b or 1,4,5 (job-array chunks)")
    g.add_argument("--summary-only", action="store_true",
                   help="compute no point: write the summary if every point is in --out, else list the missing")
    m = s.add_argument_group("the training problem without a run file")
    m.add_argument("--model", default="mlp", help="model name; default mlp")
    m.add_argument("--model-kwargs", type=json.loads,
                   default={"in_dim": 40, "hidden": [100, 50], "activation": "tanh"},
                   help='JSON; default {"in_dim": 40, "hidden": [100, 50], "activation": "tanh"} (smooth: '
                        'no ReLU kinks in the meta-loss)')
    m.add_argument("--dataset", default="mnist1d", help="dataset name; default mnist1d")
    m.add_argument("--dataset-kwargs", type=json.loads, default={"num_train": 1000, "num_test": 1000},
                   help='JSON; default {"num_train": 1000, "num_test": 1000}')
    m.add_argument("--loss", default="cross_entropy")
    m.add_argument("--lr", type=float, default=0.1, help="η where lr is not scanned; default 0.1")
    m.add_argument("--momentum", type=float, default=0.9, help="β (heavy ball); default 0.9")
    m.add_argument("--weight-decay", type=float, default=0.0)
    m.add_argument("--nesterov", action="store_true")
    m.add_argument("--batch-size", type=int, default=250, help="default 250 (the seed's)")
    m.add_argument("--full-batch", action="store_true", help="gradient descent on the whole training set")
    c = s.add_argument_group("execution")
    c.add_argument("--device", default=default_device())
    c.add_argument("--dtype", choices=("float32", "float64"), default="float64",
                   help="default float64 (chaos vs rounding: see docs/hypergradients.md)")
    add_recompute_arg(c)
    add_progress_args(c)


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise InputError(f"cannot read {text!r} as comma-separated integers (e.g. 10,50,200)") from None


def scan_config(args) -> HS.ScanConfig:
    """The :class:`~analyses.hyper_scan.ScanConfig` of a command line."""
    return HS.ScanConfig(args.hyper, args.lo, args.hi, args.num, args.horizons, args.seeds, args.route,
                         args.fd_step, args.jacobian_seeds, args.eig_tol)


def item_keys(args) -> list[str]:
    """The point keys a command line asks for (for ``jobs submit``'s remaining-work check)."""
    cfg = scan_config(args)
    return [HS.point_key(cfg, i) for i in HS.parse_points(args.points, cfg.num)]


def run(args) -> int:
    if args.hyper_action == "scan":
        return run_scan(args)
    if args.hyper_action == "optimize":
        return run_optimize(args)
    raise InputError(f"unknown action {args.hyper_action!r}; choose one of {', '.join(ACTIONS)}")


def run_scan(args) -> int:
    cfg = scan_config(args)
    indices = HS.parse_points(args.points, cfg.num)
    device, dtype = check_device(args.device), torch_dtype(args.dtype)
    if cfg.route == "reversible" and args.run is None and not 0 < args.momentum < 1:
        from landscape.hyper.reversible import momentum_refusal

        raise InputError(momentum_refusal(args.momentum, "--momentum gives"))
    if args.summary_only:
        indices = []
    with ProblemSource(args, cfg.horizons[-1], device, dtype) as source, source.results(args.out) as results:
        settings = {"scan": cfg.as_dict(), "problem": source.spec}
        if args.recompute:
            results.remove_item(HS.summary_key(cfg))      # rewritten from the recomputed points
        else:
            check_settings(results, {key: settings for key in results.keys(f"hyper_scan/{cfg.hyper}/")})
        bar = progress(len(indices), f"hyper scan {cfg.hyper}", unit="point")
        items = [Item(HS.point_key(cfg, i), partial(_point, cfg, i, source, settings, bar)) for i in indices]
        done = run_items(results, items, config=settings, source=source.provenance, device=device,
                         log=lambda line: bar.write(line) if showing() else print(line), recompute=args.recompute)
        bar.close()
        wrote = write_summary(results, cfg, settings, source.provenance, device)
        missing = [i for i in range(cfg.num) if not results.is_complete(HS.point_key(cfg, i))]
    if missing:
        print(f"{len(missing)} grid point(s) still missing (e.g. {missing[:5]}); rerun to compute them")
    print(f"{len(done.computed)} point(s) computed, {len(done.skipped)} already complete"
          + ("; summary written" if wrote else "") + f"; results in {args.out}")
    return 0


def _point(cfg, index, source, settings, bar) -> Record:
    try:
        record = HS.scan_point(cfg, index, source.problem)
    except NonFiniteError as err:
        x = HS.grid(cfg)[index]
        raise NonFiniteError(f"at {cfg.hyper} = {x:.6g} (grid point {index}): {err} — the points before are "
                             f"saved; narrow the grid (--max below {x:.6g})") from None
    bar.update(1)
    record.attrs["settings"] = settings
    return record


def write_summary(results, cfg, settings: dict, source: dict, device) -> bool:
    """Write the summary item once every grid point is complete (True if written now)."""
    keys = [HS.point_key(cfg, i) for i in range(cfg.num)]
    if results.is_complete(HS.summary_key(cfg)) or not all(results.is_complete(k) for k in keys):
        return False
    points = [results.read_item(k)[0] for k in keys]
    record = _with(HS.summarize(cfg, points), settings)
    run_items(results, [Item(HS.summary_key(cfg), lambda: record)], config=settings, source=source,
              device=device, log=lambda _: None)
    for line in HS.describe(cfg, record.arrays):
        print(line)
    return True


def _with(record: Record, settings: dict) -> Record:
    record.attrs["settings"] = settings
    return record


# Job arrays (``landscape jobs submit ... hyper scan ...``): one task per chunk of grid points; the
# merge job writes the summary once every point is in.
JOB_ARRAY = {"command": ("hyper", "scan"), "unit_option": "--points", "unit": "grid point",
             "job_name": "landscape-hyper"}


def job_args(argv: list[str]):
    """``(argv, args)``: the ``hyper scan`` arguments parsed, a run file made absolute."""
    parser = argparse.ArgumentParser(prog="landscape jobs submit ... hyper scan")
    add_scan_arguments(parser)
    args = parser.parse_args(argv)
    argv = list(argv)
    if args.run is not None:
        argv[argv.index(args.run)] = os.path.abspath(args.run)   # tasks may start in another directory
    return argv, args


def pending_units(args) -> list[int]:
    """Grid indices of the scan whose point items are not complete in ``--out`` yet."""
    from landscape.io import ResultsFile

    cfg = scan_config(args)
    chosen = HS.parse_points(args.points, cfg.num)
    if not os.path.exists(args.out):
        return chosen
    with ResultsFile(args.out, "r") as results:
        return [i for i in chosen if not results.is_complete(HS.point_key(cfg, i))]


def job_finalize(argv: list[str], args, out: str) -> list[str]:
    """After merging: ``hyper scan ... --summary-only`` writes the summary across all points."""
    return ["hyper", "scan", *argv, "--out", out, "--summary-only"]


# ---- hyper optimize --------------------------------------------------------------------------------------

def add_optimize_arguments(o: argparse.ArgumentParser) -> None:
    """``--recipe``, ``--out``, one option per field of the recipe's config, execution options."""
    o.add_argument("--recipe", required=True, help=f"one of {', '.join(HO.RECIPE_NAMES)}")
    o.add_argument("--out", required=True, metavar="RESULTS.h5", help="results file (created or continued)")
    g = o.add_argument_group("settings (default: the recipe's; see docs/hyperparameter-optimisation.md)")
    notes = field_help()
    for f in dataclasses.fields(HO.OptimizeConfig):
        if f.name != "recipe":
            g.add_argument("--" + f.name.replace("_", "-"), dest=f.name, default=None, type=_field_parser(f.name),
                           help=notes.get(f.name, ""))
    c = o.add_argument_group("execution")
    c.add_argument("--device", default=default_device())
    c.add_argument("--dtype", choices=("float32", "float64"), default="float64", help="default float64")
    add_threads_arg(c)
    add_recompute_arg(c)
    add_progress_args(c)


def _field_parser(name: str):
    default = getattr(HO.OptimizeConfig(), name)
    if name == "meta_lr_groups":
        return lambda text: tuple((k, float(v)) for k, v in (p.split("=", 1) for p in text.split(",") if p.strip()))
    if isinstance(default, tuple):
        return lambda text: tuple(t.strip() for t in text.split(",") if t.strip())
    if isinstance(default, dict):
        return json.loads
    if isinstance(default, bool):
        return lambda text: {"true": True, "1": True, "false": False, "0": False}[text.strip().lower()]
    return type(default)


def run_optimize(args) -> int:
    overrides = {k: v for k, v in vars(args).items()
                 if k in HO.OptimizeConfig.__dataclass_fields__ and k != "recipe" and v is not None}
    cfg = HO.recipe(args.recipe, **overrides)
    device, dtype = check_device(args.device), torch_dtype(args.dtype)
    with torch_threads(args.threads), ProblemSource(_problem_args(cfg), cfg.steps, device, dtype, num_val=cfg.num_val) \
            as source, source.results(args.out) as results:
        work = HO.OptimizeWork(cfg, HO.ProblemData(source.problem, source.train, source.val, source.test,
                                                   source.targets, source.data.num_classes))
        settings = {**cfg.iterate_settings(), "problem": source.spec}
        _start(results, cfg, work, settings, args.recompute)
        print(f"hyper optimize {cfg.recipe}: route {work.route} ({work.route_reason})")
        bar = progress(cfg.iterations, f"hyper optimize {cfg.recipe}", unit="meta-iteration")
        items = [Item(HO.iteration_key(cfg, k), partial(_iteration, work, k, args.out, bar)) for k in range(cfg.iterations)]
        config = {**settings, "chosen_route": work.route, "route_reason": work.route_reason}
        done = run_items(results, items, config=config, source=source.provenance, device=device,
                         log=lambda line: bar.write(line) if showing() else print(line))
        bar.close()
        full = normal({**config, **cfg.as_dict()})
        wrote = write_table(results, HO.evaluation_key(cfg), lambda: _evaluation(work, full), full, source.provenance)
    print(f"{len(done.computed)} meta-iteration(s) computed, {len(done.skipped)} already complete"
          + ("; evaluation written" if wrote else "") + f"; results in {args.out}")
    return 0


def _problem_args(cfg):
    keys = ("model", "model_kwargs", "dataset", "dataset_kwargs", "loss", "lr", "momentum", "weight_decay",
            "batch_size", "full_batch")
    return argparse.Namespace(run=None, nesterov=False, **{k: getattr(cfg, k) for k in keys})


def _start(results, cfg, work, settings: dict, recompute: bool) -> None:
    """Refuse other settings (or clear them with --recompute), then continue after the last complete iteration."""
    keys = results.keys(f"hyperopt/{cfg.recipe}/")
    if recompute:
        for key in keys:
            results.remove_item(key)
        return
    check_settings(results, {k: settings for k in keys if k != HO.evaluation_key(cfg)},
                   remedy="--recompute to start the optimisation over")
    last = -1
    while last + 1 < cfg.iterations and results.is_complete(HO.iteration_key(cfg, last + 1)):
        last += 1
    if last >= 0:
        work.restore(results.read_item(HO.iteration_key(cfg, last))[0])


def _iteration(work, k: int, out: str, bar) -> Record:
    try:
        record = work.iteration(k)
    except NonFiniteError as err:
        kept = f"meta-iterations 0–{k - 1} are kept in {out}" if k else f"nothing was written to {out}"
        raise NonFiniteError(f"{err}; stopped: {kept}") from None
    record.attrs["route_reason"] = work.route_reason
    bar.update(1)
    return record


def _evaluation(work, settings: dict) -> Record:
    record = HO.evaluate(work, work.state.phi)
    record.attrs["settings"] = settings
    print(f"evaluation: {record.summary}")
    return record
