"""``landscape deeplinear MODE --out RESULTS.h5``: deep linear networks, exactly (seed 004).

Modes (``landscape deeplinear MODE --help`` lists each one's options):

* ``narrow``  — y = x·w₁·w₂ on y = a·x + noise: loss grid, gradient field, GD trajectories,
  critical points classified by the exact Hessian (through the Objective and solvers);
* ``regimes`` — error curves for an η sweep, labelled by η against 2/λ_max along the path;
* ``depth``   — narrow deep nets y = (Π wᵢ)·x up to D = 100: best η and learning time per
  depth, and the initialisation sweep;
* ``saxe``    — wide nets against the exact solution of Saxe et al. (2014), and learning time
  against depth for random vs orthogonal init;
* ``page``    — the depth × η × init grid and the interactive HTML page (``--html``);
* ``all``     — every study at its defaults, the figures (``--figures``) and the page.

Results go to ``--out`` (one item per quantity, ``deeplinear/<study>/<name>``, with the
study's configuration and provenance). A rerun skips complete items with the same settings
and refuses items computed with other settings unless ``--overwrite``. Figures are also
drawn later by ``landscape plot RESULTS.h5 --out DIR`` and join ``landscape report``.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import replace
from pathlib import Path

from analyses.cli.args import add_progress_args, add_threads_arg, torch_threads
from analyses.deeplinear import config as C
from analyses.deeplinear import records as R
from landscape.errors import InputError

NAME = "deeplinear"
HELP = "deep linear networks: exact landscapes, learning-rate regimes, depth × η × init, Saxe's solution, a page"
MODES = ("narrow", "regimes", "depth", "saxe", "page", "all")
MODE_HELP = {
    "narrow": "y = x·w₁·w₂: loss grid, gradient field, GD paths, critical points classified by the exact Hessian",
    "regimes": "error curves for an η sweep, labelled by η against 2/λ_max along the path",
    "depth": "narrow deep nets y = (Π wᵢ)·x up to D = 100: best η and learning time per depth; inits",
    "saxe": "wide nets against Saxe et al.'s exact solution; learning time against depth, random vs orthogonal init",
    "page": "the depth × η × init grid and the interactive HTML page (--html)",
    "all": "every study at its defaults, the figures (--figures) and the page (--html)",
}
FIGURES = {"narrow": ("deeplinear_landscape", "deeplinear_critical_points"), "regimes": ("deeplinear_regimes",),
           "depth": ("deeplinear_depth", "deeplinear_init"), "saxe": ("deeplinear_saxe", "deeplinear_saxe_depth"),
           "page": ()}


def floats(text: str) -> tuple[float, ...]:
    """``"0.1,0.2"`` → (0.1, 0.2); an empty string → () (refused later as an empty grid)."""
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def ints(text: str) -> tuple[int, ...]:
    """``"1,2,5"`` → (1, 2, 5)."""
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def points(text: str) -> tuple[tuple[float, float], ...]:
    """``"1.4,-1.6;1,-0.97"`` → ((1.4, −1.6), (1.0, −0.97))."""
    pts = tuple(floats(p) for p in text.split(";") if p.strip())
    if any(len(p) != 2 for p in pts):
        raise argparse.ArgumentTypeError(f"expected W1,W2 pairs separated by ';', got {text!r}")
    return pts


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, metavar="RESULTS.h5", help="results file (created or appended to)")
    p.add_argument("--figures", default=None, metavar="DIR", help="also draw this study's figures into DIR")
    p.add_argument("--overwrite", action="store_true", help="recompute items stored with other settings; replace the page")
    add_threads_arg(p)
    add_progress_args(p)


def _data_args(p: argparse.ArgumentParser) -> None:
    d = C.DataConfig()
    g = p.add_argument_group("data set y = a·x + noise (narrow nets)")
    g.add_argument("--slope", type=float, default=d.slope, help=f"a; default {d.slope}")
    g.add_argument("--noise", type=float, default=d.noise, help=f"std of the noise; default {d.noise}")
    g.add_argument("--num-points", type=int, default=d.num_points, help=f"N; default {d.num_points}")
    g.add_argument("--x-std", type=float, default=d.x_std, help=f"x ~ N(0, x_std²); default {d.x_std}")
    g.add_argument("--seed", type=int, default=d.seed, help=f"seed of the data; default {d.seed}")


def _narrow_args(p) -> None:
    n = C.NarrowConfig()
    p.add_argument("--grid", type=int, default=n.grid, help=f"loss-grid points per axis; default {n.grid}")
    p.add_argument("--span", type=float, default=n.span, help=f"grid over [−span, span]²; default {n.span}")
    p.add_argument("--field", type=int, default=n.field, help=f"gradient arrows per axis; default {n.field}")
    p.add_argument("--lr", type=float, default=n.lr, help=f"η of the trajectories; default {n.lr}")
    p.add_argument("--steps", type=int, default=n.steps, help=f"steps per trajectory; default {n.steps}")
    p.add_argument("--starts", type=points, default=n.starts, help="starts 'W1,W2;W1,W2;…'; default " +
                   ";".join(f"{a:g},{b:g}" for a, b in n.starts))


def _regimes_args(p) -> None:
    r = C.RegimesConfig()
    p.add_argument("--start", type=floats, default=r.start, help="W1,W2; default 1.4,-1.6")
    p.add_argument("--lrs", type=floats, default=None, help="η values (default: factors × 2/λ_max(start))")
    p.add_argument("--lr-factors", type=floats, default=r.lr_factors, help="the default sweep in units of 2/λ_max(start)")
    p.add_argument("--steps", type=int, default=r.steps, help=f"steps per curve; default {r.steps}")


def _depth_args(p) -> None:
    d = C.DepthConfig()
    p.add_argument("--depths", type=ints, default=d.depths, help="depths; default " + ",".join(map(str, d.depths)))
    p.add_argument("--inits", type=floats, default=d.inits, help="wᵢ = c for the depth sweep; default 0.9,1")
    p.add_argument("--lrs", type=floats, default=d.lrs, help="η sweep; default 31 values from 1e-4 to 3")
    p.add_argument("--threshold", type=float, default=d.threshold, help=f"learned at L − L* ≤ this; default {d.threshold}")
    p.add_argument("--max-steps", type=int, default=d.max_steps, help=f"horizon; default {d.max_steps}")
    p.add_argument("--init-depth", type=int, default=d.init_depth, help=f"depth of the init sweep; default {d.init_depth}")
    p.add_argument("--init-cs", type=floats, default=d.init_cs, help="wᵢ = c of the init sweep; default 0.7…1.15")
    p.add_argument("--init-sigmas", type=floats, default=d.init_sigmas, help="random inits N(0, σ²); default 0.25,0.5,1")
    p.add_argument("--init-max-steps", type=int, default=d.init_max_steps, help=f"init-sweep horizon; default {d.init_max_steps}")


def _saxe_args(p) -> None:
    s = C.SaxeConfig()
    p.add_argument("--singular-values", type=floats, default=s.singular_values, help="s_α; default 3,2,1,0.5")
    p.add_argument("--lr", type=float, default=s.lr, help=f"η of the two-layer run (τ = 1/(2η)); default {s.lr}")
    p.add_argument("--u0", type=float, default=s.u0, help=f"initial mode strength; default {s.u0}")
    p.add_argument("--steps", type=int, default=s.steps, help=f"steps of the two-layer run; default {s.steps}")
    p.add_argument("--init-scale", type=float, default=s.init_scale, help=f"small random init scale; default {s.init_scale}")
    p.add_argument("--depths", type=ints, default=s.depths, help="depth study; default " + ",".join(map(str, s.depths)))
    p.add_argument("--lrs", type=floats, default=s.lrs, help="η sweep of the depth study; default 16 values 1e-3…0.3")
    p.add_argument("--max-steps", type=int, default=s.max_steps, help=f"depth-study horizon; default {s.max_steps}")


def _page_args(p) -> None:
    g = C.PageConfig()
    p.add_argument("--html", default=None, metavar="PAGE.html", help="where the page goes (default: --out with .html)")
    p.add_argument("--depths", type=ints, default=g.depths, help="depth slider; default " + ",".join(map(str, g.depths)))
    p.add_argument("--lrs", type=floats, default=g.lrs, help="learning-rate slider; default 16 values 3e-4…1")
    p.add_argument("--inits", type=floats, default=g.inits, help="init slider (wᵢ = c); default 0.6…1.1")
    p.add_argument("--steps", type=int, default=g.steps, help=f"steps per curve; default {g.steps}")


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="mode", metavar="MODE", required=True)
    extra = {"narrow": _narrow_args, "regimes": _regimes_args, "depth": _depth_args, "saxe": _saxe_args,
             "page": _page_args, "all": lambda q: q.add_argument("--html", default=None, metavar="PAGE.html",
                                                                 help="the page (default: --out with .html)")}
    for mode in MODES:
        q = sub.add_parser(mode, help=MODE_HELP[mode], description=MODE_HELP[mode])
        _common(q)
        if mode != "saxe":
            _data_args(q)
        extra[mode](q)


def _scalar_config(args) -> C.DataConfig:
    return C.DataConfig(args.slope, args.noise, args.num_points, args.x_std, args.seed)


def study_config(args) -> C.StudyConfig:
    """The StudyConfig of the parsed arguments (defaults for the studies not chosen)."""
    cfg = C.StudyConfig() if args.mode == "saxe" else C.StudyConfig(data=_scalar_config(args))
    a = vars(args)
    if args.mode == "narrow":
        cfg = replace(cfg, narrow=C.NarrowConfig(grid=a["grid"], span=a["span"], field=a["field"], lr=a["lr"],
                                                 steps=a["steps"], starts=tuple(a["starts"])))
    elif args.mode == "regimes":
        cfg = replace(cfg, regimes=C.RegimesConfig(start=tuple(a["start"]), lrs=() if a["lrs"] is None else _grid(a["lrs"], "lrs"),
                                                   lr_factors=a["lr_factors"], steps=a["steps"]))
    elif args.mode == "depth":
        keys = ("depths", "inits", "lrs", "threshold", "max_steps", "init_depth", "init_cs", "init_sigmas", "init_max_steps")
        cfg = replace(cfg, depth=C.DepthConfig(**{k: a[k] for k in keys}))
    elif args.mode == "saxe":
        keys = ("singular_values", "lr", "u0", "steps", "init_scale", "depths", "lrs", "max_steps")
        cfg = replace(cfg, saxe=C.SaxeConfig(**{k: a[k] for k in keys}))
    elif args.mode == "page":
        cfg = replace(cfg, page=C.PageConfig(depths=a["depths"], lrs=a["lrs"], inits=a["inits"], steps=a["steps"]))
    return cfg


def _grid(values: tuple, name: str) -> tuple:
    if not values:
        raise InputError(f"--{name.replace('_', '-')} is an empty grid; give at least one value")
    return values


def stale_items(results, cfg: C.StudyConfig, study: str) -> list[str]:
    """Complete items of ``study`` stored with settings other than ``cfg``'s."""
    from analyses.driver.settings import differences, stored_settings

    want = cfg.item_config(study)
    return [it.key for it in R.plan(cfg, study)
            if results.is_complete(it.key) and differences(stored_settings(results, it.key), want)]


def _check_stale(results, cfg, study: str, overwrite: bool) -> list[str]:
    stale = stale_items(results, cfg, study)
    if stale and not overwrite:
        from analyses.driver.settings import check_settings

        check_settings(results, {key: cfg.item_config(study) for key in stale},   # names each difference
                       remedy="--overwrite to recompute them")
    return stale


def _page_path(args) -> Path | None:
    if args.mode not in ("page", "all"):
        return None
    path = Path(args.html) if args.html else Path(args.out).with_suffix(".html")
    if path.exists() and not args.overwrite:
        from landscape.errors import OutputExistsError

        raise OutputExistsError(f"{path} already exists; pass --overwrite to replace it or choose another --html")
    return path


def compute(results, cfg: C.StudyConfig, studies, *, overwrite: bool) -> None:
    """Run every item of ``studies`` not yet complete in ``results`` (the runner writes them)."""
    from analyses.driver.runner import Item, run_items

    from analyses.driver.progress import progress as bar_of

    plans = {s: R.plan(cfg, s) for s in studies}
    stale = {s: set(_check_stale(results, cfg, s, overwrite)) for s in studies}
    with bar_of(sum(map(len, plans.values())), "deeplinear", unit="item") as bar:
        for study, items in plans.items():
            counted = [Item(it.key, _counted(it.compute, bar), it.label) for it in items]
            for replace, part in ((True, [i for i in counted if i.key in stale[study]]),
                                  (False, [i for i in counted if i.key not in stale[study]])):
                run_items(results, part, config=cfg.item_config(study), source=SOURCE, log=print, recompute=replace)


SOURCE = {"generator": "landscape deeplinear", "data": "generated (see config)"}


def _counted(fn, bar):
    def wrapped():
        try:
            return fn()
        finally:
            bar.update(1)
    return wrapped


def run(args) -> int:
    from analyses.deeplinear.data import scalar_data
    from landscape.io import ResultsFile

    cfg = study_config(args)
    if args.mode != "saxe":
        scalar_data(cfg.data)              # zero variance in x: refused before any file is touched
    page = _page_path(args)
    studies = tuple(R.ITEMS) if args.mode == "all" else (args.mode,)
    with torch_threads(args.threads), ResultsFile(args.out, "a") as results:
        compute(results, cfg, studies, overwrite=args.overwrite)
        for line in summary(results, studies):
            print(line)
        if args.figures:
            _figures(results, studies, args.figures)
    if page is not None:
        from analyses.output.deeplinear_page import write_page

        print(f"page written to {write_page(args.out, page, overwrite=args.overwrite)}")
    return 0


def _figures(results, studies, out_dir) -> None:
    from analyses.output.render import render_figures

    names = [n for s in studies for n in FIGURES[s]]
    made = render_figures(results, None, out_dir, only=names, log=print)
    print(f"{len(made)} figure(s) written to {out_dir}")


def summary(results, studies) -> list[str]:
    """A few key numbers of the stored results, one line each."""
    lines = []
    get = lambda s, n: results.read_item(R.key(s, n))[0]
    if "narrow" in studies:
        cp = get("narrow", "critical_points")
        err = float(abs(cp["eigenvalues"] - cp["eigenvalues_theory"]).max()) if len(cp["points"]) else math.nan
        kinds = {k: int((cp["kind"] == k).sum()) for k in sorted(set(cp["kind"]))}
        lines.append(f"narrow: critical points {kinds}; max |λ − closed form| = {err:.2e}")
    if "regimes" in studies:
        rg = get("regimes", "curves")
        lines.append("regimes: " + ", ".join(f"η={e:.3g}: {lab}" for e, lab in zip(rg["lrs"], rg["label"])))
    if "depth" in studies:
        dp = get("depth", "sweep")
        for i, c in enumerate(dp["inits"]):
            lines.append(f"depth (wᵢ = {c:g}): " + ", ".join(
                f"D={d}: η*={e:.3g}, t={t}" for d, e, t in zip(dp["depths"], dp["best_lr"][:, i], dp["best_time"][:, i])))
    if "saxe" in studies:
        sx = get("saxe", "modes")
        lines.append("saxe: max |u_GD − u_theory| / s per mode = " +
                     ", ".join(f"{e:.2%}" for e in sx["max_error_over_s"]) + f" (τ = {sx['tau']:g} steps)")
    return lines
